import Dispatch
import Foundation
import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// Record types of a segment file (Specs/format.md §Segment files).
package enum RecordType: UInt8 {
    /// An entry's canonical bytes.
    case entry = 0x01
    /// The writer's state after a group commit: tree size, Merkle frontier, last HLC, cited heads. A cache that
    /// saves re-hashing on restart; checked against the signed checkpoint that follows it.
    case state = 0x02
    /// The signed checkpoint that ends a group commit. Entries after the last one were never acknowledged.
    case checkpoint = 0x03
}

/// Segment record framing: type (1), payload length (4, big-endian), CRC-32C (4, big-endian) over type, length
/// and payload, then the payload.
package enum SegmentFormat {
    package static let magic: [UInt8] = Array("PROVSEG1".utf8)
    package static let headerSize = 9
    package static let maxPayload = 16 << 20
    /// Index record: leaf hash (32) and the record's byte offset in its segment (8, little-endian).
    package static let indexRecordSize = 40

    package static func frame(_ type: RecordType, _ payload: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let len = UInt32(payload.count)
        var head: [UInt8] = [
            type.rawValue, UInt8(len >> 24), UInt8(len >> 16 & 0xff), UInt8(len >> 8 & 0xff), UInt8(len & 0xff),
        ]
        let crc = head.withUnsafeBytes { CRC32C.checksum(payload, seed: CRC32C.checksum($0)) }
        head += [UInt8(crc >> 24), UInt8(crc >> 16 & 0xff), UInt8(crc >> 8 & 0xff), UInt8(crc & 0xff)]
        out += head
        out.appendRaw(payload)
    }

    package static func segmentName(firstSeq: UInt64) -> String {
        let s = String(firstSeq)
        return String(repeating: "0", count: 20 - s.count) + s + ".seg"
    }

    /// Parses one record at `offset`: `.end` at a clean end of data, `.damaged` with a description of the damage.
    /// With `checksum: false` the record's CRC is left for the caller to check with `checksumMatches`.
    package static func record(in buf: UnsafeRawBufferPointer, at offset: Int, checksum: Bool = true) -> RecordParse {
        if offset == buf.count { return .end }
        guard buf.count - offset >= headerSize else { return .damaged("partial record header") }
        let p = buf.baseAddress! + offset
        guard let type = RecordType(rawValue: p.load(as: UInt8.self)) else {
            return .damaged("unknown record type 0x\(String(p.load(as: UInt8.self), radix: 16))")
        }
        let len =
            Int(p.load(fromByteOffset: 1, as: UInt8.self)) << 24 | Int(p.load(fromByteOffset: 2, as: UInt8.self)) << 16
            | Int(p.load(fromByteOffset: 3, as: UInt8.self)) << 8 | Int(p.load(fromByteOffset: 4, as: UInt8.self))
        guard len <= maxPayload else { return .damaged("record length \(len) is over the limit") }
        guard buf.count - offset - headerSize >= len else { return .damaged("partial record (\(len) bytes announced)") }
        let payload = UnsafeRawBufferPointer(start: p + headerSize, count: len)
        if checksum && !checksumMatches(payload) { return .damaged(checksumMismatch) }
        return .record(type, payload, offset + headerSize + len)
    }

    package static let checksumMismatch = "record checksum mismatch"

    /// Whether the CRC-32C in the header before `payload` covers its first five bytes and the payload.
    package static func checksumMatches(_ payload: UnsafeRawBufferPointer) -> Bool {
        let p = payload.baseAddress! - headerSize
        let stored =
            UInt32(p.load(fromByteOffset: 5, as: UInt8.self)) << 24
            | UInt32(p.load(fromByteOffset: 6, as: UInt8.self)) << 16
            | UInt32(p.load(fromByteOffset: 7, as: UInt8.self)) << 8 | UInt32(p.load(fromByteOffset: 8, as: UInt8.self))
        return CRC32C.checksum(payload, seed: CRC32C.checksum(UnsafeRawBufferPointer(start: p, count: 5))) == stored
    }

    package enum RecordParse {
        case end
        case damaged(String)
        case record(RecordType, UnsafeRawBufferPointer, Int)
    }
}

/// Where the last two groups of a segment end, found by walking its records by their headers alone (no checksum,
/// no hashing): how a writer finds the group it builds on without reading the whole log.
struct GroupEnds {
    /// A record's offset in the segment and where its payload lies.
    struct Record {
        var offset: Int
        var payload: Range<Int>
    }

    /// The end of a group: its last entry, state and checkpoint records, the entries up to it, and the offset after it.
    struct End {
        var entries: UInt64
        var lastEntry: Record?
        var state: Record?
        var checkpoint: Record
        var offset: Int
    }

    /// The seq after the last entry walked.
    var entries: UInt64
    var last: End?
    var previous: End?

    /// Walks `bytes` from after the magic to `end`; nil when the magic is missing or a header does not parse.
    init?(_ bytes: [UInt8], upTo end: Int, firstSeq: UInt64) {
        guard end <= bytes.count, end >= SegmentFormat.magic.count,
            Array(bytes.prefix(SegmentFormat.magic.count)) == SegmentFormat.magic
        else { return nil }
        var entries = firstSeq
        var last: End?
        var previous: End?
        let whole: Bool = bytes.withUnsafeBytes { raw in
            let buf = UnsafeRawBufferPointer(rebasing: raw[0..<end])
            var offset = SegmentFormat.magic.count
            var lastEntry: Record?
            var state: Record?
            while true {
                switch SegmentFormat.record(in: buf, at: offset, checksum: false) {
                case .end: return true
                case .damaged: return false
                case .record(let type, let payload, let next):
                    let start = payload.baseAddress! - buf.baseAddress!
                    let r = Record(offset: offset, payload: start..<(start + payload.count))
                    switch type {
                    case .entry:
                        entries += 1
                        lastEntry = r
                    case .state:
                        state = r
                    case .checkpoint:
                        previous = last
                        last = End(entries: entries, lastEntry: lastEntry, state: state, checkpoint: r, offset: next)
                        state = nil
                    }
                    offset = next
                }
            }
        }
        guard whole else { return nil }
        self.entries = entries
        self.last = last
        self.previous = previous
    }
}

