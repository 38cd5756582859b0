import Foundation
import ProvCrypto
import ProvLedger
import TestSupport
import Testing

@testable import ProvNode

/// Replication between nodes in one process (no sockets): convergence, relay, catch-up after a crash, lying
/// peers and equivocation.
@Suite(.serialized, .leavesNoFiles) struct ReplicationTests {
    @Test func threeNodesConvergeAndEveryCopyVerifies() throws {
        let net = try InMemoryConsortium()
        defer { net.stopAll() }
        try net.startAll()
        for (i, org) in net.orgs.enumerated() {
            for k in 0..<3 {
                let r = try #require(net.post(org, Ev.batch(10 + i, org: org, from: k * 100)))
                #expect(r.status == 200, "\(String(decoding: r.body, as: UTF8.self))")
            }
        }
        let want = ["brand": UInt64(30), "retail": 33, "care": 36]
        #expect(net.wait { net.converged(want) }, "heads: \(net.heads())")
        net.stopNodes()
        let consortium = try Consortium.load(net.dir.path + "/consortium.json")
        for org in net.orgs {
            let audits = try Verifier(consortium: consortium).verify(dataDirectory: net.configs[org]!.dataDirectory)
            #expect(audits.allSatisfy { $0.failure == nil }, "\(org): \(audits.map { $0.failure ?? "ok" })")
            #expect(audits.map(\.entries).reduce(0, +) == 99)
        }
    }

    @Test func aNodeWithOnePeerGetsTheThirdLogThroughIt() throws {
        let net = try InMemoryConsortium(peers: ["brand": ["retail"], "retail": ["brand", "care"], "care": ["retail"]])
        defer { net.stopAll() }
        try net.startAll()
        #expect(net.post("brand", Ev.batch(25, org: "brand"))?.status == 200)
        #expect(net.wait { net.converged(["brand": 25]) }, "heads: \(net.heads())")
        #expect(net.node("care").logs["brand"]!.head.size == 25)
    }

    @Test func aRestartedNodeCatchesUpAndNothingAcknowledgedIsLost() throws {
        let net = try InMemoryConsortium()
        defer { net.stopAll() }
        try net.startAll()
        #expect(net.post("brand", Ev.batch(5, org: "brand"))?.status == 200)
        #expect(net.wait { net.converged(["brand": 5]) })
        net.kill("care")
        for k in 1...4 { #expect(net.post("brand", Ev.batch(50, org: "brand", from: k * 100))?.status == 200) }
        #expect(net.post("retail", Ev.batch(7, org: "retail"))?.status == 200)
        try net.start("care")
        #expect(net.wait { net.converged(["brand": 205, "retail": 7]) }, "heads: \(net.heads())")
    }

    @Test func aPeerServingATamperedBundleIsRejectedAndNothingOfItIsStored() throws {
        let net = try InMemoryConsortium(peers: ["brand": [], "retail": ["brand"], "care": []])
        defer { net.stopAll() }
        // brand's bundles are changed on their way to retail: one byte of the last entry.
        net.tamper.withLock {
            $0 = { from, path, r in
                guard from == "brand", path.contains("/tile/entries/"), r.status == 200 else { return r }
                var t = r
                t.body[t.body.count - 3] ^= 0x20
                return t
            }
        }
        try net.startAll()
        #expect(net.post("brand", Ev.batch(12, org: "brand"))?.status == 200)
        // retail sees brand's checkpoint at every sync and refuses what it is served, every time.
        #expect(net.wait(timeout: 10) { net.node("retail").metrics.rejections["peer-bad-data", default: 0] >= 2 })
        #expect(net.node("retail").logs["brand"]!.head.size == 0)
        // Once the path is clean, the same copy is fetched and verifies.
        net.tamper.withLock { $0 = nil }
        #expect(net.wait { net.node("retail").logs["brand"]!.head.size == 12 })
    }

    @Test func aCatchUpOverSeveralChunksKeepsEveryChunkThatVerified() throws {
        let net = try InMemoryConsortium(peers: ["brand": [], "retail": ["brand"], "care": []])
        defer { net.stopAll() }
        // brand's bundles 140…149 (entries 35,840…38,399, in the second chunk of a catch-up) arrive damaged.
        net.tamper.withLock {
            $0 = { from, path, r in
                guard from == "brand", path.contains("/tile/entries/14"), r.status == 200 else { return r }
                var t = r
                t.body[t.body.count - 3] ^= 0x20
                return t
            }
        }
        try net.start("brand")
        for k in 0..<40 { #expect(net.post("brand", Ev.batch(1000, org: "brand", from: k * 1000))?.status == 200) }
        try net.start("retail")
        // The first chunk (to brand's checkpoint at 33,000, the first at or past 32,768) verified and counts;
        // nothing of the damaged second chunk is stored.
        #expect(net.wait(timeout: 30) { net.node("retail").metrics.rejections["peer-bad-data", default: 0] >= 1 })
        #expect(net.node("retail").logs["brand"]!.head.size == 33_000)
        net.tamper.withLock { $0 = nil }
        #expect(net.wait(timeout: 30) { net.node("retail").logs["brand"]!.head.size == 40_000 })
        net.stopNodes()
        let consortium = try Consortium.load(net.dir.path + "/consortium.json")
        let audits = try Verifier(consortium: consortium).verify(dataDirectory: net.configs["retail"]!.dataDirectory)
        #expect(audits.first { $0.org == "brand" }?.entries == 40_000)
        #expect(audits.allSatisfy { $0.failure == nil })
    }

    @Test func aCheckpointSignedByAnotherKeyIsRefused() throws {
        let net = try InMemoryConsortium()
        defer { net.stopAll() }
        try net.startAll()
        let retail = net.node("retail")
        let forger = try NoteSigner(name: "acme/brand", privateKey: .generate())
        let cp = try SignedCheckpoint.sign(
            Checkpoint(origin: "acme/brand", size: 3, root: SHA256.hash("x")), with: forger)
        let body = AddCheckpoint(old: 0, proof: [], checkpoint: cp).serialized
        let r = try #require(
            InMemoryConsortium.call(
                retail, NodeRequest(listener: .peer(org: "care"), method: "POST", path: "/add-checkpoint", body: body)))
        #expect(r.status == 403)
        #expect(String(decoding: r.body, as: UTF8.self).contains("does not verify"))
        #expect(retail.logs["brand"]!.head.size == 0)
    }

    @Test func twoSignedRootsForOneSizeFreezeTheCopyAndKeepTheEvidence() throws {
        let net = try InMemoryConsortium()
        defer { net.stopAll() }
        try net.startAll()
        #expect(net.post("brand", Ev.batch(4, org: "brand"))?.status == 200)
        #expect(net.wait { net.converged(["brand": 4]) })
        // brand's key signs a second, different tree of the same size.
        let brandKey = try SigningKeyFile.read(net.configs["brand"]!.keyPath)
        let fork = try SignedCheckpoint.sign(
            Checkpoint(origin: "acme/brand", size: 4, root: SHA256.hash("another history")), with: brandKey)
        let retail = net.node("retail")
        let r = try #require(
            InMemoryConsortium.call(
                retail,
                NodeRequest(
                    listener: .peer(org: "care"), method: "POST", path: "/add-checkpoint",
                    body: AddCheckpoint(old: 4, proof: [], checkpoint: fork).serialized)))
        #expect(r.status == 422)
        let frozen = try #require(retail.logs["brand"]!.frozen)
        let evidence = try Evidence(parsing: Array(try Data(contentsOf: URL(fileURLWithPath: frozen))))
        let ours = retail.logs["brand"]!.head.checkpoint!
        #expect(
            [evidence.first, evidence.second].map(\.serialized).sorted() == [fork, ours].map(\.serialized).sorted())
        #expect(try evidence.verify(consortium: net.node("retail").consortium).get().org == "brand")
        // The evidence travels: care freezes its copy too, and brand's own node, shown that its key signed two
        // trees, stops appending; retail's copy takes nothing more.
        #expect(net.wait { net.node("care").logs["brand"]!.frozen != nil })
        #expect(net.wait { net.node("brand").writingStopped != nil })
        #expect(net.post("brand", Ev.batch(2, org: "brand", from: 50))?.status == 503)
        #expect(retail.logs["brand"]!.head.size == 4)
    }
}

