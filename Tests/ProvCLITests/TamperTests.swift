import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// Every way an auditor could find a ledger altered: `prov verify` must exit 1 and say which org, which seq and
/// what is wrong.
@Suite(.leavesNoFiles) struct TamperTests {
    /// Records of a segment file, editable and written back with fresh framing.
    struct Segment {
        var path: String
        var records: [(type: RecordType, payload: [UInt8])]

        init(_ path: String) throws {
            self.path = path
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            var recs: [(RecordType, [UInt8])] = []
            bytes.withUnsafeBytes { buf in
                var off = 8
                while case .record(let t, let p, let next) = SegmentFormat.record(in: buf, at: off) {
                    recs.append((t, Array(p)))
                    off = next
                }
            }
            records = recs
        }

        /// Index in `records` of the entry with this seq.
        func entryIndex(_ seq: Int) -> Int {
            var n = -1
            for (i, r) in records.enumerated() where r.type == .entry {
                n += 1
                if n == seq { return i }
            }
            fatalError("no entry \(seq)")
        }

        func write() throws {
            var out = SegmentFormat.magic
            for r in records { r.payload.withUnsafeBytes { SegmentFormat.frame(r.type, $0, into: &out) } }
            try Data(out).write(to: URL(fileURLWithPath: path))
        }
    }

    /// A log of three group commits of ten entries each.
    func makeLog() throws -> (CLIConsortium, Segment) {
        let c = try CLIConsortium()
        for g in 0..<3 {
            let r = try c.append(Events.lines(10, from: g * 10))
            guard r.status == 0 else { throw LedgerError(.io, r.stderr) }
        }
        #expect(try c.verify().status == 0)
        return (c, try Segment(c.data + "/brand/segments/" + SegmentFormat.segmentName(firstSeq: 0)))
    }

    func expectFailure(
        _ c: CLIConsortium, _ extra: [String] = [], contains: [String],
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        expectVerificationFailure(try c.verify(extra), contains, sourceLocation: sourceLocation)
    }

