import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// The one reader of segment files (Specs/format.md §10.2, §10.3): the records it returns do not depend on where
/// its windows fall, and damage is reported where it is, as a torn tail only when it reaches the end.
@Suite(.leavesNoFiles) struct SegmentReaderTests {
    struct Framed: Equatable {
        var type: RecordType
        var payload: [UInt8]
        var offset: Int
    }

    /// A segment's bytes: the magic, then records of every type and of many sizes (1 to 700 bytes).
    static func segment() -> (bytes: [UInt8], records: [Framed]) {
        var bytes = SegmentFormat.magic
        var records: [Framed] = []
        var rng = SplitMix64(seed: 7)
        for i in 0..<60 {
            let type: RecordType = i % 7 == 5 ? .state : i % 7 == 6 ? .checkpoint : .entry
            let payload = (0..<(1 + Int(rng.next() % 700))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            records.append(Framed(type: type, payload: payload, offset: bytes.count))
            payload.withUnsafeBytes { SegmentFormat.frame(type, $0, into: &bytes) }
        }
        return (bytes, records)
    }

    /// Walks `path` from `from` to `to` with `window`: the records, and how the walk ended.
    static func walk(
        _ path: String, from: Int = 8, to: Int? = nil, window: Int = SegmentWalk.defaultWindow,
        checksums: SegmentWalk.Checksums = .all
    ) throws -> (records: [Framed], end: SegmentWalk.End?, offset: Int) {
        let file = try FileHandleFD(path: path, flags: O_RDONLY)
        let walk = try SegmentWalk(file, segment: "s.seg", from: from, to: to, window: window, checksums: checksums)
        var out: [Framed] = []
        while let w = try walk.next() {
            for r in w.records { out.append(Framed(type: r.type, payload: Array(w.payload(r)), offset: r.offset)) }
        }
        return (out, walk.end, walk.offset)
    }

    func write(_ bytes: [UInt8], in dir: URL, name: String = "00000000000000000000.seg") throws -> String {
        let path = dir.path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A record that ends exactly where a window ends is followed by the next window's records, whatever the size
    /// of the windows: every size from 1 byte to the whole file gives the same records.
    @Test func everyWindowSizeGivesTheSameRecords() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (bytes, records) = Self.segment()
        let path = try write(bytes, in: dir)
        var windows = Array(1...80) + [100, 255, 256, 511, 700, 709, 1000, 4096, bytes.count - 8, bytes.count]
        // Windows that end exactly at a record's end.
        windows += records.map { $0.offset + SegmentFormat.headerSize + $0.payload.count - 8 }
        for window in windows {
            let r = try Self.walk(path, window: window)
            #expect(r.records == records, "window \(window)")
            #expect(r.end == .clean && r.offset == bytes.count, "window \(window)")
        }
    }

    /// A file cut anywhere ends in a damaged record that reaches the end (a torn tail), after every whole record
    /// before it; cut at a record boundary, it ends cleanly.
    @Test func aCutFileEndsInATornTail() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (bytes, records) = Self.segment()
        for cut in stride(from: 8, to: bytes.count, by: 41) {
            let path = try write(Array(bytes.prefix(cut)), in: dir)
            for window in [5, 1 << 20] {
                let r = try Self.walk(path, window: window)
                let whole = records.filter { $0.offset + SegmentFormat.headerSize + $0.payload.count <= cut }
                #expect(r.records == whole, "cut \(cut), window \(window)")
                let next = records.first { $0.offset + SegmentFormat.headerSize + $0.payload.count > cut }
                guard let next, next.offset < cut else {
                    #expect(r.end == .clean, "cut \(cut)")
                    continue
                }
                guard case .damaged(let d) = r.end else {
                    Issue.record("cut \(cut), window \(window): \(String(describing: r.end))")
                    continue
                }
                #expect(d.offset == next.offset && d.reachesEnd && d.segment == "s.seg", "cut \(cut): \(d)")
                #expect(
                    d.why
                        == (cut - next.offset < 9
                            ? "partial record header" : "partial record (\(next.payload.count) bytes announced)"))
                #expect(r.offset == next.offset)
            }
        }
    }

    /// Damage before the end is reported where it is, not as a torn tail; which checksums are checked is the
    /// caller's choice, and a caller that checks an entry's reports it at that entry.
    @Test func damageInTheMiddleIsNotATornTail() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (bytes, records) = Self.segment()
        let state = try #require(records.first { $0.type == .state })
        let entry = try #require(records.dropFirst(10).first { $0.type == .entry })

        var changed = bytes
        changed[state.offset + SegmentFormat.headerSize] ^= 0x01
        var path = try write(changed, in: dir)
        for checksums in [SegmentWalk.Checksums.all, .nonEntries] {
            let r = try Self.walk(path, window: 100, checksums: checksums)
            let d = SegmentDamage(
                why: "record checksum mismatch", segment: "s.seg", offset: state.offset, reachesEnd: false)
            #expect(r.end == .damaged(d))
            #expect(r.records == records.filter { $0.offset < state.offset })
        }
        #expect(try Self.walk(path, checksums: .none).end == .clean)

        changed = bytes
        changed[entry.offset + SegmentFormat.headerSize] ^= 0x01
        path = try write(changed, in: dir)
        #expect(try Self.walk(path, checksums: .all).end.map { "\($0)" }?.contains("checksum mismatch") == true)
        #expect(try Self.walk(path, checksums: .nonEntries).end == .clean)
        let file = try FileHandleFD(path: path, flags: O_RDONLY)
        let walk = try SegmentWalk(file, segment: "s.seg", window: 300, checksums: .nonEntries)
        found: while let w = try walk.next() {
            for r in w.records where r.offset == entry.offset {
                let d = walk.damaged(at: r, why: SegmentFormat.checksumMismatch)
                #expect(d.offset == entry.offset && !d.reachesEnd)
                break found
            }
        }
        #expect(try walk.next() == nil)

        // A type byte that is no record type, a length over the limit (which announces more than the file holds).
        for (header, why, reachesEnd) in [
            ([UInt8(0x07)], "unknown record type 0x7", false),
            ([0x01, 0x7f, 0x00, 0x00, 0x01], "record length 2130706433 is over the limit", true),
        ] {
            changed = bytes
            changed.replaceSubrange(entry.offset..<(entry.offset + header.count), with: header)
            path = try write(changed, in: dir)
            let d = SegmentDamage(why: why, segment: "s.seg", offset: entry.offset, reachesEnd: reachesEnd)
            #expect(try Self.walk(path, window: 50).end == .damaged(d))
        }
    }

    /// A range of a segment is walked alone; one that ends inside a record ends in a damaged record reaching
    /// its end.
    @Test func aRangeIsWalkedAlone() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (bytes, records) = Self.segment()
        let path = try write(bytes, in: dir)
        let from = records[10].offset
        let to = records[20].offset
        for window in [1, 33, 1 << 20] {
            let r = try Self.walk(path, from: from, to: to, window: window)
            #expect(r.records == Array(records[10..<20]) && r.end == .clean && r.offset == to)
            let cut = try Self.walk(path, from: from, to: to + 3, window: window)
            #expect(cut.records == Array(records[10..<20]))
            guard case .damaged(let d) = cut.end else {
                Issue.record("\(String(describing: cut.end))")
                continue
            }
            #expect(d.offset == to && d.reachesEnd)
        }
    }

    /// The listing keeps `.seg` files in seq order up to the first misnamed one; headers and links are told apart.
    @Test func listingAndHeaders() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try write(SegmentFormat.magic, in: dir)
        _ = try write(Array("PRO".utf8), in: dir, name: "00000000000000000005.seg")
        _ = try write(Array("PROVSEGX".utf8), in: dir, name: "00000000000000000009.seg")
        _ = try write([], in: dir, name: "00000000000000000012.seg")
        _ = try write([], in: dir, name: "notes.txt")
        var reader = try SegmentReader(listing: dir.path)
        #expect(reader.segments.map(\.firstSeq) == [0, 5, 9, 12] && reader.misnamed == nil)
        #expect(reader.segments[1].name == "00000000000000000005.seg" && reader.isLast(3) && !reader.isLast(2))
        let headers = try reader.segments.map { try SegmentReader.header(of: try SegmentReader.open($0)) }
        #expect(headers == [.magic, .cutShort(3), .missing, .cutShort(0)])

        // A misnamed `.seg` file ends the listing where it sorts.
        _ = try write([], in: dir, name: "x.seg")
        reader = try SegmentReader(listing: dir.path)
        #expect(reader.segments.count == 4 && reader.misnamed == dir.path + "/x.seg" && !reader.isLast(3))
        _ = try write([], in: dir, name: "+0000000000000000008.seg")
        reader = try SegmentReader(listing: dir.path)
        #expect(reader.segments.isEmpty && reader.misnamed == dir.path + "/+0000000000000000008.seg")
        for name in ["x.seg", "+0000000000000000008.seg"] {
            try FileManager.default.removeItem(atPath: dir.path + "/" + name)
        }

        let link = dir.path + "/00000000000000000020.seg"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: dir.path + "/notes.txt")
        reader = try SegmentReader(listing: dir.path)
        let e = ledgerError { _ = try SegmentReader.open(reader.segments.last!) }
        #expect(e?.message == "\(link) is a symbolic link, not a regular file")
    }
}