/// The writer state stored after each group commit.
package struct WriterState: Sendable, Equatable {
    package var frontier: MerkleFrontier
    package var lastLeaf: SHA256Digest
    package var hlc: HLC
    /// Highest seq of each other log that this log has cited in `deps`.
    package var cited: [String: UInt64]

    package static let initial = WriterState(
        frontier: MerkleFrontier(), lastLeaf: .zero, hlc: HLC(wall: 0, counter: 0), cited: [:])

    package var encoded: [UInt8] {
        var w = CBORWriter(reservingCapacity: 256)
        w.writeMapHeader(5)
        w.writeKey("hlc")
        w.writeArrayHeader(2)
        w.writeUnsigned(hlc.wall)
        w.writeUnsigned(hlc.counter)
        w.writeKey("last")
        lastLeaf.withUnsafeBytes { w.writeBytes($0) }
        w.writeKey("size")
        w.writeUnsigned(frontier.size)
        w.writeKey("cited")
        let orgs = cited.keys.sorted()
        w.writeArrayHeader(orgs.count)
        for o in orgs {
            w.writeArrayHeader(2)
            w.writeText(o)
            w.writeUnsigned(cited[o]!)
        }
        w.writeKey("frontier")
        w.writeArrayHeader(frontier.hashes.count)
        for h in frontier.hashes { h.withUnsafeBytes { w.writeBytes($0) } }
        return w.bytes
    }

    package init(frontier: MerkleFrontier, lastLeaf: SHA256Digest, hlc: HLC, cited: [String: UInt64]) {
        self.frontier = frontier
        self.lastLeaf = lastLeaf
        self.hlc = hlc
        self.cited = cited
    }

    package init(decoding raw: UnsafeRawBufferPointer) throws {
        var r = CBORReader(raw, maxDepth: 4)
        func digest(_ name: String) throws -> SHA256Digest {
            let b = try r.readBytes()
            guard b.count == 32 else { throw LedgerError(.invalidEntry, "\(name): must be 32 bytes, got \(b.count)") }
            return SHA256Digest(copying: b.baseAddress!)
        }
        guard try r.readMapHeader() == 5, try r.readText() == "hlc", try r.readArrayHeader() == 2 else {
            throw LedgerError(.invalidEntry, "state record: malformed")
        }
        hlc = HLC(wall: try r.readUnsigned(), counter: try r.readUnsigned())
        guard try r.readText() == "last" else { throw LedgerError(.invalidEntry, "state record: malformed") }
        lastLeaf = try digest("state.last")
        guard try r.readText() == "size" else { throw LedgerError(.invalidEntry, "state record: malformed") }
        let size = try r.readUnsigned()
        guard try r.readText() == "cited" else { throw LedgerError(.invalidEntry, "state record: malformed") }
        cited = [:]
        for _ in 0..<(try r.readArrayHeader()) {
            guard try r.readArrayHeader() == 2 else { throw LedgerError(.invalidEntry, "state record: malformed") }
            let o = try r.readText()
            cited[o] = try r.readUnsigned()
        }
        guard try r.readText() == "frontier" else { throw LedgerError(.invalidEntry, "state record: malformed") }
        let n = try r.readArrayHeader()
        guard n == size.nonzeroBitCount else {
            throw LedgerError(.invalidEntry, "state record: frontier has \(n) hashes for size \(size)")
        }
        var hashes: [SHA256Digest] = []
        for _ in 0..<n { hashes.append(try digest("state.frontier")) }
        try r.expectEnd()
        frontier = MerkleFrontier(size: size, hashes: hashes)
    }
}

extension MerkleFrontier {
    package init(size: UInt64, hashes: [SHA256Digest]) {
        self.init()
        self.restore(size: size, hashes: hashes)
    }
}

/// One company's log on disk: segment files, a leaf-hash index and the latest checkpoint (Specs/format.md
/// §Data directory). A writable store holds the directory lock; appends are group commits, acknowledged only
/// after fdatasync.
public final class LogStore {
    public let directory: String
    public let origin: String
    public let org: String
    public let writable: Bool

    /// Entries covered by the latest checkpoint.
    public private(set) var size: UInt64 = 0
    public private(set) var latest: SignedCheckpoint?
    /// The writer's state after the last group written (acknowledged or not): where the next group starts.
    package private(set) var state = WriterState.initial
    /// The state at `size`: after the last group acknowledged (last leaf, clock and citations of what counts).
    package private(set) var committedState = WriterState.initial

    /// Largest segment before a new one is started (at a group-commit boundary).
    public var maxSegmentBytes = 512 << 20

    /// Entries in one group commit at most (Specs/format.md §10.3): a peer copies a log a group at a time and holds
    /// that group in memory until it verified, so a signed checkpoint is never further than this from the last.
    public static let maxGroupEntries = 1 << 20

    private let lock: DirectoryLock?
    var segments: [(firstSeq: UInt64, path: String)] = []
    private var current: FileHandleFD?
    private var currentSize = 0
    private var readers: [UInt64: FileHandleFD] = [:]
    var index: FileHandleFD?
    private var failed: LedgerError?
    /// Tile hashes above level 0 (opened on first use).
    var tiles: TileStore?
    /// Where warnings go: a torn tail cut on open, a cache (`index`, `checkpoint` file) that could not be written.
    private let log: (String) -> Void
    /// The consortium whose rules and member key a writer checks its last group against on open.
    private let keys: Consortium?
    /// A file was created in the log folder during this open: the folder is synced once at the end.
    private var createdFiles = false

    var segmentDirectory: String { directory + "/segments" }
    var indexPath: String { directory + "/index" }
    public var checkpointPath: String { directory + "/checkpoint" }

    /// Opens (and for a writer, creates) the log of `org` under `dataDirectory`. A writer cuts a torn tail back
    /// to the last whole group commit and reports it through `log`; given the consortium (`verifyingWith`), it
    /// also checks the last group it builds on against the member's key and the verifier's rules, and refuses
    /// a damaged log (Specs/format.md §11). Nothing is opened through a symbolic link, and every file and folder
    /// must be what it should be (§10.1).
    public init(
        dataDirectory: String, consortium: String, org: String, writable: Bool, verifyingWith keys: Consortium? = nil,
        log: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    ) throws(LedgerError) {
        self.directory = dataDirectory + "/" + org
        self.origin = "\(consortium)/\(org)"
        self.org = org
        self.writable = writable
        self.log = log
        self.keys = keys
        if writable {
            try Self.makeDirectories(dataDirectory: dataDirectory, log: directory)
            let lock = try DirectoryLock(directory: directory)
            createdFiles = lock.created
            self.lock = lock
        } else {
            do { _ = try FileHandleFD(directory: directory) } catch {
                guard FileHandleFD.kind(of: directory) == nil else { throw error }
                throw LedgerError(.io, "no log for org '\(org)' in \(dataDirectory) (expected a folder \(directory))")
            }
            lock = nil
        }
        try recover()
        if writable { try repairTiles() }
        // New files' entries in the log folder are made durable with them (format.md §10.9).
        if createdFiles { try FileHandleFD.syncDirectory(directory) }
    }

    /// The tile store of this log.
    func tileStore() throws(LedgerError) -> TileStore {
        if let tiles { return tiles }
        let t = TileStore(logDirectory: directory, writable: writable)
        tiles = t
        return t
    }

    /// Brings the tile store in line with the log: cut what lies past `size` (a torn tail was cut), and
    /// compute what a crash between a commit and its tile write left out, from the level below.
    private func repairTiles() throws(LedgerError) {
        let t = try tileStore()
        try t.truncate(size: size)
        var level = 1
        while size >> UInt64(8 * level) > 0 {
            let want = size >> UInt64(8 * level)
            var have = try t.count(level)
            while have < want {
                let n = min(want - have, 4096)
                var out: [TileHash] = []
                out.reserveCapacity(Int(n))
                let below = (have * 256)..<((have + n) * 256)
                let hashes = level == 1 ? try leafHashes(below) : try t.hashes(level: level - 1, below)
                for b in 0..<Int(n) {
                    let root = Merkle.root(hashes[(b * 256)..<(b * 256 + 256)])
                    out.append(TileHash(level: level, index: have + UInt64(b), hash: root))
                }
                try t.write(out)
                have += n
            }
            level += 1
        }
    }

