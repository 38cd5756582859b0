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
    var decoder = EntryDecoder()
    /// The buffer the spans point into; it outlives the batch.
    var base: UnsafeRawPointer
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
    /// Builds the view of every log in `dataDirectory` (Specs/view.md §10.2): for each log, its latest checkpoint
    /// must be signed by its org's key in the descriptor, and the leaf hashes of the entries up to it (hashed
    /// from the segment files) must give its root. Entry signatures are not re-verified: there are none, and each
    /// group's own checkpoint signature is covered by the latest one through the Merkle tree. Entries after the
    /// latest checkpoint (never acknowledged) are not read.
    public static func build(
        dataDirectory: String, consortium: Consortium, linkKey: LinkKey?,
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
                try index.load(org: o, dataDirectory: dataDirectory, progress: progress)
            } catch {
                excluded.append((org, error.message))
            }
        }
        return OfflineView(
            index: index, source: DataDirectorySource(dataDirectory: dataDirectory, consortium: consortium.name),
            excluded: excluded)
    }

    private func load(org o: Int, dataDirectory: String, progress: (@Sendable (String, UInt64) -> Void)?)
        throws(ViewError)
    {
        let member = consortium.members[o]
        let org = member.org
        let store: LogStore
        do {
            store = try LogStore(
                dataDirectory: dataDirectory, consortium: consortium.name, org: org, writable: false, log: { _ in })
        } catch { throw ViewError(.source, error.message) }
        guard let cp = store.latest else { throw ViewError(.source, "\(org): no signed checkpoint yet") }
        if let why = cp.signatureFailure(key: member.key) { throw ViewError(.source, "\(org): \(why)") }
        let size = cp.checkpoint.size
        try SegmentReader(directory: store.directory + "/segments", org: org).read(upTo: size) {
            window, records, firstSeq throws(ViewError) in
            try ingestWindow(org: o, window: window, records: records, firstSeq: firstSeq)
            progress?(org, firstSeq + UInt64(records.count))
        }
        try commit(org: org, size: size, checkpoint: cp)
    }

    /// Hashes and decodes one window's entries on every core, then inserts them in seq order.
    private func ingestWindow(
        org o: Int, window: UnsafeRawBufferPointer, records: [Range<Int>], firstSeq: UInt64
    ) throws(ViewError) {
        let chunk = 2048
        let n = (records.count + chunk - 1) / chunk
        let work = BatchWork(count: n)
        // Safe: each iteration writes its own slot of `work`; `window` and `records` are only read, and outlive
        // the call.
        let shared = UnsafeShared(window: window, records: records)
        DispatchQueue.concurrentPerform(iterations: n) { c in
            let lo = c * chunk
            let hi = min(shared.records.count, lo + chunk)
            var b = DecodedBatch(firstSeq: firstSeq + UInt64(lo), base: shared.window.baseAddress!)
            b.entries.reserveCapacity(hi - lo)
            b.leaves.reserveCapacity(hi - lo)
            for i in lo..<hi {
                let raw = UnsafeRawBufferPointer(rebasing: shared.window[shared.records[i]])
                b.leaves.append(Merkle.leafHash(raw))
                do throws(ViewError) { b.entries.append(try b.decoder.decode(raw, base: b.base)) } catch {
                    work.fail(
                        c,
                        ViewError(
                            .invalidEntry,
                            "\(consortium.members[o].org) seq \(b.firstSeq + UInt64(i - lo)): \(error.message)"))
                    return
                }
            }
            work.set(c, b)
        }
        for c in 0..<n {
            let b = try work.take(c)
            try insert(org: o, batch: b)
        }
    }
}

/// Slots the workers of one window write into.
private final class BatchWork: @unchecked Sendable {
    // Each slot is written by exactly one iteration of concurrentPerform and read after it returns.
    private var batches: [DecodedBatch?]
    private var errors: [ViewError?]

    init(count: Int) {
        batches = Array(repeating: nil, count: count)
        errors = Array(repeating: nil, count: count)
    }

    func set(_ i: Int, _ b: DecodedBatch) { batches[i] = b }
    func fail(_ i: Int, _ e: ViewError) { errors[i] = e }

