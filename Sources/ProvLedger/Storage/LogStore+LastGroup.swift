import ProvCrypto

/// Where groups end in a stretch of a segment, found by walking its records by their headers alone (no checksum,
/// no hashing): how a writer finds the group it builds on and the one before it (Specs/format.md §11 step 8)
/// without reading the log.
struct GroupEnds {
    /// A record's offset in the segment and the length of its payload (which follows its 9-byte header).
    struct Record {
        var offset: Int
        var length: Int
    }

    /// The end of a group: its last entry, state and checkpoint records, the entries up to it, and the offset
    /// after it.
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

    /// Walks `file` (segment `name`) from `from`, the record of entry `firstSeq` (or the magic's end), to `end`;
    /// nil when a header does not parse or the records do not end exactly at `end`.
    init?(_ file: FileHandleFD, segment name: String, from: Int, to end: Int, firstSeq: UInt64) throws(LedgerError) {
        let walk = try SegmentWalk(file, segment: name, from: from, to: end, checksums: .none)
        var entries = firstSeq
        var last: End?
        var previous: End?
        var lastEntry: Record?
        var state: Record?
        while let window = try walk.next() {
            for r in window.records {
                let record = Record(offset: r.offset, length: r.payload.count)
                switch r.type {
                case .entry:
                    entries += 1
                    lastEntry = record
                case .state:
                    state = record
                case .checkpoint:
                    previous = last
                    last = End(
                        entries: entries, lastEntry: lastEntry, state: state, checkpoint: record,
                        offset: r.offset + SegmentFormat.headerSize + r.payload.count)
                    state = nil
                }
            }
        }
        guard walk.end == .clean, walk.offset == end else { return nil }
        self.entries = entries
        self.last = last
        self.previous = previous
    }
}

extension LogStore {
    /// Before a writer appends, what it builds on must be what the member signed (Specs/format.md §11 step 8):
    /// the state and checkpoint records of the group before the last one, then the last group's entries, state
    /// record and checkpoint, checked with the verifier's own rules and messages. Returns false when the records do
    /// not add up to `count` entries (an index that does not match the segments).
    ///
    /// Only the last group is read, and the headers of the records just before it: the walk by headers starts at
    /// the record of an entry a little before the end (its offset from the index), and starts again further back,
    /// as far as the start of the segment, only while it has seen no group end before the last one. When the last
    /// group starts the segment, the group before it is read from the record of its last entry to the end of the
    /// previous segment.
    func checkLastGroup(segment si: Int, end: Int, count: UInt64, keys: Consortium) throws(LedgerError) -> Bool {
        guard let member = keys.member(org) else { return true }
        let first = segments[si].firstSeq
        let file = try reader(si)
        var back: UInt64 = 256
        var walk: GroupEnds
        while true {
            let from = count - first > back ? count - back : first
            guard let offset = try recordOffset(of: from, in: si, first: first),
                let w = try GroupEnds(file, segment: segments[si].name, from: offset, to: end, firstSeq: from),
                w.entries == count, let last = w.last, last.offset == end
            else { return false }
            walk = w
            if w.previous != nil || from == first { break }
            back *= 8
        }
        // The group before the last one: in this segment, or at the end of the previous one.
        var before = walk.previous.map { (end: $0, file: file, name: segments[si].name) }
        if before == nil && first > 0 {
            guard si > 0 else { return false }
            let previous = try reader(si - 1)
            let size = try previous.size
            guard let offset = try recordOffset(of: first - 1, in: si - 1, first: segments[si - 1].firstSeq),
                let w = try GroupEnds(
                    previous, segment: segments[si - 1].name, from: offset, to: size, firstSeq: first - 1),
                w.entries == first, let e = w.last, e.offset == size
            else { return false }
            before = (e, previous, segments[si - 1].name)
        }
        var start = WriterState.initial
        var from = SegmentFormat.magic.count
        if let (b, bFile, bName) = before {
            guard let stateRecord = b.state, let entryRecord = b.lastEntry else { return false }
            let st = try groupBefore(
                b, member: member, file: bFile, name: bName, state: stateRecord, lastEntry: entryRecord)
            // The last group continues from this state: its frontier and last leaf were checked, and its clock and
            // citations are what the last group's own state record must extend.
            start = st
            if bName == segments[si].name { from = b.offset }
        }
        var scan = LogScan(member: member, consortium: keys, directory: directory, progress: nil)
        scan.range = LogScan.Range(segment: segments[si].name, from: from, to: end, start: start)
        var audit = LogAudit(org: org)
        do { try scan.run(&audit) } catch let e as LedgerError {
            throw damaged(e.message)
        } catch { throw damaged("\(error)") }
        return true
    }

    /// The group before the last one, checked (§11 step 8.1): its state record decodes, has its size and the leaf
    /// hash of its last entry; its checkpoint is signed by the member, for that size and the state's root. Returns
    /// the state the last group continues from.
    private func groupBefore(
        _ b: GroupEnds.End, member: Consortium.Member, file: FileHandleFD, name: String, state: GroupEnds.Record,
        lastEntry: GroupEnds.Record
    ) throws(LedgerError) -> WriterState {
        let m = b.entries
        let stateBytes = try payload(state, of: file)
        let st: WriterState
        do { st = try stateBytes.withUnsafeBytes { try WriterState(decoding: $0) } } catch {
            throw damaged("\(org): state record at byte \(state.offset) of \(name) is malformed")
        }
        let lastLeaf = try payload(lastEntry, of: file).withUnsafeBytes { Merkle.leafHash($0) }
        guard st.frontier.size == m, st.lastLeaf == lastLeaf else {
            throw damaged(
                "\(org) seq \(m - 1): state record after it disagrees with the entries (size \(st.frontier.size)): "
                    + "the segment was modified")
        }
        let checkpointText = String(decoding: try payload(b.checkpoint, of: file), as: UTF8.self)
        let cp: SignedCheckpoint
        do { cp = try SignedCheckpoint(parsing: checkpointText) } catch {
            throw damaged("\(org): checkpoint record at byte \(b.checkpoint.offset) of \(name): \(error.message)")
        }
        if let why = member.signatureFailure(cp) {
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
        return st
    }

    /// Where the record of entry `seq` starts in segment `si` (whose first entry is `first`): after the magic for
    /// the first, else the offset the index gives, once that record is found whole and hashing to the indexed
    /// leaf. Nil when it is not.
    private func recordOffset(of seq: UInt64, in si: Int, first: UInt64) throws(LedgerError) -> Int? {
        if seq == first { return SegmentFormat.magic.count }
        guard let (leaf, offset) = try? indexRecord(seq),
            (try? checkedRecordEnd(segment: si, offset: Int(offset), leaf: leaf)) != nil
        else { return nil }
        return Int(offset)
    }

    private func payload(_ r: GroupEnds.Record, of file: FileHandleFD) throws(LedgerError) -> [UInt8] {
        try file.read(count: r.length, at: r.offset + SegmentFormat.headerSize)
    }

    private func damaged(_ message: String) -> LedgerError {
        LedgerError(
            .io,
            "log \(org) is damaged, nothing was appended: \(message). Run prov verify; restore the log from a node "
                + "that holds it")
    }
}
