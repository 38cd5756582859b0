import Dispatch
import Foundation
import ProvCrypto
import ProvLedger
import TestSupport
import Testing

@testable import ProvView

#if canImport(Glibc)
    import Glibc
#endif

/// The contract between whoever feeds the index (the node, the offline builder) and the index.
@Suite(.leavesNoFiles) struct FeedTests {
    func error(_ body: () throws -> Void) -> ViewError? {
        do {
            try body()
            return nil
        } catch { return error as? ViewError }
    }

    @Test func entriesComeInOrderAndCommitsMustMatchTheirCheckpoint() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        for i in 0..<3 {
            try ledger.append("brand", Event.consent("email:f\(i)@example.com", "give"), now: t0 + UInt64(i) * 1000)
        }
        let store = ledger.stores["brand"]!
        let index = ViewIndex(consortium: ledger.consortium, linkKey: ledger.linkKey)
        let e = try ledger.entries().filter { $0.org == "brand" }
        #expect(
            error { try index.ingest(org: "brand", seq: 1, leaf: e[1].leaf, entryBytes: e[1].bytes) }?.code == .feed)
        try index.ingest(org: "brand", seq: 0, leaf: e[0].leaf, entryBytes: e[0].bytes)
        // Given again: ignored with the same leaf, refused with another (two histories).
        try index.ingest(org: "brand", seq: 0, leaf: e[0].leaf, entryBytes: e[0].bytes)
        let fork = error { try index.ingest(org: "brand", seq: 0, leaf: e[1].leaf, entryBytes: e[1].bytes) }
        #expect(fork?.code == .feed && fork?.message.contains("two histories") == true)
        // Bytes of another entry under this seq, or not an entry at all.
        #expect(
            error { try index.ingest(org: "brand", seq: 1, leaf: e[2].leaf, entryBytes: e[2].bytes) }?.code
                == .invalidEntry)
        let junk = error { try index.ingest(org: "brand", seq: 1, leaf: e[1].leaf, entryBytes: [0xa1, 0x61, 0x76]) }
        #expect(junk?.code == .invalidEntry && junk?.message.hasPrefix("brand seq 1: ") == true)
        try index.ingest(org: "brand", seq: 1, leaf: e[1].leaf, entryBytes: e[1].bytes)
        try index.ingest(org: "brand", seq: 2, leaf: e[2].leaf, entryBytes: e[2].bytes)
        #expect(index.frontier.logs.isEmpty, "nothing committed, nothing visible")
        #expect(try index.view(subject: "email:f0@example.com").timeline.isEmpty)

        // A checkpoint whose root the leaves do not give, or signed by another key, moves nothing.
        let signer = ledger.signers["brand"]!
        let wrongRoot = try SignedCheckpoint.sign(
            Checkpoint(origin: "acme/brand", size: 3, root: SHA256.hash("another history")), with: signer)
        #expect(error { try index.commit(org: "brand", size: 3, checkpoint: wrongRoot) }?.code == .feed)
        let stranger = try NoteSigner(name: "acme/brand", privateKey: .generate())
        let forged = try SignedCheckpoint.sign(store.latest!.checkpoint, with: stranger)
        #expect(
            error { try index.commit(org: "brand", size: 3, checkpoint: forged) }?.message.contains("does not verify")
                == true)
        #expect(error { try index.commit(org: "brand", size: 4, checkpoint: store.latest!) }?.code == .feed)
        #expect(index.frontier.logs.isEmpty)
        try index.commit(org: "brand", size: 3, checkpoint: store.latest!)
        #expect(index.frontier.logs == [LogHead(org: "brand", size: 3, root: store.latest!.checkpoint.root)])
        #expect(try index.view(subject: "email:f0@example.com").timeline.count == 1)
        // A root is shown as a checkpoint writes it (base64), with its hex beside it in JSON (Specs/cli.md §4).
        let root = store.latest!.checkpoint.root
        let head = index.frontier.json.arrayValue?.first
        #expect(head?["root"]?.stringValue == root.base64 && head?["rootHex"]?.stringValue == root.hex)
        #expect(index.frontier.table.contains(root.base64))
    }

    /// Receipts made by the index prove each entry against the committed checkpoint, as `LogStore.receipt` does.
    /// The view reads entries with the ledger's reader and rules: it refuses what `Entry.decode` refuses, with the
    /// same reason.
    @Test func theViewRefusesWhatTheLedgerRefuses() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        try ledger.append("brand", Event.consent("email:f0@example.com", "give"), now: t0)
        let e = try ledger.entries().filter { $0.org == "brand" }
        var bad = try Entry.decode(e[0].bytes)
        guard case .consent(var b) = bad.body else { throw LedgerError(.io, "not a consent") }
        b.expiresAt = b.occurredAt
        bad.body = .consent(b)
        let why = ledgerErrorMessage { _ = try Entry.decode(bad.encoded) }
        #expect(why == "body.expiresAt: must be after occurredAt")
        let index = ViewIndex(consortium: ledger.consortium, linkKey: ledger.linkKey)
        let refused = error { try index.ingest(org: "brand", seq: 0, leaf: e[0].leaf, entryBytes: bad.encoded) }
        #expect(refused?.code == .invalidEntry && refused?.message == "brand seq 0: \(why ?? "")")
        #expect(throws: ViewError.self) { try EntryFacts(decoding: bad.encoded, leaf: e[0].leaf) }
    }

    /// Per entry the index keeps 104 bytes of facts (Specs/view.md §10.3).
    @Test func factsTake104Bytes() {
        #expect(MemoryLayout<Fact>.stride == 104)
    }

    func ledgerErrorMessage(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch { return (error as? LedgerError)?.message }
    }

    @Test func receiptsMatchTheStore() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        for i in 0..<300 {
            try ledger.append("brand", Event.consent("email:g\(i % 7)@example.com", "give"), now: t0 + UInt64(i) * 10)
        }
        let index = try ledger.index()
        let source = DataDirectorySource(dataDirectory: ledger.dir.path, consortium: "acme")
        let store = ledger.stores["brand"]!
        for seq: UInt64 in [0, 1, 63, 64, 127, 128, 255, 256, 298, 299] {
            let (facts, entry, receipt) = try index.entry(org: "brand", seq: seq, source: source)
            #expect(receipt == (try store.receipt(seq)), "seq \(seq)")
            let checked = try receipt.verify(consortium: ledger.consortium)
            #expect(checked.entry == entry && facts.ref.seq == seq)
        }
        #expect(error { _ = try index.entry(org: "brand", seq: 300, source: source) }?.parameter == "seq")
    }

    /// A FIFO in a log's index file's place does not hang the offline build (Specs/format.md §10.1): the index is
    /// a cache, and the build goes on without it (from the entries' own hashes).
    @Test(.timeLimit(.minutes(1))) func aFIFOInPlaceOfTheIndexDoesNotHangTheOfflineBuild() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        let store = ledger.stores["brand"]!
        let parser = EventParser(consortium: ledger.consortium, org: "brand", linkKey: ledger.linkKey)
        let bodies = try (0..<20).map { i in
            try parser.parse(try JSON.parse(Event.consent("email:f\(i)@example.com", "give")))
        }
        try store.append(bodies, signer: ledger.signers["brand"]!, now: t0)
        let index = ledger.dir.path + "/brand/index"
        try FileManager.default.removeItem(atPath: index)
        #expect(mkfifo(index, 0o600) == 0)
        let built = try ViewIndex.build(
            dataDirectory: ledger.dir.path, consortium: ledger.consortium, linkKey: ledger.linkKey)
        #expect(built.excluded.isEmpty, "\(built.excluded)")
        #expect(built.index.frontier.logs.map(\.size).first == 20)
    }

    /// The offline build hashes whole blocks of 1,024 entries on its workers; its receipts are the store's too.
    @Test func offlineBuildProvesLikeTheStore() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        let store = ledger.stores["brand"]!
        let parser = EventParser(consortium: ledger.consortium, org: "brand", linkKey: ledger.linkKey)
        let bodies = try (0..<700).map { i in
            try parser.parse(try JSON.parse(Event.consent("email:h\(i % 97)@example.com", "give")))
        }
        for g in 0..<4 { try store.append(bodies, signer: ledger.signers["brand"]!, now: t0 + UInt64(g)) }
        let built = try ViewIndex.build(
            dataDirectory: ledger.dir.path, consortium: ledger.consortium, linkKey: ledger.linkKey)
        // The other two logs exist but hold nothing yet: empty, not left out.
        #expect(built.excluded.isEmpty, "\(built.excluded)")
        #expect(built.index.frontier.logs.map(\.size) == [2800])
        for seq: UInt64 in [0, 700, 1023, 1024, 2047, 2048, 2500, 2799] {
            #expect(try built.index.entry(org: "brand", seq: seq, source: built.source).receipt == store.receipt(seq))
        }
        #expect(
            try built.index.view(subject: "email:h5@example.com", at: t0)
                == ledger.index().view(subject: "email:h5@example.com", at: t0))
    }

    /// Queries on other threads during ingestion see whole frontiers that only move forward, and the index
    /// ends where a fresh one fed at once would.
    @Test func queriesDuringIngestion() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let ledger = j.ledger
        let index = ViewIndex(consortium: ledger.consortium, linkKey: ledger.linkKey)
        // Every entry with the checkpoint its group commit signed (each entry was appended as its own group),
        // in an interleaving of the logs.
        var feed: [(org: String, seq: UInt64, leaf: SHA256Digest, bytes: [UInt8], checkpoint: SignedCheckpoint)] = []
        var next: [String: UInt64] = [:]
        let entries = try ledger.entries()
        for org in ledger.shuffledOrder(seed: 7) {
            let seq = next[org, default: 0]
            let e = try #require(entries.first { $0.org == org && $0.seq == seq })
            feed.append((org, seq, e.leaf, e.bytes, try checkpoint(ledger, org, seq + 1)))
            next[org] = seq + 1
        }
        let done = DispatchSemaphore(value: 0)
        let feedError = FeedBox()
        DispatchQueue.global().async { [feed] in
            defer { done.signal() }
            do {
                for e in feed {
                    try index.ingest(org: e.org, seq: e.seq, leaf: e.leaf, entryBytes: e.bytes)
                    try index.commit(org: e.org, size: e.seq + 1, checkpoint: e.checkpoint)
                }
            } catch { feedError.set("\(error)") }
        }
        var last: [String: UInt64] = [:]
        var queries = 0
        while done.wait(timeout: .now()) == .timedOut {
            let v = try index.view(subject: j.alice)
            for l in v.frontier.logs {
                #expect(l.size >= last[l.org, default: 0])
                last[l.org] = l.size
            }
            #expect(
                v.timeline.allSatisfy { t in
                    v.frontier.logs.contains { $0.org == t.facts.org && t.facts.ref.seq < $0.size }
                })
            _ = try index.compliance(org: "care")
            queries += 1
        }
        #expect(feedError.value == nil)
        let reference = try ledger.index().view(subject: j.alice, at: t0)
        #expect(try index.view(subject: j.alice, at: t0) == reference)
    }

    /// The signed checkpoint of `org` at `size`: the one its group commit wrote into the segment.
    func checkpoint(_ ledger: Ledger, _ org: String, _ size: UInt64) throws -> SignedCheckpoint {
        let dir = ledger.dir.path + "/" + org + "/segments"
        for name in try FileManager.default.contentsOfDirectory(atPath: dir).sorted() {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))
            var offset = SegmentFormat.magic.count
            while true {
                let r: SignedCheckpoint?? = bytes.withUnsafeBytes { b in
                    switch SegmentFormat.record(in: b, at: offset) {
                    case .record(let type, let payload, let next):
                        offset = next
                        guard type == .checkpoint,
                            let cp = try? SignedCheckpoint(parsing: String(decoding: payload, as: UTF8.self)),
                            cp.checkpoint.size == size
                        else { return .some(nil) }
                        return .some(cp)
                    default: return nil
                    }
                }
                guard let found = r else { break }
                if let cp = found { return cp }
            }
        }
        throw ViewError(.source, "no checkpoint at size \(size)")
    }
}