    func take(_ i: Int) throws(ViewError) -> DecodedBatch {
        if let e = errors[i] { throw e }
        return batches[i]!
    }
}

/// A window of segment bytes and its record ranges, read by the workers.
private struct UnsafeShared: @unchecked Sendable {
    // Read-only while the workers run; the buffer is owned by SegmentReader and outlives them.
    let window: UnsafeRawBufferPointer
    let records: [Range<Int>]
}

/// Reads the entry records of a log's segment files in windows of about 8 MiB, without following symlinks.
struct SegmentReader {
    let directory: String
    let org: String
    static let window = 8 << 20

    /// Calls `body` with each window, the byte ranges of its entry payloads, and the seq of the first; stops
    /// after entry `size` − 1.
    func read(
        upTo size: UInt64,
        _ body: (UnsafeRawBufferPointer, [Range<Int>], UInt64) throws(ViewError) -> Void
    ) throws(ViewError) {
        guard size > 0 else { return }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".seg") }
                .sorted()
        } catch { throw ViewError(.source, "\(org): cannot read \(directory)") }
        var seq: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: Self.window)
        for name in names {
            guard seq < size else { break }
            guard name.count == 24, let first = UInt64(name.prefix(20)), first == seq else {
                throw ViewError(.source, "\(org): segment \(name) does not start at seq \(seq)")
            }
            let path = directory + "/" + name
            let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                throw ViewError(.source, "\(org): cannot open \(path): \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                throw ViewError(.source, "\(org): \(path) is not a regular file")
            }
            var fileOffset = SegmentFormat.magic.count
            var filled = 0
            var atEnd = false
            while seq < size {
                // Fill the window from the file after what is left of the last one.
                if !atEnd {
                    let n = buffer.withUnsafeMutableBytes { b in
                        pread(fd, b.baseAddress! + filled, b.count - filled, off_t(fileOffset))
                    }
                    guard n >= 0 else { throw ViewError(.source, "\(org): cannot read \(path)") }
                    if n == 0 { atEnd = true }
                    filled += n
                    fileOffset += n
                }
                var records: [Range<Int>] = []
                var offset = 0
                var damage: String?
                let firstSeq = seq
                let parsed: Int = buffer.withUnsafeBytes { b in
                    let valid = UnsafeRawBufferPointer(rebasing: b[0..<filled])
                    while seq < size {
                        switch SegmentFormat.record(in: valid, at: offset, checksum: false) {
                        case .record(let type, let payload, let next):
                            if type == .entry {
                                let start = payload.baseAddress! - valid.baseAddress!
                                records.append(start..<(start + payload.count))
                                seq += 1
                            }
                            offset = next
                        case .end:
                            return offset
                        case .damaged(let why):
                            // A record cut by the window's end is read again with the next window.
                            if !why.hasPrefix("partial") { damage = why }
                            return offset
                        }
                    }
                    return offset
                }
                if let damage {
                    throw ViewError(.source, "\(org): \(path): \(damage) at byte \(fileOffset - filled + parsed)")
                }
                if !records.isEmpty {
                    try withRawBytes(buffer) { b throws(ViewError) in
                        try body(UnsafeRawBufferPointer(rebasing: b[0..<filled]), records, firstSeq)
                    }
                }
                if seq >= size { break }
                // Keep the unparsed tail for the next window; grow the window for a record larger than it.
                let rest = filled - parsed
                if parsed > 0 {
                    buffer.withUnsafeMutableBytes { b in
                        b.baseAddress!.copyMemory(from: b.baseAddress! + parsed, byteCount: rest)
                    }
                } else if rest == buffer.count {
                    buffer += [UInt8](repeating: 0, count: buffer.count)
                }
                filled = rest
                if atEnd {
                    guard rest == 0 else {
                        throw ViewError(.source, "\(org): \(path) ends inside a record after seq \(seq)")
                    }
                    break
                }
            }
        }
        guard seq >= size else {
            throw ViewError(.source, "\(org): the segments hold \(seq) entries, the checkpoint covers \(size)")
        }
    }
}
