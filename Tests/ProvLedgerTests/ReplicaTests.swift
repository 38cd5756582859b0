import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// A copy of another company's log, extended from entry bundles and the owner's signed checkpoints.
@Suite(.leavesNoFiles) struct ReplicaTests {
    let t: TestConsortium
    init() throws { t = try TestConsortium() }

    /// The origin log: 700 entries of brand in groups of 100, with references inside it.
    func origin(_ dir: URL) throws -> LogStore {
        let ing = try Ingestor(
            dataDirectory: dir.path, consortium: t.consortium, signer: t.signers["brand"]!, linkKey: t.linkKey)
        for g in 0..<7 {
            var lines = Events.lines(99, from: g * 100)
            lines +=
                #"{"type":"interaction","subject":"email:user0@example.com","channel":"email","interaction":"newsletter","purposes":["dpv:DirectMarketing"],"legalBasis":"dpv:Consent","agent":{"id":"mailer","kind":"software","onBehalfOf":"brand"},"occurredAt":"2026-11-24T11:00:00Z","consentRef":{"org":"brand","seq":0}}"#
            _ = try ing.append(Array((lines + "\n").utf8))
        }
        return ing.store
    }

    func replica(_ dir: URL) throws -> ReplicaWriter {
        try ReplicaWriter(
            store: try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: true),
            consortium: t.consortium)
    }

    static func add(_ r: ReplicaWriter, _ e: [UInt8]) throws {
        var failure: LedgerError?
        e.withUnsafeBytes { raw in
            do throws(LedgerError) { try r.add(raw) { o, s in o == r.member.org ? r.committedEntry(s) : nil } } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// Splits a tlog-tiles entry bundle into entries.
    static func entries(_ bundle: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var at = 0
        while at < bundle.count {
            let len = Int(bundle[at]) << 8 | Int(bundle[at + 1])
            out.append(Array(bundle[(at + 2)..<(at + 2 + len)]))
            at += 2 + len
        }
        return out
    }

    @Test func aCopyBuiltFromBundlesVerifiesAndMatchesTheOrigin() throws {
        let a = try makeTempDir()
        let b = try makeTempDir()
        defer {
            try? FileManager.default.removeItem(at: a)
            try? FileManager.default.removeItem(at: b)
        }
        let src = try origin(a)
        let r = try replica(b)
        // Catch up in chunks that end at stored checkpoints, as a node pulling from a peer does.
        var size: UInt64 = 0
        while size < src.size {
            let cp = try #require(try src.checkpoint(atLeast: min(src.size, size + 250)))
            #expect(cp.checkpoint.size >= min(src.size, size + 250))
            for e in Self.entries(try src.entryBundle(size..<cp.checkpoint.size)) { try Self.add(r, e) }
            size = try r.commit(cp)
        }
        #expect(size == 700)
        #expect(r.store.latest == src.latest)
        #expect(try r.store.subtreeRoot(0..<700) == src.latest?.checkpoint.root)
        for s: UInt64 in [0, 99, 699] { #expect(try r.store.entryBytes(s) == (try src.entryBytes(s))) }
        // The chunks ended at the owner's own group ends.
        #expect(try src.checkpoint(atLeast: 250)?.checkpoint.size == 300)
        r.store.close()
        let audits = try Verifier(consortium: t.consortium).verify(dataDirectory: b.path)
        #expect(audits.count == 1 && audits[0].failure == nil && audits[0].entries == 700)
    }

    @Test func nothingUnverifiedIsStored() throws {
        let a = try makeTempDir()
        let b = try makeTempDir()
        defer {
            try? FileManager.default.removeItem(at: a)
            try? FileManager.default.removeItem(at: b)
        }
        let src = try origin(a)
        let r = try replica(b)
        let cp100 = try #require(try src.checkpoint(atLeast: 100))
        let good = Self.entries(try src.entryBundle(0..<100))
        func add(_ e: [UInt8]) throws { try Self.add(r, e) }

        // A flipped byte inside an entry: not canonical, or a broken chain at the next entry.
        var tampered = good
        tampered[5][tampered[5].count - 40] ^= 0x01
        let e1 = #expect(throws: LedgerError.self) { for e in tampered { try add(e) } }
        #expect(e1?.message.contains("brand seq 5") == true || e1?.message.contains("brand seq 6") == true)
        r.reset()
        // Two entries swapped.
        var swapped = good
        swapped.swapAt(10, 11)
        let e2 = #expect(throws: LedgerError.self) { for e in swapped { try add(e) } }
        #expect(e2?.message.contains("found seq 11 where seq 10 belongs") == true)
        r.reset()
        // The right entries, but a checkpoint signed by another member's key.
        for e in good { try add(e) }
        let forged = try SignedCheckpoint.sign(
            cp100.checkpoint, with: try NoteSigner(name: "acme/brand", privateKey: .generate()))
        let e3 = #expect(throws: LedgerError.self) { try r.commit(forged) }
        #expect(e3?.message.contains("does not verify") == true)
        // A checkpoint for a different size than the entries reach.
        for e in good.dropLast() { try add(e) }
        let e4 = #expect(throws: LedgerError.self) { try r.commit(cp100) }
        #expect(e4?.message.contains("signed for size 100 but the entries end at 99") == true)
        #expect(r.store.size == 0)
        r.store.close()
        // Nothing of it reached the disk: the copy is still empty.
        let reopened = try LogStore(dataDirectory: b.path, consortium: "acme", org: "brand", writable: false)
        #expect(reopened.size == 0)
    }

    /// Static helper: adds a whole bundle the way a peer worker does (audited on every core, then chained).
    static func addBundle(_ r: ReplicaWriter, _ entries: [[UInt8]]) throws {
        let bytes = entries.map { ContiguousArray($0) }
        var failure: LedgerError?
        var raws: [UnsafeRawBufferPointer] = []
        func go(_ i: Int) {
            if i == bytes.count {
                do throws(LedgerError) {
                    try r.add(bundle: raws) { o, s in o == r.member.org ? r.committedEntry(s) : nil }
                } catch { failure = error }
                return
            }
            bytes[i].withUnsafeBytes { raw in
                raws.append(raw)
                go(i + 1)
            }
        }
        go(0)
        if let failure { throw failure }
    }

    @Test func aBundleCheckedOnEveryCoreGivesTheSameVerdictsAsOneByOne() throws {
        let a = try makeTempDir()
        let b = try makeTempDir()
        defer {
            try? FileManager.default.removeItem(at: a)
            try? FileManager.default.removeItem(at: b)
        }
        let src = try origin(a)
        let r = try replica(b)
        let cp = try #require(try src.checkpoint(atLeast: 300))
        let good = Self.entries(try src.entryBundle(0..<cp.checkpoint.size))
        // A flipped byte deep in the bundle (past the first audit chunk) is named by its seq.
        var tampered = good
        tampered[77][tampered[77].count - 40] ^= 0x01
        let e1 = #expect(throws: LedgerError.self) { try Self.addBundle(r, tampered) }
        #expect(e1?.message.contains("brand seq 77") == true || e1?.message.contains("brand seq 78") == true)
        r.reset()
        // A missing entry.
        var gap = good
        gap.remove(at: 200)
        let e2 = #expect(throws: LedgerError.self) { try Self.addBundle(r, gap) }
        #expect(e2?.message.contains("where seq 200 belongs") == true)
        r.reset()
        // The right bundle commits and matches the origin.
        try Self.addBundle(r, good)
        #expect(try r.commit(cp) == 300)
        #expect(try r.store.subtreeRoot(0..<300) == cp.checkpoint.root)
        r.store.close()
    }
}

/// A writer checks its last group on open from the state the group before it left: its clock and citations too.
@Suite(.leavesNoFiles) struct LastGroupCheckTests {
    @Test func aLogThatCitesOtherLogsReopensForWriting() throws {
        let t = try TestConsortium()
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let body = try t.body(Events.consent(1))
        do {
            let store = try LogStore(
                dataDirectory: dir.path, consortium: "acme", org: "brand", writable: true, verifyingWith: t.consortium)
            // Two groups cite retail's head; the last one cites nothing (nothing moved).
            for g in 0..<3 {
                let dep = EntryRef(org: "retail", seq: UInt64(10 * g), leaf: SHA256.hash("retail \(g)"))
                _ = try store.append(
                    [body, body], signer: t.signers["brand"]!, now: 1_790_000_000_000 + UInt64(g),
                    deps: g < 2 ? [dep] : [],
                    citedHLC: g < 2 ? HLC(wall: 1_790_000_000_000 + UInt64(g), counter: 5) : nil)
            }
            store.close()
        }
        let reopened = try LogStore(
            dataDirectory: dir.path, consortium: "acme", org: "brand", writable: true, verifyingWith: t.consortium)
        #expect(reopened.size == 6)
        #expect(reopened.state.cited["retail"] == 10)
    }
}