    @Test func flippedByteIsCaughtByTheChecksum() throws {
        let (c, seg) = try makeLog()
        defer { c.remove() }
        var raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: seg.path)))
        raw[8 + 9 + 40] ^= 0x20  // inside entry 0's payload
        try Data(raw).write(to: URL(fileURLWithPath: seg.path))
        try expectFailure(
            c, contains: ["brand seq 0: record checksum mismatch at byte 8 of segment", "modified or damaged"])
    }

    @Test func flippedByteWithRepairedChecksumBreaksTheChain() throws {
        let (c, original) = try makeLog()
        defer { c.remove() }
        var seg = original
        let i = seg.entryIndex(5)
        // The last byte of an entry is inside `prev`: change it, recompute the record checksum.
        seg.records[i].payload[seg.records[i].payload.count - 1] ^= 0x01
        try seg.write()
        try expectFailure(c, contains: ["brand seq 5: prev is not the leaf hash of seq 4"])
        // Same in the body of the last entry of a group: only the checkpoint root catches it.
        seg = original
        let j = seg.entryIndex(29)
        let k = seg.records[j].payload.firstIndex(of: UInt8(ascii: "g"))!  // "give" or similar text
        seg.records[j].payload[k] = UInt8(ascii: "h")
        try seg.write()
        let r = try c.verify()
        #expect(r.status == 1)
        #expect(r.stdout.contains("brand: FAILED"), "\(r.stdout)")
    }

    /// Entries far into a log are checked by the verifier's worker thread; its findings must be as precise.
    @Test func damageDeepInALargeLogIsReportedAtItsEntry() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        for g in 0..<2 {
            let r = try c.append(Events.lines(1500, from: g * 1500))
            try #require(r.status == 0, "\(r.stderr)")
        }
        #expect(try c.verify().status == 0)
        var seg = try Segment(c.data + "/brand/segments/" + SegmentFormat.segmentName(firstSeq: 0))
        let original = seg
        let i = seg.entryIndex(2345)
        seg.records[i].payload[seg.records[i].payload.count - 1] ^= 0x01
        try seg.write()
        try expectFailure(c, contains: ["brand seq 2345: prev is not the leaf hash of seq 2344"])

        try original.write()
        #expect(try c.verify().status == 0)
        var raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: seg.path)))
        var offset = 8
        for r in original.records[..<original.entryIndex(1777)] { offset += SegmentFormat.headerSize + r.payload.count }
        raw[offset + SegmentFormat.headerSize + 20] ^= 0x04
        try Data(raw).write(to: URL(fileURLWithPath: seg.path))
        try expectFailure(
            c,
            contains: ["brand seq 1777: record checksum mismatch at byte \(offset) of segment", "modified or damaged"])
    }

    /// A group's state and checkpoint records copied again after it: a group without entries, which no writer
    /// makes.
    @Test func repeatedCheckpointWithoutEntriesIsReported() throws {
        var (c, seg) = try makeLog()
        defer { c.remove() }
        let i = seg.entryIndex(19) + 1
        seg.records.insert(contentsOf: seg.records[i...(i + 1)], at: i + 2)
        try seg.write()
        try expectFailure(c, contains: ["brand: state record at byte", "closes a group without entries"])
    }

    @Test func removedEntryIsReported() throws {
        var (c, seg) = try makeLog()
        defer { c.remove() }
        seg.records.remove(at: seg.entryIndex(12))
        try seg.write()
        try expectFailure(c, contains: ["brand seq 12: found seq 13 where seq 12 belongs", "missing"])
    }

    @Test func swappedEntriesAreReported() throws {
        var (c, seg) = try makeLog()
        defer { c.remove() }
        seg.records.swapAt(seg.entryIndex(3), seg.entryIndex(4))
        try seg.write()
        try expectFailure(c, contains: ["brand seq 3: found seq 4 where seq 3 belongs"])
    }

    @Test func checkpointSignedWithAnotherKeyIsRejected() throws {
        var (c, seg) = try makeLog()
        defer { c.remove() }
        let i = seg.records.firstIndex { $0.type == .checkpoint }!
        let cp = try SignedCheckpoint(parsing: String(decoding: seg.records[i].payload, as: UTF8.self))
        let impostor = try NoteSigner(name: "acme/brand", privateKey: .generate())
        let forged = try SignedCheckpoint.sign(cp.checkpoint, with: impostor)
        seg.records[i].payload = Array(forged.serialized.utf8)
        try seg.write()
        try expectFailure(c, contains: ["brand: checkpoint at size 10", "does not verify against its consortium key"])
    }

    @Test func checkpointOverOtherEntriesIsRejected() throws {
        // The company re-signs a checkpoint over a rewritten history: the signature is good, the root is not
        // the one the stored entries give.
        var (c, seg) = try makeLog()
        defer { c.remove() }
        let signer = try SigningKeyFile.read(c.key("brand"))
        let i = seg.records.firstIndex { $0.type == .checkpoint }!
        let cp = try SignedCheckpoint(parsing: String(decoding: seg.records[i].payload, as: UTF8.self))
        let resigned = try SignedCheckpoint.sign(
            Checkpoint(origin: cp.checkpoint.origin, size: cp.checkpoint.size, root: SHA256.hash("other history")),
            with: signer)
        seg.records[i].payload = Array(resigned.serialized.utf8)
        try seg.write()
        try expectFailure(c, contains: ["brand: checkpoint at size 10 has root", "but the entries give"])
    }

    @Test func truncationBehindTheSignedCheckpointIsRollback() throws {
        var (c, seg) = try makeLog()
        defer { c.remove() }
        // Cut the whole last group commit: the segment is consistent, but the checkpoint file says 30.
        let lastGroupStart = seg.entryIndex(20)
        seg.records.removeSubrange(lastGroupStart...)
        try seg.write()
        try expectFailure(
            c,
            contains: [
                "brand: rollback", "covers 30 entries but the log holds only 20 verified: entries 20..29 are missing",
            ])
        // The same with the checkpoint file rolled back too, caught by the checkpoint the auditor kept.
        let kept = c.dir.path + "/kept-checkpoint"
        let cpFile = c.data + "/brand/checkpoint"
        try FileManager.default.copyItem(atPath: cpFile, toPath: kept)
        let older = seg.records.last { $0.type == .checkpoint }!
        try Data(older.payload).write(to: URL(fileURLWithPath: cpFile))
        #expect(try c.verify().status == 0)
        try expectFailure(
            c, ["--checkpoint", kept], contains: ["brand: rollback: a trusted checkpoint covers 30 entries"])
    }

    @Test func forkAgainstATrustedCheckpoint() throws {
        let (c, _) = try makeLog()
        defer { c.remove() }
        // The company signed a different tree of size 20 for someone else: two signed histories.
        let signer = try SigningKeyFile.read(c.key("brand"))
        let other = try SignedCheckpoint.sign(
            Checkpoint(origin: "acme/brand", size: 20, root: SHA256.hash("the other history")), with: signer)
        let path = c.dir.path + "/other-checkpoint"
        try other.serialized.write(toFile: path, atomically: true, encoding: .utf8)
        try expectFailure(
            c, ["--checkpoint", path], contains: ["brand: fork: a trusted checkpoint for size 20 has root"])
    }

    @Test func nonCanonicalReencodingIsRejected() throws {
        var (c, seg) = try makeLog()
        defer { c.remove() }
        let i = seg.entryIndex(7)
        var p = seg.records[i].payload
        // Top-level map: a8 61 76 01 ("v": 1). Encode the 1 in two bytes: same value, not the shortest form.
        #expect(Array(p[0..<4]) == [0xa8, 0x61, 0x76, 0x01])
        p.replaceSubrange(3...3, with: [0x18, 0x01])
        seg.records[i].payload = p
        try seg.write()
        try expectFailure(c, contains: ["brand seq 7: not canonical CBOR", "shortest form"])
    }

    @Test func tornTailIsAWarningNotAFailure() throws {
        let (c, seg) = try makeLog()
        defer { c.remove() }
        // Half of a record at the end, as a crash mid-write leaves it.
        var raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: seg.path)))
        raw += [0x01, 0x00, 0x00, 0x01, 0x00, 0xde, 0xad]
        try Data(raw).write(to: URL(fileURLWithPath: seg.path))
        let r = try c.verify()
        #expect(r.status == 0, "\(r.stderr)")
        // stderr is not a terminal here: the warning is a JSON log line.
        #expect(r.stderr.contains(#""level":"warn","msg":"brand: torn tail at byte "#), "\(r.stderr)")
        #expect(r.stdout.contains("brand: OK: 30 entries"))
    }

    @Test func unknownLogFolderAndForeignKeyFail() throws {
        let (c, _) = try makeLog()
        defer { c.remove() }
        try FileManager.default.createDirectory(atPath: c.data + "/mallory/segments", withIntermediateDirectories: true)
        try expectFailure(c, contains: ["folder 'mallory' is not the log of any member"])
    }
}
