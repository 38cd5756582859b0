import Foundation
import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// One company's log on disk: segment files, a leaf-hash index and the latest checkpoint (Specs/format.md
/// §Data directory). A writable store holds the directory lock; appends are group commits, acknowledged only
/// after fdatasync.
public final class LogStore {
    public let directory: String
    public let origin: String
    public let org: String
    public let writable: Bool

    /// Entries covered by the latest checkpoint.
    public internal(set) var size: UInt64 = 0
    public internal(set) var latest: SignedCheckpoint?
    /// The writer's state after the last group written (acknowledged or not): where the next group starts.
    package internal(set) var state = WriterState.initial
    /// The state at `size`: after the last group acknowledged (last leaf, clock and citations of what counts).
    package internal(set) var committedState = WriterState.initial

    /// Largest segment before a new one is started (at a group-commit boundary).
    public var maxSegmentBytes = 512 << 20

    /// Entries in one group commit at most (Specs/format.md §10.9): a peer copies a log a group at a time and holds
    /// that group in memory until it verified, so a signed checkpoint is never further than this from the last.
    public static let maxGroupEntries = 1 << 20
    /// The most bytes of records one group commit holds (Specs/format.md §10.9): what a copy holds in memory
    /// before a checkpoint covers it.
    public static let maxGroupBytes = 512 << 20

    private let lock: DirectoryLock?
    /// Where warnings go: a torn tail cut on open, a cache (`index`, `checkpoint` file) that could not be written.
    let log: (String) -> Void
    /// The consortium whose rules and member key a writer checks its last group against on open.
    let keys: Consortium?
    /// A file was created in the log folder during this open: the folder is synced once at the end.
    var createdFiles = false

    // Segments: the files in seq order, the one appended to, and the ones read from.
    var segments: [SegmentReader.Segment] = []
    var current: FileHandleFD?
    var currentSize = 0
    var readers: [UInt64: FileHandleFD] = [:]
    /// A write or fsync failed: no further group until reopened.
    var failed: LedgerError?
    /// Where the last group acknowledged (or found whole on open) ends: a reopen cuts everything after it.
    var acknowledgedEnd: AcknowledgedEnd?
    /// The buffer of the last group written, reused by the next one (its pages are already mapped).
    var spare: [UInt8] = []

    // Index (Specs/format.md §10.6).
    var index: FileHandleFD?
    /// Index records not in the index file yet, after its first `indexedCount` records: found by a reader whose
    /// index lagged, or, for a writer, records whose write failed (a full disk), written again with the next
    /// group. Entries are never indexed past a gap, so the index file never gets a hole.
    var pendingIndex: [UInt8] = []
    var indexedCount: UInt64 = 0
    /// The index could not be written; warned once until it can be again.
    var indexFailing = false

    // Caches beside the segments: tiles (§10.10) and the `checkpoint` file (§10.7).
    /// Tile hashes above level 0 (opened on first use).
    var tiles: TileStore?
    var checkpointFile: FileHandleFD?
    /// The `checkpoint` file could not be written; warned once until it can be again.
    var checkpointFileFailing = false

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
    func repairTiles() throws(LedgerError) {
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
        guard off < Self.maxIndexedOffset else { throw Self.offsetPastAnySegment(org, seq) }
        return (leaf, off)
    }

    /// An index record's offset is a place in a segment file: past this, it is damage (and would not fit an `Int`
    /// where it is used), whatever the segment.
    static let maxIndexedOffset: UInt64 = 1 << 48

    static func offsetPastAnySegment(_ org: String, _ seq: UInt64) -> LedgerError {
        LedgerError(.invalidEntry, "log \(org) seq \(seq): its index record points past any segment; run prov verify")
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
}
