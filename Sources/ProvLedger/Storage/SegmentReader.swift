#if canImport(Glibc)
    import Glibc
#endif

/// The segment files of a log and the records in them (Specs/format.md §10.2, §10.3): the one reader of the
/// format. The verifier (`LogScan`), the writer's recovery and its check of the last group (`LogStore`), and the
/// view's offline build all walk segments through it.
///
/// A listing keeps the files of `segments/` whose names end in `.seg`, in name order (so in seq order), up to the
/// first whose name is not a segment name. A segment is opened as every file of a data directory is (§10.1):
/// never through a link, never blocking, and only when it is a regular file. Its records are then read a window
/// at a time (`SegmentWalk`), so a reader holds about one window and one largest record in memory, whatever the
/// size of the segment.
package struct SegmentReader: Sendable {
    /// A segment file, named by the seq of its first entry (§10.2).
    package struct Segment: Sendable, Equatable {
        /// The file name: the first seq in 20 decimal digits and `.seg`.
        package let name: String
        package let path: String
        package let firstSeq: UInt64

        /// The segment `name` of `directory`; nil when `name` is not a segment name.
        package init?(directory: String, name: String) {
            guard name.utf8.count == 24, name.hasSuffix(".seg"), name.utf8.prefix(20).allSatisfy({ $0 &- 0x30 < 10 }),
                let first = UInt64(name.prefix(20))
            else { return nil }
            self.name = name
            self.path = directory + "/" + name
            self.firstSeq = first
        }

        /// The segment of `directory` whose first entry is `firstSeq`.
        package init(directory: String, firstSeq: UInt64) {
            name = SegmentFormat.segmentName(firstSeq: firstSeq)
            path = directory + "/" + name
            self.firstSeq = firstSeq
        }
    }

    /// The log's `segments/` folder.
    package let directory: String
    /// The segment files in seq order, up to the first misnamed file.
    package let segments: [Segment]
    /// The path of the first file ending in `.seg` whose name is not 20 decimal digits and `.seg`; `segments` stops
    /// before it. A verifier fails there (§12.2), a writer does not open the log (§11 step 1).
    package let misnamed: String?

    /// Lists `directory`. A folder that cannot be read, or that is a link or anything but a folder, is an error.
    package init(listing directory: String) throws(LedgerError) {
        let names = try FileHandleFD.list(directory: directory).filter { $0.hasSuffix(".seg") }.sorted()
        var segments: [Segment] = []
        var misnamed: String?
        for name in names {
            guard let s = Segment(directory: directory, name: name) else {
                misnamed = directory + "/" + name
                break
            }
            segments.append(s)
        }
        self.init(directory: directory, segments: segments, misnamed: misnamed)
    }

    /// The given segments of `directory`, listed elsewhere (none for a log without a `segments/` folder).
    package init(directory: String, segments: [Segment], misnamed: String? = nil) {
        self.directory = directory
        self.segments = segments
        self.misnamed = misnamed
    }

    /// Whether segment `i` is the log's last file: the one a crash can leave torn (§12.1 step 3.3).
    package func isLast(_ i: Int) -> Bool { i == segments.count - 1 && misnamed == nil }

    /// Opens a segment for reading (§10.1: no link, nothing that blocks, a regular file).
    package static func open(_ segment: Segment) throws(LedgerError) -> FileHandleFD {
        try FileHandleFD(path: segment.path, flags: O_RDONLY)
    }

    /// What a segment file begins with (§10.2).
    package enum Header: Sendable, Equatable {
        /// The 8 bytes of the magic.
        case magic
        /// The file holds fewer bytes than the magic, and they begin it: a crash right after the writer started
        /// the segment (§10.2), which the writer removes on open and a verifier takes for a torn tail.
        case cutShort(Int)
        /// Anything else.
        case missing
    }

    /// Reads the header of an open segment file.
    package static func header(of file: FileHandleFD) throws(LedgerError) -> Header {
        let bytes = try file.read(count: SegmentFormat.magic.count, at: 0)
        if bytes == SegmentFormat.magic { return .magic }
        return bytes.count < SegmentFormat.magic.count && SegmentFormat.magic.starts(with: bytes)
            ? .cutShort(bytes.count) : .missing
    }
}

/// Damage found while walking a segment (Specs/format.md §12.1 step 3.3.6, §11 step 4): a framing error, or a
/// checksum that does not match.
package struct SegmentDamage: Sendable, Equatable {
    /// What is wrong, as §12.2 words it: `partial record header`, `unknown record type 0x7`, `record length <n> is
    /// over the limit`, `partial record (<n> bytes announced)`, `record checksum mismatch`.
    package var why: String
    /// The segment file's name.
    package var segment: String
    /// Where the damaged record starts in the file.
    package var offset: Int
    /// The damaged record reaches the end of what was walked: its header is cut short, or the length it announces
    /// reaches or passes the end. In a log's last segment that is a torn tail, what a crash leaves; anywhere else
    /// the file was modified or damaged.
    package var reachesEnd: Bool
}