    /// Creates what a writer needs: the data directory (and the folders above it), `<org>/` and `segments/`, each
    /// made durable in its parent, so that a power cut cannot lose a log whose first group was acknowledged.
    /// `<org>/` and `segments/` get mode 0755 whatever the umask, and must be folders, not links.
    private static func makeDirectories(dataDirectory: String, log directory: String) throws(LedgerError) {
        var missing: [String] = []
        var p = dataDirectory
        while true {
            var st = stat()
            if stat(p, &st) == 0 {
                guard st.st_mode & S_IFMT == S_IFDIR else {
                    throw LedgerError(
                        .io,
                        p == dataDirectory
                            ? "data directory \(dataDirectory) is a file, not a directory"
                            : "cannot create data directory \(dataDirectory): \(p) is not a directory")
                }
                break
            }
            guard errno == ENOENT else { throw FileHandleFD.error("cannot create data directory", dataDirectory) }
            missing.append(p)
            let up = FileHandleFD.parent(of: p)
            if up == p { break }
            p = up
        }
        // Others may read a log, only its writer may change it: the data directory this creates is 0755 too.
        for m in missing.reversed() { try FileHandleFD.makeDirectory(m, mode: m == dataDirectory ? 0o755 : nil) }
        try FileHandleFD.makeDirectory(directory, mode: 0o755)
        try FileHandleFD.makeDirectory(directory + "/segments", mode: 0o755)
    }

    // MARK: Recovery

    /// `floor`: nil on open; on the rescan without the index, the acknowledged size the first pass found.
    private func recover(floor: UInt64? = nil) throws(LedgerError) {
        let useIndex = floor == nil
        let names: [String]
        do throws(LedgerError) {
            names = try FileHandleFD.list(directory: segmentDirectory).filter { $0.hasSuffix(".seg") }.sorted()
        } catch {
            // A reader of a log folder without `segments/` sees an empty log.
            guard !writable, FileHandleFD.kind(of: segmentDirectory) == nil else { throw error }
            names = []
        }
        for n in names {
            guard n.count == 24, let first = UInt64(n.prefix(20)) else {
                throw LedgerError(.invalidEntry, "\(segmentDirectory)/\(n) is not a segment file name")
            }
            // A link or a FIFO in a segment's place is refused here, before any read could block on it.
            try FileHandleFD.expect(segmentDirectory + "/" + n, is: .regularFile)
            segments.append((first, segmentDirectory + "/" + n))
        }
        if writable {
            if index == nil {
                let (f, created) = try FileHandleFD.openOrCreate(indexPath, flags: O_RDWR)
                index = f
                createdFiles = createdFiles || created
            }
        } else if useIndex {
            index = try FileHandleFD.openIfPresent(indexPath, flags: O_RDONLY)
        }
        var indexCount = useIndex ? UInt64((try index?.size ?? 0) / SegmentFormat.indexRecordSize) : 0
        // What this log has acknowledged, as far as the files written after each acknowledgement tell: a
        // writer cuts nothing below it.
        let claimed = floor == nil ? try claimedSize() ?? 0 : 0
        let acknowledged = floor ?? max(indexCount, claimed)

        // Scan from just after the last indexed entry when the index agrees with the segment there: what follows
        // is that group's state and checkpoint, then any groups the index missed, then perhaps a torn tail.
        var startSegment = 0
        var startOffset = SegmentFormat.magic.count
        if indexCount > 0, let (leaf, offset) = try? indexRecord(indexCount - 1),
            let si = segmentIndex(for: indexCount - 1),
            let end = try? checkedRecordEnd(segment: si, offset: Int(offset), leaf: leaf)
        {
            startSegment = si
            startOffset = end
        } else if indexCount > 0 {
            log("log \(org): index does not match the segments; rebuilding it")
            indexCount = 0
        }

        var seq = indexCount
        var pending: [(leaf: SHA256Digest, offset: UInt64)] = []
        var recovered: [(leaf: SHA256Digest, offset: UInt64)] = []
        var pendingState: WriterState?
        var committed: (segment: Int, offset: Int, count: UInt64, state: WriterState, checkpoint: SignedCheckpoint)?
        var committedBytes: [UInt8] = []
        var damage: String?
        var dataEnd = (segment: startSegment, offset: startOffset)

        scan: for si in startSegment..<segments.count {
            let bytes = try FileHandleFD(path: segments[si].path, flags: O_RDONLY).readAll()
            var offset = startOffset
            if si != startSegment || startOffset == SegmentFormat.magic.count {
                guard bytes.count >= 8, Array(bytes.prefix(8)) == SegmentFormat.magic else {
                    damage = "segment file without a valid header"
                    break scan
                }
                guard pending.isEmpty, segments[si].firstSeq == seq else {
                    damage = "segment \(segments[si].path) does not start where the previous one ended"
                    break scan
                }
                offset = SegmentFormat.magic.count
            }
            let stop: Bool = bytes.withUnsafeBytes { buf in
                while true {
                    switch SegmentFormat.record(in: buf, at: offset) {
                    case .end:
                        return false
                    case .damaged(let why):
                        damage = why
                        return true
                    case .record(let type, let payload, let next):
                        switch type {
                        case .entry:
                            pending.append((Merkle.leafHash(payload), UInt64(offset)))
                            seq += 1
                        case .state:
                            pendingState = try? WriterState(decoding: payload)
                        case .checkpoint:
                            guard let cp = try? SignedCheckpoint(parsing: String(decoding: payload, as: UTF8.self)),
                                let st = pendingState, cp.checkpoint.size == seq, st.frontier.size == seq,
                                cp.checkpoint.origin == origin
                            else {
                                damage = "checkpoint record that does not close the group before it"
                                return true
                            }
                            recovered += pending
                            pending.removeAll()
                            committed = (si, next, seq, st, cp)
                        }
                        offset = next
                        dataEnd = (si, offset)
                    }
                }
            }
            if committed?.segment == si { committedBytes = bytes }
            if stop { break }
            dataEnd = (si, bytes.count)
        }

        // (With the index trusted and no whole group after it, the scan is redone without the index first.)
        if writable && (committed?.count ?? 0) < acknowledged && (committed != nil || indexCount == 0) {
            let at = damage.map {
                "\($0) at byte \(dataEnd.offset) of segment \(segments[min(dataEnd.segment, segments.count - 1)].path)"
            }
            throw LedgerError(
                .io,
                "log \(org): the segments hold \(committed?.count ?? 0) entries in whole group commits, but \(acknowledged) "
                    + "were acknowledged (index and checkpoint files)"
                    + (at.map { "; \($0)" } ?? "; segment data is missing")
                    + ": the log was damaged or rolled back after it was written. Nothing was cut. "
                    + "Run prov verify; restore the log from a node that holds it")
        }
        guard let commit = committed else {
            if indexCount > 0 {
                // The index runs ahead of the whole group commits in the segments (a segment lost data it had
                // acknowledged, or the index was copied from elsewhere): trust only the segments.
                // The index file is left as it is until the segments are found to hold what it claims.
                log("log \(org): index runs past the last whole group commit; rebuilding it from the segments")
                return try rescanWithoutIndex(floor: acknowledged)
            }
            size = 0
            if writable {
                try cutTail(
                    after: (0, SegmentFormat.magic.count), dataEnd: dataEnd, pending: pending.count, damage: damage)
                try finishOpen()
            }
            return
        }
        guard commit.state.frontier.root == commit.checkpoint.checkpoint.root else {
            throw LedgerError(
                .invalidEntry,
                "log \(org): state record does not match the checkpoint at size \(commit.count); run prov verify")
        }
        if writable, let keys {
            let consistent = try checkLastGroup(
                segment: commit.segment, end: commit.offset, count: commit.count, bytes: committedBytes, keys: keys)
            if !consistent {
                guard useIndex else {
                    throw LedgerError(
                        .io,
                        "log \(org): the records of segment \(segments[commit.segment].path) do not add up to its "
                            + "checkpoints; nothing was appended. Run prov verify; restore the log from a node that "
                            + "holds it")
                }
                log("log \(org): index does not match the segments; rebuilding it")
                return try rescanWithoutIndex(floor: acknowledged)
            }
        }
        state = commit.state
        committedState = commit.state
        latest = commit.checkpoint
        size = commit.count
        // The records of the groups found after the index: written now by a writer, served from memory by a reader.
        indexedCount = commit.count - UInt64(recovered.count)
        pendingIndex = []
        pendingIndex.reserveCapacity(recovered.count * SegmentFormat.indexRecordSize)
        for r in recovered { Self.appendIndexRecord(r.leaf, r.offset, to: &pendingIndex) }
        if writable {
            try cutTail(
                after: (commit.segment, commit.offset), dataEnd: dataEnd, pending: pending.count, damage: damage)
            flushIndex()
            // Records past the last whole group (or that could not be rewritten) are dropped.
            try index?.truncate(to: Int(indexedCount) * SegmentFormat.indexRecordSize)
            try finishOpen()
            writeCheckpointFile(commit.checkpoint)
        }
    }

