import Foundation
import ProvCrypto
import ProvLedger
import ProvNet
import ProvProcess
import Synchronization
import TestSupport
import Testing

@testable import ProvNode

/// Membership by quorum and key changes with real provd processes on 127.0.0.1 (Specs/format.md §9.5–§9.6,
/// Specs/protocol.md §8): a company joins, a proposal short of its quorum is refused everywhere, a key is rotated
/// while events flow, a stolen key is revoked, and a member leaves.
@Suite(.serialized, .leavesNoFiles, .timeLimit(.minutes(5))) struct MembershipTests {
    static func prov(_ args: [String]) throws -> ChildProcess.Completed {
        try ChildProcess.run(provPath, args, timeout: 60)
    }

    /// Runs `prov` and expects exit code `status`; returns its standard output.
    @discardableResult
    static func expectProv(_ args: [String], _ status: Int32 = 0) throws -> String {
        let r = try prov(args)
        #expect(
            r.termination == .exited(status),
            "prov \(args.prefix(2).joined(separator: " ")): \(r.stdoutText) \(r.stderrText)")
        return r.stdoutText
    }

    static func keyFile(_ c: ProvdCluster, _ org: String) throws -> String {
        try NodeConfig.load(c.configPath(org)).keyPath
    }

    /// A new key for `org` in `file`; returns its verifier key.
    static func keygen(_ org: String, _ file: String) throws -> String {
        try expectProv(["keygen", "--org", org, "--consortium", "acme", "--out", file])
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Proposes `change` to `descriptor`, has each of `signers` (a key file, and for a rotation the new key file)
    /// sign, and applies it into `out`.
    static func change(
        _ c: ProvdCluster, _ change: [String], from descriptor: String, signers: [(String, String?)], out: String
    ) throws {
        let proposal = c.dir.path + "/proposal-\(UUID().uuidString).json"
        try expectProv(["consortium", "propose", "--consortium", descriptor] + change + ["--out", proposal])
        for (key, newKey) in signers {
            try expectProv(["consortium", "sign", proposal, "--key", key] + (newKey.map { ["--new-key", $0] } ?? []))
        }
        try expectProv(["consortium", "apply", proposal, "--consortium", descriptor, "--out", out])
    }

    /// `POST /v1/consortium` with the company's app token.
    static func offer(_ c: ProvdCluster, to org: String, file: String) throws -> HTTPResponse {
        try c.client(org).post(
            "/v1/consortium", body: Array(try Data(contentsOf: URL(fileURLWithPath: file))),
            headers: ["Authorization": "Bearer \(try c.token(org))", "Content-Type": "application/json"])
    }

    static func status(_ c: ProvdCluster, _ org: String) throws -> JSONValue { try EvidenceTests.status(c, org) }

    static func version(_ c: ProvdCluster, _ org: String) -> Int64? {
        (try? status(c, org))?["consortiumVersion"]?.int64Value
    }

    /// Every running node at descriptor version `v` (waiting, bounded, on the nodes' log lines).
    static func allAt(_ c: ProvdCluster, _ v: Int64) -> Bool {
        EvidenceTests.eventually(c) { c.nodes.filter(\.value.isRunning).keys.allSatisfy { version(c, $0) == v } }
    }

    static func verifyAll(_ c: ProvdCluster, _ orgs: [String], descriptor: String) throws {
        for org in orgs where c.nodes[org]?.isRunning == true { #expect(c.nodes[org]!.stop() == 0) }
        for org in orgs {
            let r = try prov(["verify", "--consortium", descriptor, c.dataDirectory(org)])
            #expect(r.termination == .exited(0), "\(org): \(r.stdoutText) \(r.stderrText)")
        }
    }

    /// The receipt of `org`'s entry `seq` as node `at` gives it, written to a file; returns the file.
    static func receipt(_ c: ProvdCluster, _ org: String, _ seq: UInt64, at node: String, name: String) throws
        -> String
    {
        let r = try c.client(node).get(
            "/v1/entries/\(org)/\(seq)", headers: ["Authorization": "Bearer \(try c.token(node, auditor: true))"])
        #expect(r.status == 200, "\(String(decoding: r.body, as: UTF8.self))")
        let text = try #require(try JSON.parse(r.body)["receipt"]?.stringValue)
        let path = c.dir.path + "/\(name).tlog-proof"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    // MARK: Joining

    /// Makes a company's folder beside the cluster's: its key, a node.json (tokens of its own), an empty data folder.
    static func addCompany(_ c: ProvdCluster, _ org: String, key: String, descriptor: String) throws {
        let folder = c.dir.path + "/\(org)"
        try FileManager.default.createDirectory(atPath: folder + "/data", withIntermediateDirectories: true)
        var config = try c.config("brand")
        config["org"] = .string(org)
        config["key"] = .string(key)
        config["consortium"] = .string(descriptor)
        config["token"] = .string("app-token-of-\(org)-0123456789")
        config["auditorToken"] = .string("auditor-token-of-\(org)-0123456789")
        config["peerAddresses"] = nil
        let text = JSONValue.object(config.keys.sorted().map { JSONMember($0, config[$0]!) }).prettySerialized
        #expect(
            FileManager.default.createFile(
                atPath: folder + "/node.json", contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]))
    }

    @Test func aFourthCompanyJoinsByQuorumAndEveryNodeHoldsEveryLog() throws {
        let c = try ProvdCluster()
        defer { c.stopAll() }
        try c.startAll()
        for org in c.orgs { #expect(try c.post(org, Ev.batch(5, org: org)).status == 200) }
        #expect(c.waitConverged(["brand": 5, "retail": 5, "care": 5]), "\(c.describe)")
        // telco makes its key and shares only the verifier key; two of the three members sign.
        let telcoKey = c.dir.path + "/telco.key"
        let vkey = try Self.keygen("telco", telcoKey)
        let v1 = c.dir.path + "/consortium.json"
        let v2 = c.dir.path + "/consortium.v2.json"
        try Self.change(
            c, ["--add", "telco=\(vkey)", "--name", "Telco"], from: v1,
            signers: [(try Self.keyFile(c, "brand"), nil), (try Self.keyFile(c, "retail"), nil)], out: v2)
        let chain = try Self.expectProv(["consortium", "verify", v2])
        #expect(chain.contains("version 2: add telco (Telco), approved by brand, retail"), "\(chain)")
        // One node is told; the others learn it from their peers and check it themselves.
        let r = try Self.offer(c, to: "brand", file: v2)
        #expect(r.status == 200 && String(decoding: r.body, as: UTF8.self).contains("\"new\":true"))
        #expect(Self.allAt(c, 2), "\(c.nodes.keys.map { "\($0): \(Self.version(c, $0) ?? -1)" })")
        // telco starts with the new descriptor, catches up every log, and writes its own.
        try Self.addCompany(c, "telco", key: telcoKey, descriptor: v2)
        try c.start("telco")
        try c.connect()
        #expect(try c.post("telco", Ev.batch(4, org: "telco")).status == 200)
        #expect(
            c.waitConverged(["brand": 5, "retail": 5, "care": 5, "telco": 4], timeout: 60), "\(c.describe)")
        // Every data directory verifies, with the first descriptor: each holds the second version, checked.
        try Self.verifyAll(c, c.orgs + ["telco"], descriptor: v1)
        let out = try Self.prov(["verify", "--consortium", v1, c.dataDirectory("care")])
        #expect(out.stdoutText.contains("telco: OK: 4 entries"), "\(out.stdoutText)")
        #expect(out.stderrText.contains("using version 2 of consortium acme"), "\(out.stderrText)")
    }

    @Test func aProposalWithOneSignatureOfThreeIsRefusedByApplyAndByEveryNode() throws {
        let c = try ProvdCluster()
        defer { c.stopAll() }
        try c.startAll()
        let vkey = try Self.keygen("telco", c.dir.path + "/telco.key")
        let v1 = c.dir.path + "/consortium.json"
        let proposal = c.dir.path + "/telco.proposal.json"
        try Self.expectProv(["consortium", "propose", "--consortium", v1, "--add", "telco=\(vkey)", "--out", proposal])
        try Self.expectProv(["consortium", "sign", proposal, "--key", try Self.keyFile(c, "brand")])
        let refused = try Self.expectProv(
            ["consortium", "apply", proposal, "--consortium", v1, "--out", c.dir.path + "/v2.json"], 1)
        #expect(
            refused.contains("NOT APPLIED: version 2: approved by 1 member (brand) where 2 are needed"), "\(refused)")
        #expect(!FileManager.default.fileExists(atPath: c.dir.path + "/v2.json"))
        // The same version, written anyway, is refused by every node, from the operator and from a peer.
        let chain = try ConsortiumChain.load(v1)
        let p = try ConsortiumProposal(
            parsing: Array(try Data(contentsOf: URL(fileURLWithPath: proposal))), source: "p")
        let next = try p.nextVersion(of: chain)
        var copy = chain
        #expect(throws: LedgerError.self) { try copy.append(next.json) }
        guard case .object(var top) = next.json else { return }
        top.append(JSONMember("history", .array([chain.head.json])))
        let forged = c.dir.path + "/forged.json"
        try Data(JSONValue.object(top).prettySerialized.utf8).write(to: URL(fileURLWithPath: forged))
        for org in c.orgs {
            let r = try Self.offer(c, to: org, file: forged)
            let body = String(decoding: r.body, as: UTF8.self)
            #expect(
                r.status == 422 && body.contains("approved by 1 member (brand) where 2 are needed"), "\(org): \(body)")
            #expect(Self.version(c, org) == 1)
        }
        let peer = try HostileInputTests.member(c, "brand", to: "retail")
        let r = try peer.post(
            "/consortium", body: Array(try Data(contentsOf: URL(fileURLWithPath: forged))),
            headers: ["Content-Type": "application/json"])
        #expect(r.status == 422, "\(String(decoding: r.body, as: UTF8.self))")
        // The auditor token reads the descriptor but does not post one.
        let auditor = try c.client("care").post(
            "/v1/consortium", body: Array("{}".utf8),
            headers: ["Authorization": "Bearer \(try c.token("care", auditor: true))"])
        #expect(auditor.status == 403)
        let served = try c.client("care").get(
            "/v1/consortium", headers: ["Authorization": "Bearer \(try c.token("care", auditor: true))"])
        #expect(try ConsortiumChain.parse(served.body, source: "served").head.hash == chain.head.hash)
    }

    // MARK: Keys

    /// Posts events to `org` on a thread of its own until stopped, counting what was not acknowledged.
    final class Flow: @unchecked Sendable {
        // `done` and the counters are the only shared state; the client belongs to the thread.
        private let stopping = Atomic<Bool>(false)
        private let done = DispatchSemaphore(value: 0)
        let refused = Mutex<[String]>([])
        let acknowledged = Atomic<Int>(0)

        init(_ c: ProvdCluster, _ org: String) throws {
            let client = try c.client(org)
            let token = try c.token(org)
            let t = Thread { [self] in
                var i = 1000
                while !stopping.load(ordering: .relaxed) {
                    let body = Array(("[" + Ev.batch(3, org: org, from: i).joined(separator: ",") + "]").utf8)
                    i += 3
                    let r = try? client.post(
                        "/v1/events", body: body,
                        headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"])
                    if r?.status == 200 {
                        acknowledged.add(3, ordering: .relaxed)
                    } else {
                        refused.withLock {
                            $0.append(r.map { String(decoding: $0.body, as: UTF8.self) } ?? "no answer")
                        }
                    }
                }
                done.signal()
            }
            t.start()
        }

        func stop() {
            stopping.store(true, ordering: .relaxed)
            done.wait()
        }
    }

    @Test func brandRotatesItsKeyWhileEventsFlowAndEveryReceiptStillVerifies() throws {
        let c = try ProvdCluster()
        defer { c.stopAll() }
        try c.startAll()
        #expect(try c.post("brand", Ev.batch(5, org: "brand")).status == 200)
        #expect(c.waitConverged(["brand": 5]))
        let before = try Self.receipt(c, "brand", 2, at: "brand", name: "before")
        let flow = try Flow(c, "brand")
        // brand's operator makes the next key, names it nextKey and sends SIGHUP: brand signs with both keys.
        let nextKey = c.dir.path + "/brand/brand.next.key"
        let vkey = try Self.keygen("brand", nextKey)
        let seen = c.nodes["brand"]!.stderrLines.count
        try c.rewrite("brand") { $0["nextKey"] = .string("brand.next.key") }
        c.nodes["brand"]!.signal(SIGHUP)
        #expect(
            c.nodes["brand"]!.waitForLog("signing with the next key too"),
            "\(c.nodes["brand"]!.stderrLines.dropFirst(seen).prefix(8))")
        let from = try #require(try Self.status(c, "brand")["keys"]?["nextFrom"]?.int64Value)
        // Receipts made while brand signs with both keys, past the size the rotation will name: from a copy, and
        // offline from brand's own folder (its cosigned file).
        #expect(
            EvidenceTests.eventually(c) {
                ((try? c.heads("retail")["brand"]?.0) ?? 0) > UInt64(from) + 3
                    && ((try? c.heads("brand")["brand"]?.0) ?? 0) > UInt64(from) + 3
            })
        let during = try Self.receipt(c, "brand", UInt64(from) + 1, at: "retail", name: "during")
        let offline = try Self.prov([
            "receipt", "--dir", c.dataDirectory("brand"), "--org", "brand", "--seq", "\(from + 2)", "--consortium",
            c.dir.path + "/consortium.json",
        ])
        #expect(offline.termination == .exited(0), "\(offline.stderrText)")
        let duringOffline = c.dir.path + "/during-offline.tlog-proof"
        try Data(offline.stdoutText.utf8).write(to: URL(fileURLWithPath: duringOffline))
        let v1 = c.dir.path + "/consortium.json"
        let v2 = c.dir.path + "/consortium.v2.json"
        try Self.change(
            c, ["--rotate", "brand=\(vkey)", "--from-size", "\(from)"], from: v1,
            signers: [(try Self.keyFile(c, "brand"), nextKey), (try Self.keyFile(c, "retail"), nil)], out: v2)
        #expect(try Self.offer(c, to: "retail", file: v2).status == 200)
        #expect(Self.allAt(c, 2))
        // brand now signs with the new key alone, while the events go on.
        let newID = String(format: "%08x", try NoteVerifierKey(parsing: vkey).keyID)
        #expect(
            EvidenceTests.eventually(c) {
                (try? Self.status(c, "brand"))?["keys"]?["signing"]?.stringValue == newID
                    && Self.ownerLines(c, "brand") == [newID]
            }, "\(Self.ownerLines(c, "brand"))")
        let grown = try #require(try c.heads("brand")["brand"]?.0)
        #expect(EvidenceTests.eventually(c) { ((try? c.heads("brand")["brand"]?.0) ?? 0) > grown + 3 })
        flow.stop()
        #expect(flow.refused.withLock { $0 }.isEmpty, "\(flow.refused.withLock { $0.prefix(3) })")
        let size = try #require(try c.heads("brand")["brand"]?.0)
        #expect(UInt64(flow.acknowledged.load(ordering: .relaxed)) + 5 == size)
        #expect(c.waitConverged(["brand": size]), "\(c.describe)")
        #expect(size > UInt64(from))
        let after = try Self.receipt(c, "brand", size - 1, at: "retail", name: "after")
        // Receipts made before the rotation verify with either descriptor, those after it with the new one.
        let all = try Self.expectProv(["verify-receipt", "--consortium", v2, before, during, duringOffline, after])
        for name in ["before", "during", "during-offline", "after"] {
            #expect(all.contains("\(name).tlog-proof: OK"), "\(all)")
        }
        try Self.expectProv(["verify-receipt", "--consortium", v1, before, during, duringOffline])
        try Self.verifyAll(c, c.orgs, descriptor: v1)
    }

    /// The key IDs of the owner's signature lines on `org`'s checkpoint as its own node serves it.
    static func ownerLines(_ c: ProvdCluster, _ org: String) -> [String] {
        guard
            let r = try? c.client(org).get(
                "/logs/\(org)/checkpoint", headers: ["Authorization": "Bearer \((try? c.token(org)) ?? "")"]),
            let cp = try? SignedCheckpoint(parsing: String(decoding: r.body, as: UTF8.self))
        else { return [] }
        return cp.note.signatures.filter { $0.name == "acme/\(org)" && $0.signature.count == 64 }.map {
            String(format: "%08x", $0.keyID)
        }
    }

    @Test func retailsRevokedKeyIsRefusedPastItsSizeAndRetailGoesOnUnderItsNewKey() throws {
        let c = try ProvdCluster()
        defer { c.stopAll() }
        try c.startAll()
        #expect(try c.post("retail", Ev.batch(6, org: "retail")).status == 200)
        #expect(c.waitConverged(["retail": 6]))
        // retail's key was stolen: its node stops, the others revoke the key from size 6 on.
        #expect(c.nodes["retail"]!.stop() == 0)
        let oldKey = try Self.keyFile(c, "retail")
        let newKey = c.dir.path + "/retail/retail.new.key"
        let vkey = try Self.keygen("retail", newKey)
        let v1 = c.dir.path + "/consortium.json"
        let v2 = c.dir.path + "/consortium.v2.json"
        try Self.change(
            c, ["--revoke", "retail=\(vkey)", "--from-size", "6"], from: v1,
            signers: [(try Self.keyFile(c, "brand"), nil), (try Self.keyFile(c, "care"), nil)], out: v2)
        #expect(try Self.offer(c, to: "brand", file: v2).status == 200)
        #expect(Self.allAt(c, 2))
        // The thief grows retail's log with the old key, offline, and offers the checkpoint past size 6.
        let forge = c.dir.path + "/forge"
        try FileManager.default.createDirectory(atPath: forge, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: c.dataDirectory("retail") + "/retail", toPath: forge + "/retail")
        let config = try NodeConfig.load(c.configPath("retail"))
        let append = try ChildProcess.run(
            provPath,
            ["append", "--dir", forge, "--key", oldKey, "--consortium", v1, "--link-key", config.linkKeyPath],
            input: Array((Ev.consent(999, org: "retail") + "\n").utf8), timeout: 60)
        #expect(append.termination == .exited(0), "\(append.stderrText)")
        let forged = try SignedCheckpoint(
            parsing: String(contentsOfFile: forge + "/retail/checkpoint", encoding: .utf8))
        #expect(forged.checkpoint.size == 7)
        let store = try LogStore(
            dataDirectory: forge, consortium: "acme", org: "retail", writable: false, log: { _ in })
        let proof = try store.consistencyProof(old: 6, new: 7)
        store.close()
        let body = AddCheckpoint(old: 6, proof: proof, checkpoint: forged).serialized
        for (node, sender) in [("brand", "care"), ("care", "brand")] {
            let r = try HostileInputTests.member(c, sender, to: node).post(
                "/add-checkpoint", body: body, headers: ["Content-Type": "text/plain"])
            let text = String(decoding: r.body, as: UTF8.self)
            #expect(r.status == 403 && text.contains("is signed by retail's revoked key"), "\(node): \(text)")
        }
        // Offline too: the grown log fails verification at the checkpoint past the revoked key's last size.
        let offline = try Self.prov(["verify", "--consortium", v2, forge])
        #expect(
            offline.termination == .exited(1) && offline.stdoutText.contains("revoked key"), "\(offline.stdoutText)")
        // retail's node starts again with the new descriptor and its new key, and its log goes on under that key.
        try c.rewrite("retail") {
            $0["key"] = .string("retail.new.key")
            $0["consortium"] = .string(v2)
        }
        try c.start("retail")
        try c.connect()
        let r = try Self.peerClient(c, as: "brand", to: "retail", key: try NoteVerifierKey(parsing: vkey)).post(
            "/add-checkpoint", body: body, headers: ["Content-Type": "text/plain"])
        #expect(r.status == 403, "\(String(decoding: r.body, as: UTF8.self))")
        #expect(try c.post("retail", Ev.batch(3, org: "retail", from: 50)).status == 200)
        #expect(c.waitConverged(["retail": 9]), "\(c.describe)")
        #expect(Self.ownerLines(c, "retail") == [String(format: "%08x", try NoteVerifierKey(parsing: vkey).keyID)])
        try Self.verifyAll(c, c.orgs, descriptor: v1)
    }

    /// A client of `node`'s peer listener presenting `org`'s key (its node.json's), pinning `key`.
    static func peerClient(_ c: ProvdCluster, as org: String, to node: String, key: NoteVerifierKey) throws
        -> HTTPClient
    {
        let signer = try SigningKeyFile.read(try Self.keyFile(c, org))
        let identity = try TLSIdentity(key: signer.privateKey, commonName: signer.name)
        var config = HTTPClientConfiguration(
            tls: TLSClientConfiguration(identity: identity, serverKeys: .only(key.publicKey)))
        config.readTimeout = .seconds(20)
        return try HTTPClient(address: c.nodes[node]!.peer, configuration: config)
    }

    // MARK: Leaving

    @Test func aRemovedMembersCopyStaysFrozenAndVerifiesAndItsNodeIsRefused() throws {
        let c = try ProvdCluster()
        defer { c.stopAll() }
        try c.startAll()
        #expect(try c.post("care", Ev.batch(4, org: "care")).status == 200)
        #expect(c.waitConverged(["care": 4]))
        let v1 = c.dir.path + "/consortium.json"
        let v2 = c.dir.path + "/consortium.v2.json"
        try Self.change(
            c, ["--remove", "care"], from: v1,
            signers: [(try Self.keyFile(c, "brand"), nil), (try Self.keyFile(c, "retail"), nil)], out: v2)
        #expect(try Self.offer(c, to: "brand", file: v2).status == 200)
        for org in ["brand", "retail"] {
            #expect(
                EvidenceTests.eventually(c) {
                    Self.version(c, org) == 2
                        && (try? HostileInputTests.frozen(c, at: org)) == ["care"]
                }, "\(org)")
        }
        // care's node is told (brand and retail post it the chain): it checked it, holds version 2 and takes no
        // more entries, saying why; and no member takes its handshake any more.
        #expect(
            EvidenceTests.eventually(c) {
                Self.version(c, "care") == 2
                    && c.nodes["care"]!.stderrLines.contains { $0.contains("this node's company was removed") }
            }, "\(c.nodes["care"]!.stderrLines.suffix(8))")
        let refused = try c.post("care", Ev.batch(3, org: "care", from: 10))
        #expect(refused.status != 200)
        #expect(String(decoding: refused.body, as: UTF8.self).contains("removed from consortium"))
        #expect(throws: (any Error).self) {
            _ = try HostileInputTests.member(c, "care", to: "brand").get("/logs/brand/checkpoint")
        }
        for org in ["brand", "retail"] { #expect(try c.heads(org)["care"]?.0 == 4) }
        // The frozen copy verifies with the descriptor's keys, as every other log.
        #expect(c.nodes["care"]!.stop() == 0)
        try Self.verifyAll(c, ["brand", "retail"], descriptor: v1)
        let out = try Self.prov(["verify", "--consortium", v1, c.dataDirectory("brand")])
        #expect(out.stdoutText.contains("care: OK: 4 entries"), "\(out.stdoutText)")
    }
}
