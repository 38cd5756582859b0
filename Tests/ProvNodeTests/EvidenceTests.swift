import Foundation
import ProvCrypto
import ProvLedger
import ProvNet
import ProvProcess
import TestSupport
import Testing

@testable import ProvNode

/// Equivocation evidence that travels (Specs/protocol.md §4.3–§4.4), with real provd processes: a fork shown to one
/// node reaches every node, each of which checks it before it freezes anything; anyone checks it offline with the
/// descriptor alone; the equivocating company's own node stops appending; a fake freezes nothing.
@Suite(.serialized, .leavesNoFiles, .timeLimit(.minutes(3))) struct EvidenceTests {
    /// A conflicting history of `org`'s log of `size + 1` entries, signed with its key on a copy of its log:
    /// returns the forged checkpoint.
    static func forge(_ c: ProvdCluster, _ org: String) throws -> SignedCheckpoint {
        let forge = c.dir.path + "/forge"
        try FileManager.default.createDirectory(atPath: forge, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: c.dataDirectory(org) + "/" + org, toPath: forge + "/" + org)
        let config = try NodeConfig.load(c.configPath(org))
        let append = try ChildProcess.run(
            provPath,
            [
                "append", "--dir", forge, "--key", config.keyPath, "--consortium", config.consortiumPath,
                "--link-key", config.linkKeyPath,
            ], input: Array((Ev.consent(999, org: org) + "\n").utf8), timeout: 60)
        #expect(append.termination == .exited(0), "\(append.stderrText)")
        return try SignedCheckpoint(parsing: String(contentsOfFile: forge + "/\(org)/checkpoint", encoding: .utf8))
    }

    static func status(_ c: ProvdCluster, _ org: String) throws -> JSONValue {
        try JSON.parse(
            try c.client(org).get("/v1/status", headers: ["Authorization": "Bearer \(try c.token(org))"]).body)
    }

    /// Waits (bounded) until `condition` holds, re-checking whenever a node logs a line.
    static func eventually(_ c: ProvdCluster, timeout: Double = 30, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            c.activity.lock()
            _ = c.activity.wait(until: min(deadline, Date().addingTimeInterval(0.5)))
            c.activity.unlock()
        }
        return try condition()
    }

    @Test func aForkShownToOneNodeReachesEveryNodeAndStopsTheOwner() throws {
        let c = try ProvdCluster()
        defer { c.stopAll() }
        try c.startAll()
        #expect(try c.post("brand", Ev.batch(5, org: "brand")).status == 200)
        #expect(c.waitConverged(["brand": 5]))
        let forged = try Self.forge(c, "brand")
        #expect(try c.post("brand", Ev.batch(3, org: "brand", from: 20)).status == 200)
        #expect(c.waitConverged(["brand": 8]))
        // Only retail is shown the fork.
        let r = try HostileInputTests.member(c, "brand", to: "retail").post(
            "/add-checkpoint", body: AddCheckpoint(old: 8, proof: [], checkpoint: forged).serialized,
            headers: ["Content-Type": "text/plain"])
        #expect(r.status == 422)
        // Every node ends up holding it, checked: the copies freeze, brand's own node stops appending.
        for org in ["retail", "care"] {
            #expect(
                try Self.eventually(c) { try HostileInputTests.frozen(c, at: org) == ["brand"] },
                "\(org) did not freeze")
        }
        #expect(try Self.eventually(c) { try Self.status(c, "brand")["writingStopped"]?.stringValue != nil })
        let refused = try c.post("brand", Ev.batch(1, org: "brand", from: 60))
        #expect(refused.status == 503, "\(String(decoding: refused.body, as: UTF8.self))")
        #expect(String(decoding: refused.body, as: UTF8.self).contains("signed another history"))
        let metrics = String(
            decoding: try c.client("care").get("/metrics", headers: ["Authorization": "Bearer \(try c.token("care"))"])
                .body,
            as: UTF8.self)
        #expect(metrics.contains("prov_equivocation_evidence{log=\"brand\"} 1"), "\(metrics)")
        // An auditor fetches it from care and checks it offline; any changed byte breaks it.
        let auditor: HTTPHeaders = ["Authorization": "Bearer \(try c.token("care", auditor: true))"]
        let list = try JSON.parse(try c.client("care").get("/v1/evidence", headers: auditor).body)
        let name = try #require(list["evidence"]?.arrayValue?.first?["name"]?.stringValue)
        let file = c.dir.path + "/evidence.json"
        let bytes = try c.client("care").get("/v1/evidence/\(name)", headers: auditor).body
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let consortium = c.dir.path + "/consortium.json"
        let ok = try ChildProcess.run(provPath, ["verify-evidence", "--consortium", consortium, file], timeout: 60)
        #expect(ok.termination == .exited(0) && ok.stdoutText.contains("PROVEN: brand signed"), "\(ok.stdoutText)")
        var rng = SplitMix64(seed: 7)
        for _ in 0..<12 {
            var changed = bytes
            let i = Int(rng.next() % UInt64(changed.count))
            changed[i] ^= UInt8(1 << (rng.next() % 7))
            try Data(changed).write(to: URL(fileURLWithPath: file))
            let r = try ChildProcess.run(provPath, ["verify-evidence", "--consortium", consortium, file], timeout: 60)
            #expect(r.termination != .exited(0), "byte \(i) changed and still proven: \(r.stdoutText)")
        }
        // Every node's data directory holds the evidence, and prov verify fails brand's log on it.
        for org in c.orgs { #expect(c.nodes[org]!.stop() == 0) }
        for org in c.orgs {
            let (status, out) = try c.verify(org)
            #expect(status == 1, "\(org): \(out)")
            #expect(
                out.contains("brand: FAILED") && out.contains("equivocation: brand signed a tree of size 6")
                    && out.contains("sizes 6 and 8"), "\(org): \(out)")
        }
    }

    @Test func evidenceThatProvesNothingFreezesNothing() throws {
        let c = try ProvdCluster(orgs: ["brand", "retail"])
        defer { c.stopAll() }
        try c.startAll()
        #expect(try c.post("brand", Ev.batch(3, org: "brand")).status == 200)
        #expect(c.waitConverged(["brand": 3]))
        let cp = try SignedCheckpoint(
            parsing: String(
                decoding: try c.client("brand").get(
                    "/logs/brand/checkpoint", headers: ["Authorization": "Bearer \(try c.token("brand"))"]
                ).body, as: UTF8.self))
        let peer = try HostileInputTests.member(c, "brand", to: "retail")
        // The same checkpoint twice; and a fork signed by another key than brand's.
        let stranger = try NoteSigner(name: "acme/brand", privateKey: .generate())
        let other = try SignedCheckpoint.sign(
            Checkpoint(origin: "acme/brand", size: cp.checkpoint.size, root: SHA256.hash("other")), with: stranger)
        for (fake, status) in [(Evidence(cp, cp), 422), (Evidence(cp, other), 422)] {
            let r = try peer.post("/evidence", body: fake.serialized, headers: ["Content-Type": "application/json"])
            #expect(r.status == status, "\(String(decoding: r.body, as: UTF8.self))")
        }
        let junk = try peer.post("/evidence", body: Array("{\"format\":1}".utf8), headers: [:])
        #expect(junk.status == 400)
        #expect(try HostileInputTests.frozen(c, at: "retail").isEmpty)
        #expect(try Self.status(c, "retail")["evidence"]?.arrayValue?.isEmpty == true)
    }

    /// A log's owner can sign as many conflicting pairs as it likes, each genuine evidence: a node keeps and passes
    /// on a few per log (one proves the fork), and answers the rest `new: false` without storing them, so no member
    /// fills the consortium's disks with its own forks.
    @Test func evidenceIsKeptAFewPiecesPerLogNotWithoutEnd() throws {
        let c = try ProvdCluster(orgs: ["brand", "retail"])
        defer { c.stopAll() }
        try c.startAll()
        #expect(try c.post("brand", Ev.batch(3, org: "brand")).status == 200)
        #expect(c.waitConverged(["brand": 3]))
        let key = try SigningKeyFile.read(try NodeConfig.load(c.configPath("brand")).keyPath)
        let peer = try HostileInputTests.member(c, "brand", to: "retail")
        var answers: [Bool] = []
        for i in 0..<(Node.maxEvidencePerLog + 3) {
            func signed(_ root: String) throws -> SignedCheckpoint {
                try SignedCheckpoint.sign(
                    Checkpoint(origin: "acme/brand", size: 2, root: SHA256.hash("\(root) \(i)")), with: key)
            }
            let r = try peer.post(
                "/evidence", body: Evidence(try signed("a"), try signed("b")).serialized,
                headers: ["Content-Type": "application/json"])
            #expect(r.status == 200, "\(String(decoding: r.body, as: UTF8.self))")
            answers.append(try JSON.parse(r.body)["new"] == .bool(true))
        }
        #expect(answers == Array(repeating: true, count: Node.maxEvidencePerLog) + [false, false, false])
        let files = try FileManager.default.contentsOfDirectory(atPath: c.dataDirectory("retail") + "/evidence")
        #expect(files.filter { $0.hasSuffix(".json") }.count == Node.maxEvidencePerLog)
        #expect(try HostileInputTests.frozen(c, at: "retail") == ["brand"])
    }
}
