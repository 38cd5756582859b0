import Foundation
import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

extension LogStore {
    // MARK: Groups

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
        /// Where the group ends: the first seq of its segment and the byte offset after its checkpoint record.
        fileprivate var end: AcknowledgedEnd? = nil

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
        guard group.byteCount <= Self.maxGroupBytes else {
            throw LedgerError(
                .invalidEntry,
                "a group commit holds at most \(Self.maxGroupBytes) bytes of records, this one \(group.byteCount): "
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
        let at: Int
        do throws(LedgerError) {
            if rolling { try startSegment(firstSeq: group.startSize) }
            let target = self.current!
            at = currentSize
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
            tiles: group.tiles, state: st, deferred: deferred,
            end: AcknowledgedEnd(segment: segments.last!.firstSeq, offset: at + group.buffer.count + trailer.count))
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
        if let end = w.end { acknowledgedEnd = end }
        pendingIndex += w.index
        flushIndex()
        writeCheckpointFile(cp)
        // A cache like the index: a failed write is repaired from the index on the next open.
        if !w.tiles.isEmpty { try? tileStore().write(w.tiles) }
        return w.results
    }

    /// Marks the store failed (a sync failed elsewhere): no further appends until reopened.
    public func fail(_ error: LedgerError) { failed = error }

    /// Why the store takes no more groups (a write or fsync failed), or nil.
    public var failure: LedgerError? { failed }

    // MARK: Caches written after a commit (Specs/format.md §10.9 step 5)

    /// Writes the pending index records at the end of the index file. A failure leaves them pending and is a
    /// warning, not an error: the entries are committed, and the index is a cache that the next open rebuilds.
    func flushIndex() {
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

    /// Overwrites the `checkpoint` file in place: one write of less than a page at offset 0 (a rename per group
    /// commit costs the journal more than the group's data). It is a copy of the last checkpoint record, rewritten
    /// on every open, so a crash in between loses nothing, and a failed write is a warning.
    func writeCheckpointFile(_ cp: SignedCheckpoint) {
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

    /// Writes what the index still lacks and flushes it (it is a cache rebuilt from the segments, so appends do
    /// not wait for it).
    public func close() {
        flushIndex()
        try? index?.sync()
        tiles?.sync()
    }

    /// Starts a new segment file for the group beginning at `firstSeq`: its magic, synced, and the new entry made
    /// durable in `segments/` (Specs/format.md §10.1, §10.2).
    func startSegment(firstSeq: UInt64) throws(LedgerError) {
        let segment = SegmentReader.Segment(directory: segmentDirectory, firstSeq: firstSeq)
        let f = try FileHandleFD(path: segment.path, flags: O_RDWR | O_CREAT | O_TRUNC)
        try f.pwriteAll(SegmentFormat.magic, at: 0)
        try f.sync()
        try FileHandleFD.syncDirectory(segmentDirectory)
        segments.append(segment)
        current = f
        currentSize = SegmentFormat.magic.count
    }
}