    /// The scan again from the first segment, without the index; `floor` is what the first pass found acknowledged.
    private func rescanWithoutIndex(floor: UInt64) throws(LedgerError) {
        if !writable { index = nil }
        pendingIndex = []
        indexedCount = 0
        segments = []
        readers = [:]
        try recover(floor: floor)
    }

    /// The size the `checkpoint` file claims for this log, if it holds a checkpoint of this log's origin. A file
    /// that is a link, a FIFO or anything but a regular file is refused.
    private func claimedSize() throws(LedgerError) -> UInt64? {
        guard let bytes = try FileHandleFD.openIfPresent(checkpointPath, flags: O_RDONLY)?.read(count: 1 << 16, at: 0),
            let text = String(bytes: bytes, encoding: .utf8),
            let cp = try? SignedCheckpoint(parsing: text), cp.checkpoint.origin == origin
        else { return nil }
        return cp.checkpoint.size
    }

    /// Before a writer appends, what it builds on must be what the member signed (Specs/format.md §11 step 8):
    /// the state and checkpoint records of the group before the last one, then the last group's entries, state
    /// record and checkpoint, checked with the verifier's own rules and messages. Only the last group is read;
    /// the frames before it in its segment are walked by their headers. Returns false when those frames do not
    /// add up to `count` entries (an index that does not match the segments).
    private func checkLastGroup(
        segment si: Int, end: Int, count: UInt64, bytes: [UInt8], keys: Consortium
    ) throws(LedgerError) -> Bool {
        guard let member = keys.member(org) else { return true }
        let name = String(segments[si].path.split(separator: "/").last ?? "")
        func damaged(_ message: String) -> LedgerError {
            LedgerError(
                .io,
                "log \(org) is damaged, nothing was appended: \(message). Run prov verify; restore the log from a node "
                    + "that holds it")
        }
        guard let walk = GroupEnds(bytes, upTo: end, firstSeq: segments[si].firstSeq),
            walk.entries == count, let last = walk.last, last.offset == end
        else { return false }
        // The group before the last one: in this segment, or at the end of the previous one.
        var before = walk.previous.map { (end: $0, bytes: bytes, name: name) }
        if before == nil && segments[si].firstSeq > 0 {
            guard si > 0 else { return false }
            let previousBytes = try FileHandleFD(path: segments[si - 1].path, flags: O_RDONLY).readAll()
            guard let w = GroupEnds(previousBytes, upTo: previousBytes.count, firstSeq: segments[si - 1].firstSeq),
                w.entries == segments[si].firstSeq, let e = w.last, e.offset == previousBytes.count
            else { return false }
            before = (e, previousBytes, String(segments[si - 1].path.split(separator: "/").last ?? ""))
        }
        var start = WriterState.initial
        var from = SegmentFormat.magic.count
        if let (b, buf, bName) = before {
            let m = b.entries
            guard let stateRecord = b.state, let entryRecord = b.lastEntry else { return false }
            let st: WriterState
            do { st = try buf[stateRecord.payload].withUnsafeBytes { try WriterState(decoding: $0) } } catch {
                throw damaged("\(org): state record at byte \(stateRecord.offset) of \(bName) is malformed")
            }
            let lastLeaf = buf[entryRecord.payload].withUnsafeBytes { Merkle.leafHash($0) }
            guard st.frontier.size == m, st.lastLeaf == lastLeaf else {
                throw damaged(
                    "\(org) seq \(m - 1): state record after it disagrees with the entries (size \(st.frontier.size)): "
                        + "the segment was modified")
            }
            let cp: SignedCheckpoint
            do { cp = try SignedCheckpoint(parsing: String(decoding: buf[b.checkpoint.payload], as: UTF8.self)) } catch
            {
                throw damaged("\(org): checkpoint record at byte \(b.checkpoint.offset) of \(bName): \(error.message)")
            }
            if let why = cp.signatureFailure(key: member.key) {
                throw damaged("\(org): checkpoint at size \(cp.checkpoint.size): \(why)")
            }
            guard cp.checkpoint.size == m else {
                throw damaged(
                    "\(org): checkpoint covers \(Phrase.count(cp.checkpoint.size, "entry", "entries")) but "
                        + "\(Phrase.count(m, "entry", "entries")) precede it")
            }
            guard cp.checkpoint.root == st.frontier.root else {
                throw damaged("\(org): state record does not match the checkpoint at size \(m)")
            }
            // The last group continues from this state: its frontier and last leaf were checked above, and its
            // clock and citations are what the last group's own state record must extend.
            start = st
            if bName == name { from = b.offset }
        }
        var scan = LogScan(member: member, consortium: keys, directory: directory, progress: nil)
        scan.range = LogScan.Range(segment: name, from: from, to: end, start: start)
        var audit = LogAudit(org: org)
        do { try scan.run(&audit) } catch let e as LedgerError {
            throw damaged(e.message)
        } catch { throw damaged("\(error)") }
        return true
    }