/// The walkers built on the reader: the verifier's verdict does not depend on where its windows fall, and a writer
/// finds the group it builds on from the index, walking back only as far as it must.
@Suite(.leavesNoFiles) struct SegmentWalkerTests {
    let t: TestConsortium
    init() throws { t = try TestConsortium() }

    func audit(_ dir: URL, window: Int) throws -> LogAudit {
        var scan = LogScan(
            member: t.consortium.member("brand")!, consortium: t.consortium, directory: dir.path + "/brand",
            progress: nil)
        scan.window = window
        var audit = LogAudit(org: "brand")
        do { try scan.run(&audit) } catch { audit.failure = (error as? LedgerError)?.message ?? "\(error)" }
        return audit
    }

    /// A log whole, with a torn tail, and with a damaged entry: the same entries, warnings and failure with
    /// windows of every size.
    @Test func theVerifierGivesOneVerdictWhateverTheWindow() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ing = try Ingestor(
            dataDirectory: dir.path, consortium: t.consortium, signer: t.signers["brand"]!, linkKey: t.linkKey,
            log: { _ in })
        for g in 0..<3 { _ = try ing.append(Array(Events.lines(15, from: g * 15).utf8)) }
        ing.store.close()
        let seg = dir.path + "/brand/segments/" + SegmentFormat.segmentName(firstSeq: 0)
        let whole = try [UInt8](Data(contentsOf: URL(fileURLWithPath: seg)))
        var damaged = whole
        damaged[whole.count / 2] ^= 0x10
        for (what, bytes) in [("whole", whole), ("torn", Array(whole.dropLast(5))), ("damaged", damaged)] {
            try Data(bytes).write(to: URL(fileURLWithPath: seg))
            let reference = try audit(dir, window: LogScan.defaultWindow)
            #expect((reference.failure == nil) == (what != "damaged"), "\(what): \(reference.failure ?? "")")
            if what != "damaged" { #expect(reference.entries == (what == "whole" ? 45 : 30), "\(what)") }
            for window in [1, 9, 10, 77, 300, 1000, 4096] {
                let a = try audit(dir, window: window)
                #expect(a.failure == reference.failure, "\(what), window \(window)")
                #expect(a.warnings == reference.warnings, "\(what), window \(window)")
                #expect(a.checkpoints == reference.checkpoints && a.leaves == reference.leaves, "\(what), \(window)")
                if a.failure == nil { #expect(a.entries == reference.entries, "\(what), window \(window)") }
            }
        }
    }

    /// A last group larger than the first walk back: the writer walks further back, finds the group before it and
    /// checks it (a checkpoint there signed by another key is refused); an index record that does not point at its
    /// entry makes it rebuild the index instead.
    @Test func theGroupBeforeALargeLastGroupIsFound() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let body = try t.body(Events.consent(1))
        func open(log: @escaping (String) -> Void = { _ in }) throws -> LogStore {
            try LogStore(
                dataDirectory: dir.path, consortium: "acme", org: "brand", writable: true, verifyingWith: t.consortium,
                log: log)
        }
        do {
            let store = try open()
            for (g, n) in [2000, 10, 300].enumerated() {
                _ = try store.append(
                    Array(repeating: body, count: n), signer: t.signers["brand"]!, now: 1_790_000_000_000 + UInt64(g))
            }
            store.close()
        }
        #expect(try open().size == 2310)

        // An index record the walk starts from (seq 2310 - 256) that points at another entry's record.
        let indexPath = dir.path + "/brand/index"
        let index = try Data(contentsOf: URL(fileURLWithPath: indexPath))
        var wrong = [UInt8](index)
        let at = (2310 - 256) * SegmentFormat.indexRecordSize + 32
        wrong.replaceSubrange(at..<(at + 8), with: wrong[(at - 40)..<(at - 32)])
        try Data(wrong).write(to: URL(fileURLWithPath: indexPath))
        var logged: [String] = []
        #expect(try open(log: { logged.append($0) }).size == 2310)
        #expect(logged == ["log brand: index does not match the segments; rebuilding it"], "\(logged)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: indexPath)) == index)

        // The checkpoint at 2010, before the last group, signed by another key.
        let seg = dir.path + "/brand/segments/" + SegmentFormat.segmentName(firstSeq: 0)
        var records: [(RecordType, [UInt8])] = []
        try [UInt8](Data(contentsOf: URL(fileURLWithPath: seg))).withUnsafeBytes { buf in
            var off = SegmentFormat.magic.count
            while case .record(let type, let payload, let next) = SegmentFormat.record(in: buf, at: off) {
                records.append((type, Array(payload)))
                off = next
            }
        }
        let impostor = try NoteSigner(name: "acme/brand", privateKey: .generate())
        for i in records.indices where records[i].0 == .checkpoint {
            let cp = try SignedCheckpoint(parsing: String(decoding: records[i].1, as: UTF8.self))
            guard cp.checkpoint.size == 2010 else { continue }
            records[i].1 = Array(try SignedCheckpoint.sign(cp.checkpoint, with: impostor).serialized.utf8)
        }
        var bytes = SegmentFormat.magic
        for (type, payload) in records { payload.withUnsafeBytes { SegmentFormat.frame(type, $0, into: &bytes) } }
        try Data(bytes).write(to: URL(fileURLWithPath: seg))
        let e = ledgerError { _ = try open() }
        #expect(
            e?.message.hasPrefix("log brand is damaged, nothing was appended: brand: checkpoint at size 2010: ")
                == true,
            "\(String(describing: e))")
    }
}