/// Causal heads: what a node had verified of the other logs when it wrote.
@Suite(.serialized, .leavesNoFiles) struct HeadsTests {
    @Test func groupsCiteVerifiedHeadsAndAnIdleNodeWritesOneHeadsEntry() throws {
        let net = try InMemoryConsortium(headsIntervalMs: 50)
        defer { net.stopAll() }
        try net.startAll()
        #expect(net.post("brand", Ev.batch(3, org: "brand"))?.status == 200)
        // retail writes nothing itself, yet its log soon says that it had verified brand's log up to seq 2.
        let retail = net.node("retail")
        #expect(net.wait { retail.logs["retail"]!.head.size >= 1 })
        let e = try retail.logs["retail"]!.read { s throws(LedgerError) in try s.entry(0) }
        #expect(e.body.kind == .heads)
        let brandHead = try #require(retail.logs["brand"]!.head.checkpoint)
        #expect(e.deps.map(\.org).contains("brand"))
        #expect(e.deps.first { $0.org == "brand" }?.seq == brandHead.checkpoint.size - 1)
        // An event of retail's own cites what moved since (care's heads entry, say), never brand again at seq 2.
        #expect(net.post("retail", Ev.batch(1, org: "retail", from: 9))?.status == 200)
        let size = retail.logs["retail"]!.head.size
        let last = try retail.logs["retail"]!.read { s throws(LedgerError) in try s.entry(size - 1) }
        #expect(last.body.kind == .consent)
        #expect(!last.deps.contains { $0.org == "brand" && $0.seq <= e.deps.first { $0.org == "brand" }!.seq })
        // Idle nodes do not cite each other's heads entries for ever: every node comes to hold every log as its owner
        // holds it (brand's with its 3 events, and perhaps one heads entry citing retail's event), then the logs stop
        // growing.
        #expect(
            net.wait {
                let h = net.heads()
                var sizes: [String: UInt64] = [:]
                for org in net.orgs { sizes[org] = h[org]?[org]?.0 }
                return (sizes["brand"] ?? 0) >= 3 && net.converged(sizes)
            })
        // Stopping is an absence, which no event announces: the sizes must stay the same over an observation
        // window of six heads intervals and three sync intervals (a node still citing would write within one).
        let settled = net.wait(timeout: 10) {
            let before = net.heads()
            Thread.sleep(forTimeInterval: 0.3)
            let after = net.heads()
            return before.mapValues { $0.mapValues(\.0) } == after.mapValues { $0.mapValues(\.0) }
        }
        #expect(settled)
        net.stopNodes()
        let consortium = try Consortium.load(net.dir.path + "/consortium.json")
        for org in net.orgs {
            let audits = try Verifier(consortium: consortium).verify(dataDirectory: net.configs[org]!.dataDirectory)
            #expect(audits.allSatisfy { $0.failure == nil }, "\(org): \(audits.map { $0.failure ?? "ok" })")
        }
    }
}