/// The records of one segment file, or of a range of it, read in windows: about `window` bytes at a time, more
/// when one record is larger (at most a header and `SegmentFormat.maxPayload`). Each call to `next` returns the
/// whole records of the next window; the walk ends at the end of the range (`end` is `.clean`) or at the first
/// damaged record (`.damaged`), after returning the records before it.
///
/// The checksums of state and checkpoint records are always checked here. Those of entries are checked here too
/// (`.all`), left to a caller that checks them on several cores with the rest of its work (`.nonEntries`; it then
/// reports a mismatch with `damaged(at:why:)`), or not checked at all (`.none`: a walk by the headers alone, as the
/// writer finds its last group, §11 step 8).
///
/// One thread at a time; a window's bytes are valid until the next call to `next`.
package final class SegmentWalk {
    /// Which record checksums the walk checks.
    package enum Checksums: Sendable {
        case all
        case nonEntries
        case none
    }

    /// How a walk ended.
    package enum End: Sendable, Equatable {
        /// Every record of the range is whole.
        case clean
        case damaged(SegmentDamage)
    }

    /// A whole record of a window.
    package struct Record: Sendable {
        package var type: RecordType
        /// Where the payload lies in the window's bytes.
        package var payload: Range<Int>
        /// Where the record (its type byte) starts in the file.
        package var offset: Int
    }

    /// The whole records of one window, in file order.
    package struct Window {
        /// The bytes read; each record's `payload` is a range of them.
        package let bytes: UnsafeRawBufferPointer
        package let records: [Record]

        package func payload(_ r: Record) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: bytes[r.payload])
        }
    }

    /// Bytes a window holds unless one record needs more.
    package static let defaultWindow = 8 << 20

    package let segment: String
    private let file: FileHandleFD
    private let checksums: Checksums
    private let window: Int
    /// The end of the range walked.
    private var limit: Int
    private let buffer: UnsafeMutableRawBufferPointer
    /// The file offset of `buffer[0]`, the bytes read into it, and where parsing resumes.
    private var bufferStart: Int
    private var have = 0
    private var pos = 0
    /// Records in the last window, to reserve as many for the next.
    private var lastCount = 0
    package private(set) var end: End?

    /// A walk of `file` (the segment named `segment`) from `from`, a record boundary, to `to` (the file's size at
    /// this call when nil).
    package init(
        _ file: FileHandleFD, segment: String, from: Int = SegmentFormat.magic.count, to: Int? = nil,
        window: Int = SegmentWalk.defaultWindow, checksums: Checksums
    ) throws(LedgerError) {
        self.file = file
        self.segment = segment
        self.checksums = checksums
        self.window = window
        let size = try file.size
        limit = max(from, min(to ?? size, size))
        bufferStart = from
        // Never more than the range, nor more than a window or a largest record.
        let capacity = min(max(window, SegmentFormat.headerSize + SegmentFormat.maxPayload), limit - from)
        buffer = .allocate(byteCount: max(capacity, 1), alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// The file offset after the last whole record returned.
    package var offset: Int { bufferStart + pos }

    /// The next window's whole records; nil once the walk has ended (see `end`).
    package func next() throws(LedgerError) -> Window? {
        guard end == nil else { return nil }
        var records: [Record] = []
        records.reserveCapacity(lastCount)
        while true {
            try refill()
            parse(into: &records)
            if end != nil || !records.isEmpty { break }
        }
        lastCount = records.count
        return Window(bytes: UnsafeRawBufferPointer(rebasing: buffer[0..<have]), records: records)
    }

    /// Ends the walk at `record` of the current window, which the caller found damaged (an entry's checksum).
    @discardableResult
    package func damaged(at record: Record, why: String) -> SegmentDamage {
        let d = SegmentDamage(
            why: why, segment: segment, offset: record.offset,
            reachesEnd: record.offset + SegmentFormat.headerSize + record.payload.count >= limit)
        end = .damaged(d)
        return d
    }

    /// Keeps the unparsed bytes (the beginning of a record) and reads after them: up to `window` bytes, or as many
    /// as the record they begin needs.
    private func refill() throws(LedgerError) {
        let readAt = bufferStart + have
        guard readAt < limit else { return }
        if pos > 0 {
            if have > pos { buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + pos, byteCount: have - pos) }
            bufferStart += pos
            have -= pos
            pos = 0
        }
        var target = max(window, SegmentFormat.headerSize)
        if have >= 5 {
            let length = min(SegmentFormat.announcedLength(buffer.baseAddress!), SegmentFormat.maxPayload)
            target = max(target, SegmentFormat.headerSize + length)
        }
        let want = min(min(target, buffer.count) - have, limit - readAt)
        guard want > 0 else { return }
        let got = try file.pread(
            into: UnsafeMutableRawBufferPointer(rebasing: buffer[have..<(have + want)]), at: readAt)
        have += got
        // The file was cut while it was read: its end is the end of the range.
        if got < want { limit = bufferStart + have }
    }

    /// Takes the whole records after `pos`; ends the walk at the end of the range or at damage.
    private func parse(into records: inout [Record]) {
        let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<have])
        let atLimit = bufferStart + have >= limit
        while true {
            switch SegmentFormat.framing(in: bytes, at: pos) {
            case .end:
                if atLimit { end = .clean }
                return
            case .damaged(let why, let partial):
                // A record cut by the window's end is whole in the next one.
                if partial && !atLimit { return }
                end = .damaged(damage(why))
                return
            case .record(let type, let payload, let next):
                let check: Bool
                switch checksums {
                case .all: check = true
                case .nonEntries: check = type != .entry
                case .none: check = false
                }
                if check && !SegmentFormat.checksumMatches(UnsafeRawBufferPointer(rebasing: bytes[payload])) {
                    end = .damaged(damage(SegmentFormat.checksumMismatch))
                    return
                }
                records.append(Record(type: type, payload: payload, offset: bufferStart + pos))
                pos = next
            }
        }
    }

    /// The damage at `pos`: it reaches the end when fewer than 5 header bytes are left (no length to read) or
    /// when the length its header announces reaches or passes the end of the range.
    private func damage(_ why: String) -> SegmentDamage {
        let at = bufferStart + pos
        let reachesEnd =
            have - pos < 5
            || at + SegmentFormat.headerSize + SegmentFormat.announcedLength(buffer.baseAddress! + pos) >= limit
        return SegmentDamage(why: why, segment: segment, offset: at, reachesEnd: reachesEnd)
    }
}
