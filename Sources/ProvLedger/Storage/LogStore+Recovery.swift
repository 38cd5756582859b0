import Foundation
import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// Recovery on open (Specs/format.md §11): the scan of the segments from the index's last record, the
/// acknowledged floor, the cut of a torn tail.
extension LogStore {
    /// `floor`: nil on open; on the rescan without the index, the acknowledged size the first pass found.
    func recover(floor: UInt64? = nil) throws(LedgerError) {
        let useIndex = floor == nil
        // Step 1: the segment files. A link or a FIFO in a segment's place is refused here, before any read could
        // block on it.
        let listing: SegmentReader
        do throws(LedgerError) { listing = try SegmentReader(listing: segmentDirectory) } catch {
            // A reader of a log folder without `segments/` sees an empty log.
            guard !writable, FileHandleFD.kind(of: segmentDirectory) == nil else { throw error }
            listing = SegmentReader(directory: segmentDirectory, segments: [])
        }
        for s in listing.segments { try FileHandleFD.expect(s.path, is: .regularFile) }
        if let misnamed = listing.misnamed {
            throw LedgerError(.invalidEntry, "\(misnamed) is not a segment file name")
        }
        segments = listing.segments
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
        // Step 2: what this log has acknowledged, as far as the files written after each acknowledgement tell: a
        // writer cuts nothing below it.
        let claimed = floor == nil ? try claimedSize() ?? 0 : 0
        let acknowledged = floor ?? max(indexCount, claimed)

        // Step 3: scan from just after the last indexed entry when the index agrees with the segment there: what
        // follows is that group's state and checkpoint, then any groups the index missed, then perhaps a torn tail.
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

        let found = try scan(from: startSegment, offset: startOffset, seq: indexCount)
        // Step 5, the floor. (With the index trusted and no whole group after it, the scan is redone without the
        // index first.)
        if writable && (found.committed?.count ?? 0) < acknowledged && (found.committed != nil || indexCount == 0) {
            let end = found.dataEnd
            let at = found.damage.map {
                "\($0) at byte \(end.offset) of segment \(segments[min(end.segment, segments.count - 1)].path)"
            }
            throw LedgerError(
                .io,
                "log \(org): the segments hold \(found.committed?.count ?? 0) entries in whole group commits, but "
                    + "\(acknowledged) were acknowledged (index and checkpoint files)"
                    + (at.map { "; \($0)" } ?? "; segment data is missing")
                    + ": the log was damaged or rolled back after it was written. Nothing was cut. "
                    + "Run prov verify; restore the log from a node that holds it")
        }
        // Step 6.
        guard let commit = found.committed else {
            if indexCount > 0 {
                // The index runs ahead of the whole group commits in the segments (a segment lost data it had
                // acknowledged, or the index was copied from elsewhere): trust only the segments.
                // The index file is left as it is until the segments are found to hold what it claims.
                log("log \(org): index runs past the last whole group commit; rebuilding it from the segments")
                return try rescanWithoutIndex(floor: acknowledged)
            }
            size = 0
            if writable {
                try cutTail(after: (0, SegmentFormat.magic.count), pending: found.pending.count, damage: found.damage)
                try finishOpen()
            }
            return
        }
        // Step 7.
        guard commit.state.frontier.root == commit.checkpoint.checkpoint.root else {
            throw LedgerError(
                .invalidEntry,
                "log \(org): state record does not match the checkpoint at size \(commit.count); run prov verify")
        }
        // The records of the groups found after the index: written now by a writer, served from memory by a reader
        // (and to the check of the last group, which finds records by their offsets).
        indexedCount = commit.count - UInt64(found.recovered.count)
        pendingIndex = []
        pendingIndex.reserveCapacity(found.recovered.count * SegmentFormat.indexRecordSize)
        for r in found.recovered { Self.appendIndexRecord(r.leaf, r.offset, to: &pendingIndex) }
        // Step 8.
        if writable, let keys,
            try !checkLastGroup(segment: commit.segment, end: commit.offset, count: commit.count, keys: keys)
        {
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
        state = commit.state
        committedState = commit.state
        latest = commit.checkpoint
        size = commit.count
        // Steps 9 and 10.
        if writable {
            try cutTail(after: (commit.segment, commit.offset), pending: found.pending.count, damage: found.damage)
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

    /// What the scan of §11 step 4 found: the last group it closed, the entries after it, and where it stopped.
    struct Scan {
        var seq: UInt64
        /// Entries after the last checkpoint record, and the leaf hash and offset of each entry of a closed group.
        var pending: [(leaf: SHA256Digest, offset: UInt64)] = []
        var recovered: [(leaf: SHA256Digest, offset: UInt64)] = []
        var pendingState: WriterState?
        var committed: (segment: Int, offset: Int, count: UInt64, state: WriterState, checkpoint: SignedCheckpoint)?
        /// What stopped the scan, and the end of the whole records before it.
        var damage: String?
        var dataEnd: (segment: Int, offset: Int)
    }

    /// Step 4: reads the records from `offset` of segment `startSegment` (entry `seq`) on, a window at a time, every
    /// checksum checked, until the end of the last segment or damage. Entries are hashed; a checkpoint record closes
    /// the group before it.
    private func scan(from startSegment: Int, offset startOffset: Int, seq: UInt64) throws(LedgerError) -> Scan {
        var s = Scan(seq: seq, dataEnd: (startSegment, startOffset))
        scan: for si in startSegment..<segments.count {
            let file = try SegmentReader.open(segments[si])
            var from = startOffset
            if si != startSegment || startOffset == SegmentFormat.magic.count {
                guard try SegmentReader.header(of: file) == .magic else {
                    s.damage = "segment file without a valid header"
                    break scan
                }
                guard s.pending.isEmpty, segments[si].firstSeq == s.seq else {
                    s.damage = "segment \(segments[si].path) does not start where the previous one ended"
                    break scan
                }
                from = SegmentFormat.magic.count
            }
            let walk = try SegmentWalk(file, segment: segments[si].name, from: from, checksums: .all)
            while let window = try walk.next() {
                for r in window.records {
                    let payload = window.payload(r)
                    switch r.type {
                    case .entry:
                        s.pending.append((Merkle.leafHash(payload), UInt64(r.offset)))
                        s.seq += 1
                    case .state:
                        s.pendingState = try? WriterState(decoding: payload)
                    case .checkpoint:
                        guard let cp = try? SignedCheckpoint(parsing: String(decoding: payload, as: UTF8.self)),
                            let st = s.pendingState, cp.checkpoint.size == s.seq, st.frontier.size == s.seq,
                            cp.checkpoint.origin == origin
                        else {
                            s.damage = "checkpoint record that does not close the group before it"
                            break scan
                        }
                        s.recovered += s.pending
                        s.pending.removeAll()
                        s.committed = (si, r.offset + SegmentFormat.headerSize + payload.count, s.seq, st, cp)
                    }
                    s.dataEnd = (si, r.offset + SegmentFormat.headerSize + payload.count)
                }
            }
            if case .damaged(let d) = walk.end {
                s.damage = d.why
                break
            }
            s.dataEnd = (si, walk.offset)
        }
        return s
    }

    /// Cuts whatever follows the last whole group commit: entries never acknowledged, and damaged bytes.
    private func cutTail(
        after end: (segment: Int, offset: Int), pending: Int, damage: String?
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
        acknowledgedEnd = AcknowledgedEnd(segment: segments.last!.firstSeq, offset: currentSize)
        if checkpointFile == nil {
            let (f, created) = try FileHandleFD.openOrCreate(checkpointPath, flags: O_RDWR)
            checkpointFile = f
            createdFiles = createdFiles || created
        }
    }

    /// The end offset of the entry record at `offset` if it is whole and hashes to `leaf`.
    func checkedRecordEnd(segment: Int, offset: Int, leaf: SHA256Digest) throws -> Int? {
        let f = try reader(segment)
        let head = try f.read(count: SegmentFormat.headerSize, at: offset)
        guard head.count == SegmentFormat.headerSize else { return nil }
        let len = Int(head[1]) << 24 | Int(head[2]) << 16 | Int(head[3]) << 8 | Int(head[4])
        guard len <= SegmentFormat.maxPayload else { return nil }
        let rec = try f.read(count: SegmentFormat.headerSize + len, at: offset)
        return rec.withUnsafeBytes { buf -> Int? in
            guard case .record(.entry, let payload, let next) = SegmentFormat.record(in: buf, at: 0),
                Merkle.leafHash(payload) == leaf
            else { return nil }
            return offset + next
        }
    }
}