    /// Cuts whatever follows the last whole group commit: entries never acknowledged, and damaged bytes.
    private func cutTail(
        after end: (segment: Int, offset: Int), dataEnd: (segment: Int, offset: Int), pending: Int, damage: String?
    ) throws(LedgerError) {
        guard !segments.isEmpty else { return }
        var cut = 0
        var removed = false
        for si in stride(from: segments.count - 1, to: end.segment, by: -1) {
            cut += (try? FileHandleFD(path: segments[si].path, flags: O_RDONLY).size) ?? 0
            if unlink(segments[si].path) != 0 { throw FileHandleFD.error("cannot remove", segments[si].path) }
            readers[segments[si].firstSeq] = nil
            segments.removeLast()
            removed = true
        }
        if removed { try FileHandleFD.syncDirectory(segmentDirectory) }
        let f = try FileHandleFD(path: segments[end.segment].path, flags: O_RDWR)
        let fileSize = try f.size
        cut += fileSize - end.offset
        if fileSize > end.offset || (end.offset == SegmentFormat.magic.count && fileSize < end.offset) {
            if fileSize < SegmentFormat.magic.count { try f.pwriteAll(SegmentFormat.magic, at: 0) }
            try f.truncate(to: end.offset)
            try f.sync()
        }
        if cut > 0 {
            log(
                "log \(org): torn tail cut back to the last whole group commit (seq \(Int64(size) - 1)): "
                    + "\(Phrase.count(cut, "byte")), \(Phrase.count(pending, "whole entry", "whole entries")) never "
                    + "acknowledged"
                    + (damage.map { ", then \($0)" } ?? "") + "; nothing acknowledged was lost")
        }
    }

    private func finishOpen() throws(LedgerError) {
        if segments.isEmpty { try startSegment(firstSeq: 0) }
        current = try FileHandleFD(path: segments.last!.path, flags: O_RDWR)
        currentSize = try current!.size
        if checkpointFile == nil {
            let (f, created) = try FileHandleFD.openOrCreate(checkpointPath, flags: O_RDWR)
            checkpointFile = f
            createdFiles = createdFiles || created
        }
    }

    /// Index records not in the index file yet, after its first `indexedCount` records: found by a reader whose
    /// index lagged, or, for a writer, records whose write failed (a full disk), written again with the next
    /// group. Entries are never indexed past a gap, so the index file never gets a hole.
    private var pendingIndex: [UInt8] = []
    private var indexedCount: UInt64 = 0
    /// The index could not be written; warned once until it can be again.
    private var indexFailing = false

    /// Writes the pending index records at the end of the index file. A failure leaves them pending and is a
    /// warning, not an error: the entries are committed, and the index is a cache that the next open rebuilds.
    private func flushIndex() {
        guard writable, !pendingIndex.isEmpty, let index else { return }
        do {
            try index.pwriteAll(pendingIndex, at: Int(indexedCount) * SegmentFormat.indexRecordSize)
            indexedCount += UInt64(pendingIndex.count / SegmentFormat.indexRecordSize)
            pendingIndex.removeAll(keepingCapacity: true)
            if indexFailing {
                indexFailing = false
                log("log \(org): the index is written again, up to seq \(indexedCount - 1)")
            }
        } catch {
            if !indexFailing {
                indexFailing = true
                log(
                    "log \(org): \(error.message); the entries are committed all the same: the index is a cache, "
                        + "written again with the next group and rebuilt on the next open")
            }
        }
    }

    /// The end offset of the entry record at `offset` if it is whole and hashes to `leaf`.
    private func checkedRecordEnd(segment: Int, offset: Int, leaf: SHA256Digest) throws -> Int? {
        let f = try reader(segment)
        let head = try f.read(count: SegmentFormat.headerSize, at: offset)
        guard head.count == SegmentFormat.headerSize else { return nil }
        let len = Int(head[1]) << 24 | Int(head[2]) << 16 | Int(head[3]) << 8 | Int(head[4])
        let rec = try f.read(count: SegmentFormat.headerSize + len, at: offset)
        return rec.withUnsafeBytes { buf -> Int? in
            guard case .record(.entry, let payload, let next) = SegmentFormat.record(in: buf, at: 0),
                Merkle.leafHash(payload) == leaf
            else { return nil }
            return offset + next
        }
    }

    private func startSegment(firstSeq: UInt64) throws(LedgerError) {
        let path = segmentDirectory + "/" + SegmentFormat.segmentName(firstSeq: firstSeq)
        let f = try FileHandleFD(path: path, flags: O_RDWR | O_CREAT | O_TRUNC)
        try f.pwriteAll(SegmentFormat.magic, at: 0)
        try f.sync()
        try FileHandleFD.syncDirectory(segmentDirectory)
        segments.append((firstSeq, path))
        current = f
        currentSize = SegmentFormat.magic.count
    }

    // MARK: Reading