final class FeedBox: @unchecked Sendable {
    // Written once by the feeding thread before it signals, read after the wait.
    private(set) var value: String?
    func set(_ v: String) { value = v }
}

@Suite(.leavesNoFiles) struct OfflineBuildTests {
    /// A log whose entries do not give its signed root is left out, named with the reason; the others are read.
    @Test func aTamperedLogIsLeftOutAndNamed() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        for s in j.ledger.stores.values { s.close() }
        // Flip one byte inside the first entry of retail's segment (after the 8-byte magic and 9-byte header).
        let seg = j.ledger.dir.path + "/retail/segments/00000000000000000000.seg"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: seg)))
        bytes[8 + 9 + 40] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: seg))
        try FileManager.default.createDirectory(
            atPath: j.ledger.dir.path + "/stranger", withIntermediateDirectories: true)
        let built = try ViewIndex.build(
            dataDirectory: j.ledger.dir.path, consortium: j.ledger.consortium, linkKey: j.ledger.linkKey)
        let reasons = Dictionary(uniqueKeysWithValues: built.excluded.map { ($0.org, $0.reason) })
        #expect(reasons.keys.sorted() == ["retail", "stranger"])
        #expect(reasons["stranger"]?.contains("not a member") == true)
        #expect(reasons["retail"] != nil, "\(reasons)")
        #expect(built.index.frontier.logs.map(\.org) == ["brand", "care"])
        let v = try built.index.view(subject: j.alice)
        #expect(!v.timeline.isEmpty && v.timeline.allSatisfy { $0.facts.org != "retail" })
    }

    /// A FIFO in a segment's place is refused, never waited on; a torn tail stops the reading of its log at the last
    /// whole group, which stays in the view.
    @Test func aFIFOIsRefusedAndATornTailEndsTheLog() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        for s in j.ledger.stores.values { s.close() }
        let retail = j.ledger.dir.path + "/retail/segments/00000000000000000000.seg"
        try FileManager.default.removeItem(atPath: retail)
        try #require(mkfifo(retail, 0o644) == 0)
        let brand = j.ledger.dir.path + "/brand/segments/00000000000000000000.seg"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: brand))
        try bytes.dropLast(3).write(to: URL(fileURLWithPath: brand))
        let built = try ViewIndex.build(
            dataDirectory: j.ledger.dir.path, consortium: j.ledger.consortium, linkKey: j.ledger.linkKey)
        #expect(built.excluded.map(\.org) == ["retail"])
        #expect(built.excluded.first?.reason == "retail: \(retail) is a FIFO, not a regular file")
        let size = try #require(built.index.frontier.logs.first { $0.org == "brand" }?.size)
        #expect(size > 0 && size < j.ledger.stores["brand"]!.size, "\(size)")
    }
}
