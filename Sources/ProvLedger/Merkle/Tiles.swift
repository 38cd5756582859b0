import Foundation
import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// A resource of the C2SP tlog-tiles read API: a Merkle tile `tile/<L>/<N>[.p/<W>]` or an entry bundle
/// `tile/entries/<N>[.p/<W>]` (Specs/protocol.md §3).
public struct TileAddress: Sendable, Hashable, CustomStringConvertible {
    /// Tile level 0…63, or nil for an entry bundle.
    public var level: Int?
    public var index: UInt64
    /// 1…256; 256 is a full tile.
    public var width: Int

    public init(level: Int?, index: UInt64, width: Int = 256) {
        self.level = level
        self.index = index
        self.width = width
    }

    /// The entries (level 0, bundles) or level-`level` hashes the resource covers. Only for a tile that
    /// `exists(inTreeOf:)` some tree: a path may name any index, and beyond 2^56 this would not fit in 64 bits.
    public var range: Range<UInt64> { (index * 256)..<(index * 256 + UInt64(width)) }

    /// Whether the tree of `size` leaves has this tile (C2SP tlog-tiles): level `level` has `size / 256^level`
    /// hashes, and the tile's last one must be among them. Decided without arithmetic that could overflow,
    /// whatever index and level a request names.
    public func exists(inTreeOf size: UInt64) -> Bool {
        let level = self.level ?? 0
        let available = level >= 8 ? 0 : size >> UInt64(8 * level)
        guard available >= UInt64(width) else { return false }
        return index <= (available - UInt64(width)) / 256
    }

    /// The tile level and the hashes of that level that cover the perfect subtree `range` (2^h leaves starting at a
    /// multiple of 2^h, C2SP tlog-tiles): level ⌊h/8⌋, 2^(h mod 8) hashes, all within one tile. The subtree's root is
    /// the Merkle root of those hashes.
    package static func covering(perfectSubtree range: Range<UInt64>) -> (level: Int, hashes: Range<UInt64>) {
        let level = UInt64(range.count).trailingZeroBitCount / 8
        let shift = UInt64(8 * level)
        return (level, (range.lowerBound >> shift)..<(range.upperBound >> shift))
    }

    /// The path below the log prefix, e.g. `tile/0/x001/234.p/7` or `tile/entries/005`.
    public var description: String {
        "tile/" + (level.map { String($0) } ?? "entries") + "/" + Self.indexPath(index)
            + (width < 256 ? ".p/\(width)" : "")
    }

    /// A tile index in the path form (C2SP tlog-tiles): groups of three digits, all but the last prefixed with `x`,
    /// as `x001/234` for 1234.
    package static func indexPath(_ index: UInt64) -> String {
        var groups: [String] = []
        var n = index
        repeat {
            let d = String(n % 1000)
            groups.append(String(repeating: "0", count: 3 - d.count) + d)
            n /= 1000
        } while n > 0
        return groups.reversed().enumerated().map { $0.offset < groups.count - 1 ? "x" + $0.element : $0.element }
            .joined(separator: "/")
    }

    /// Parses the path below a log prefix (`tile/...`) in its one canonical form; nil otherwise.
    public init?(path: some StringProtocol) {
        var parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0] == "tile" else { return nil }
        if parts[1] == "entries" {
            level = nil
        } else {
            guard let l = Self.decimal(parts[1]), l <= 63 else { return nil }
            level = Int(l)
        }
        parts.removeFirst(2)
        width = 256
        if parts.count >= 2, parts[parts.count - 2].hasSuffix(".p") {
            guard let w = Self.decimal(parts.removeLast()), w >= 1, w <= 255 else { return nil }
            width = Int(w)
            parts[parts.count - 1] = parts[parts.count - 1].dropLast(2)
        }
        var n: UInt64 = 0
        for (i, p) in parts.enumerated() {
            var digits = p
            if i < parts.count - 1 {
                guard digits.first == "x" else { return nil }
                digits = digits.dropFirst()
            }
            guard digits.count == 3, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            let (m, o1) = n.multipliedReportingOverflow(by: 1000)
            let (s, o2) = m.addingReportingOverflow(UInt64(digits)!)
            guard !o1, !o2 else { return nil }
            n = s
        }
        // One canonical form: no leading `x000/` element.
        guard parts.count == 1 || parts[0] != "x000" else { return nil }
        index = n
    }

    /// Canonical decimal: digits, no sign, no leading zero.
    package static func decimal(_ s: some StringProtocol) -> UInt64? {
        guard !s.isEmpty, s.count <= 20, s.allSatisfy({ $0.isASCII && $0.isNumber }),
            s.count == 1 || s.first != "0"
        else { return nil }
        return UInt64(s)
    }
}

