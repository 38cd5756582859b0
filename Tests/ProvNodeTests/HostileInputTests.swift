import Foundation
import Glibc
import ProvCrypto
import ProvLedger
import ProvNet
import ProvProcess
import Synchronization
import TestSupport
import Testing

@testable import ProvNode

/// Real `provd` processes on 127.0.0.1 against what a hostile member, an auditor or a stranger can send
/// (Specs/protocol.md §3.4, Specs/transport.md): numbers from the wire beyond any tree, claims that are not
/// evidence, bodies before tokens, connection and log floods. The node answers, stays up, serves everyone else, and
/// freezes a copy only on evidence it checked itself.
@Suite(.serialized, .leavesNoFiles, .timeLimit(.minutes(4))) struct HostileInputTests {
    /// A client of a node's peer listener holding member `org`'s key (mutual TLS, the node's key pinned).
    static func member(_ c: ProvdCluster, _ org: String, to node: String) throws -> HTTPClient {
        let signer = try SigningKeyFile.read(try NodeConfig.load(c.configPath(org)).keyPath)
        let identity = try TLSIdentity(key: signer.privateKey, commonName: signer.name)
        let key = c.consortium.member(node)!.key.publicKey
        var config = HTTPClientConfiguration(tls: TLSClientConfiguration(identity: identity, serverKeys: .only(key)))
        config.readTimeout = .seconds(20)
        return try HTTPClient(address: c.nodes[node]!.peer, configuration: config)
    }

    static func status(_ c: ProvdCluster, _ org: String) throws -> JSONValue {
        let r = try c.client(org).get("/v1/status", headers: ["Authorization": "Bearer \(try c.token(org))"])
        return try JSON.parse(r.body)
    }

    static func frozen(_ c: ProvdCluster, at node: String) throws -> [String] {
        (try status(c, node)["logs"]?.objectValue ?? []).filter { $0.value["frozen"] != nil }.map(\.key).sorted()
    }

    static func port(_ address: String) -> Int { NodeConfig.hostPort(address)!.port }

    // MARK: Numbers from the wire

    @Test func tilesBeyondAnyTreeAreNotFoundOnBothListeners() throws {
        let c = try ProvdCluster(orgs: ["brand", "retail"])
        defer { c.stopAll() }
        try c.startAll()
        #expect(try c.post("brand", Ev.batch(3, org: "brand")).status == 200)
        let huge: [UInt64] = [1 << 56, (1 << 56) - 1, 1 << 63, UInt64.max]
        var paths: [String] = []
        for n in huge {
            paths.append("/logs/brand/" + TileAddress(level: 0, index: n).description)
            paths.append("/logs/brand/" + TileAddress(level: nil, index: n).description)
            paths.append("/logs/brand/" + TileAddress(level: 5, index: n, width: 255).description)
        }
        paths += [
            "/logs/brand/tile/63/000", "/logs/brand/tile/7/000.p/1", "/logs/brand/checkpoints/18446744073709551615",
        ]
        #expect(paths.contains("/logs/brand/tile/0/x072/x057/x594/x037/x927/935"))
        let api = try c.client("brand")
        let auditor: HTTPHeaders = ["Authorization": "Bearer \(try c.token("brand", auditor: true))"]
        let peer = try Self.member(c, "retail", to: "brand")
        for p in paths {
            #expect(try api.get(p, headers: auditor).status == 404, "API \(p)")
            #expect(try peer.get(p).status == 404, "peer \(p)")
        }
        // A tile the tree has is still served, and the node is alive.
        #expect(try api.get("/logs/brand/tile/0/000.p/3", headers: auditor).status == 200)
        #expect(try api.get("/healthz").status == 200)
        #expect(c.nodes["brand"]!.isRunning)
    }

    // MARK: Evidence only from evidence

    /// The log's real, validly signed checkpoint with a junk consistency proof is a bad request, not equivocation:
    /// nothing is frozen or kept, before or after a restart, for a copy or for the node's own log.
    @Test func aGenuineCheckpointWithAJunkProofFreezesNothing() throws {
        let c = try ProvdCluster(orgs: ["brand", "retail"])
        defer { c.stopAll() }
        try c.startAll()
        #expect(try c.post("brand", Ev.batch(5, org: "brand")).status == 200)
        #expect(try c.post("retail", Ev.batch(2, org: "retail")).status == 200)
        #expect(c.waitConverged(["brand": 5, "retail": 2]))
        let junk = SHA256.hash("junk").base64
        let asBrand = try Self.member(c, "brand", to: "retail")
        for (log, size) in [("brand", 5), ("retail", 2)] {
            let cp = try c.client(log).get(
                "/logs/\(log)/checkpoint", headers: ["Authorization": "Bearer \(try c.token(log))"])
            let body = Array("old \(size)\n\(junk)\n\n".utf8) + cp.body
            let r = try asBrand.post("/add-checkpoint", body: body, headers: ["Content-Type": "text/plain"])
            #expect(r.status == 422, "\(log): \(String(decoding: r.body, as: UTF8.self))")
        }
        #expect(try Self.frozen(c, at: "retail").isEmpty)
        let evidence = c.dataDirectory("retail") + "/evidence"
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: evidence)) ?? []).isEmpty)
        // Both logs go on moving between the nodes, and a restart finds nothing frozen either.
        #expect(try c.post("brand", Ev.batch(2, org: "brand", from: 10)).status == 200)
        #expect(try c.post("retail", Ev.batch(2, org: "retail", from: 10)).status == 200)
        #expect(c.waitConverged(["brand": 7, "retail": 4]), "\(c.describe)")
        #expect(c.nodes["retail"]!.stop() == 0)
        try c.start("retail")
        try c.connect()
        #expect(try Self.frozen(c, at: "retail").isEmpty)
    }

    /// Evidence counts for the log its verified checkpoints name: with members shop and shop-eu, evidence about
    /// shop-eu freezes shop-eu only; files that are not evidence (old names, junk, checkpoints that agree) freeze
    /// nothing and are reported.
    @Test func evidenceFreezesTheLogItProvesAndNothingElse() throws {
        let c = try ProvdCluster(orgs: ["care", "shop", "shop-eu"])
        defer { c.stopAll() }
        let folder = c.dataDirectory("care") + "/evidence"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let shopEU = try SigningKeyFile.read(try NodeConfig.load(c.configPath("shop-eu")).keyPath)
        let shop = try SigningKeyFile.read(try NodeConfig.load(c.configPath("shop")).keyPath)
        func cp(_ signer: NoteSigner, _ size: UInt64, _ root: String) throws -> SignedCheckpoint {
            try SignedCheckpoint.sign(
                Checkpoint(origin: signer.name, size: size, root: SHA256.hash(root)), with: signer)
        }
        let real = Evidence(try cp(shopEU, 3, "one"), try cp(shopEU, 3, "another"))
        try Data(real.serialized).write(to: URL(fileURLWithPath: folder + "/" + real.fileName(org: "shop-eu")))
        // Named as if about shop, proving nothing: the same checkpoint twice, and bytes that are not evidence.
        let same = try cp(shop, 3, "one")
        try Data(Evidence(same, same).serialized).write(to: URL(fileURLWithPath: folder + "/shop.3-3.0.json"))
        try Data("equivocation by shop".utf8).write(to: URL(fileURLWithPath: folder + "/shop-3-1.txt"))
        try c.start("care")
        #expect(try Self.frozen(c, at: "care") == ["shop-eu"])
        let lines = c.nodes["care"]!.stderrLines
        #expect(lines.filter { $0.contains("is not evidence; ignored") }.count == 2, "\(lines)")
        // The same after a restart.
        #expect(c.nodes["care"]!.stop() == 0)
        try c.start("care")
        #expect(try Self.frozen(c, at: "care") == ["shop-eu"])
    }

    /// A real fork, signed with the member's key on a copy of its log, is caught from what the node holds: the
    /// copy freezes, the evidence verifies with the descriptor alone and survives a restart; the honest owner's
    /// node stops pushing to the frozen copy and says so once.
    @Test func aRealEquivocationIsCaughtAndKept() throws {
        let c = try ProvdCluster(orgs: ["brand", "retail"])
        defer { c.stopAll() }
        try c.startAll()
        #expect(try c.post("brand", Ev.batch(5, org: "brand")).status == 200)
        #expect(c.waitConverged(["brand": 5]))
        // The fork: a copy of brand's log extended with another entry under brand's key.
        let forge = c.dir.path + "/forge"
        try FileManager.default.createDirectory(atPath: forge, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: c.dataDirectory("brand") + "/brand", toPath: forge + "/brand")
        let config = try NodeConfig.load(c.configPath("brand"))
        let append = try ChildProcess.run(
            provPath,
            [
                "append", "--dir", forge, "--key", config.keyPath, "--consortium", config.consortiumPath,
                "--link-key", config.linkKeyPath,
            ], input: Array((Ev.consent(999, org: "brand") + "\n").utf8), timeout: 60)
        #expect(append.termination == .exited(0), "\(append.stderrText)")
        let forged = try SignedCheckpoint(parsing: String(contentsOfFile: forge + "/brand/checkpoint", encoding: .utf8))
        #expect(forged.checkpoint.size == 6)
        // The real history moves on past it, and retail holds it.
        #expect(try c.post("brand", Ev.batch(3, org: "brand", from: 20)).status == 200)
        #expect(c.waitConverged(["brand": 8]))
        let r = try Self.member(c, "brand", to: "retail").post(
            "/add-checkpoint", body: AddCheckpoint(old: 8, proof: [], checkpoint: forged).serialized,
            headers: ["Content-Type": "text/plain"])
        #expect(r.status == 422)
        #expect(try Self.frozen(c, at: "retail") == ["brand"])
        let folder = c.dataDirectory("retail") + "/evidence"
        let files = try FileManager.default.contentsOfDirectory(atPath: folder)
        #expect(files.count == 1 && files[0].hasPrefix("brand.6-8."), "\(files)")
        let evidence = try Evidence(parsing: Array(try Data(contentsOf: URL(fileURLWithPath: folder + "/" + files[0]))))
        let proven = try evidence.verify(consortium: c.consortium).get()
        #expect(proven.org == "brand" && proven.firstSize == 6 && proven.secondSize == 8)
        // brand goes on writing; its node stops pushing to retail's frozen copy and says so once.
        for k in 0..<3 {
            #expect(try c.post("brand", Ev.batch(1, org: "brand", from: 40 + k)).status == 200)
        }
        let brand = c.nodes["brand"]!
        #expect(brand.waitForLog("not pushing it there any more"))
        #expect(try c.post("brand", Ev.batch(1, org: "brand", from: 50)).status == 200)
        #expect(try c.heads("brand")["brand"]?.0 == 12)
        #expect(brand.stderrLines.filter { $0.contains("not pushing it there any more") }.count == 1)
        #expect(try c.heads("retail")["brand"]?.0 == 8, "a frozen copy takes nothing more")
        // Kept across a restart.
        #expect(c.nodes["retail"]!.stop() == 0)
        try c.start("retail")
        #expect(try Self.frozen(c, at: "retail") == ["brand"])
    }

    // MARK: Bodies, connections, logs

    /// Requests that will be refused are answered on their head: forty unauthenticated 16 MiB bodies are never
    /// read (the node answers 401 before a byte of them is sent) and the node's memory does not grow; bodies past
    /// the budget get 503 with Retry-After; the budget comes back once a body is released.
    @Test func bodiesAreNotReadBeforeTheRequestIsAdmitted() throws {
        let c = try ProvdCluster(
            orgs: ["brand"],
            extra: ["headsIntervalMs": .number("3600000"), "bodyBudgetBytes": .number(String(16 << 20))])
        defer { c.stopAll() }
        try c.startAll()
        let node = c.nodes["brand"]!
        let port = Self.port(node.api)
        #expect(try c.post("brand", Ev.batch(5, org: "brand")).status == 200)
        let before = node.rss
        var open: [RawConnection] = []
        for _ in 0..<40 {
            let conn = try RawConnection(port: port)
            try conn.send("POST /v1/events HTTP/1.1\r\nHost: n\r\nContent-Length: 16777216\r\n\r\n")
            let r = try #require(try conn.readResponse())
            #expect(r.status == 401 && r.header("connection") == "close")
            open.append(conn)
        }
        #expect(node.rss - before < 100 << 20, "RSS \(before) → \(node.rss)")
        for conn in open { #expect(conn.waitForClose()) }
        // The budget: one admitted body of 16 MiB (never sent) holds it all; another request gets 503.
        let token = try c.token("brand")
        let holder = try RawConnection(port: port)
        try holder.send(
            "POST /v1/events HTTP/1.1\r\nHost: n\r\nAuthorization: Bearer \(token)\r\nContent-Length: 16777216\r\n\r\n")
        let event = Ev.consent(77, org: "brand")
        func post() throws -> RawResponse? {
            let conn = try RawConnection(port: port)
            try conn.send(
                "POST /v1/events HTTP/1.1\r\nHost: n\r\nAuthorization: Bearer \(token)\r\nContent-Length: "
                    + "\(event.utf8.count)\r\n\r\n\(event)")
            return try conn.readResponse()
        }
        // The holder's head is read before the next request's: retry until the node has it (each try a round trip).
        var refused: RawResponse?
        for _ in 0..<200 where refused == nil {
            let r = try post()
            if r?.status == 503 { refused = r }
        }
        #expect(refused?.header("retry-after") == "1", "\(String(describing: refused?.status))")
        holder.close()
        var accepted = false
        for _ in 0..<200 where !accepted { accepted = try post()?.status == 200 }
        #expect(accepted, "the budget did not come back")
    }

    /// A flood of connections over the caps for ten seconds writes a few lines and a count, not a line each; the
    /// count is in /metrics.
    @Test func aConnectionFloodDoesNotFillTheLog() throws {
        let c = try ProvdCluster(
            orgs: ["brand"],
            extra: [
                "headsIntervalMs": .number("3600000"), "maxConnections": .number("32"),
                "maxConnectionsPerAddress": .number("16"), "requestTimeoutMs": .number("30000"),
            ])
        defer { c.stopAll() }
        try c.startAll()
        let node = c.nodes["brand"]!
        let port = Self.port(node.api)
        let logged = { node.stderrLines.reduce(0) { $0 + $1.utf8.count + 1 } }
        let before = logged()
        let refusedBefore = try Self.rejected(c, "over-capacity")
        let deadline = Date().addingTimeInterval(10)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            var held: [RawConnection] = []
            while Date() < deadline {
                // Connections that start a request and never finish it: none is idle, so past the cap each new
                // one is refused.
                guard let conn = try? RawConnection(port: port, readTimeoutSeconds: 1, from: "127.0.0.2") else {
                    continue
                }
                try? conn.send("GET /healthz HTTP/1.1\r\n")
                held.append(conn)
                if held.count > 24 { held.removeFirst() }
            }
        }
        let refused = try Self.rejected(c, "over-capacity") - refusedBefore
        let grown = logged() - before
        #expect(refused > 1000, "the flood was too small to mean anything: \(refused) refused")
        #expect(grown < 1 << 20, "stderr grew by \(grown) bytes for \(refused) refused connections")
        let metrics = try c.client("brand").get(
            "/metrics", headers: ["Authorization": "Bearer \(try c.token("brand"))"])
        #expect(
            String(decoding: metrics.body, as: UTF8.self).contains(
                "prov_log_lines_suppressed_total{kind=\"net:overCapacity\"}"))
    }

    static func rejected(_ c: ProvdCluster, _ reason: String) throws -> Int {
        let m = try c.client("brand").get("/metrics", headers: ["Authorization": "Bearer \(try c.token("brand"))"])
        let line = String(decoding: m.body, as: UTF8.self).split(separator: "\n").first {
            $0.hasPrefix("prov_rejected_requests_total{reason=\"\(reason)\"}")
        }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
    }

    /// While one client holds its share of connections, another is served: from another address (the first
    /// holds requests it never finishes), and from the same address (the first holds idle connections, which go
    /// first at the cap).
    @Test func oneClientCannotTakeTheWholeAPI() throws {
        let c = try ProvdCluster(
            orgs: ["brand"],
            extra: [
                "headsIntervalMs": .number("3600000"), "maxConnections": .number("64"),
                "maxConnectionsPerAddress": .number("32"), "requestTimeoutMs": .number("30000"),
            ])
        defer { c.stopAll() }
        try c.startAll()
        let port = Self.port(c.nodes["brand"]!.api)
        let token = try c.token("brand")
        for (from, request) in [("127.0.0.2", "GET /healthz HTTP/1.1\r\n"), ("127.0.0.1", "")] {
            let stop = Atomic<Bool>(false)
            let flooding = DispatchGroup()
            DispatchQueue.global().async(group: flooding) {
                var held: [RawConnection] = []
                while !stop.load(ordering: .relaxed) {
                    guard let conn = try? RawConnection(port: port, readTimeoutSeconds: 1, from: from) else { continue }
                    if !request.isEmpty { try? conn.send(request) }
                    held.append(conn)
                    if held.count > 48 { held.removeFirst() }
                }
            }
            var served = 0
            for i in 0..<20 {
                let health = try? RawConnection(port: port).sendAndRead("GET /healthz HTTP/1.1\r\nHost: n\r\n\r\n")
                let event = Ev.consent(100 + i, org: "brand")
                let post = try? RawConnection(port: port).sendAndRead(
                    "POST /v1/events HTTP/1.1\r\nHost: n\r\nAuthorization: Bearer \(token)\r\nContent-Length: "
                        + "\(event.utf8.count)\r\n\r\n\(event)")
                if health?.status == 200 && post?.status == 200 { served += 1 }
            }
            stop.store(true, ordering: .relaxed)
            flooding.wait()
            #expect(served >= 19, "flood from \(from): served \(served) of 20")
        }
    }

    // MARK: Smaller points

    @Test func headWorksOnEveryReadRouteAndAPinFailureSaysWhy() throws {
        let c = try ProvdCluster()
        defer { c.stopAll() }
        try c.startAll()
        #expect(try c.post("brand", Ev.batch(2, org: "brand")).status == 200)
        let port = Self.port(c.nodes["brand"]!.api)
        let token = try c.token("brand", auditor: true)
        for path in [
            "/healthz", "/v1/status", "/metrics", "/logs/brand/checkpoint",
            "/v1/permit?subject=email%3Auser1%40example.com&org=brand&purpose=dpv:DirectMarketing",
        ] {
            let conn = try RawConnection(port: port)
            try conn.send("HEAD \(path) HTTP/1.1\r\nHost: n\r\nAuthorization: bearer \(token)\r\n\r\n")
            let head = try #require(try conn.readResponse(toHEAD: true))
            try conn.send("GET \(path) HTTP/1.1\r\nHost: n\r\nAuthorization: Bearer \(token)\r\n\r\n")
            let get = try #require(try conn.readResponse())
            #expect(head.status == 200 && get.status == 200, "\(path): HEAD \(head.status), GET \(get.status)")
            #expect(head.body.isEmpty && head.header("content-type") == get.header("content-type"), "\(path)")
        }
        // A wrong method, a body on a read route, a path no route takes: the error names the route, never the
        // customer identifier the path carries.
        for (method, path, body, status) in [
            ("DELETE", "/v1/subjects/email%3Aalice%40example.com/timeline", "", 405),
            ("GET", "/v1/subjects/email%3Aalice%40example.com/timeline", "x", 413),
            ("GET", "/v1/subjects/email%3Aalice%40example.com/nothing", "", 404),
        ] {
            let conn = try RawConnection(port: port)
            try conn.send(
                "\(method) \(path) HTTP/1.1\r\nHost: n\r\nAuthorization: Bearer \(token)\r\n"
                    + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
            let r = try #require(try conn.readResponse())
            let text = String(decoding: r.body, as: UTF8.self)
            #expect(r.status == status, "\(method) \(path): \(text)")
            #expect(!text.contains("alice") && text.contains("/v1/subjects/{…}/"), "\(text)")
        }
        // A time in milliseconds is held to the RFC 3339 form's range.
        let far = try c.client("brand").get(
            "/v1/permit?subject=email%3Auser1%40example.com&org=brand&purpose=dpv:DirectMarketing&at=18446744073709551615",
            headers: ["Authorization": "Bearer \(token)"])
        #expect(far.status == 400 && String(decoding: far.body, as: UTF8.self).contains("past the year 9999"))
        // The pages a customer opens run their own script only: a policy that names it by hash, and no sniffing.
        for (path, accept) in [
            ("/v1/subjects/email%3Auser1%40example.com/report", "text/html"),
            ("/v1/entries/brand/0/receipt.html", "*/*"),
        ] {
            let page = try c.client("brand").get(path, headers: ["Authorization": "Bearer \(token)", "Accept": accept])
            #expect(page.status == 200, "\(path)")
            let policy = page.headers["Content-Security-Policy"] ?? ""
            #expect(
                policy.contains("default-src 'none'") && policy.contains("script-src 'sha256-"), "\(path): \(policy)")
            #expect(page.headers["X-Content-Type-Options"] == "nosniff", "\(path)")
            #expect(String(decoding: page.body, as: UTF8.self).contains("<meta http-equiv=\"Content-Security-Policy\""))
        }
        // brand is told that retail listens where care does: care's key is not retail's, and the log says so.
        let brand = c.nodes["brand"]!
        try c.rewrite("brand") { cfg in
            cfg["peerAddresses"] = .object([
                JSONMember("care", .string(c.nodes["care"]!.peer)),
                JSONMember("retail", .string(c.nodes["care"]!.peer)),
            ])
        }
        brand.signal(SIGHUP)
        #expect(try c.post("brand", Ev.batch(1, org: "brand", from: 9)).status == 200)
        #expect(brand.waitForLog("which is not pinned", timeout: 20), "\(brand.stderrLines.suffix(5))")
        let line = brand.stderrLines.first { $0.contains("which is not pinned") } ?? ""
        #expect(line.contains("peer unreachable") && line.contains(#""peer":"retail""#), "\(line)")
    }
}

extension RawConnection {
    /// Sends one request and reads its response.
    func sendAndRead(_ request: String) throws -> RawResponse? {
        try send(request)
        return try readResponse()
    }
}