    func segmentIndex(for seq: UInt64) -> Int? {
        var lo = 0
        var hi = segments.count - 1
        guard hi >= 0, segments[0].firstSeq <= seq else { return nil }
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if segments[mid].firstSeq <= seq { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    func reader(_ segment: Int) throws(LedgerError) -> FileHandleFD {
        if let f = readers[segments[segment].firstSeq] { return f }
        let f = try FileHandleFD(path: segments[segment].path, flags: O_RDONLY)
        readers[segments[segment].firstSeq] = f
        return f
    }

    static func appendIndexRecord(_ leaf: SHA256Digest, _ offset: UInt64, to out: inout [UInt8]) {
        leaf.withUnsafeBytes { out.appendRaw($0) }
        withUnsafeBytes(of: offset.littleEndian) { out.appendRaw($0) }
    }

    func indexRecord(_ seq: UInt64) throws(LedgerError) -> (SHA256Digest, UInt64) {
        let b: [UInt8]
        if seq >= indexedCount, seq - indexedCount < pendingIndex.count / SegmentFormat.indexRecordSize {
            let at = Int(seq - indexedCount) * SegmentFormat.indexRecordSize
            b = Array(pendingIndex[at..<(at + SegmentFormat.indexRecordSize)])
        } else {
            guard let index else { throw LedgerError(.io, "log \(org): no index file") }
            b = try index.read(count: SegmentFormat.indexRecordSize, at: Int(seq) * SegmentFormat.indexRecordSize)
        }
        guard b.count == SegmentFormat.indexRecordSize else {
            throw LedgerError(.io, "log \(org): index has no record for seq \(seq)")
        }
        let leaf = SHA256Digest(bytes: b[0..<32])!
        let off = b[32..<40].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return (leaf, off)
    }

    /// The leaf hash of entry `seq` (from the index).
    public func leafHash(_ seq: UInt64) throws(LedgerError) -> SHA256Digest {
        guard seq < size else { throw LedgerError(.io, "log \(org) has no entry \(seq) (size \(size))") }
        return try indexRecord(seq).0
    }

    /// Leaf hashes of entries 0..<count.
    public func leafHashes(count: UInt64) throws(LedgerError) -> [SHA256Digest] {
        guard count <= size else { throw LedgerError(.io, "log \(org) has only \(size) entries") }
        var out: [SHA256Digest] = []
        out.reserveCapacity(Int(count))
        let fileCount = min(count, indexedCountOnDisk)
        if fileCount > 0, let index {
            let bytes = try index.read(count: Int(fileCount) * SegmentFormat.indexRecordSize, at: 0)
            bytes.withUnsafeBytes { b in
                for i in 0..<Int(fileCount) {
                    out.append(SHA256Digest(copying: b.baseAddress! + i * SegmentFormat.indexRecordSize))
                }
            }
        }
        var s = fileCount
        while s < count {
            out.append(try indexRecord(s).0)
            s += 1
        }
        return out
    }

    /// Entries whose index records are in the index file.
    var indexedCountOnDisk: UInt64 { min(indexedCount, size) }

    /// The canonical bytes of entry `seq`, checked against the record checksum and the indexed leaf hash.
    public func entryBytes(_ seq: UInt64) throws(LedgerError) -> [UInt8] {
        guard seq < size else { throw LedgerError(.io, "log \(org) has no entry \(seq) (size \(size))") }
        let (leaf, offset) = try indexRecord(seq)
        guard let si = segmentIndex(for: seq) else { throw LedgerError(.io, "log \(org): no segment holds seq \(seq)") }
        let f = try reader(si)
        let head = try f.read(count: SegmentFormat.headerSize, at: Int(offset))
        guard head.count == SegmentFormat.headerSize else {
            throw LedgerError(.io, "log \(org): seq \(seq) is past the end of its segment")
        }
        let len = Int(head[1]) << 24 | Int(head[2]) << 16 | Int(head[3]) << 8 | Int(head[4])
        let rec = try f.read(count: SegmentFormat.headerSize + min(len, SegmentFormat.maxPayload), at: Int(offset))
        return try withRawBytes(rec) { buf throws(LedgerError) -> [UInt8] in
            guard case .record(.entry, let payload, _) = SegmentFormat.record(in: buf, at: 0) else {
                throw LedgerError(
                    .invalidEntry, "log \(org) seq \(seq): damaged record in \(segments[si].path); run prov verify")
            }
            guard Merkle.leafHash(payload) == leaf else {
                throw LedgerError(
                    .invalidEntry,
                    "log \(org) seq \(seq): entry bytes do not match the indexed leaf hash; run prov verify")
            }
            return Array(payload)
        }
    }

    public func entry(_ seq: UInt64) throws(LedgerError) -> Entry {
        let bytes = try entryBytes(seq)
        do { return try Entry.decode(bytes) } catch {
            throw LedgerError(.invalidEntry, "log \(org) seq \(seq): \(error.message)")
        }
    }

    /// A tlog-proof receipt for entry `seq` against the latest checkpoint.
    public func receipt(_ seq: UInt64) throws(LedgerError) -> Receipt {
        guard let cp = latest else { throw LedgerError(.io, "log \(org) has no checkpoint yet") }
        guard seq < cp.checkpoint.size else {
            throw LedgerError(
                .io,
                "log \(org) has no entry \(seq): the latest checkpoint covers \(Phrase.count(cp.checkpoint.size, "entry", "entries"))"
            )
        }
        let proof = try inclusionProof(index: seq, size: cp.checkpoint.size)
        return Receipt(entry: try entryBytes(seq), index: seq, proof: proof, checkpoint: cp)
    }

    // MARK: Appending

    /// The buffer of the last group written, reused by the next one (its pages are already mapped).
    private var spare: [UInt8] = []

    /// Starts a group commit at the current end of the log.
    public func beginGroup(now: UInt64) -> PendingGroup {
        var g = PendingGroup(origin: origin, startSize: state.frontier.size, state: state, now: now)
        var buffer = spare
        spare = []
        buffer.removeAll(keepingCapacity: true)
        g.buffer = buffer
        return g
    }

    /// One group commit: builds entries for `bodies` and commits them (see `commit`).
    @discardableResult
    public func append(
        _ bodies: [EntryBody], signer: NoteSigner, now: UInt64, deps: [EntryRef] = [], citedHLC: HLC? = nil
    ) throws(LedgerError) -> [(seq: UInt64, leaf: SHA256Digest)] {
        var g = beginGroup(now: now)
        for (i, b) in bodies.enumerated() {
            g.add(b, deps: i == 0 ? deps : [], citedHLC: i == 0 ? citedHLC : nil)
        }
        return try commit(g, signer: signer)
    }

    /// Writes a group's entries, the writer state and a signed checkpoint, fdatasyncs, and only then returns the
    /// entries' seqs and leaf hashes. On failure nothing is acknowledged and the store refuses further appends
    /// until reopened (after a failed fsync the page cache cannot be trusted).
    public func commit(_ group: PendingGroup, signer: NoteSigner) throws(LedgerError) -> [(
        seq: UInt64, leaf: SHA256Digest
    )] {
        let w = try write(group, signer: signer)
        do throws(LedgerError) { try Self.sync(w) } catch {
            failed = error
            throw error
        }
        return try acknowledge(w)
    }

    /// Entries written to a segment but not yet known to be durable.
    public struct WrittenGroup: Sendable {
        fileprivate let results: [(seq: UInt64, leaf: SHA256Digest)]
        fileprivate let index: [UInt8]
        fileprivate let checkpoint: SignedCheckpoint?
        fileprivate let segment: FileHandleFD?
        fileprivate let startSize: UInt64
        fileprivate var tiles: [TileHash] = []
        fileprivate var state: WriterState? = nil
        fileprivate var deferred: DeferredData? = nil

        /// The checkpoint that closes the group.
        public var signedCheckpoint: SignedCheckpoint? { checkpoint }
        /// The log's size before the group.
        public var start: UInt64 { startSize }
    }

    /// The first half of a commit: signs the group's checkpoint and writes the group, without fsync. The next
    /// group may be built and written at once; nothing is acknowledged before `sync` and `acknowledge`.
    public func write(_ group: PendingGroup, signer: NoteSigner, deferringData: Bool = false) throws(LedgerError)
        -> WrittenGroup
    {
        guard writable, current != nil else { throw LedgerError(.io, "log \(org) is open read-only") }
        if let failed { throw LedgerError(.io, "log \(org) failed earlier (\(failed.message)); reopen it") }
        guard signer.name == origin else {
            throw LedgerError(.config, "the signing key is for '\(signer.name)', not for log '\(origin)'")
        }
        guard group.startSize == state.frontier.size, group.origin == origin else {
            throw LedgerError(
                .io, "log \(org): group was prepared at size \(group.startSize), the log is at \(state.frontier.size)")
        }
        guard !group.results.isEmpty else {
            return WrittenGroup(results: [], index: [], checkpoint: nil, segment: nil, startSize: group.startSize)
        }
        guard group.results.count <= Self.maxGroupEntries else {
            throw LedgerError(
                .invalidEntry,
                "a group commit holds at most \(Self.maxGroupEntries) entries, this one \(group.results.count): "
                    + "split the input")
        }
        let st = group.state
        let cp: SignedCheckpoint
        do {
            cp = try SignedCheckpoint.sign(
                Checkpoint(origin: origin, size: st.frontier.size, root: st.frontier.root), with: signer)
        } catch { throw LedgerError(.io, "cannot sign checkpoint: \(error)") }
        return try write(group, checkpoint: cp, deferringData: deferringData)
    }

    /// Writes a group closed by a checkpoint signed elsewhere: a copy of another company's log, whose entries
    /// the caller verified (`PendingGroup.addVerified`) and whose checkpoint signs exactly the group's end.
    ///
    /// With `deferringData`, the group's bytes are not written here but by `sync`, before its fsync (on the
    /// thread that syncs, while the caller checks the next group); the store's state already moves past them.
    public func write(_ group: PendingGroup, checkpoint cp: SignedCheckpoint, deferringData: Bool = false)
        throws(LedgerError) -> WrittenGroup
    {
        guard writable, current != nil else { throw LedgerError(.io, "log \(org) is open read-only") }
        if let failed { throw LedgerError(.io, "log \(org) failed earlier (\(failed.message)); reopen it") }
        guard group.startSize == state.frontier.size, group.origin == origin else {
            throw LedgerError(
                .io, "log \(org): group was prepared at size \(group.startSize), the log is at \(state.frontier.size)")
        }
        guard !group.results.isEmpty else {
            return WrittenGroup(results: [], index: [], checkpoint: nil, segment: nil, startSize: group.startSize)
        }
        let st = group.state
        guard cp.checkpoint.origin == origin, cp.checkpoint.size == st.frontier.size,
            cp.checkpoint.root == st.frontier.root
        else {
            throw LedgerError(
                .invalidEntry,
                "log \(org): the checkpoint for size \(cp.checkpoint.size) does not sign the group's end (size \(st.frontier.size))"
            )
        }
        // The group's records are written as they are; the state and checkpoint records follow them.
        var trailer = [UInt8]()
        trailer.reserveCapacity(1024)
        st.encoded.withUnsafeBytes { SegmentFormat.frame(.state, $0, into: &trailer) }
        Array(cp.serialized.utf8).withUnsafeBytes { SegmentFormat.frame(.checkpoint, $0, into: &trailer) }

        let rolling = currentSize >= maxSegmentBytes
        let base = rolling ? SegmentFormat.magic.count : currentSize
        var idx = [UInt8]()
        idx.reserveCapacity(group.results.count * SegmentFormat.indexRecordSize)
        for (i, r) in group.results.enumerated() {
            Self.appendIndexRecord(r.leaf, UInt64(base + group.offsets[i]), to: &idx)
        }
        var deferred: DeferredData?
        do throws(LedgerError) {
            if rolling { try startSegment(firstSeq: group.startSize) }
            let target = self.current!
            let at = currentSize
            if deferringData {
                deferred = DeferredData(records: group.buffer, trailer: trailer, at: at)
            } else {
                try DeferredData(records: group.buffer, trailer: trailer, at: at).write(to: target)
            }
            currentSize = at + group.buffer.count + trailer.count
        } catch {
            failed = error
            throw error
        }
        state = st
        if deferred == nil { spare = group.buffer }
        return WrittenGroup(
            results: group.results, index: idx, checkpoint: cp, segment: self.current, startSize: group.startSize,
            tiles: group.tiles, state: st, deferred: deferred)
    }

    /// A group's bytes whose write was left to `sync`.
    struct DeferredData: Sendable {
        let records: [UInt8]
        let trailer: [UInt8]
        let at: Int

        func write(to target: FileHandleFD) throws(LedgerError) {
            do throws(LedgerError) {
                try target.pwriteAll(records, at: at)
                try target.pwriteAll(trailer, at: at + records.count)
            } catch {
                // Nothing of the group stays behind (a full disk, a file-size limit).
                try? target.truncate(to: at)
                throw error
            }
        }
    }

    /// The second half: fdatasync of the group's segment (after writing the group's bytes, when `write` left
    /// them). Safe to call from another thread while the next group is being built (it touches only the file
    /// descriptor); groups are synced in the order they were written.
    public static func sync(_ w: WrittenGroup) throws(LedgerError) {
        if let d = w.deferred, let f = w.segment { try d.write(to: f) }
        try w.segment?.sync()
    }

    /// The last part: after `sync`, the group is committed: the size and the latest checkpoint move forward, and
    /// the acknowledgements are returned. The caches written after that (the index records, the `checkpoint` file)
    /// cannot undo it: a failure to write them is a warning through `log`, and the index records are written
    /// again with the next group or rebuilt by the next open (Specs/format.md §10.9).
    public func acknowledge(_ w: WrittenGroup) throws(LedgerError) -> [(seq: UInt64, leaf: SHA256Digest)] {
        guard let cp = w.checkpoint else { return [] }
        guard w.startSize == size, index != nil else {
            throw LedgerError(.io, "log \(org): groups must be acknowledged in the order they were written")
        }
        size = cp.checkpoint.size
        latest = cp
        if let st = w.state { committedState = st }
        pendingIndex += w.index
        flushIndex()
        writeCheckpointFile(cp)
        // A cache like the index: a failed write is repaired from the index on the next open.
        if !w.tiles.isEmpty { try? tileStore().write(w.tiles) }
        return w.results
    }

    private var checkpointFile: FileHandleFD?
    /// The `checkpoint` file could not be written; warned once until it can be again.
    private var checkpointFileFailing = false

    /// Overwrites the `checkpoint` file in place: one write of less than a page at offset 0 (a rename per group
    /// commit costs the journal more than the group's data). It is a copy of the last checkpoint record, rewritten
    /// on every open, so a crash in between loses nothing, and a failed write is a warning.
    private func writeCheckpointFile(_ cp: SignedCheckpoint) {
        guard let f = checkpointFile else { return }
        let bytes = Array(cp.serialized.utf8)
        do {
            try f.pwriteAll(bytes, at: 0)
            if try f.size != bytes.count { try f.truncate(to: bytes.count) }
            checkpointFileFailing = false
        } catch {
            if !checkpointFileFailing {
                checkpointFileFailing = true
                log(
                    "log \(org): \(error.message); the entries are committed all the same: the checkpoint file is a "
                        + "copy of the last checkpoint record, written again with the next group and on the next open")
            }
        }
    }

    /// Marks the store failed (a sync failed elsewhere): no further appends until reopened.
    public func fail(_ error: LedgerError) { failed = error }

    /// Writes what the index still lacks and flushes it (it is a cache rebuilt from the segments, so appends do
    /// not wait for it).
    public func close() {
        flushIndex()
        try? index?.sync()
        tiles?.sync()
    }
}

/// Entries built for one group commit, not yet written: seqs, chain, clocks and Merkle frontier are final, so
/// later entries of the same group can refer to earlier ones by leaf hash.
public struct PendingGroup {
    let origin: String
    package let startSize: UInt64
    package private(set) var state: WriterState
    let now: UInt64
    /// Framed entry records, and each record's offset in `buffer`.
    var buffer: [UInt8] = []
    var offsets: [Int] = []
    public private(set) var results: [(seq: UInt64, leaf: SHA256Digest)] = []
    /// The bodies added, for references within the group.
    public private(set) var bodies: [EntryBody] = []
    /// Tile hashes the group's leaves complete.
    var tiles: [TileHash] = []
    private var scratch = CBORWriter(reservingCapacity: 512)

    init(origin: String, startSize: UInt64, state: WriterState, now: UInt64) {
        self.origin = origin
        self.startSize = startSize
        self.state = state
        self.now = now
    }

    public var count: Int { results.count }

    /// The seq the next added entry gets.
    public var nextSeq: UInt64 { state.frontier.size }

    /// The group's entries (seq, leaf hash, canonical bytes), as a value that can travel to another thread.
    public var entries: GroupEntries { GroupEntries(buffer: buffer, offsets: offsets, results: results) }

    public mutating func reserve(_ n: Int) {
        buffer.reserveCapacity(n * 300 + 4096)
        offsets.reserveCapacity(n)
        results.reserveCapacity(n)
        bodies.reserveCapacity(n)
    }

    /// Adds an entry of another company's log, already verified by the caller (canonical bytes, chain, clock,
    /// citations): the bytes are stored as they are and the writer state follows them.
    public mutating func addVerified(_ raw: UnsafeRawBufferPointer, leaf: SHA256Digest, hlc: HLC, deps: [EntryRef]) {
        offsets.append(buffer.count)
        SegmentFormat.frame(.entry, raw, into: &buffer)
        state.hlc = hlc
        state.frontier.append(leaf, completing: &tiles)
        state.lastLeaf = leaf
        for d in deps { state.cited[d.org] = max(state.cited[d.org] ?? 0, d.seq) }
        results.append((state.frontier.size - 1, leaf))
    }

    /// The writer state after the entries added so far: size, frontier, last leaf, clock and citations.
    public var size: UInt64 { state.frontier.size }
    public var lastLeaf: SHA256Digest { state.lastLeaf }
    public var lastHLC: HLC { state.hlc }
    public var root: SHA256Digest { state.frontier.root }
    public func cited(_ org: String) -> UInt64? { state.cited[org] }

    /// A point in the group to go back to: the entries added after it can be dropped again (a request whose
    /// later event turned out bad, when several requests share one group commit).
    public struct Mark: Sendable {
        fileprivate let buffer: Int
        fileprivate let count: Int
        fileprivate let tiles: Int
        fileprivate let state: WriterState
    }

    public var mark: Mark { Mark(buffer: buffer.count, count: results.count, tiles: tiles.count, state: state) }

    /// Drops every entry added since `mark`.
    public mutating func rollback(to mark: Mark) {
        buffer.removeSubrange(mark.buffer...)
        offsets.removeSubrange(mark.count...)
        results.removeSubrange(mark.count...)
        if bodies.count > mark.count { bodies.removeSubrange(mark.count...) }
        tiles.removeSubrange(mark.tiles...)
        state = mark.state
    }

    /// Builds the next entry from `body`.
    @discardableResult
    public mutating func add(_ body: EntryBody, deps: [EntryRef] = [], citedHLC: HLC? = nil) -> (
        seq: UInt64, leaf: SHA256Digest
    ) {
        state.hlc = state.hlc.tick(now: now, cited: citedHLC)
        let seq = state.frontier.size
        let e = Entry(log: origin, seq: seq, prev: state.lastLeaf, hlc: state.hlc, deps: deps, body: body)
        scratch.removeAll()
        e.encode(into: &scratch)
        offsets.append(buffer.count)
        let leaf = scratch.withUnsafeBytes { raw in
            SegmentFormat.frame(.entry, raw, into: &buffer)
            return Merkle.leafHash(raw)
        }
        state.frontier.append(leaf, completing: &tiles)
        state.lastLeaf = leaf
        for d in deps { state.cited[d.org] = max(state.cited[d.org] ?? 0, d.seq) }
        results.append((seq, leaf))
        bodies.append(body)
        return (seq, leaf)
    }
}

/// The entries of a group: seq, leaf hash and canonical bytes of each (for a view fed after the group's fsync).
public struct GroupEntries: Sendable {
    let buffer: [UInt8]
    let offsets: [Int]
    let results: [(seq: UInt64, leaf: SHA256Digest)]

    public var count: Int { results.count }

    /// Each entry in order.
    public func forEach(_ body: (UInt64, SHA256Digest, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try buffer.withUnsafeBytes { b in
            for (i, r) in results.enumerated() {
                let start = offsets[i] + SegmentFormat.headerSize
                let end = i + 1 < offsets.count ? offsets[i + 1] : b.count
                try body(r.seq, r.leaf, UnsafeRawBufferPointer(rebasing: b[start..<end]))
            }
        }
    }
}

/// Group commit with the fsync of one group overlapped with building the next: at 1,000 entries a group the
/// fsync costs about as much as building, so overlapping nearly doubles throughput. Acknowledgements still come
/// only after each group's fsync, in order, through `acknowledged`: also those of a group whose fsync completed
/// before the next group failed to be written, since its entries are committed.
public final class PipelinedCommitter {
    public let store: LogStore
    let signer: NoteSigner
    private let pipeline: FsyncPipeline<Void>

    /// `acknowledged` gets each group's seqs and leaf hashes once the group is durable.
    public init(
        store: LogStore, signer: NoteSigner,
        acknowledged: @escaping ([(seq: UInt64, leaf: SHA256Digest)]) -> Void
    ) {
        self.store = store
        self.signer = signer
        pipeline = FsyncPipeline(
            acknowledge: { w, _ throws(LedgerError) in
                let acks = try store.acknowledge(w)
                if !acks.isEmpty { acknowledged(acks) }
            }, fail: { store.fail($0) })
    }

    /// Writes `group`, then waits for the previous group's fsync and acknowledges it, then starts this group's
    /// fsync in the background. When `group` cannot be written, the previous group is still waited for and
    /// acknowledged before the error is thrown.
    public func submit(_ group: PendingGroup) throws(LedgerError) {
        try pipeline.submit { () throws(LedgerError) in (try store.write(group, signer: signer), ()) }
    }

    /// Waits for the last group's fsync and acknowledges it.
    public func flush() throws(LedgerError) { try pipeline.flush() }
}

/// The ordering of a pipelined commit, for any writer of a log: a group is written (`submit`'s closure), the
/// previous group's fsync is awaited and that group acknowledged, then this group's write-out and fsync start
/// on a queue of their own. Groups count in order and only after their fsync; a failed fsync fails the log
/// (`fail`) and is thrown. Used by one thread.
public final class FsyncPipeline<Extra> {
    private let acknowledge: (LogStore.WrittenGroup, Extra) throws(LedgerError) -> Void
    private let fail: (LedgerError) -> Void
    private let queue = DispatchQueue(label: "prov.group-commit.fsync")
    private var inFlight: (group: LogStore.WrittenGroup, extra: Extra, done: DispatchGroup, error: ErrorBox)?

    final class ErrorBox: @unchecked Sendable {
        // Written by the fsync queue before `done.leave()`, read after `done.wait()`.
        var error: LedgerError?
    }

    /// `acknowledge` makes a synced group count (with what `submit`'s closure returned beside it); `fail` marks
    /// the log failed after a failed fsync.
    public init(
        acknowledge: @escaping (LogStore.WrittenGroup, Extra) throws(LedgerError) -> Void,
        fail: @escaping (LedgerError) -> Void
    ) {
        self.acknowledge = acknowledge
        self.fail = fail
    }

    /// Writes a group with `write`; when it cannot, the group before it is still finished before the error is
    /// thrown.
    public func submit(_ write: () throws(LedgerError) -> (LogStore.WrittenGroup, Extra)) throws(LedgerError) {
        let written: (LogStore.WrittenGroup, Extra)
        do throws(LedgerError) { written = try write() } catch {
            try flush()
            throw error
        }
        try flush()
        let done = DispatchGroup()
        let box = ErrorBox()
        done.enter()
        let w = written.0
        queue.async {
            do throws(LedgerError) { try LogStore.sync(w) } catch { box.error = error }
            done.leave()
        }
        inFlight = (written.0, written.1, done, box)
    }

    /// Waits for the last group's fsync and acknowledges it.
    public func flush() throws(LedgerError) {
        guard let f = inFlight else { return }
        inFlight = nil
        f.done.wait()
        if let e = f.error.error {
            fail(e)
            throw e
        }
        try acknowledge(f.group, f.extra)
    }
}
