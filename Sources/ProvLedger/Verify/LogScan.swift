import Dispatch
import Foundation
import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// One pass over a log's segment files for the verifier (Specs/format.md §12.1 step 3), in named steps: the
/// listing, then for each segment its start (name and header), its windows, and its end; damage found on the way
/// is a torn tail or a failure. In each window the entries are decoded and hashed on every core (`DecodeJob`)
/// while this thread follows the chain, clocks, Merkle frontier, state and checkpoint records in order
/// (`LogChain`), and compares the index with the entries (`IndexCheck`).
struct LogScan {
    let member: Consortium.Member
    let consortium: Consortium
    let directory: String
    let progress: ((String, UInt64) -> Void)?

    /// Bytes read per window (a window may hold one largest record more). The progress count of a failure
    /// (§12.3) moves once per window.
    static let defaultWindow = 16 << 20
    var window = defaultWindow

    /// Part of one segment, audited from a group boundary whose writer state is already checked instead of from
    /// the start of the log: how a writer checks the last group it builds on (Specs/format.md §11). References to
    /// entries before `start` are not checked, nor is the index.
    struct Range {
        var segment: String
        var from: Int
        var to: Int
        var start: WriterState
    }

    var range: Range?

    /// What the decoders found for one entry of a window.
    struct Decoded {
        var entry = AuditedEntry()
        var error: String?
        var badChecksum = false
        var leaf = SHA256Digest()
    }

    func fail(_ seq: UInt64?, _ what: String) -> LedgerError { LogChain.failure(member.org, seq, what) }

    func run(_ audit: inout LogAudit) throws {
        let reader = try listing()
        var chain = LogChain(member: member, consortium: consortium, start: range?.start)
        var index = try IndexCheck(path: range == nil ? directory + "/index" : nil)
        var decoded: [Decoded] = []
        let context = AuditContext(consortium: consortium, org: member.org)
        reserve(&audit, for: reader)
        for (n, segment) in reader.segments.enumerated() {
            // Within a range, damage or an unfinished group anywhere is a failure, never a torn tail.
            let isLast = range == nil && reader.isLast(n)
            guard let walk = try start(segment, isLast: isLast, chain: chain, &audit) else { break }
            while let window = try walk.next() {
                try follow(window, of: walk, context, &chain, &index, &decoded, &audit)
                audit.entries = chain.seq
                progress?(member.org, chain.seq)
            }
            if case .damaged(let damage) = walk.end {
                try damaged(damage, isLast: isLast, chain: chain, &audit)
            }
            try end(segment, isLast: isLast, chain: chain, &audit)
        }
        if let misnamed = reader.misnamed { throw fail(nil, "\(misnamed) is not a segment file name") }
        audit.warnings += index.finish(chain.committed)
    }

    /// The segment files to read: the range's one, or every one of the log. Nothing in a log folder is read
    /// through a link, and a FIFO or device in a file's place is refused before anything blocks on it: such a log
    /// is not verified. `LOCK` is not read, only checked (§12.1 step 3.2).
    func listing() throws -> SegmentReader {
        let segDir = directory + "/segments"
        if let range {
            guard let s = SegmentReader.Segment(directory: segDir, name: range.segment) else {
                throw fail(nil, "\(segDir)/\(range.segment) is not a segment file name")
            }
            return SegmentReader(directory: segDir, segments: [s])
        }
        guard access(directory, R_OK | X_OK) == 0, access(segDir, R_OK | X_OK) == 0 || errno == ENOENT else {
            throw LedgerError(.io, "\(member.org): cannot read \(segDir): \(String(cString: strerror(errno)))")
        }
        try FileHandleFD.expect(directory + "/LOCK", is: .regularFile)
        let reader: SegmentReader
        do { reader = try SegmentReader(listing: segDir) } catch {
            // A log folder without `segments/` has no segment files (§12.1 step 3.2).
            guard FileHandleFD.kind(of: segDir) == nil else { throw error }
            reader = SegmentReader(directory: segDir, segments: [])
        }
        guard !reader.segments.isEmpty || reader.misnamed != nil else {
            throw fail(nil, "no segment files in \(segDir)")
        }
        return reader
    }

