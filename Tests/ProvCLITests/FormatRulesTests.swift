import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// The places where Specs/format.md allowed two readings, each settled in the text and held here to what
/// `prov verify` and `prov verify-receipt` do.
@Suite(.leavesNoFiles) struct FormatRulesTests {
    typealias Segment = TamperTests.Segment

    func segment(_ c: CLIConsortium, _ org: String = "brand") throws -> Segment {
        try Segment(c.data + "/\(org)/segments/" + SegmentFormat.segmentName(firstSeq: 0))
    }

    func expectFailure(_ r: Run, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        expectVerificationFailure(r, [message], sourceLocation: sourceLocation)
    }

    /// Writes `body` into `org`'s log as a writer that skips the event parser would.
    func appendRaw(_ c: CLIConsortium, _ body: EntryBody, org: String = "brand") throws {
        let consortium = try Consortium.load(c.consortium)
        let signer = try SigningKeyFile.read(c.key(org))
        let store = try LogStore(
            dataDirectory: c.data, consortium: consortium.name, org: org, writable: true, log: { _ in })
        defer { store.close() }
        var group = store.beginGroup(now: Ingestor.now())
        _ = group.add(body)
        _ = try store.commit(group, signer: signer)
    }

    func body(_ c: CLIConsortium, _ json: String, org: String = "brand") throws -> EntryBody {
        try EventParser(consortium: try Consortium.load(c.consortium), org: org, linkKey: try LinkKey.load(c.linkKey))
            .parse(try JSON.parse(json))
    }

