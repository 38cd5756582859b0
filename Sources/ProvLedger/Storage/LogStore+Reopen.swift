import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where the last acknowledged group of a writer ends.
struct AcknowledgedEnd: Sendable {
    /// The first seq of the segment that holds the group's last record.
    var segment: UInt64
    /// The byte offset just after the group's checkpoint record.
    var offset: Int
}

extension LogStore {
    /// Makes a store that failed (a write or fsync refused, say on a full disk) take groups again, as an open
    /// would: whatever was written after the last acknowledged group is cut first (those groups were answered as
    /// failed, and after a failed write or fsync the page cache is not trusted), then the files are read again
    /// and checked by the recovery rules (Specs/format.md §11). The directory lock stays held throughout. Throws,
    /// and stays failed, while the files still cannot be written or read; a store that has not failed is left
    /// as it is.
    public func reopen() throws(LedgerError) {
        guard writable, failed != nil else { return }
        if let end = acknowledgedEnd { try cutUnacknowledged(after: end) }
        current = nil
        currentSize = 0
        readers = [:]
        segments = []
        index = nil
        pendingIndex = []
        indexedCount = 0
        indexFailing = false
        tiles = nil
        checkpointFile = nil
        checkpointFileFailing = false
        spare = []
        size = 0
        latest = nil
        state = .initial
        committedState = .initial
        acknowledgedEnd = nil
        do throws(LedgerError) {
            try recover()
            try repairTiles()
            self.failed = nil
        } catch {
            // Still failed; the next reopen starts over from the files.
            self.failed = error
            throw error
        }
    }

    /// Removes the segments started after `end`'s and cuts `end`'s segment at its offset: groups written there
    /// were never acknowledged.
    private func cutUnacknowledged(after end: AcknowledgedEnd) throws(LedgerError) {
        let listing = try SegmentReader(listing: segmentDirectory)
        var removed = false
        for s in listing.segments where s.firstSeq > end.segment {
            try FileHandleFD.expect(s.path, is: .regularFile)
            if unlink(s.path) != 0 { throw FileHandleFD.error("cannot remove", s.path) }
            removed = true
        }
        if removed { try FileHandleFD.syncDirectory(segmentDirectory) }
        guard let s = listing.segments.first(where: { $0.firstSeq == end.segment }) else {
            throw LedgerError(.io, "log \(org): the segment of the last acknowledged group is gone")
        }
        let f = try FileHandleFD(path: s.path, flags: O_RDWR)
        if try f.size > end.offset {
            try f.truncate(to: end.offset)
            try f.sync()
        }
    }
}
