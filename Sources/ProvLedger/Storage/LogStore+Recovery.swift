import Foundation
import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

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

extension LogStore {
    /// `floor`: nil on open; on the rescan without the index, the acknowledged size the first pass found.
    func recover(floor: UInt64? = nil) throws(LedgerError) {
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

    func finishOpen() throws(LedgerError) {
        if segments.isEmpty { try startSegment(firstSeq: 0) }
        current = try FileHandleFD(path: segments.last!.path, flags: O_RDWR)
        currentSize = try current!.size
        if checkpointFile == nil {
            let (f, created) = try FileHandleFD.openOrCreate(checkpointPath, flags: O_RDWR)
            checkpointFile = f
            createdFiles = createdFiles || created
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
}