/// The hashes of the Merkle tiles above level 0, one flat file of 32-byte hashes per level
/// (`<log>/tiles/<L>`, Specs/format.md §10.10). A cache like the index: written after each group commit,
/// extended from the index on open when it lags, never trusted by a verifier. Level 0 is the index itself.
final class TileStore {
    let directory: String
    private var files: [Int: FileHandleFD] = [:]
    private(set) var counts: [Int: UInt64] = [:]
    let writable: Bool

    init(logDirectory: String, writable: Bool) {
        directory = logDirectory + "/tiles"
        self.writable = writable
    }

    /// Hashes of level `level` (≥ 1) stored so far.
    func count(_ level: Int) throws(LedgerError) -> UInt64 {
        if let c = counts[level] { return c }
        guard let f = try file(level, create: false) else { return 0 }
        let c = UInt64(try f.size / 32)
        counts[level] = c
        return c
    }

    /// The file of a level; created (with the folder) only for a write, so a small log has no tile files.
    private func file(_ level: Int, create: Bool) throws(LedgerError) -> FileHandleFD? {
        if let f = files[level] { return f }
        let path = "\(directory)/\(level)"
        if FileHandleFD.kind(of: path) == nil {
            guard create && writable else { return nil }
            try FileHandleFD.makeDirectory(directory, mode: 0o755)
        }
        // The folder too is never a link (Specs/format.md §10.1): `O_NOFOLLOW` guards the level file's own name only.
        if files.isEmpty { try FileHandleFD.expect(directory, is: .directory) }
        let f = try FileHandleFD(path: path, flags: writable ? O_RDWR | O_CREAT : O_RDONLY)
        files[level] = f
        return f
    }

    /// Writes hashes at their places (a tile hash has one place, so a repeated write is harmless). A run that
    /// would start past the end of its level is left out: after a failed write the level stops where it is
    /// whole (reads fall back to the index, and the next open fills it), never with a hole of zeros.
    func write(_ hashes: [TileHash]) throws(LedgerError) {
        var byLevel: [Int: [TileHash]] = [:]
        for h in hashes { byLevel[h.level, default: []].append(h) }
        for (level, list) in byLevel {
            guard let f = try file(level, create: true) else { continue }
            var start = list[0].index
            var run: [UInt8] = []
            func flush() throws(LedgerError) {
                guard !run.isEmpty, start <= (try count(level)) else {
                    run.removeAll(keepingCapacity: true)
                    return
                }
                try f.pwriteAll(run, at: Int(start) * 32)
                counts[level] = max(try count(level), start + UInt64(run.count / 32))
                run.removeAll(keepingCapacity: true)
            }
            for h in list {
                if h.index != start + UInt64(run.count / 32) {
                    try flush()
                    start = h.index
                }
                h.hash.withUnsafeBytes { run.appendRaw($0) }
            }
            try flush()
        }
    }

    func hashes(level: Int, _ range: Range<UInt64>) throws(LedgerError) -> [SHA256Digest] {
        guard !range.isEmpty else { return [] }
        guard let f = try file(level, create: false), range.upperBound <= (try count(level)) else {
            throw LedgerError(.io, "tile level \(level) holds no hashes \(range.lowerBound)..<\(range.upperBound)")
        }
        let bytes = try f.read(count: range.count * 32, at: Int(range.lowerBound) * 32)
        guard bytes.count == range.count * 32 else { throw LedgerError(.io, "short read in \(directory)/\(level)") }
        return bytes.withUnsafeBytes { b in (0..<range.count).map { SHA256Digest(copying: b.baseAddress! + $0 * 32) } }
    }

    /// Cuts every level to what a tree of `size` leaves holds.
    func truncate(size: UInt64) throws(LedgerError) {
        var level = 1
        while level <= 7 {
            let want = size >> UInt64(8 * level)
            if try count(level) > want, let f = try file(level, create: false) {
                try f.truncate(to: Int(want) * 32)
                counts[level] = want
            }
            level += 1
        }
    }

