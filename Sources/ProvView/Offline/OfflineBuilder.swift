import Dispatch
import Foundation
import ProvCrypto
import ProvLedger
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Entries of one log decoded off the lock, for `ViewIndex.insert(org:batch:)`.
struct DecodedBatch {
    var firstSeq: UInt64
    var entries: [DecodedEntry] = []
    var leaves: [SHA256Digest] = []
    /// The buffer the spans point into; it outlives the batch.
    var base: UnsafeRawPointer
    /// The batch's Merkle subtree, when it is a whole aligned block of `ViewIndex.block` entries.
    var subtree: MerkleCache.Subtree?
}

/// A view built offline from a data directory, with the entries it reads receipts from.
public struct OfflineView: Sendable {
    public var index: ViewIndex
    public var source: DataDirectorySource
    /// Logs of the directory left out of the view, and why (no checkpoint, bad signature, a root the entries do
    /// not give, an entry that does not decode, a folder that is no member's).
    public var excluded: [(org: String, reason: String)]
}

/// Reads entry bytes from the logs of a data directory, opened read-only on first use.
public final class DataDirectorySource: EntrySource {
    public let dataDirectory: String
    let consortium: String
    private let stores = Mutex<[String: LogStore]>([:])

    public init(dataDirectory: String, consortium: String) {
        self.dataDirectory = dataDirectory
        self.consortium = consortium
    }

    public func entryBytes(org: String, seq: UInt64) throws -> [UInt8] {
        try stores.withLock { s in
            if s[org] == nil {
                s[org] = try LogStore(
                    dataDirectory: dataDirectory, consortium: consortium, org: org, writable: false, log: { _ in })
            }
            return try s[org]!.entryBytes(seq)
        }
    }
}

extension ViewIndex {
    /// Builds the view of every log in `dataDirectory` (Specs/view.md §10.2). Each log's segments are read once,
    /// and the last checkpoint record that closes a group commit is the log's latest checkpoint. That checkpoint
    /// must be signed by the org's key in the descriptor, and the leaf hashes of the entries up to it must give its
    /// root. The leaf hashes are the ones the log's index file stores, each entry record checked by its CRC-32C (the
    /// node verified every entry when it was appended or received), or, with `hashEntries`, each entry's own
    /// SHA-256: then no file but the segments is trusted (for a data directory copied from elsewhere). Entries are
    /// decoded on every core and inserted in seq order. Nothing else is re-verified: each group's own checkpoint
    /// is covered by the latest one through the Merkle tree. Entries after the latest checkpoint (never
    /// acknowledged) are left uncommitted, so no query sees them.
    public static func build(
        dataDirectory: String, consortium: Consortium, linkKey: LinkKey?, hashEntries: Bool = false,
        progress: (@Sendable (String, UInt64) -> Void)? = nil
    ) throws(ViewError) -> OfflineView {
        let index = ViewIndex(consortium: consortium, linkKey: linkKey)
        let folders: [String]
        do { folders = try Verifier.logFolders(in: dataDirectory) } catch {
            throw ViewError(.source, error.message)
        }
        var excluded: [(String, String)] = []
        for org in folders {
            guard let o = consortium.members.firstIndex(where: { $0.org == org }) else {
                excluded.append((org, "not a member of consortium \(consortium.name)"))
                continue
            }
            do throws(ViewError) {
                try index.load(
                    org: o, directory: dataDirectory + "/" + org, hashEntries: hashEntries, progress: progress)
            } catch {
                excluded.append((org, error.message))
            }
        }
        return OfflineView(
            index: index, source: DataDirectorySource(dataDirectory: dataDirectory, consortium: consortium.name),
            excluded: excluded)
    }

    private func load(
        org o: Int, directory: String, hashEntries: Bool, progress: (@Sendable (String, UInt64) -> Void)?
    ) throws(ViewError) {
        let member = consortium.members[o]
        let org = member.org
        var st = stat()
        guard lstat(directory, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            throw ViewError(.source, "\(org): \(directory) is not a directory")
        }
        let reader = LogSegments(directory: directory + "/segments", org: org, origin: member.origin)
        let index = hashEntries ? nil : IndexFile(path: directory + "/index")
        var stopped: (seq: UInt64, error: ViewError)?
        var sawEntries = false
        let work = BatchWork()
        let latest = try reader.read { window, records, firstSeq throws(ViewError) in
            sawEntries = sawEntries || !records.isEmpty
            guard stopped == nil else { return }
            if let failure = ingestWindow(
                org: o, window: window, records: records, firstSeq: firstSeq,
                stored: index?.leaves(from: firstSeq, count: records.count) ?? [], work: work)
            {
                stopped = failure
            }
            progress?(org, firstSeq + UInt64(records.count))
        }
        guard let (size, checkpoint) = latest else {
            // An empty log (a member that has written nothing yet) is simply empty in the view.
            if !sawEntries { return }
            throw ViewError(.source, "\(org): entries but no signed checkpoint")
        }
        // An entry that does not decode is fatal only if the latest checkpoint covers it.
        if let stopped, stopped.seq < size { throw stopped.error }
        try commit(org: org, size: size, checkpoint: checkpoint)
    }

