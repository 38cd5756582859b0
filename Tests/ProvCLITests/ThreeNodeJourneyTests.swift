import Foundation
import ProvCrypto
import ProvNet
import ProvView
import TestSupport
import Testing

@testable import ProvCLI
@testable import ProvLedger
@testable import ProvTools

/// The main job, `prov demo`, with three real `provd` processes (README.md, Two commands): one customer's journey
/// across a brand, a retailer and a contact centre; every node gives the customer the same view; the violation and
/// the propagation lag are found and nothing else of the journey is flagged.
@Suite(.serialized, .leavesNoFiles, .timeLimit(.minutes(3))) struct ThreeNodeJourneyTests {
    static let subject = Prov.q(Journey.email)

    static func get(_ api: String, _ token: String, _ path: String) throws -> JSONValue {
        let c = try HTTPClient(address: api)
        let r = try c.get(path, headers: ["Authorization": "Bearer \(token)"])
        #expect(r.status == 200, "\(path): \(String(decoding: r.body.prefix(300), as: UTF8.self))")
        return try JSON.parse(r.body)
    }

    @Test func theJourneyGivesOneDigestOnEveryNodeAndOnlyTheExpectedFindings() throws {
        let dir = try TemporaryFiles.directory("journey")
        defer { try? FileManager.default.removeItem(at: dir) }
        let o = try JourneyDemo.run(.init(directory: dir.path, keepRunning: true, customers: 300))
        defer { for n in o.running.values { n.node.crash() } }
        #expect(Set(o.digests.values).count == 1, "\(o.digests)")
        #expect(o.digests.count == 3)
        #expect(o.findings["retail"] == ["violation"])
        #expect(o.findings["care"] == ["propagation-lag"])
        #expect(o.findings["brand"] == nil)
        #expect(o.reportOK)
        #expect(Set(o.receiptCosigners) == ["retail", "care"])
        // How many other companies vouched for the receipt's checkpoint, as a requirement.
        let receipt = dir.path + "/withdrawal.tlog-proof"
        let descriptor = dir.path + "/consortium/consortium.json"
        let two = try prov(["verify-receipt", "--consortium", descriptor, "--min-cosigners", "2", receipt])
        #expect(two.status == 0 && two.stdout.contains("cosigned by"), "\(two.stdout) \(two.stderr)")
        let three = try prov(["verify-receipt", "--consortium", descriptor, "--min-cosigners", "3", receipt])
        #expect(three.status == 2 && three.stderr.contains("--min-cosigners takes 0 to 2"), "\(three.stderr)")
        let plain = try prov(["receipt", "--dir", dir.path + "/consortium/care/data", "--org", "care", "--seq", "0"])
        let uncosigned = dir.path + "/plain.tlog-proof"
        try plain.stdout.write(toFile: uncosigned, atomically: true, encoding: .utf8)
        let one = try prov(["verify-receipt", "--consortium", descriptor, "--min-cosigners", "1", uncosigned])
        #expect(
            one.status == 1
                && one.stdout.contains("FAILED: cosigned by 0 other members where --min-cosigners asks for 1"),
            "\(one.stdout)")
        // Nodes that keep running log to files of the run, and node.json says where each listens.
        for (org, n) in o.running {
            let config = try NodeFile.read(dir.path + "/consortium/\(org)/node.json")
            #expect(config["api"]?.stringValue == n.node.api && config["peer"]?.stringValue == n.node.peer)
            let logText = try String(contentsOfFile: dir.path + "/\(org).log", encoding: .utf8)
            #expect(logText.contains("\"node started\""), "\(org).log: \(logText.prefix(300))")
        }

        // The deciding entries: the retailer's mail is judged by the withdrawal, and so is the contact centre's.
        let (care, token) = o.running["care"]!
        let api = care.api
        let compliance = try Self.get(api, token, "/v1/compliance?org=care")
        let lag = try #require(compliance["findings"]?.arrayValue?.first)
        #expect(lag["classification"]?.stringValue == "propagation-lag")
        let deciding = (lag["deciding"]?.arrayValue ?? []).compactMap { d -> String? in
            guard let r = d["ref"] ?? d["entry"], let org = r["org"]?.stringValue, let seq = r["seq"]?.int64Value
            else { return nil }
            return "\(org)/\(seq)"
        }
        #expect(deciding.contains(o.entries["withdrawal"]!), "\(lag)")

        // A node restarted from disk gives the same digest.
        let brand = o.running["brand"]!
        #expect(brand.node.stop() == 0)
        let restarted = try NodeProcess(org: "brand", config: dir.path + "/consortium/brand/node.json")
        defer { restarted.stop() }
        let view = try Self.get(restarted.api, brand.token, "/v1/subjects/\(Self.subject)/view")
        #expect(view["digest"]?.stringValue == o.digests["brand"])

        // A receipt made offline from the node's data directory carries the cosignatures the node keeps there.
        let made = try prov([
            "receipt", "--dir", dir.path + "/consortium/brand/data", "--org", "brand", "--seq", "0", "--consortium",
            dir.path + "/consortium/consortium.json", "--json",
        ])
        let cosigners = try JSON.parse(made.stdout)["cosignedBy"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(Set(cosigners) == ["retail", "care"], "\(made.stdout) \(made.stderr)")

        // The same view, computed offline from a copy of a node's data directory.
        let copy = dir.appendingPathComponent("copy").path
        try FileManager.default.copyItem(atPath: dir.path + "/consortium/retail/data", toPath: copy)
        let consortium = try Consortium.load(dir.path + "/consortium/consortium.json")
        let offline = try ViewIndex.build(
            dataDirectory: copy, consortium: consortium, linkKey: try LinkKey.load(dir.path + "/consortium/link.key"))
        #expect(offline.excluded.isEmpty)
        #expect(try offline.index.view(subject: Journey.email).digest.hex == o.digests["retail"])
    }

    @Test func permitsChangeAtExpiryAndOnceAWithdrawalReachesTheNode() throws {
        let dir = try TemporaryFiles.directory("permit")
        defer { try? FileManager.default.removeItem(at: dir) }
        // A small journey (3 background customers) starts the nodes; then a consent that expires, and a withdrawal.
        let o = try JourneyDemo.run(.init(directory: dir.path, keepRunning: true, customers: 3))
        defer { for n in o.running.values { n.node.crash() } }
        let brandConfig = try NodeFile.read(dir.path + "/consortium/brand/node.json")
        let brand = try NodeAPI(address: o.running["brand"]!.node.api, token: brandConfig["token"]!.stringValue!)
        let (retailNode, retailToken) = o.running["retail"]!
        let retailAPI = retailNode.api
        let subject = "email:jamie@example.com"
        let expires = UInt64(Date().timeIntervalSince1970 * 1000) + 3_600_000
        let give = try brand.post(
            "/v1/events",
            Array(
                #"{"type":"consent","subject":"\#(subject)","event":"give","purposes":["dpv:DirectMarketing"],"controllers":["brand"],"recipients":["retail"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"\#(Journey.now())","expiresAt":"\#(Timestamp.format(expires))"}"#
                    .utf8))
        #expect(give.status == 200)
        let permit = "/v1/permit?subject=\(Prov.q(subject))&org=retail&purpose=dpv:DirectMarketing"
        func retailHolds(_ size: UInt64) throws -> Bool {
            (try NodeAPI(address: retailAPI, token: retailToken).sizes()["brand"] ?? 0) >= size
        }
        let giveSeq = UInt64(try JSON.parse(give.body).arrayValue![0]["seq"]!.int64Value!)
        try JourneyDemo.waitUntil("retail holds the consent", JourneyDemo.Output(.silent)) {
            try retailHolds(giveSeq + 1)
        }
        #expect(try Self.get(retailAPI, retailToken, permit)["allowed"] == .bool(true))
        // At its expiry the same consent permits nothing.
        #expect(try Self.get(retailAPI, retailToken, permit + "&at=\(expires - 1)")["allowed"] == .bool(true))
        let expired = try Self.get(retailAPI, retailToken, permit + "&at=\(expires)")
        #expect(expired["allowed"] == .bool(false))
        #expect(expired["state"]?.stringValue == "expired")
        // A withdrawal at the brand changes the retailer's answer once the retailer holds it.
        let withdraw = try brand.post(
            "/v1/events",
            Array(
                #"{"type":"consent","subject":"\#(subject)","event":"withdraw","purposes":["dpv:DirectMarketing"],"controllers":["brand"],"channel":"sms","method":"sms-keyword","legalBasis":"dpv:Consent","occurredAt":"\#(Journey.now())"}"#
                    .utf8))
        let wSeq = UInt64(try JSON.parse(withdraw.body).arrayValue![0]["seq"]!.int64Value!)
        try JourneyDemo.waitUntil("retail holds the withdrawal", JourneyDemo.Output(.silent)) {
            try retailHolds(wSeq + 1)
        }
        let after = try Self.get(retailAPI, retailToken, permit)
        #expect(after["allowed"] == .bool(false))
        #expect(after["state"]?.stringValue == "withdrawn")
    }

    /// `prov view/permit/timeline/compliance/report` print the same for the same logs from a running node and
    /// offline from a copy of its data directory; `prov verify-report` checks the report and catches an altered fact.
    @Test func theViewCommandsAnswerTheSameFromANodeAndOffline() throws {
        let dir = try TemporaryFiles.directory("view-cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let o = try JourneyDemo.run(.init(directory: dir.path, keepRunning: true, customers: 60))
        defer { for n in o.running.values { n.node.crash() } }
        let (retail, token) = o.running["retail"]!
        let api = retail.api
        let copy = dir.appendingPathComponent("copy").path
        try FileManager.default.copyItem(atPath: dir.path + "/consortium/retail/data", toPath: copy)
        let node = ["--node", "http://\(api)", "--token", token]
        let offline = [
            "--dir", copy, "--consortium", dir.path + "/consortium/consortium.json", "--link-key",
            dir.path + "/consortium/link.key",
        ]
        let at = ["--at", String(UInt64(Date().timeIntervalSince1970 * 1000))]
        let queries: [[String]] = [
            ["view", Journey.email] + at, ["view", Journey.phone, "--json"] + at,
            ["permit", "--subject", Journey.email, "--org", "retail", "--purpose", "dpv:DirectMarketing"] + at,
            [
                "permit", "--subject", Journey.phone, "--org", "brand", "--purpose", "dpv:ServicePersonalisation",
                "--json",
            ]
                + at,
            ["timeline", Journey.email, "--limit", "5"], ["timeline", Journey.email, "--json"],
            ["compliance", "--org", "care"], ["compliance", "--org", "retail", "--json"],
        ]
        for q in queries {
            let fromNode = try prov(q + node)
            let fromCopy = try prov(q + offline)
            // permit answers in its exit status: the retailer may not mail Alex (withdrawn), the brand may
            // personalise (given).
            let expected: Int32 = q[0] == "permit" && q.contains("retail") ? 1 : 0
            #expect(
                fromNode.status == expected && fromCopy.status == expected,
                "\(q): \(fromNode.status) \(fromCopy.status) \(fromNode.stderr) \(fromCopy.stderr)")
            #expect(!fromNode.stdout.isEmpty)
            #expect(fromNode.stdout == fromCopy.stdout, "\(q) differs")
        }
        let denied = try prov(
            ["permit", "--subject", Journey.email, "--org", "retail", "--purpose", "dpv:DirectMarketing"] + node + at)
        #expect(denied.status == 1 && denied.stdout.contains("DENIED") && denied.stdout.contains("withdrawn"))
        // The counts add up: every interaction checked against consent is lawful, a violation or a lag.
        let counts = try JSON.parse(try prov(["compliance", "--org", "care", "--json"] + node).stdout)
        let n = { (f: String) in counts[f]?.int64Value ?? -1 }
        #expect(n("checked") == n("lawful") + n("violations") + n("propagationLags"), "\(counts)")
        #expect(n("propagationLags") == 1 && n("interactions") > n("checked"), "\(counts)")
        let table = try prov(["compliance", "--org", "care"] + node).stdout
        #expect(table.contains("1 propagation lag\n") && table.contains(" 0 violations,"), "\(table)")
        // Offline, a raw identifier needs the linking key: the message names the option, and nothing is read.
        let noKey = try prov(["view", Journey.email, "--dir", copy, "--consortium", offline[3]])
        #expect(noKey.status == 2 && noKey.stderr.contains("--link-key FILE"), "\(noKey.stderr)")
        // A bad parameter is a usage error, named, from the node and offline alike.
        for source in [node, offline] {
            let bad = try prov(
                ["permit", "--subject", Journey.email, "--org", "retail", "--purpose", "dpv:Nope"] + source)
            #expect(bad.status == 2)
            #expect(bad.stderr.contains("parameter 'purpose'"), "\(bad.stderr)")
        }

        // The report, from the node, checks offline; one altered fact does not.
        let report = dir.appendingPathComponent("alex.json").path
        #expect(try prov(["report", Journey.email, "--out", report] + node).status == 0)
        let consortium = dir.path + "/consortium/consortium.json"
        let good = try prov(["verify-report", report, "--consortium", consortium])
        #expect(good.status == 0, "\(good.stdout) \(good.stderr)")
        #expect(good.stdout.hasPrefix("OK:"))
        let original = try String(contentsOfFile: report, encoding: .utf8)
        let text = original.replacingOccurrences(of: "\"channel\":\"sms\"", with: "\"channel\":\"web\"")
        try text.write(toFile: report, atomically: true, encoding: .utf8)
        let altered = try prov(["verify-report", report, "--consortium", consortium])
        #expect(altered.status == 1, "\(altered.stdout)")
        #expect(altered.stdout.hasPrefix("FAILED:"))
        // A finding's class rewritten: the report's own entries give another, and the digest no longer matches.
        let lawful = original.replacingOccurrences(
            of: "\"classification\":\"propagation-lag\"", with: "\"classification\":\"lawful\"")
        #expect(lawful != original)
        try lawful.write(toFile: report, atomically: true, encoding: .utf8)
        let rewritten = try prov(["verify-report", report, "--consortium", consortium])
        #expect(rewritten.status == 1, "\(rewritten.stdout)")
        #expect(rewritten.stdout.contains("the report says lawful; the signed entries it carries give propagation-lag"))
        #expect(rewritten.stdout.contains("digest[0]"), "\(rewritten.stdout)")
        // The offline report of the copy is the same document as the node's (but for when it was made).
        let html = dir.appendingPathComponent("alex.html").path
        #expect(try prov(["report", Journey.email, "--html", "--out", html] + offline).status == 0)
        #expect(try String(contentsOfFile: html, encoding: .utf8).contains("<html"))
    }
}