    /// One leaf hash, clock and kind per entry are kept for the reference checks: reserve for the most entries the
    /// segments can hold (a record takes at least 64 bytes), up to 2^26 entries, so the arrays rarely grow by
    /// copying; untouched pages cost no memory.
    func reserve(_ audit: inout LogAudit, for reader: SegmentReader) {
        // Sizes are what the files say, and a damaged or sparse file may say anything: summed without overflow and
        // capped (past the cap the arrays grow as they fill), so no file size can size an allocation.
        let cap = 1 << 26
        let segmentBytes =
            range.map { $0.to - $0.from }
            ?? reader.segments.reduce(0) {
                let size = (try? FileManager.default.attributesOfItem(atPath: $1.path)[.size] as? Int) ?? 0
                return min(cap * 64, $0 + min(max(size, 0), cap * 64))
            }
        let slots = min(max(segmentBytes, 0) / 64, cap)
        audit.leaves.reserveCapacity(slots)
        audit.hlcs.reserveCapacity(slots)
        audit.kinds.reserveCapacity(slots)
    }

    /// A segment's start (§12.1 steps 3.3.1–3.3.2): its name is the seq reached, and it begins with the magic. The
    /// last segment may hold a beginning of the magic and nothing else, a torn tail (nil: the scan ends there).
    func start(_ segment: SegmentReader.Segment, isLast: Bool, chain: LogChain, _ audit: inout LogAudit) throws
        -> SegmentWalk?
    {
        guard segment.firstSeq == chain.seq || range != nil else {
            throw fail(
                chain.seq,
                "segment \(segment.name) starts at seq \(segment.firstSeq) but the previous segments end at "
                    + "\(chain.seq): segment missing or out of place")
        }
        let file = try SegmentReader.open(segment)
        let from = range?.from ?? SegmentFormat.magic.count
        if from == SegmentFormat.magic.count {
            switch try SegmentReader.header(of: file) {
            case .magic: break
            case .cutShort(let n) where isLast:
                // A crash right after a segment roll; the writer removes the file on open.
                audit.warnings.append(
                    "torn tail: segment \(segment.name) holds \(n) of the 8 bytes of its header (a crash "
                        + "while starting it), and no entries; the writer removes it on open")
                return nil
            case .cutShort, .missing:
                throw fail(chain.seq, "\(segment.path) has no segment header")
            }
        }
        return try SegmentWalk(
            file, segment: segment.name, from: from, to: range?.to, window: window, checksums: .nonEntries)
    }

    /// One window: its entries are checked and hashed on every core while this thread follows the records in
    /// order. An entry whose checksum does not match ends the walk there; the records after it are not trusted.
    func follow(
        _ window: SegmentWalk.Window, of walk: SegmentWalk, _ context: AuditContext, _ chain: inout LogChain,
        _ index: inout IndexCheck, _ decoded: inout [Decoded], _ audit: inout LogAudit
    ) throws {
        var batch: [(Int, Int)] = []  // (payload offset, length) in the window of each entry
        batch.reserveCapacity(window.records.count)
        for r in window.records where r.type == .entry { batch.append((r.payload.lowerBound, r.payload.count)) }
        if decoded.count < batch.count { decoded = [Decoded](repeating: Decoded(), count: batch.count) }
        try decoded.withUnsafeMutableBufferPointer { results in
            let job = DecodeJob(
                raw: window.bytes, batch: batch, results: results.baseAddress!, context: context,
                consortium: consortium)
            let worker = DispatchGroup()
            if job.chunks > 1 { DispatchQueue.global().async(group: worker) { job.work() } }
            defer {
                job.cancel()
                worker.wait()
            }
            var slot = 0
            for r in window.records {
                switch r.type {
                case .state:
                    try chain.state(Array(window.payload(r)), at: r.offset, of: walk.segment)
                case .checkpoint:
                    try chain.checkpoint(Array(window.payload(r)), at: r.offset, of: walk.segment, &audit)
                case .entry:
                    job.waitFor(slot: slot)
                    let d = UnsafePointer(results.baseAddress! + slot)
                    slot += 1
                    if d.pointee.badChecksum {
                        walk.damaged(at: r, why: SegmentFormat.checksumMismatch)
                        return
                    }
                    if let why = d.pointee.error {
                        throw fail(chain.seq, "\(why) (segment \(walk.segment), byte \(r.offset))")
                    }
                    try chain.follow(d, recordOffset: r.offset, &index, &audit)
                }
            }
        }
    }

    /// Damage (§12.1 step 3.3.6). A crash leaves at most one damaged record, at the very end of the last segment:
    /// a partial one, or a whole-length one whose bytes did not all reach the disk. The writer cuts it on open.
    /// Damage anywhere else is a modified file.
    func damaged(_ damage: SegmentDamage, isLast: Bool, chain: LogChain, _ audit: inout LogAudit) throws {
        guard isLast && damage.reachesEnd else {
            throw fail(
                chain.seq,
                "\(damage.why) at byte \(damage.offset) of segment \(damage.segment): the file was modified or damaged")
        }
        audit.warnings.append(
            "torn tail at byte \(damage.offset) of \(damage.segment) (\(damage.why)): "
                + "\(Phrase.count(chain.seq - chain.committed, "entry", "entries")) after the last checkpoint, "
                + "never acknowledged; the writer cuts it on open")
        audit.entries = chain.committed
    }