    /// Hashes and decodes one window's entries in batches on every core; whichever thread finishes the batch that
    /// is next in seq order inserts it (and any ready after it), so inserting overlaps decoding. Returns the first
    /// entry that did not decode, if any (nothing after it is inserted).
    private func ingestWindow(
        org o: Int, window: UnsafeRawBufferPointer, records: [Range<Int>], firstSeq: UInt64,
        stored: [SHA256Digest], work: BatchWork
    ) -> (seq: UInt64, error: ViewError)? {
        // Batches end where seq is a multiple of the block size, so that whole ones are Merkle subtrees.
        let block = Self.block
        var bounds = [0]
        var q = Int(firstSeq)
        while bounds.last! < records.count {
            let next = min(records.count, bounds.last! + (block - q % block))
            q += next - bounds.last!
            bounds.append(next)
        }
        let n = bounds.count - 1
        work.start(count: n)
        // Safe: `window` and `records` are only read, and outlive the call; `work` is locked.
        let shared = UnsafeShared(window: window, records: records, stored: stored)
        let org = consortium.members[o].org
        DispatchQueue.concurrentPerform(iterations: n) { [bounds] c in
            let lo = bounds[c]
            let hi = bounds[c + 1]
            var b = work.batch(firstSeq: firstSeq + UInt64(lo), base: shared.window.baseAddress!)
            var failure: (UInt64, ViewError)?
            for i in lo..<hi {
                let raw = UnsafeRawBufferPointer(rebasing: shared.window[shared.records[i]])
                let seq = b.firstSeq + UInt64(i - lo)
                do throws(ViewError) {
                    let e = try DecodedEntry(reading: raw, base: b.base)
                    if i < shared.stored.count {
                        guard SegmentFormat.checksumMatches(raw) else {
                            throw ViewError(.invalidEntry, SegmentFormat.checksumMismatch)
                        }
                        b.leaves.append(shared.stored[i])
                    } else {
                        b.leaves.append(Merkle.leafHash(raw))
                    }
                    b.entries.append(e)
                } catch {
                    failure = (seq, ViewError(.invalidEntry, "\(org) seq \(seq): \(error.message)"))
                    break
                }
            }
            if failure == nil, b.leaves.count == block, b.firstSeq % UInt64(block) == 0 {
                b.subtree = MerkleCache.Subtree(leaves: b.leaves)
            }
            work.finish(c, b, failure) { batch throws(ViewError) in try self.insert(org: o, batch: batch) }
        }
        return work.failure
    }
}

extension ViewIndex {
    /// Entries per batch of the offline build: a Merkle subtree of height 10.
    static let block = 1024
}

/// A log's index file (Specs/format.md §10: per entry its 32-byte leaf hash and 8-byte offset), read a window at a
/// time. Whatever leaf hashes it gives are checked against the signed root at the commit.
final class IndexFile {
    private let fd: Int32
    private let count: Int

    init?(path: String) {
        // O_NONBLOCK: a FIFO in the index's place must not block the open for ever (Specs/format.md §10.1).
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            return nil
        }
        self.fd = fd
        count = Int(st.st_size) / SegmentFormat.indexRecordSize
    }

    deinit { close(fd) }

    /// The leaf hashes of entries `from`..<`from + count`, fewer where the file ends or cannot be read.
    func leaves(from: UInt64, count n: Int) -> [SHA256Digest] {
        let record = SegmentFormat.indexRecordSize
        let first = Int(from)
        let k = max(0, min(n, count - first))
        guard k > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: k * record)
        let got = buffer.withUnsafeMutableBytes { b -> Int in
            var done = 0
            while done < b.count {
                let r = pread(fd, b.baseAddress! + done, b.count - done, off_t(first * record + done))
                if r < 0 && errno == EINTR { continue }
                if r <= 0 { break }
                done += r
            }
            return done
        }
        return buffer.withUnsafeBytes { b in
            (0..<(got / record)).map { SHA256Digest(copying: b.baseAddress! + $0 * record) }
        }
    }
}

/// The batches of one window: which are decoded, which is next to insert, who is inserting.
private final class BatchWork: @unchecked Sendable {
    // Every field is read and written under `lock`; `insert` runs outside it, on one thread at a time
    // (`inserting`).
    private let lock = NSLock()
    private var ready: [DecodedBatch?] = []
    private var failures: [(UInt64, ViewError)?] = []
    private var next = 0
    private var inserting = false
    private(set) var failure: (seq: UInt64, error: ViewError)?
    /// Batches already inserted, kept for their buffers: allocating a batch's arrays afresh each time costs page
    /// faults (they are large enough to be mapped and unmapped by the allocator).
    private var spare: [DecodedBatch] = []

