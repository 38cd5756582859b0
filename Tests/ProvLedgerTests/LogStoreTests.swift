import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

@Suite(.leavesNoFiles) struct LogStoreTests {
    let t: TestConsortium
    init() throws { t = try TestConsortium() }

    func ingestor(_ dir: URL, log: @escaping (String) -> Void = { _ in }) throws -> Ingestor {
        try Ingestor(
            dataDirectory: dir.path, consortium: t.consortium, signer: t.signers["brand"]!, linkKey: t.linkKey, log: log
        )
    }

    @Test func appendReopenAndReadBack() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var acknowledged: [(UInt64, SHA256Digest)] = []
        do {
            let ing = try ingestor(dir)
            for g in 0..<5 {
                let r = try ing.append(Array(Events.lines(7, from: g * 7).utf8))
                acknowledged += r.map { ($0.seq, $0.leaf) }
            }
            #expect(ing.store.size == 35)
        }
        let reopened = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: false)
        #expect(reopened.size == 35)
        #expect(reopened.latest?.checkpoint.size == 35)
        for (seq, leaf) in acknowledged {
            #expect(try reopened.leafHash(seq) == leaf)
            #expect(Merkle.leafHash(try reopened.entryBytes(seq)) == leaf)
        }
        let leaves = try reopened.leafHashes(count: 35)
        #expect(Merkle.root(leaves) == reopened.latest?.checkpoint.root)
        // The chain: each prev is the leaf hash before it.
        for s in 1..<35 { #expect(try reopened.entry(UInt64(s)).prev == leaves[s - 1]) }
    }

    @Test func secondWriterIsRefused() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try ingestor(dir)
        let e = ledgerError { _ = try ingestor(dir) }
        #expect(e?.code == .locked)
        #expect(e?.message.contains("locked by another writer") == true)
        _ = first
    }

    @Test func badLineAppendsNothing() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ing = try ingestor(dir)
        _ = try ing.append(Array(Events.lines(3).utf8))
        let bad =
            Events.lines(2, from: 3) + #"{"type":"consent","subject":"email:x@example.com","event":"give"}"# + "\n"
        let e = ledgerError { _ = try ing.append(Array(bad.utf8)) }
        #expect(e?.code == .invalidEvent)
        #expect(e?.message.hasPrefix("line 3: field 'purposes': missing") == true, "\(String(describing: e))")
        #expect(ing.store.size == 3)
        let again = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: false)
        #expect(again.size == 3)
    }

    @Test func referencesWithinABatchAndToEarlierEntries() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ing = try ingestor(dir)
        let use =
            #"{"type":"interaction","subject":"email:user0@example.com","channel":"email","interaction":"newsletter","purposes":["dpv:DirectMarketing"],"legalBasis":"dpv:Consent","agent":{"id":"mailer","kind":"software"},"occurredAt":"2026-11-24T11:00:00Z","consentRef":{"org":"brand","seq":0}}"#
        let r = try ing.append(Array((Events.consent(0) + "\n" + use + "\n").utf8))
        let e = try ing.store.entry(1)
        guard case .interaction(let b) = e.body else { Issue.record("not an interaction"); return }
        #expect(b.consentRef == EntryRef(org: "brand", seq: 0, leaf: r[0].leaf))
        // Pointing a consentRef at an interaction is refused.
        let wrong = use.replacingOccurrences(of: #""seq":0"#, with: #""seq":1"#)
        #expect(throws: LedgerError.self) { try ing.append(Array(wrong.utf8)) }
    }

    /// A pipelined commit writes a group and parses the next during its fsync: references from the next group
    /// into the written, not yet acknowledged one resolve to the very entries they name.
    @Test func referencesIntoAGroupStillBeingSynced() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ing = try ingestor(dir)
        _ = try ing.append(Array(Events.lines(5).utf8))
        let first = try withRawBytes(Array((Events.consent(100) + "\n" + Events.consent(101) + "\n").utf8)) {
            raw throws(LedgerError) in try ing.prepare(raw, now: Ingestor.now())
        }
        let written = try ing.store.write(first, signer: ing.signer)
        #expect(ing.store.size == 5)  // written, not acknowledged
        let use =
            #"{"type":"interaction","subject":"email:user100@example.com","channel":"email","interaction":"newsletter","purposes":["dpv:DirectMarketing"],"legalBasis":"dpv:Consent","agent":{"id":"mailer","kind":"software"},"occurredAt":"2026-11-24T11:00:00Z","consentRef":{"org":"brand","seq":6}}"#
        let next = try withRawBytes(Array((use + "\n").utf8)) { raw throws(LedgerError) in
            try ing.prepare(raw, now: Ingestor.now())
        }
        try LogStore.sync(written)
        let acked = try ing.store.acknowledge(written)
        #expect(acked.map(\.seq) == [5, 6])
        _ = try ing.store.commit(next, signer: ing.signer)
        guard case .interaction(let b) = try ing.store.entry(7).body else {
            Issue.record("not an interaction")
            return
        }
        #expect(b.consentRef == EntryRef(org: "brand", seq: 6, leaf: acked[1].leaf))
        // Past the written group there is nothing to refer to yet.
        let ahead = use.replacingOccurrences(of: #""seq":6"#, with: #""seq":9"#)
        let e = ledgerError { _ = try ing.append(Array(ahead.utf8)) }
        #expect(e?.message.contains("no entry brand/9") == true, "\(String(describing: e))")
    }

    /// A long input is parsed on every core and added in line order: what it appends, and the errors it reports
    /// (first bad line first), are those of the line-by-line parse, references to entries of the same input
    /// included.
    @Test func aLongInputParsedOnEveryCoreAppendsWhatTheLineByLineParseDoes() throws {
        func use(_ subject: Int, consent seq: Int) -> String {
            #"{"type":"interaction","subject":"email:user\#(subject)@example.com","channel":"email","interaction":"newsletter","purposes":["dpv:DirectMarketing"],"legalBasis":"dpv:Consent","agent":{"id":"mailer","kind":"software"},"occurredAt":"2026-11-24T11:00:00Z","consentRef":{"org":"brand","seq":\#(seq)}}"#
        }
        var lines = Events.lines(600).split(separator: "\n").map(String.init)
        // Interactions relying on consents earlier in this input (line 2k+1 holds the consent of user 2k).
        for k in stride(from: 300, to: 600, by: 50) { lines[k + 1] = use(k - 200, consent: k - 200) }
        let input = lines.joined(separator: "\n") + "\n"
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let acks = try ingestor(dir).append(Array(input.utf8))
        #expect(acks.count == 600)
        // The same lines one by one (below the parallel threshold each time) give the same entry bodies.
        let other = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: other) }
        let one = try ingestor(other)
        for l in lines { _ = try one.append(Array((l + "\n").utf8)) }
        let store = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: false)
        let lineByLine = try LogStore(dataDirectory: other.path, consortium: "acme", org: "brand", writable: false)
        // (Lines with a consentRef name a leaf hash, which the clock of each append makes differ.)
        for seq in 0..<UInt64(600) where !(300..<600).contains(seq) || (seq - 1) % 50 != 0 {
            #expect(try store.entry(seq).body == lineByLine.entry(seq).body, "seq \(seq)")
        }
        for k in stride(from: 300, to: 600, by: 50) {
            guard case .interaction(let b) = try store.entry(UInt64(k + 1)).body else {
                Issue.record("line \(k + 2) is not an interaction")
                continue
            }
            #expect(b.consentRef?.seq == UInt64(k - 200) && b.consentRef?.leaf == acks[k - 200].leaf)
        }

        // Bad lines: the first one is reported, or every one in order when bad lines are left out.
        var bad = lines
        bad[499] = "{"
        bad[450] = use(1, consent: 599)  // refers past itself: no such entry yet
        let badInput = Array((bad.joined(separator: "\n") + "\n").utf8)
        let third = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: third) }
        let ing = try ingestor(third)
        let e = ledgerError { _ = try ing.append(badInput) }
        #expect(e?.message.hasPrefix("line 451: ") == true, "\(String(describing: e))")
        var reported: [String] = []
        let g = try withRawBytes(badInput) { raw throws(LedgerError) in
            try ing.prepare(raw, now: Ingestor.now()) { reported.append($0.message) }
        }
        #expect(g.count == 598)
        #expect(reported.count == 2 && reported[0].hasPrefix("line 451: ") && reported[1].hasPrefix("line 500: "))
    }

    /// After a failed write or fsync the store takes nothing until reopened; a reopen cuts the groups written after
    /// the last acknowledged one (their writers heard that they failed), across a segment roll too, and the log
    /// goes on from there, with the same entries, and a new segment where the unacknowledged one was.
    @Test func aFailedStoreReopensAtWhatWasAcknowledged() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ing = try ingestor(dir)
        let store = ing.store
        let acked = try ing.append(Array(Events.lines(5).utf8))
        store.maxSegmentBytes = 1  // the next group starts a segment of its own
        for from in [100, 200] {
            let g = try withRawBytes(Array(Events.lines(3, from: from).utf8)) { raw throws(LedgerError) in
                try ing.prepare(raw, now: Ingestor.now())
            }
            _ = try store.write(g, signer: ing.signer)
        }
        store.fail(LedgerError(.io, "fsync failed"))
        let refused = ledgerError { _ = try ing.append(Array(Events.lines(1, from: 300).utf8)) }
        #expect(
            refused?.message.contains("failed earlier (fsync failed); reopen it") == true,
            "\(String(describing: refused))")
        try store.reopen()
        #expect(store.size == 5 && store.failure == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/brand/segments").count == 1)
        store.maxSegmentBytes = 512 << 20
        let next = try ing.append(Array(Events.lines(2, from: 400).utf8))
        #expect(next.map(\.seq) == [5, 6])
        let again = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: false)
        #expect(again.size == 7)
        for (seq, leaf) in acked.map({ ($0.seq, $0.leaf) }) + next.map({ ($0.seq, $0.leaf) }) {
            #expect(try again.leafHash(seq) == leaf)
        }
    }

    /// Cuts a log's last segment at every byte of its last group commit (and appends garbage), as a crash or a
    /// full disk would leave it: each time the writer reopens at the last whole group, says so, and appends on.
    @Test func tornTailIsCutBackToLastWholeGroup() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // The files a crash in the middle of the second group's fsync leaves: the first group acknowledged
        // (index and checkpoint file), the second written in part.
        let indexPath = dir.path + "/brand/index"
        let checkpointPath = dir.path + "/brand/checkpoint"
        let (ackedIndex, ackedCheckpoint): (Data, Data)
        do {
            let ing = try ingestor(dir)
            _ = try ing.append(Array(Events.lines(4).utf8))
            ackedIndex = try Data(contentsOf: URL(fileURLWithPath: indexPath))
            ackedCheckpoint = try Data(contentsOf: URL(fileURLWithPath: checkpointPath))
            _ = try ing.append(Array(Events.lines(3, from: 4).utf8))
        }
        let seg = dir.path + "/brand/segments/" + SegmentFormat.segmentName(firstSeq: 0)
        let full = try Data(contentsOf: URL(fileURLWithPath: seg))
        let index = try Data(contentsOf: URL(fileURLWithPath: indexPath))
        let checkpoint = try Data(contentsOf: URL(fileURLWithPath: checkpointPath))
        var cuts = Array(stride(from: full.count - 1, to: full.count - 1200, by: -37))
        cuts.append(full.count - 1)
        for cut in cuts {
            try full.prefix(cut).write(to: URL(fileURLWithPath: seg))
            try ackedIndex.write(to: URL(fileURLWithPath: indexPath))
            try ackedCheckpoint.write(to: URL(fileURLWithPath: checkpointPath))
            var logged: [String] = []
            let store = try LogStore(
                dataDirectory: dir.path, consortium: "acme", org: "brand", writable: true, log: { logged.append($0) })
            #expect(store.size == 4 || store.size == 7)
            if store.size == 4 {
                #expect(
                    logged.contains { $0.contains("torn tail cut") && $0.contains("nothing acknowledged was lost") })
            }
            let audit = Verifier(consortium: t.consortium).verifyLog(directory: dir.path + "/brand", org: "brand")
            #expect(audit.ok, "\(audit.failure ?? "")")
            #expect(audit.entries == store.size)
        }
        // Garbage after a whole log is cut too, and appending carries on from there.
        try (full + Data([0x01, 0x00, 0x00, 0x10, 0x00, 1, 2, 3, 4, 5, 6])).write(to: URL(fileURLWithPath: seg))
        try index.write(to: URL(fileURLWithPath: indexPath))
        try checkpoint.write(to: URL(fileURLWithPath: checkpointPath))
        let ing = try ingestor(dir)
        #expect(ing.store.size == 7)
        _ = try ing.append(Array(Events.lines(2, from: 7).utf8))
        #expect(ing.store.size == 9)
        let audit = Verifier(consortium: t.consortium).verifyLog(directory: dir.path + "/brand", org: "brand")
        #expect(audit.ok && audit.entries == 9 && audit.warnings.isEmpty, "\(audit)")
    }

    /// Damage inside acknowledged groups is no torn tail: with the index lost, the writer must not take it for
    /// one and cut the groups after it. It refuses to open, says why, and leaves every byte where it was.
    @Test func damageBeforeAcknowledgedGroupsIsNeverCut() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let ing = try ingestor(dir)
            for g in 0..<3 { _ = try ing.append(Array(Events.lines(4, from: g * 4).utf8)) }
        }
        let seg = dir.path + "/brand/segments/" + SegmentFormat.segmentName(firstSeq: 0)
        let indexPath = dir.path + "/brand/index"
        let checkpointPath = dir.path + "/brand/checkpoint"
        let original = try Data(contentsOf: URL(fileURLWithPath: seg))
        let fullIndex = try Data(contentsOf: URL(fileURLWithPath: indexPath))
        var bytes = [UInt8](original)
        bytes[bytes.count / 3] ^= 0x40  // inside the first group
        try Data(bytes).write(to: URL(fileURLWithPath: seg))
        try FileManager.default.removeItem(atPath: dir.path + "/brand/index")
        let e = ledgerError { _ = try ingestor(dir) }
        #expect(e?.code == .io)
        #expect(
            e?.message.contains(
                "log brand: the segments hold 4 entries in whole group commits, but 12 were acknowledged")
                == true, "\(String(describing: e))")
        #expect(e?.message.contains("record checksum mismatch at byte ") == true)
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: seg))) == bytes)
        // A segment cut short behind the acknowledged size is refused the same way (it would fork the log).
        bytes[bytes.count / 3] ^= 0x40
        try Data(bytes.prefix(bytes.count * 2 / 3)).write(to: URL(fileURLWithPath: seg))
        let cut = ledgerError { _ = try ingestor(dir) }
        #expect(cut?.message.contains("but 12 were acknowledged") == true, "\(String(describing: cut))")
        #expect(cut?.message.contains("Nothing was cut") == true, "\(String(describing: cut))")
        #expect(try Data(contentsOf: URL(fileURLWithPath: seg)).count == bytes.count * 2 / 3)

        // An index that lags (4 entries) over a segment cut inside acknowledged groups: the checkpoint file
        // still says 12, and the writer trusts the index only as far as it goes.
        try Data(fullIndex.prefix(4 * SegmentFormat.indexRecordSize)).write(to: URL(fileURLWithPath: indexPath))
        let lagging = ledgerError { _ = try ingestor(dir) }
        #expect(lagging?.message.contains("but 12 were acknowledged") == true, "\(String(describing: lagging))")

        // Without the checkpoint file, the full index is the evidence: a refused open leaves it in place, so the
        // next open is refused too.
        try fullIndex.write(to: URL(fileURLWithPath: indexPath))
        try FileManager.default.removeItem(atPath: checkpointPath)
        for _ in 0..<2 {
            let again = ledgerError { _ = try ingestor(dir) }
            #expect(again?.message.contains("but 12 were acknowledged") == true, "\(String(describing: again))")
            #expect(try Data(contentsOf: URL(fileURLWithPath: indexPath)) == fullIndex)
        }
        // Put back whole, the log opens with everything.
        try original.write(to: URL(fileURLWithPath: seg))
        #expect(try ingestor(dir).store.size == 12)
    }

    @Test func lostIndexIsRebuilt() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var leaves: [SHA256Digest] = []
        do {
            let ing = try ingestor(dir)
            for g in 0..<3 { leaves += try ing.append(Array(Events.lines(5, from: g * 5).utf8)).map(\.leaf) }
        }
        try Data().write(to: dir.appendingPathComponent("brand/index"))
        var logged: [String] = []
        let store = try LogStore(
            dataDirectory: dir.path, consortium: "acme", org: "brand", writable: true, log: { logged.append($0) })
        #expect(store.size == 15)
        #expect(try store.leafHashes(count: 15) == leaves)
    }

    @Test func segmentsRollAtGroupBoundaries() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let ing = try ingestor(dir)
            ing.store.maxSegmentBytes = 2000
            for g in 0..<6 { _ = try ing.append(Array(Events.lines(4, from: g * 4).utf8)) }
        }
        let segs = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/brand/segments").sorted()
        #expect(segs.count > 1)
        let store = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: false)
        #expect(store.size == 24)
        for s in 0..<24 { _ = try store.entry(UInt64(s)) }
        let audit = Verifier(consortium: t.consortium).verifyLog(directory: dir.path + "/brand", org: "brand")
        #expect(audit.ok && audit.entries == 24, "\(audit.failure ?? "")")
    }

    /// A power cut after the first group of a new log was acknowledged must not lose the log: every folder the
    /// writer creates (the data directory and the folders above it, the log folder, `segments/`) and every file it
    /// creates in them is made durable in its parent by an fsync of that parent.
    @Test func newFoldersAndFilesAreDurableInTheirParents() throws {
        let root = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: root) }
        let data = root.path + "/a/data"
        DurabilityProbe.watch(root.path)
        do {
            let ing = try Ingestor(
                dataDirectory: data, consortium: t.consortium, signer: t.signers["brand"]!, linkKey: t.linkKey,
                log: { _ in })
            _ = try ing.append(Array(Events.lines(2).utf8))
        }
        let synced = DurabilityProbe.stop(root.path)
        for parent in [root.path, root.path + "/a", data, data + "/brand", data + "/brand/segments"] {
            #expect(synced.contains(parent), "\(parent) not synced after an entry was created in it: \(synced)")
        }
    }

    /// The writer checks the group it builds on also when that group opens a segment: the group before it is then
    /// at the end of the previous segment. A healthy log opens; one whose checkpoint there was signed by another
    /// key is refused with the verifier's message.
    @Test func theGroupBeforeASegmentRollIsCheckedToo() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let ing = try ingestor(dir)
            ing.store.maxSegmentBytes = 100  // every group opens a segment
            for g in 0..<4 { _ = try ing.append(Array(Events.lines(4, from: g * 4).utf8)) }
        }
        let segs = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/brand/segments").sorted()
        try #require(segs.last == SegmentFormat.segmentName(firstSeq: 12), "\(segs)")
        #expect(try ingestor(dir).store.size == 16)
        // Re-sign the checkpoint that ends the previous segment with a key that is not brand's.
        let previous = dir.path + "/brand/segments/" + segs[segs.count - 2]
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: previous)))
        var records: [(RecordType, [UInt8])] = []
        bytes.withUnsafeBytes { buf in
            var off = SegmentFormat.magic.count
            while case .record(let type, let payload, let next) = SegmentFormat.record(in: buf, at: off) {
                records.append((type, Array(payload)))
                off = next
            }
        }
        let cp = try SignedCheckpoint(parsing: String(decoding: records.last!.1, as: UTF8.self))
        let impostor = try NoteSigner(name: "acme/brand", privateKey: .generate())
        records[records.count - 1].1 = Array(try SignedCheckpoint.sign(cp.checkpoint, with: impostor).serialized.utf8)
        bytes = SegmentFormat.magic
        for (type, payload) in records { payload.withUnsafeBytes { SegmentFormat.frame(type, $0, into: &bytes) } }
        try Data(bytes).write(to: URL(fileURLWithPath: previous))
        let e = ledgerError { _ = try ingestor(dir) }
        #expect(
            e?.message.contains("log brand is damaged, nothing was appended: brand: checkpoint at size 12: ") == true,
            "\(String(describing: e))")
        let audit = Verifier(consortium: t.consortium).verifyLog(directory: dir.path + "/brand", org: "brand")
        #expect(audit.failure.map { e?.message.contains($0) == true } == true, "\(audit.failure ?? "")")
    }

    @Test func receiptsVerifyAndTamperedOnesFail() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ing = try ingestor(dir)
        _ = try ing.append(Array(Events.lines(11).utf8))
        for seq in 0..<11 {
            let r = try ing.store.receipt(UInt64(seq))
            let parsed = try Receipt(parsing: r.serialized)
            let v = try parsed.verify(consortium: t.consortium)
            #expect(v.entry.seq == UInt64(seq))
        }
        let good = try ing.store.receipt(5).serialized
        var lines = good.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func fails(_ text: String) -> Bool {
            do {
                _ = try Receipt(parsing: text).verify(consortium: t.consortium)
                return false
            } catch { return true }
        }
        // A changed proof line.
        var l = lines
        l[3] = SHA256.hash("x").base64
        #expect(fails(l.joined(separator: "\n")))
        // Another index.
        l = lines
        l[2] = "index 6"
        #expect(fails(l.joined(separator: "\n")))
        // One entry byte changed.
        var entry = Array(Data(base64Encoded: String(lines[1].dropFirst(6)))!)
        entry[entry.count - 3] ^= 0x01
        l = lines
        l[1] = "extra " + Data(entry).base64EncodedString()
        #expect(fails(l.joined(separator: "\n")))
        // A signature byte changed.
        let sigLine = lines.firstIndex { $0.hasPrefix("\u{2014}") }!
        var sig = Array(Data(base64Encoded: String(lines[sigLine].split(separator: " ").last!))!)
        sig[10] ^= 0x01
        lines[sigLine] = "\u{2014} acme/brand " + Data(sig).base64EncodedString()
        #expect(fails(lines.joined(separator: "\n")))
    }
}