    func sync() {
        for f in files.values { try? f.sync() }
    }
}

extension LogStore {
    /// Index records (leaf hash, record offset) of entries in `range`, all below `size`.
    func indexRecords(_ range: Range<UInt64>) throws(LedgerError) -> [(leaf: SHA256Digest, offset: UInt64)] {
        guard range.upperBound <= size else {
            throw LedgerError(.io, "log \(org) has no entries \(range.lowerBound)..<\(range.upperBound) (size \(size))")
        }
        guard !range.isEmpty else { return [] }
        var out: [(leaf: SHA256Digest, offset: UInt64)] = []
        out.reserveCapacity(range.count)
        let onDisk = min(range.upperBound, indexedCountOnDisk)
        if range.lowerBound < onDisk, let index {
            let n = Int(onDisk - range.lowerBound)
            let per = SegmentFormat.indexRecordSize
            let bytes = try index.read(count: n * per, at: Int(range.lowerBound) * per)
            guard bytes.count == n * per else { throw LedgerError(.io, "log \(org): index file is short") }
            bytes.withUnsafeBytes { b in
                for i in 0..<n {
                    let p = b.baseAddress! + i * per
                    out.append(
                        (
                            SHA256Digest(copying: p),
                            UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 32, as: UInt64.self))
                        ))
                }
            }
        }
        if let bad = out.firstIndex(where: { $0.offset >= Self.maxIndexedOffset }) {
            throw Self.offsetPastAnySegment(org, range.lowerBound + UInt64(bad))
        }
        var s = max(range.lowerBound, onDisk)
        while s < range.upperBound {
            let r = try indexRecord(s)
            out.append((r.0, r.1))
            s += 1
        }
        return out
    }

    /// Leaf hashes of the entries in `range`.
    public func leafHashes(_ range: Range<UInt64>) throws(LedgerError) -> [SHA256Digest] {
        try indexRecords(range).map(\.leaf)
    }

    /// A tile or entry bundle as served by C2SP tlog-tiles, for a tree of at least `range.upperBound` leaves.
    /// Level 0 and bundles come from the index and the segments, higher levels from the tile store: nothing is
    /// re-hashed.
    public func tile(_ t: TileAddress) throws(LedgerError) -> [UInt8] {
        guard let level = t.level else { return try entryBundle(t.range) }
        var out: [UInt8] = []
        out.reserveCapacity(t.width * 32)
        let hashes = level == 0 ? try leafHashes(t.range) : try tileStore().hashes(level: level, t.range)
        for h in hashes { h.withUnsafeBytes { out.appendRaw($0) } }
        return out
    }

    /// Entries in `range` as a tlog-tiles entry bundle: each entry's canonical bytes behind a big-endian uint16
    /// length. Runs of entries that lie together in a segment are read with one call.
    public func entryBundle(_ range: Range<UInt64>) throws(LedgerError) -> [UInt8] {
        let records = try indexRecords(range)
        var out: [UInt8] = []
        var i = 0
        while i < records.count {
            let seq = range.lowerBound + UInt64(i)
            guard let si = segmentIndex(for: seq) else {
                throw LedgerError(.io, "log \(org): no segment holds seq \(seq)")
            }
            let segEnd = si + 1 < segments.count ? segments[si + 1].firstSeq : UInt64.max
            var j = i
            while j + 1 < records.count && range.lowerBound + UInt64(j + 1) < segEnd { j += 1 }
            // Entries i...j lie in segment si, in order; read from the first record to the end of the last. The
            // index is a cache on disk: offsets that do not rise, or that point past the segment, are damage,
            // said as such before any arithmetic or allocation they would size.
            let f = try reader(si)
            let fileSize = UInt64(try f.size)
            func damaged(_ k: Int) -> LedgerError {
                LedgerError(
                    .invalidEntry,
                    "log \(org) seq \(range.lowerBound + UInt64(k)): the index points outside its record in "
                        + "\(segments[si].path); run prov verify")
            }
            for k in i...j {
                guard records[k].offset < fileSize, k == i || records[k].offset > records[k - 1].offset else {
                    throw damaged(k)
                }
            }
            let start = Int(records[i].offset)
            let lastStart = Int(records[j].offset)
            let lastHead = try f.read(count: SegmentFormat.headerSize, at: lastStart)
            guard lastHead.count == SegmentFormat.headerSize else {
                throw LedgerError(.io, "log \(org) seq \(range.lowerBound + UInt64(j)) is past the end of its segment")
            }
            let lastLen = Int(lastHead[1]) << 24 | Int(lastHead[2]) << 16 | Int(lastHead[3]) << 8 | Int(lastHead[4])
            guard lastLen <= Entry.maxSize, UInt64(lastStart + SegmentFormat.headerSize + lastLen) <= fileSize else {
                throw damaged(j)
            }
            // Between two entries of a bundle lie at most a group's checkpoint record (the owner's lines only) and
            // state record, a few KiB: a span past the largest entry record plus 64 KiB for each is an offset gone
            // wrong, not a read to make.
            let maxRecord = SegmentFormat.headerSize + Entry.maxSize
            guard lastStart - start <= (j - i) * (maxRecord + (64 << 10)) else { throw damaged(j) }
            let bytes = try f.read(count: lastStart + SegmentFormat.headerSize + lastLen - start, at: start)
            try withRawBytes(bytes) { buf throws(LedgerError) in
                for k in i...j {
                    let seq = range.lowerBound + UInt64(k)
                    guard
                        case .record(.entry, let payload, _) = SegmentFormat.record(
                            in: buf, at: Int(records[k].offset) - start),
                        payload.count <= Entry.maxSize
                    else {
                        throw LedgerError(
                            .invalidEntry,
                            "log \(org) seq \(seq): damaged record in \(segments[si].path); run prov verify")
                    }
                    // The record's CRC-32C caught damage on disk; the leaf hash is the reader's to check (every
                    // copy and fetch verifies each entry against the tree), so serving does not hash twice.
                    out.append(UInt8(payload.count >> 8))
                    out.append(UInt8(payload.count & 0xFF))
                    out.appendRaw(payload)
                }
            }
            i = j + 1
        }
        return out
    }

    /// MTH(D[range]) (RFC 9162 §2.1.1) from stored hashes: an aligned block of 2^h leaves takes at most 128
    /// stored hashes (the tile level just below it); other ranges split as the RFC does.
    public func subtreeRoot(_ range: Range<UInt64>) throws(LedgerError) -> SHA256Digest {
        try Merkle.root(of: range, in: StoredSubtrees(store: self))
    }

    /// PATH(index, D[size]) of RFC 9162 §2.1.3.1, from stored hashes.
    public func inclusionProof(index: UInt64, size treeSize: UInt64) throws(LedgerError) -> [SHA256Digest] {
        guard index < treeSize, treeSize <= size else {
            throw LedgerError(
                .io, "log \(org): no inclusion proof for entry \(index) in a tree of \(treeSize) (size \(size))")
        }
        return try Merkle.inclusionProof(index: index, size: treeSize, in: StoredSubtrees(store: self))
    }

    /// PROOF(old, D[new]) of RFC 9162 §2.1.4.1, from stored hashes.
    public func consistencyProof(old: UInt64, new: UInt64) throws(LedgerError) -> [SHA256Digest] {
        guard old <= new, new <= size else {
            throw LedgerError(.io, "log \(org): no consistency proof from \(old) to \(new) (size \(size))")
        }
        return try Merkle.consistencyProof(old: old, new: new, in: StoredSubtrees(store: self))
    }
}

/// A log's stored hashes as a subtree hash source (RFC 9162 §2.1, Specs/format.md §10.10): a perfect subtree of
/// 2^h leaves is the root of the 2^(h mod 8) hashes of tile level ⌊h/8⌋ that cover it, at most 128, read in one
/// call from the index (level 0) or the tile store. Nothing is hashed again from the entries.
struct StoredSubtrees: SubtreeHashSource {
    typealias Failure = LedgerError
    let store: LogStore

    func hash(ofPerfectSubtree range: Range<UInt64>) throws(LedgerError) -> SHA256Digest? {
        let (level, covering) = TileAddress.covering(perfectSubtree: range)
        if level == 0 { return Merkle.root(try store.leafHashes(range)) }
        let tiles = try store.tileStore()
        // A log written without tiles, or a reader of a lagging store: the walk computes it from the level below.
        guard (try? tiles.count(level)) ?? 0 >= covering.upperBound else { return nil }
        return Merkle.root(try tiles.hashes(level: level, covering))
    }
}