    /// A new window of `count` batches.
    func start(count: Int) {
        lock.lock()
        ready = Array(repeating: nil, count: count)
        failures = Array(repeating: nil, count: count)
        next = 0
        lock.unlock()
    }

    /// An empty batch, reusing the buffers of an inserted one when there is one.
    func batch(firstSeq: UInt64, base: UnsafeRawPointer) -> DecodedBatch {
        lock.lock()
        var b = spare.popLast() ?? DecodedBatch(firstSeq: firstSeq, base: base)
        lock.unlock()
        b.firstSeq = firstSeq
        b.base = base
        b.subtree = nil
        b.entries.removeAll(keepingCapacity: true)
        b.leaves.removeAll(keepingCapacity: true)
        b.entries.reserveCapacity(ViewIndex.block)
        b.leaves.reserveCapacity(ViewIndex.block)
        return b
    }

    /// Batch `i` is decoded (up to `failure`, if one entry did not decode). Inserts every batch that is next in
    /// order and ready, unless another thread is doing so.
    func finish(
        _ i: Int, _ batch: DecodedBatch, _ f: (UInt64, ViewError)?,
        insert: (DecodedBatch) throws(ViewError) -> Void
    ) {
        lock.lock()
        ready[i] = batch
        failures[i] = f
        if inserting {
            lock.unlock()
            return
        }
        inserting = true
        while next < ready.count, let b = ready[next], failure == nil {
            ready[next] = nil
            let f = failures[next]
            next += 1
            lock.unlock()
            var stop = f
            do throws(ViewError) { try insert(b) } catch { stop = (b.firstSeq, error) }
            lock.lock()
            spare.append(b)
            if let stop { failure = stop }
        }
        inserting = false
        lock.unlock()
    }
}

/// A window of segment bytes and its record ranges, read by the workers.
private struct UnsafeShared: @unchecked Sendable {
    // Read-only while the workers run; the buffer is owned by the segment walk and outlives them.
    let window: UnsafeRawBufferPointer
    let records: [Range<Int>]
    let stored: [SHA256Digest]
}

/// A log's segments as the offline build reads them (Specs/view.md §10.2), through ProvLedger's `SegmentReader`:
/// windows of about 8 MiB, and the latest checkpoint, the last checkpoint record that closes a group commit (its
/// size is the number of entries before it, its origin the log's). Reading stops at the end of the data, at damage
/// (a torn tail) or at a segment that does not follow on.
struct LogSegments {
    let directory: String
    let org: String
    let origin: String

    /// Calls `body` with each window, the byte ranges of its entry payloads, and the seq of the first. Returns the
    /// latest checkpoint and its size.
    func read(
        _ body: (UnsafeRawBufferPointer, [Range<Int>], UInt64) throws(ViewError) -> Void
    ) throws(ViewError) -> (UInt64, SignedCheckpoint)? {
        let reader: SegmentReader
        do { reader = try SegmentReader(listing: directory) } catch {
            throw ViewError(.source, "\(org): cannot read \(directory)")
        }
        var seq: UInt64 = 0
        var latest: (UInt64, SignedCheckpoint)?
        files: for segment in reader.segments {
            guard segment.firstSeq == seq else { break }
            let file = try source { () throws(LedgerError) in try SegmentReader.open(segment) }
            guard try source({ () throws(LedgerError) in try SegmentReader.header(of: file) }) == .magic else { break }
            // Entries' checksums are checked by the decoders, with the index's leaf hashes.
            let walk = try source { () throws(LedgerError) in
                try SegmentWalk(file, segment: segment.name, checksums: .nonEntries)
            }
            while let window = try source({ () throws(LedgerError) in try walk.next() }) {
                var entries: [Range<Int>] = []
                let firstSeq = seq
                var closes = true
                records: for r in window.records {
                    switch r.type {
                    case .entry:
                        entries.append(r.payload)
                        seq += 1
                    case .checkpoint:
                        // Checked for its signature only if it stays the latest.
                        guard
                            let cp = try? SignedCheckpoint(parsing: String(decoding: window.payload(r), as: UTF8.self)),
                            cp.checkpoint.origin == origin, cp.checkpoint.size == seq
                        else {
                            closes = false
                            break records
                        }
                        latest = (seq, cp)
                    case .state:
                        break
                    }
                }
                if !entries.isEmpty { try body(window.bytes, entries, firstSeq) }
                if !closes { break files }
            }
            if walk.end != .clean { break }
        }
        return latest
    }

    /// A segment that cannot be opened or read, or that is not a regular file (Specs/format.md §10.1).
    private func source<T>(_ read: () throws(LedgerError) -> T) throws(ViewError) -> T {
        do { return try read() } catch { throw ViewError(.source, "\(org): \(error.message)") }
    }
}