    /// A segment's end (§12.1 step 3.3.7): entries after the last checkpoint are an unfinished group commit in the
    /// last segment, and a failure in any other.
    func end(_ segment: SegmentReader.Segment, isLast: Bool, chain: LogChain, _ audit: inout LogAudit) throws {
        guard chain.seq != chain.committed else { return }
        guard isLast else { throw fail(chain.committed, "segment \(segment.name) ends inside a group commit") }
        audit.warnings.append(
            "\(Phrase.count(chain.seq - chain.committed, "entry", "entries")) after the last checkpoint (an unfinished "
                + "group commit, never acknowledged)")
        audit.entries = chain.committed
    }

    /// The precise reason an entry failed the audit, from the full decoder.
    static func explain(
        _ payload: UnsafeRawBufferPointer, _ context: AuditContext, _ consortium: Consortium, audit: Error
    ) -> String {
        let e: Entry
        do throws(LedgerError) { e = try Entry.decode(payload) } catch { return error.message }
        if e.log.utf8.count != context.origin.count || Array(e.log.utf8) != context.origin {
            return "entry belongs to log '\(e.log)', not '\(String(decoding: context.origin, as: UTF8.self))'"
        }
        if let why = e.consortiumFailure(consortium) { return why }
        return "entry rejected by the audit (\(audit)) though it decodes: please report this"
    }
}

/// The entries of one read window, checked and hashed in chunks by a worker thread and by the scanning thread
/// whenever the entry it needs next is not ready: both cores stay busy, and results are read in order.
final class DecodeJob: @unchecked Sendable {
    // Safe: `results` slots of a chunk are written by the one thread that claimed it, and read only after
    // `run` marked the chunk done under `lock`; `raw` and `results` outlive the job (the scan waits for the worker).
    let raw: UnsafeRawBufferPointer
    let batch: [(Int, Int)]
    let results: UnsafeMutablePointer<LogScan.Decoded>
    let context: AuditContext
    let consortium: Consortium
    let chunk = 256
    let chunks: Int
    private let lock = NSCondition()
    private var nextClaim = 0
    private var done: [Bool]

    init(
        raw: UnsafeRawBufferPointer, batch: [(Int, Int)], results: UnsafeMutablePointer<LogScan.Decoded>,
        context: AuditContext, consortium: Consortium
    ) {
        self.raw = raw
        self.batch = batch
        self.results = results
        self.context = context
        self.consortium = consortium
        chunks = (batch.count + chunk - 1) / chunk
        done = [Bool](repeating: false, count: chunks)
    }

    private func claim() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard nextClaim < chunks else { return nil }
        nextClaim += 1
        return nextClaim - 1
    }

    private func run(_ c: Int) {
        for i in (c * chunk)..<min(batch.count, (c + 1) * chunk) {
            let (off, len) = batch[i]
            let payload = UnsafeRawBufferPointer(rebasing: raw[off..<(off + len)])
            let slot = results + i
            slot.pointee = LogScan.Decoded()
            guard SegmentFormat.checksumMatches(payload) else {
                slot.pointee.badChecksum = true
                continue
            }
            slot.pointee.leaf = Merkle.leafHash(payload)
            do {
                slot.pointee.entry = try Entry.audit(payload, context)
            } catch {
                slot.pointee.error = LogScan.explain(payload, context, consortium, audit: error)
            }
        }
        lock.lock()
        done[c] = true
        lock.broadcast()
        lock.unlock()
    }

    /// The worker's loop: claim chunks in order until none is left.
    func work() {
        while let c = claim() { run(c) }
    }

    /// Returns once the entry in `slot` is decoded, decoding chunks on this thread meanwhile.
    func waitFor(slot: Int) {
        let c = slot / chunk
        while true {
            lock.lock()
            if done[c] {
                lock.unlock()
                return
            }
            if nextClaim < chunks {
                nextClaim += 1
                let mine = nextClaim - 1
                lock.unlock()
                run(mine)
            } else {
                lock.wait()
                lock.unlock()
            }
        }
    }

    /// No more chunks are started; the caller then waits for the worker to finish its current one.
    func cancel() {
        lock.lock()
        nextClaim = chunks
        lock.unlock()
    }
}
