import Dispatch
import Foundation
import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// One pass over a log's segment files for the verifier. Entries are decoded and hashed in parallel batches;
/// the chain, clocks, Merkle frontier and checkpoints are then followed in order.
struct LogScan {
    let member: Consortium.Member
    let consortium: Consortium
    let directory: String
    let progress: ((String, UInt64) -> Void)?

    /// Bytes read per window; records never exceed `SegmentFormat.maxPayload`.
    static let window = 8 << 20

    /// A record found in the read window: its type, where its payload lies in the buffer, where the record
    /// starts in the file, and for an entry its slot among the decoded entries.
    struct Record {
        var type: RecordType
        var payload: Int
        var length: Int
        var fileOffset: Int
        var slot: Int
    }

    struct Decoded {
        var entry = AuditedEntry()
        var error: String?
        var badChecksum = false
        var leaf = SHA256Digest()
    }

    func fail(_ seq: UInt64?, _ what: String) -> LedgerError {
        LedgerError(.verificationFailed, "\(member.org)" + (seq.map { " seq \($0)" } ?? "") + ": " + what)
    }

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

    func run(_ audit: inout LogAudit) throws {
        let segDir = directory + "/segments"
        let names: [String]
        if let range {
            names = [range.segment]
        } else {
            guard access(directory, R_OK | X_OK) == 0, access(segDir, R_OK | X_OK) == 0 || errno == ENOENT else {
                throw LedgerError(.io, "\(member.org): cannot read \(segDir): \(String(cString: strerror(errno)))")
            }
            // Nothing in a log folder is read through a link, and a FIFO or device in a file's place is refused
            // before anything blocks on it: such a log is not verified. `LOCK` is not read, only checked.
            try FileHandleFD.expect(directory + "/LOCK", is: .regularFile)
            do { names = try FileHandleFD.list(directory: segDir).filter { $0.hasSuffix(".seg") }.sorted() } catch {
                guard FileHandleFD.kind(of: segDir) == nil else { throw error }
                names = []
            }
            guard !names.isEmpty else { throw fail(nil, "no segment files in \(segDir)") }
        }

        var seq = range?.start.frontier.size ?? 0
        var prev = range?.start.lastLeaf ?? SHA256Digest.zero
        // A range continues from its starting state: the clock and citations the entries before it left.
        var hlc: HLC? = (range?.start.frontier.size ?? 0) > 0 ? range?.start.hlc : nil
        var frontier = range?.start.frontier ?? MerkleFrontier()
        var cited: [String: UInt64] = range?.start.cited ?? [:]
        var pendingState: WriterState?
        var committed = seq
        /// The seq of `audit.leaves[0]`.
        let base = seq
        var indexLeaves = try IndexCheck(path: range == nil ? directory + "/index" : nil)
        let context = AuditContext(consortium: consortium, org: member.org)
        var decoded: [Decoded] = []

        /// The in-order checks of one decoded entry: seq, chain, clock, citations, Merkle frontier.
        func follow(_ d: UnsafePointer<Decoded>, recordOffset: Int) throws {
            // Fields are read in place: the slot's arrays are neither copied nor retained.
            // A group is its entries, then one state record, then its checkpoint: nothing in between.
            if pendingState != nil {
                throw fail(seq, "entry between a group's state record and its checkpoint: the segment was modified")
            }
            let entrySeq = d.pointee.entry.seq
            if entrySeq != seq {
                throw fail(
                    seq,
                    entrySeq > seq
                        ? "found seq \(entrySeq) where seq \(seq) belongs: "
                            + Phrase.entries(seq, through: entrySeq - 1, are: "missing or out of order")
                        : "found seq \(entrySeq) again where seq \(seq) belongs: entries reordered or duplicated"
                )
            }
            if d.pointee.entry.prev != prev {
                throw fail(
                    seq,
                    "prev is not the leaf hash of seq \(seq - 1): the chain is broken (an entry before it was changed, removed or reordered)"
                )
            }
            let entryHLC = d.pointee.entry.hlc
            if let h = hlc, entryHLC <= h { throw fail(seq, "hlc \(entryHLC) does not advance past \(h)") }
            if !d.pointee.entry.deps.isEmpty {
                for dep in d.pointee.entry.deps {
                    guard consortium.member(dep.org) != nil else {
                        throw fail(seq, "deps cites unknown org '\(dep.org)'")
                    }
                    if let c = cited[dep.org], dep.seq <= c {
                        throw fail(seq, "deps cites \(dep.org)/\(dep.seq), not past \(dep.org)/\(c) cited before")
                    }
                    cited[dep.org] = dep.seq
                    audit.foreignRefs.append((seq, entryHLC, "deps", dep))
                }
            }
            // References into this log name earlier entries by their leaf hash; others are checked at the end.
            if !d.pointee.entry.refs.isEmpty {
                for (field, ref) in d.pointee.entry.refs {
                    guard ref.org == member.org else {
                        audit.foreignRefs.append((seq, entryHLC, field, ref))
                        continue
                    }
                    guard ref.seq < seq else {
                        throw fail(
                            seq, "\(field) cites \(ref.org)/\(ref.seq), which is not an earlier entry of this log")
                    }
                    guard ref.seq >= base else { continue }
                    let k = Int(ref.seq - base)
                    if let why = Verifier.referenceFailure(
                        field, ref, citingHLC: entryHLC, leaf: audit.leaves[k], kind: audit.kinds[k],
                        hlc: audit.hlcs[k], sameLog: true)
                    {
                        throw fail(seq, why)
                    }
                    audit.referencesChecked += 1
                }
            }
            let leaf = d.pointee.leaf
            audit.leaves.append(leaf)
            audit.hlcs.append(entryHLC)
            audit.kinds.append(d.pointee.entry.kind)
            if let why = indexLeaves.check(seq, leaf, offset: recordOffset) { audit.warnings.append(why) }
            frontier.append(leaf)
            prev = leaf
            hlc = entryHLC
            seq += 1
        }

        /// A state record must describe the entries before it; a checkpoint must sign their root.
        func nonEntry(_ type: RecordType, _ payload: [UInt8], _ recordOffset: Int, _ name: String) throws {
            switch type {
            case .state:
                guard pendingState == nil else {
                    throw fail(nil, "two state records at byte \(recordOffset) of \(name): the segment was modified")
                }
                guard seq > committed else {
                    throw fail(nil, "state record at byte \(recordOffset) of \(name) closes a group without entries")
                }
                // Decoding includes canonical form: the one byte string the writer makes for these values (so
                // `cited` sorted by org, each once), as for entries.
                let st: WriterState
                do { st = try payload.withUnsafeBytes { try WriterState(decoding: $0) } } catch {
                    throw fail(nil, "state record at byte \(recordOffset) of \(name) is malformed")
                }
                guard st.encoded == payload else {
                    throw fail(
                        nil, "state record at byte \(recordOffset) of \(name) is malformed (not in canonical form)")
                }
                // Every value is what the entries give, `hlc` and `cited` too: recovery restores them from here.
                guard st.frontier.size == seq, st.frontier.root == frontier.root, st.lastLeaf == prev, st.hlc == hlc,
                    st.cited == cited
                else {
                    throw fail(
                        seq == 0 ? nil : seq - 1,
                        "state record after it disagrees with the entries (size \(st.frontier.size)): the segment was modified"
                    )
                }
                pendingState = st
            case .checkpoint:
                let cp: SignedCheckpoint
                do { cp = try SignedCheckpoint(parsing: String(decoding: payload, as: UTF8.self)) } catch {
                    throw fail(nil, "checkpoint record at byte \(recordOffset) of \(name): \(error.message)")
                }
                if let why = cp.signatureFailure(key: member.key) {
                    throw fail(nil, "checkpoint at size \(cp.checkpoint.size): \(why)")
                }
                guard cp.checkpoint.size == seq else {
                    throw fail(
                        nil,
                        "checkpoint covers \(Phrase.count(cp.checkpoint.size, "entry", "entries")) but "
                            + "\(Phrase.count(seq, "entry", "entries")) precede it")
                }
                let root = frontier.root
                guard cp.checkpoint.root == root else {
                    throw fail(
                        nil,
                        "checkpoint at size \(seq) has root \(cp.checkpoint.root.base64) but the entries give \(root.base64)"
                    )
                }
                guard pendingState != nil else {
                    throw fail(nil, "checkpoint at size \(seq) has no state record before it")
                }
                pendingState = nil
                audit.checkpoints += 1
                audit.roots[seq] = root
                audit.latest = cp.checkpoint
                committed = seq
            case .entry:
                break
            }
        }

        // One leaf hash, clock and kind per entry are kept for the reference checks: reserve for the most entries the segments can
        // hold (a record takes at least 64 bytes), so the array never grows by copying; untouched pages cost no
        // memory.
        let segmentBytes =
            range.map { $0.to - $0.from }
            ?? names.reduce(0) {
                $0 + Int((try? FileManager.default.attributesOfItem(atPath: segDir + "/" + $1)[.size] as? Int) ?? 0)
            }
        audit.leaves.reserveCapacity(segmentBytes / 64)
        audit.hlcs.reserveCapacity(segmentBytes / 64)
        audit.kinds.reserveCapacity(segmentBytes / 64)

        for (n, name) in names.enumerated() {
            let path = segDir + "/" + name
            guard name.count == 24, let first = UInt64(name.prefix(20)) else {
                throw fail(nil, "\(path) is not a segment file name")
            }
            guard first == seq || range != nil else {
                throw fail(
                    seq,
                    "segment \(name) starts at seq \(first) but the previous segments end at \(seq): segment missing or out of place"
                )
            }
            let file = try FileHandleFD(path: path, flags: O_RDONLY)
            let fileSize = try range.map { min($0.to, try file.size) } ?? file.size
            let from = range?.from ?? SegmentFormat.magic.count
            // Within a range, damage or an unfinished group anywhere is a failure, never a torn tail.
            let isLast = n == names.count - 1 && range == nil
            if from == SegmentFormat.magic.count {
                var header = try file.read(count: 8, at: 0)
                guard header == SegmentFormat.magic else {
                    // A crash right after a segment roll can leave the last segment shorter than its header,
                    // holding a beginning of it and nothing else; the writer removes it on open. Anything else is
                    // damage.
                    if isLast && SegmentFormat.magic.starts(with: header) {
                        audit.warnings.append(
                            "torn tail: segment \(name) holds \(header.count) of the 8 bytes of its header (a crash "
                                + "while starting it), and no entries; the writer removes it on open")
                        break
                    }
                    throw fail(seq, "\(path) has no segment header")
                }
                header.removeAll()
            }
            // A range (one group) needs no more than its own size.
            let bufferSize = Self.window + SegmentFormat.maxPayload + SegmentFormat.headerSize
            let size = range.map { min(bufferSize, $0.to - $0.from + SegmentFormat.headerSize) } ?? bufferSize
            var buffer = [UInt8](repeating: 0, count: size)
            var fileOffset = from  // file offset of buffer[0]
            var have = 0
            var eof = false
            var pos = 0
            while true {
                // Refill: keep the unparsed bytes, read the next window after them.
                if !eof && (have - pos) < Self.window {
                    buffer.withUnsafeMutableBytes { b in
                        if pos > 0 {
                            (b.baseAddress!).copyMemory(from: b.baseAddress! + pos, byteCount: have - pos)
                        }
                    }
                    fileOffset += pos
                    have -= pos
                    pos = 0
                    let want = min(Self.window * 2 - have, buffer.count - have, fileSize - (fileOffset + have))
                    let got = try buffer.withUnsafeMutableBytes { b in
                        try file.pread(
                            into: UnsafeMutableRawBufferPointer(rebasing: b[have..<(have + want)]),
                            at: fileOffset + have)
                    }
                    have += got
                    if got < want || fileOffset + have >= fileSize { eof = true }
                }
                // Parse every whole record in the buffer; entry checksums are left to the decoders.
                var records: [Record] = []
                var batch: [(Int, Int)] = []  // (payload offset, length) in buffer of each entry
                var damage: (String, Int)?
                var atEnd = false
                buffer.withUnsafeBytes { raw in
                    let buf = UnsafeRawBufferPointer(rebasing: raw[0..<have])
                    while true {
                        switch SegmentFormat.record(in: buf, at: pos, checksum: false) {
                        case .end:
                            atEnd = true
                            return
                        case .damaged(let why):
                            if !eof && have - pos < SegmentFormat.maxPayload + SegmentFormat.headerSize
                                && why.hasPrefix("partial")
                            {
                                return  // needs more bytes
                            }
                            damage = (why, fileOffset + pos)
                            return
                        case .record(let type, let payload, let next):
                            if type != .entry && !SegmentFormat.checksumMatches(payload) {
                                damage = (SegmentFormat.checksumMismatch, fileOffset + pos)
                                return
                            }
                            let payloadOffset = payload.baseAddress! - buf.baseAddress!
                            records.append(
                                Record(
                                    type: type, payload: payloadOffset, length: payload.count,
                                    fileOffset: fileOffset + pos,
                                    slot: type == .entry ? batch.count : -1))
                            if type == .entry { batch.append((payloadOffset, payload.count)) }
                            pos = next
                        }
                    }
                }
                // Entries are checked and hashed on every core while this thread follows the chain in order.
                if decoded.count < batch.count { decoded = [Decoded](repeating: Decoded(), count: batch.count) }
                try buffer.withUnsafeBytes { raw in
                    try decoded.withUnsafeMutableBufferPointer { results in
                        let job = DecodeJob(
                            raw: raw, batch: batch, results: results.baseAddress!, context: context,
                            consortium: consortium)
                        let worker = DispatchGroup()
                        if job.chunks > 1 { DispatchQueue.global().async(group: worker) { job.work() } }
                        defer {
                            job.cancel()
                            worker.wait()
                        }
                        records: for r in records {
                            guard r.type == .entry else {
                                try nonEntry(
                                    r.type, Array(raw[r.payload..<(r.payload + r.length)]), r.fileOffset, name)
                                continue
                            }
                            job.waitFor(slot: r.slot)
                            let d = UnsafePointer(results.baseAddress! + r.slot)
                            if d.pointee.badChecksum {
                                // The records after it are not trusted: the damage report below decides.
                                damage = (SegmentFormat.checksumMismatch, r.fileOffset)
                                break records
                            }
                            if let why = d.pointee.error {
                                throw fail(seq, "\(why) (segment \(name), byte \(r.fileOffset))")
                            }
                            try follow(d, recordOffset: r.fileOffset)
                        }
                    }
                }
                audit.entries = seq
                progress?(member.org, seq)
                if let (why, at) = damage {
                    // A crash leaves at most one damaged record, at the very end of the last segment: a partial
                    // one, or a whole-length one whose bytes did not all reach the disk. The writer cuts it on
                    // open. Damage anywhere else is a modified file.
                    let announced = buffer.withUnsafeBytes { b -> Int in
                        let p = at - fileOffset
                        guard have - p >= 5 else { return Int.max }
                        return Int(b[p + 1]) << 24 | Int(b[p + 2]) << 16 | Int(b[p + 3]) << 8 | Int(b[p + 4])
                    }
                    let reachesEnd = announced == Int.max || at + SegmentFormat.headerSize + announced >= fileSize
                    if isLast && reachesEnd {
                        audit.warnings.append(
                            "torn tail at byte \(at) of \(name) (\(why)): "
                                + "\(Phrase.count(seq - committed, "entry", "entries")) after the last checkpoint, "
                                + "never acknowledged; the writer cuts it on open")
                        audit.entries = committed
                        break
                    }
                    throw fail(seq, "\(why) at byte \(at) of segment \(name): the file was modified or damaged")
                }
                if atEnd || (eof && pos >= have) { break }
            }
            if seq != committed {
                if isLast {
                    audit.warnings.append(
                        "\(Phrase.count(seq - committed, "entry", "entries")) after the last checkpoint (an unfinished "
                            + "group commit, never acknowledged)"
                    )
                    audit.entries = committed
                } else {
                    throw fail(committed, "segment \(name) ends inside a group commit")
                }
            }
        }
        audit.warnings += indexLeaves.finish(committed)
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

/// Compares the index file's records (leaf hash and record offset, Specs/format.md §10.6) with the entries: a
/// stale index is worth a warning, since receipts are built from it.
struct IndexCheck {
    let file: FileHandleFD?
    var buffer: [UInt8] = []
    var bufferStart: UInt64 = 0
    var count: UInt64 = 0
    /// The file's size when it is not a whole number of records.
    var ragged: Int?
    var reported = false

    /// No index (nil) is no check. An index that is a link, a FIFO or anything but a regular file is refused;
    /// one that cannot be read is not checked.
    init(path: String?) throws(LedgerError) {
        guard let path else {
            file = nil
            return
        }
        try FileHandleFD.expect(path, is: .regularFile)
        file = (try? FileHandleFD.openIfPresent(path, flags: O_RDONLY)) ?? nil
        let bytes = (try? file?.size ?? 0) ?? 0
        count = UInt64(bytes / SegmentFormat.indexRecordSize)
        if bytes % SegmentFormat.indexRecordSize != 0 { ragged = bytes }
    }

    mutating func check(_ seq: UInt64, _ leaf: SHA256Digest, offset: Int) -> String? {
        guard let file, !reported, seq < count else { return nil }
        let per = UInt64(SegmentFormat.indexRecordSize)
        if seq < bufferStart || seq >= bufferStart + UInt64(buffer.count) / per {
            bufferStart = seq
            buffer = (try? file.read(count: 65536 * Int(per), at: Int(seq * per))) ?? []
        }
        let i = Int((seq - bufferStart) * per)
        guard i + Int(per) <= buffer.count else { return nil }
        let (stored, storedOffset) = buffer.withUnsafeBytes { b in
            (
                SHA256Digest(copying: b.baseAddress! + i),
                UInt64(littleEndian: b.loadUnaligned(fromByteOffset: i + 32, as: UInt64.self))
            )
        }
        if stored != leaf || storedOffset != UInt64(offset) {
            reported = true
            return
                "index file disagrees with the entries at seq \(seq); receipts from it would not verify (the writer rebuilds it on open)"
        }
        return nil
    }

    func finish(_ committed: UInt64) -> [String] {
        var out: [String] = []
        if let ragged {
            out.append(
                "index file is \(ragged) bytes, not a whole number of \(SegmentFormat.indexRecordSize)-byte records "
                    + "(a torn write); the writer cuts it on open")
        }
        if !reported && count > committed {
            out.append(
                "index file lists \(Phrase.count(count, "entry", "entries")), more than the \(committed) the "
                    + "checkpoints cover")
        }
        return out
    }
}