    /// A log folder without `segments/` is a failure (its entries are gone), not a log that cannot be read.
    @Test func aLogFolderWithoutSegmentsFails() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        #expect(try c.append(Events.lines(2)).status == 0)
        try FileManager.default.removeItem(atPath: c.data + "/brand/segments")
        let r = try c.verify()
        expectFailure(r, "brand: no segment files in \(c.data)/brand/segments")
        #expect(r.stdout.contains("brand: FAILED after 0 entries"), "\(r.stdout)")
    }

    /// Base64 whose unused padding bits are not zero names the same bytes as the canonical text: refused in
    /// signature lines and receipts, so signed text has one form.
    @Test func nonCanonicalBase64IsRejected() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        #expect(try c.append(Events.lines(4)).status == 0)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        /// The same bytes, spelt with a padding bit set.
        func malleate(_ b64: Substring) -> String {
            var chars = Array(b64)
            let i = chars.lastIndex { $0 != "=" }!
            let padding = chars.count - 1 - i
            let v = alphabet.firstIndex(of: chars[i])!
            #expect(v & (padding == 1 ? 0b11 : 0b1111) == 0)
            chars[i] = alphabet[v | 1]
            #expect(Data(base64Encoded: String(chars)) == Data(base64Encoded: String(b64)))
            return String(chars)
        }
        let note = try prov(["checkpoint", "--dir", c.data, "--org", "brand"]).stdout
        var lines = note.split(separator: "\n", omittingEmptySubsequences: false)
        let sig = lines.firstIndex { $0.hasPrefix("\u{2014}") }!
        var fields = lines[sig].split(separator: " ")
        fields[fields.count - 1] = Substring(malleate(fields[fields.count - 1]))
        lines[sig] = Substring(fields.joined(separator: " "))
        let changed = lines.joined(separator: "\n")
        #expect(
            throws: LedgerError(
                .invalidEntry,
                "checkpoint note: signature by acme/brand is not canonical base64 (its padding bits are not zero)")
        ) { try SignedCheckpoint(parsing: changed) }

        // In the segment's checkpoint record: the log fails.
        var seg = try segment(c)
        let cp = seg.records.firstIndex { $0.type == .checkpoint }!
        let original = seg
        seg.records[cp].payload = Array(changed.utf8)
        try seg.write()
        let at = seg.records[..<cp].reduce(8) { $0 + SegmentFormat.headerSize + $1.payload.count }
        expectFailure(
            try c.verify(),
            "brand: checkpoint record at byte \(at) of 00000000000000000000.seg: checkpoint note: signature by "
                + "acme/brand is not canonical base64 (its padding bits are not zero)")
        try original.write()
        #expect(try c.verify().status == 0)

        // In a receipt: a proof line and the signature line.
        let receipt = try prov(["receipt", "--dir", c.data, "--org", "brand", "--seq", "1"]).stdout
        var r = receipt.split(separator: "\n", omittingEmptySubsequences: false)
        let path = c.dir.path + "/r.tlog-proof"
        try receipt.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try prov(["verify-receipt", "--consortium", c.consortium, path]).status == 0)
        r[3] = Substring(malleate(r[3]))
        try r.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        expectFailure(
            try prov(["verify-receipt", "--consortium", c.consortium, path]),
            "the receipt is malformed: proof line 4 is not canonical base64 of a 32-byte hash")
        r = receipt.split(separator: "\n", omittingEmptySubsequences: false)
        let rs = r.firstIndex { $0.hasPrefix("\u{2014}") }!
        var rf = r[rs].split(separator: " ")
        rf[rf.count - 1] = Substring(malleate(rf[rf.count - 1]))
        r[rs] = Substring(rf.joined(separator: " "))
        try r.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        expectFailure(
            try prov(["verify-receipt", "--consortium", c.consortium, path]),
            "signature by acme/brand is not canonical base64")
    }

    /// A state record decodes only in its canonical form (`cited` sorted by org, each org once), and every value
    /// in it is the one the entries give, `hlc` and `cited` included: recovery restores them from it.
    @Test func stateRecordsAreCanonicalAndMatchTheEntries() throws {
        let c = try CLIConsortium(orgs: ["bank", "brand", "retail"])
        defer { c.remove() }
        #expect(try c.append(Events.lines(1), org: "bank").status == 0)
        #expect(try c.append(Events.lines(1), org: "retail").status == 0)
        #expect(try c.append(Events.lines(2)).status == 0)
        let original = try segment(c)
        let i = original.records.firstIndex { $0.type == .state }!
        let state = try original.records[i].payload.withUnsafeBytes { try WriterState(decoding: $0) }
        #expect(state.cited == ["bank": 0, "retail": 0])

        // The same values with `cited` out of order: not the canonical bytes.
        var w = CBORWriter()
        w.writeMapHeader(5)
        w.writeKey("hlc")
        w.writeArrayHeader(2)
        w.writeUnsigned(state.hlc.wall)
        w.writeUnsigned(state.hlc.counter)
        w.writeKey("last")
        state.lastLeaf.withUnsafeBytes { w.writeBytes($0) }
        w.writeKey("size")
        w.writeUnsigned(state.frontier.size)
        w.writeKey("cited")
        w.writeArrayHeader(2)
        for o in ["retail", "bank"] {
            w.writeArrayHeader(2)
            w.writeText(o)
            w.writeUnsigned(0)
        }
        w.writeKey("frontier")
        w.writeArrayHeader(state.frontier.hashes.count)
        for h in state.frontier.hashes { h.withUnsafeBytes { w.writeBytes($0) } }
        #expect(try w.bytes.withUnsafeBytes { try WriterState(decoding: $0) } == state)
        var seg = original
        seg.records[i].payload = w.bytes
        try seg.write()
        expectVerificationFailure(
            try c.verify(),
            ["brand: state record at byte ", "of 00000000000000000000.seg is malformed (not in canonical form)"])

        // Canonical, but another clock or other citations than the entries give.
        for change in [
            { (s: inout WriterState) in s.hlc.counter += 1 },
            { (s: inout WriterState) in s.cited["retail"] = 5 },
            { (s: inout WriterState) in s.cited["zeta"] = 0 },
        ] {
            var changed = state
            change(&changed)
            seg = original
            seg.records[i].payload = changed.encoded
            try seg.write()
            expectFailure(
                try c.verify(), "brand seq 1: state record after it disagrees with the entries (size 2)")
        }
        try original.write()
        #expect(try c.verify().status == 0)
    }

    /// Entries after the last checkpoint (an unfinished group commit) are not counted, but they are whole
    /// records: every rule holds for them, references to other logs included.
    @Test func entriesAfterTheLastCheckpointAreChecked() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        let retail = try c.append(Events.lines(1), org: "retail")
        let retailLeaf = try #require(SHA256Digest(hex: retail.stdout.split(separator: " ")[1].prefix(64)))
        #expect(try c.append(Events.lines(1)).status == 0)
        let checkpointFile = try Data(contentsOf: URL(fileURLWithPath: c.data + "/brand/checkpoint"))
        let indexFile = try Data(contentsOf: URL(fileURLWithPath: c.data + "/brand/index"))
        let firstGroup = try segment(c)
        guard case .interaction(var b) = try body(c, Events.interaction(1)) else { throw LedgerError(.io, "?") }
        for (leaf, fails) in [(retailLeaf, false), (SHA256.hash("not retail/0"), true)] {
            b.derivedFrom = [EntryRef(org: "retail", seq: 0, leaf: leaf)]
            try appendRaw(c, .interaction(b))
            // Cut the group's state and checkpoint records, as a crash before them would leave it.
            var seg = try segment(c)
            let original = seg
            seg.records.removeLast(2)
            try seg.write()
            try checkpointFile.write(to: URL(fileURLWithPath: c.data + "/brand/checkpoint"))
            let r = try c.verify()
            #expect(
                r.stderr.contains("brand: 1 entry after the last checkpoint (an unfinished group commit"),
                "\(r.stderr)")
            if fails {
                expectFailure(
                    r,
                    "brand seq 1: derivedFrom cites retail/0 with leaf \(leaf.hex), but retail/0 here has leaf "
                        + "\(retailLeaf.hex): one of the two logs is not what was cited")
            } else {
                #expect(r.status == 0, "\(r.stderr)")
                // deps of entry 0 and derivedFrom of entry 1.
                #expect(r.stdout.contains("brand: OK: 1 entry, 1 checkpoint verified, 2 references checked"))
            }
            #expect(original.records.count == firstGroup.records.count + 3)
            try firstGroup.write()
            try indexFile.write(to: URL(fileURLWithPath: c.data + "/brand/index"))
        }
    }

    /// What input refuses, a stored entry may not carry either, and what input accepts, an audit accepts.
    @Test func storedValueRangesMatchInput() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        // A share to the log's own org.
        let share =
            #"{"type":"share","subject":"email:a@example.com","recipient":"brand","purposes":["dpv:DirectMarketing"],"dataCategories":["dpv:Contact"],"occurredAt":"2026-11-24T10:00:00Z"}"#
        let input = try c.append(share + "\n")
        #expect(input.status == 2)
        #expect(
            input.stderr.contains(
                "line 1: field 'recipient': 'brand' is the appending org: a share records data passed to another member"
            ),
            "\(input.stderr)")
        guard case .share(var s) = try body(c, share.replacingOccurrences(of: "\"brand\"", with: "\"retail\""))
        else { throw LedgerError(.io, "not a share") }
        s.recipient = "brand"
        try appendRaw(c, .share(s))
        expectFailure(
            try c.verify(),
            "brand seq 0: body.recipient: 'brand' is the log's own org: a share goes to another member "
                + "(segment 00000000000000000000.seg, byte 8)")
        let receipt = c.dir.path + "/r.tlog-proof"
        try prov(["receipt", "--dir", c.data, "--org", "brand", "--seq", "0"]).stdout.write(
            toFile: receipt, atomically: true, encoding: .utf8)
        expectFailure(
            try prov(["verify-receipt", "--consortium", c.consortium, receipt]),
            "receipt: entry bytes: body.recipient: 'brand' is the log's own org")
        try FileManager.default.removeItem(atPath: c.data + "/brand")

        // Controllers without the writing org: a processor (a contact centre) records the controller's consent.
        let consent = Events.consent(1).replacingOccurrences(
            of: #""controllers":["brand"]"#, with: #""controllers":["retail"]"#)
        #expect(consent.contains(#""controllers":["retail"]"#))
        #expect(try c.append(consent + "\n").status == 0)
        #expect(try c.verify().status == 0)
        try FileManager.default.removeItem(atPath: c.data + "/brand")

        // Times from the year 10000 on.
        let late = try c.append(
            Events.consent(1).replacingOccurrences(of: "2026-11-24T10:00:00Z", with: "9999-12-31T23:00:00-01:00") + "\n"
        )
        #expect(late.status == 2 && late.stderr.contains("field 'occurredAt'"), "\(late.stderr)")
        guard case .consent(var k) = try body(c, Events.consent(1)) else { throw LedgerError(.io, "not a consent") }
        k.occurredAt = Timestamp.end - 1
        try appendRaw(c, .consent(k))
        #expect(try c.verify().status == 0)
        k.occurredAt = Timestamp.end
        try appendRaw(c, .consent(k))
        expectFailure(try c.verify(), "brand seq 1: body.occurredAt: 253402300800000 ms is not before the year 10000")
    }

    /// A crash right after a segment roll can leave a last segment of 0 to 7 bytes, a beginning of its header:
    /// a torn tail that the writer removes, not damage. Elsewhere, or with other bytes, it fails.
    @Test func aTornSegmentHeaderIsATornTail() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        #expect(try c.append(Events.lines(3)).status == 0)
        let next = c.data + "/brand/segments/" + SegmentFormat.segmentName(firstSeq: 3)
        for bytes in [[], Array(SegmentFormat.magic.prefix(5))] {
            try Data(bytes).write(to: URL(fileURLWithPath: next))
            let r = try c.verify()
            #expect(r.status == 0, "\(r.stderr)")
            #expect(
                r.stderr.contains(
                    "brand: torn tail: segment 00000000000000000003.seg holds \(bytes.count) of the 8 bytes of its "
                        + "header (a crash while starting it), and no entries; the writer removes it on open"),
                "\(r.stderr)")
            #expect(r.stdout.contains("brand: OK: 3 entries"))
        }
        // The writer removes it and goes on; the log is clean again.
        #expect(try c.append(Events.lines(1, from: 3)).status == 0)
        #expect(!FileManager.default.fileExists(atPath: next))
        let clean = try c.verify()
        #expect(clean.status == 0 && !clean.stderr.contains("warn"), "\(clean.stderr)")

        // Other bytes than the header's, or a short segment followed by another: damage.
        try Data("PROVXXX".utf8).write(to: URL(fileURLWithPath: c.data + "/brand/segments/00000000000000000004.seg"))
        expectFailure(
            try c.verify(), "brand seq 4: \(c.data)/brand/segments/00000000000000000004.seg has no segment header")
        try Data("PROV".utf8).write(to: URL(fileURLWithPath: c.data + "/brand/segments/00000000000000000004.seg"))
        try Data().write(to: URL(fileURLWithPath: c.data + "/brand/segments/00000000000000000005.seg"))
        expectFailure(
            try c.verify(), "brand seq 4: \(c.data)/brand/segments/00000000000000000004.seg has no segment header")
    }

    /// The index is compared with the entries record by record, leaf hash and offset (§10.6); one that is not a
    /// whole number of records is a torn write. Both are warnings (the index is a cache) that the writer repairs.
    @Test func theIndexIsCheckedByLeafAndOffset() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        #expect(try c.append(Events.lines(5)).status == 0)
        let path = c.data + "/brand/index"
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(original.count == 5 * 40)
        var changed = original
        changed[3 * 40 + 32] &+= 1  // entry 3's offset, little-endian
        try Data(changed).write(to: URL(fileURLWithPath: path))
        var r = try c.verify()
        #expect(r.status == 0)
        #expect(
            r.stderr.contains(
                "brand: index file disagrees with the entries at seq 3; receipts from it would not verify"),
            "\(r.stderr)")
        try Data(original + [1, 2, 3]).write(to: URL(fileURLWithPath: path))
        r = try c.verify()
        #expect(r.status == 0)
        #expect(
            r.stderr.contains(
                "brand: index file is 203 bytes, not a whole number of 40-byte records (a torn write); the writer "
                    + "cuts it on open"), "\(r.stderr)")
        #expect(try c.append(Events.lines(1, from: 5)).status == 0)
        r = try c.verify()
        #expect(r.status == 0 && !r.stderr.contains("warn"), "\(r.stderr)")
    }

    /// The message forms of §2 and §12.2, exactly as `prov verify` prints them.
    @Test func verifierMessagesAreAsSpecified() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        #expect(try c.append(Events.lines(10)).status == 0)
        let original = try segment(c)
        var offset = 8
        for r in original.records[..<original.entryIndex(7)] { offset += SegmentFormat.headerSize + r.payload.count }

        var seg = original
        seg.records[seg.entryIndex(7)].payload.replaceSubrange(3...3, with: [0x18, 0x01])
        try seg.write()
        expectFailure(
            try c.verify(),
            "brand seq 7: not canonical CBOR: argument 1 encoded in 2 bytes; the shortest form is shorter (at byte 3) "
                + "(segment 00000000000000000000.seg, byte \(offset))")

        seg = original
        seg.records[seg.entryIndex(7)].payload.replaceSubrange(3...3, with: [0xf9, 0x3c, 0x00])
        try seg.write()
        expectFailure(
            try c.verify(),
            "brand seq 7: not canonical CBOR: floating-point numbers are not allowed (at byte 3) "
                + "(segment 00000000000000000000.seg, byte \(offset))")

        try original.write()
        var raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: original.path)))
        raw[offset] = 0x07
        try Data(raw).write(to: URL(fileURLWithPath: original.path))
        expectFailure(
            try c.verify(),
            "brand seq 7: unknown record type 0x7 at byte \(offset) of segment 00000000000000000000.seg: the file was "
                + "modified or damaged")
        raw[offset] = 0x1f
        try Data(raw).write(to: URL(fileURLWithPath: original.path))
        expectFailure(try c.verify(), "brand seq 7: unknown record type 0x1f at byte \(offset)")
    }

    /// Damage that reaches the end of the last segment is a torn tail whatever it is, a record of an unknown type
    /// included (its length is read from the same header bytes); stopping short of the end, it is a failure.
    @Test func aLastRecordOfUnknownTypeThatReachesTheEndIsATornTail() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        #expect(try c.append(Events.lines(3)).status == 0)
        let path = c.data + "/brand/segments/" + SegmentFormat.segmentName(firstSeq: 0)
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let record: [UInt8] = [0x07, 0, 0, 0, 4, 0, 0, 0, 0, 1, 2, 3, 4]
        try Data(original + record).write(to: URL(fileURLWithPath: path))
        var r = try c.verify()
        #expect(r.status == 0, "\(r.stdout)")
        #expect(
            r.stderr.contains(
                "brand: torn tail at byte \(original.count) of 00000000000000000000.seg (unknown record type 0x7): "
                    + "0 entries after the last checkpoint, never acknowledged; the writer cuts it on open"),
            "\(r.stderr)")
        // Announcing more than is left counts the same; one byte after its end does not.
        try Data(original + record.prefix(11)).write(to: URL(fileURLWithPath: path))
        r = try c.verify()
        #expect(r.status == 0 && r.stderr.contains("(unknown record type 0x7)"), "\(r.stdout) \(r.stderr)")
        try Data(original + record + [0]).write(to: URL(fileURLWithPath: path))
        expectFailure(
            try c.verify(),
            "brand seq 3: unknown record type 0x7 at byte \(original.count) of segment 00000000000000000000.seg: the "
                + "file was modified or damaged")
        // The writer cuts a torn tail and goes on.
        try Data(original + record).write(to: URL(fileURLWithPath: path))
        #expect(try c.append(Events.lines(1, from: 3)).status == 0)
        r = try c.verify()
        #expect(r.status == 0 && !r.stderr.contains("warn"), "\(r.stderr)")
    }

    /// A folder's name is checked before anything in it is opened: a folder of no member fails whatever is in its
    /// place. `LOCK` is checked for what it is but never opened, so one that cannot be opened changes nothing.
    @Test func theFolderNameComesFirstAndLOCKIsNeverOpened() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        #expect(try c.append(Events.lines(2)).status == 0)
        try FileManager.default.createSymbolicLink(atPath: c.data + "/mallory", withDestinationPath: c.data + "/brand")
        let r = try c.verify()
        expectFailure(r, "folder 'mallory' is not the log of any member of consortium acme")
        #expect(!r.stdout.contains("NOT VERIFIED"), "\(r.stdout)")
        try FileManager.default.removeItem(atPath: c.data + "/mallory")
        #expect(chmod(c.data + "/brand/LOCK", 0) == 0)
        let locked = try c.verify()
        #expect(locked.status == 0 && locked.stdout.contains("brand: OK: 2 entries"), "\(locked.stdout)")
        #expect(chmod(c.data + "/brand/LOCK", 0o644) == 0)
    }

    /// A node keeps its own checkpoint with the cosignatures peers returned in `cosigned` (§10.11). With the
    /// descriptor, `prov receipt` proves an entry that checkpoint covers against it, keeping the member's signature
    /// and the cosignatures of other members that verify, and nothing else of the file.
    @Test func receiptsCarryTheCosignaturesOfTheCosignedFileThatVerify() throws {
        let c = try CLIConsortium(orgs: ["brand", "care", "retail"])
        defer { c.remove() }
        #expect(try c.append(Events.lines(4)).status == 0)
        let stored = try SignedCheckpoint(parsing: try prov(["checkpoint", "--dir", c.data, "--org", "brand"]).stdout)
        let text = stored.checkpoint.text
        let brand = try SigningKeyFile.read(c.key("brand"))
        let care = try SigningKeyFile.read(c.key("care"))
        let retail = try SigningKeyFile.read(c.key("retail"))
        let stranger = try NoteSigner(
            name: "acme/care", privateKey: try Ed25519PrivateKey(seed: [UInt8](repeating: 7, count: 32)))
        let time: UInt64 = 1_795_521_600
        let good = try retail.cosign(checkpointText: text, time: time)
        var broken = try care.cosign(checkpointText: text, time: time)
        broken.signature[20] ^= 1
        var file = stored
        file.note.signatures += [
            broken, try stranger.cosign(checkpointText: text, time: time), good,
            try brand.cosign(checkpointText: text, time: time), try retail.sign(text: text),
        ]
        let path = c.data + "/brand/cosigned"
        try file.serialized.write(toFile: path, atomically: true, encoding: .utf8)
        func receipt(_ seq: Int, _ extra: [String] = ["--consortium", c.consortium]) throws -> (Receipt, Run) {
            let r = try prov(["receipt", "--dir", c.data, "--org", "brand", "--seq", "\(seq)"] + extra)
            #expect(r.status == 0, "\(r.stderr)")
            return (try Receipt(parsing: r.stdout), r)
        }

        let (cosigned, run) = try receipt(2)
        #expect(cosigned.checkpoint.note.signatures == [stored.note.signatures[0], good])
        #expect(
            run.stderr.contains(
                "\(path): 4 signature lines left out of the receipt: only brand's signature and the cosignatures of "
                    + "other members that verify against the descriptor's keys are kept"), "\(run.stderr)")
        let receiptPath = c.dir.path + "/r.tlog-proof"
        try cosigned.serialized.write(toFile: receiptPath, atomically: true, encoding: .utf8)
        let checked = try prov(["verify-receipt", "--consortium", c.consortium, receiptPath])
        #expect(checked.status == 0, "\(checked.stdout)")
        #expect(checked.stdout.contains("is signed by brand and cosigned by retail\n"), "\(checked.stdout)")
        let json = try JSON.parse(
            try prov([
                "receipt", "--dir", c.data, "--org", "brand", "--seq", "2", "--consortium", c.consortium, "--json",
            ])
            .stdout)
        #expect(
            json["cosignedBy"] == .array([.string("retail")]) && json["receipt"]?.stringValue == cosigned.serialized)

        // Without the descriptor nothing of the file can be checked: the latest checkpoint, as stored.
        let (plain, plainRun) = try receipt(2, [])
        #expect(plain.checkpoint == stored)
        #expect(
            plainRun.stderr.contains("\(path) holds cosignatures, which are checked against the members' keys only"))

        // Once the log moved on: entries the file covers are proved against it, the others against the latest.
        #expect(try c.append(Events.lines(2, from: 4)).status == 0)
        #expect(try receipt(3).0.checkpoint.note.signatures == [stored.note.signatures[0], good])
        let (latest, latestRun) = try receipt(5)
        #expect(latest.checkpoint.checkpoint.size == 6 && latest.checkpoint.note.signatures.count == 1)
        #expect(!latestRun.stderr.contains(path), "\(latestRun.stderr)")

        // A checkpoint the member signed that is not this log's history is not used, cosigned or not.
        let fork = try SignedCheckpoint.sign(
            Checkpoint(origin: "acme/brand", size: 4, root: SHA256Digest.zero), with: brand)
        var forked = fork
        forked.note.signatures.append(try retail.cosign(checkpointText: fork.checkpoint.text, time: time))
        try forked.serialized.write(toFile: path, atomically: true, encoding: .utf8)
        let (notUsed, notUsedRun) = try receipt(2)
        #expect(notUsed.checkpoint.checkpoint.size == 6 && notUsed.checkpoint.note.signatures.count == 1)
        #expect(
            notUsedRun.stderr.contains(
                "\(path) has another root than this log at size 4: not used; the receipt is against the latest "
                    + "checkpoint"), "\(notUsedRun.stderr)")
        // Nor bytes that are no checkpoint, which no message shows.
        try Data("PRIVATE+KEY+acme/brand+00000000+secret\n".utf8).write(to: URL(fileURLWithPath: path))
        let (_, junk) = try receipt(2)
        #expect(junk.stderr.contains("\(path) is not a signed checkpoint: not used"), "\(junk.stderr)")
        #expect(!junk.stderr.contains("secret"))
    }
}
