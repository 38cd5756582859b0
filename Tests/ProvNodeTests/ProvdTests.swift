import Foundation
import ProvCrypto
import ProvLedger
import ProvNet
import ProvProcess
import Synchronization
import TestSupport
import Testing

@testable import ProvNode

/// Real `provd` processes on 127.0.0.1 (Specs/protocol.md): convergence, a crash and catch-up, relay, hostile clients,
/// lying peers, and a tlog-tiles client written from the C2SP text.
@Suite(.serialized, .leavesNoFiles, .timeLimit(.minutes(3))) struct ProvdTests {
    @Test func threeNodesFromNodesInitConvergeAndEveryDataDirectoryVerifies() throws {
        let c = try ProvdCluster()
        defer { c.stopAll() }
        try c.startAll()
        var acks: [String: [(UInt64, String)]] = [:]
        for (i, org) in c.orgs.enumerated() {
            for k in 0..<3 {
                let r = try c.post(org, Ev.batch(20 + i, org: org, from: k * 100))
                #expect(r.status == 200, "\(String(decoding: r.body, as: UTF8.self))")
                for e in try JSON.parse(r.body).arrayValue ?? [] {
                    acks[org, default: []].append((UInt64(e["seq"]!.int64Value!), e["leafHash"]!.stringValue!))
                }
            }
        }
        #expect(acks["brand"]?.map(\.0) == Array(0..<60))
        for (org, p) in c.nodes {
            #expect(!p.stderrLines.contains { $0.contains(#""level":"error""#) }, "\(org): \(p.stderrLines)")
        }
        #expect(c.waitConverged(["brand": 60, "retail": 63, "care": 66]), "\(c.describe)")
        for org in c.orgs { #expect(c.nodes[org]!.stop() == 0, "\(org) did not stop cleanly") }
        for org in c.orgs {
            let (status, out) = try c.verify(org)
            #expect(status == 0, "\(out)")
            #expect(out.contains("OK: 3 logs, 189 entries"), "\(out)")
        }
    }

    @Test func aKilledNodeCatchesUpAndNoAcknowledgedEntryIsLost() throws {
        let c = try ProvdCluster()
        defer { c.stopAll() }
        try c.startAll()
        let careAcks = try JSON.parse(try c.post("care", Ev.batch(5, org: "care")).body).arrayValue ?? []
        #expect(careAcks.count == 5)
        #expect(c.waitConverged(["care": 5]))
        // A writer keeps brand busy while care is killed and restarted; the test waits on its acknowledgements.
        let stop = Atomic<Bool>(false)
        let progress = NSCondition()
        let brandAcks = Mutex<[(UInt64, String)]>([])
        let writerDone = DispatchSemaphore(value: 0)
        let writer = Thread {
            defer { writerDone.signal() }
            guard let client = try? c.client("brand") else { return }
            var k = 0
            while !stop.load(ordering: .relaxed) {
                guard let r = try? c.post("brand", Ev.batch(25, org: "brand", from: k * 100), client: client),
                    r.status == 200, let list = try? JSON.parse(r.body).arrayValue
                else { continue }
                brandAcks.withLock { a in
                    for e in list { a.append((UInt64(e["seq"]!.int64Value!), e["leafHash"]!.stringValue!)) }
                }
                progress.lock()
                progress.broadcast()
                progress.unlock()
                k += 1
            }
        }
        func waitForAcks(_ n: Int) -> Bool {
            let deadline = Date().addingTimeInterval(60)
            progress.lock()
            defer { progress.unlock() }
            while brandAcks.withLock({ $0.count }) < n {
                if !progress.wait(until: deadline) { return false }
            }
            return true
        }
        func stopWriter() {
            if !stop.exchange(true, ordering: .acquiringAndReleasing) { writerDone.wait() }
        }
        writer.start()
        defer { stopWriter() }
        // Kill care once brand has written a few groups.
        #expect(waitForAcks(100))
        c.nodes["care"]!.crash()
        #expect(try c.post("retail", Ev.batch(9, org: "retail")).status == 200)
        #expect(waitForAcks(400))
        try c.start("care")
        try c.connect()
        stopWriter()
        let acked = brandAcks.withLock { $0 }
        let total = UInt64(acked.count)
        #expect(c.waitConverged(["brand": total, "retail": 9, "care": 5]), "\(c.describe)")
        // Every acknowledged entry is in care's copy with the leaf hash it was acknowledged with, and care's own
        // acknowledged entries survived the kill.
        let careClient = try c.client("care")
        let auth: HTTPHeaders = ["Authorization": "Bearer \(try c.token("care", auditor: true))"]
        var tiles: [UInt64: [UInt8]] = [:]
        func leaf(_ log: String, _ seq: UInt64) throws -> String {
            let t = seq / 256
            let size = log == "brand" ? total : 5
            let width = min(256, size - t * 256)
            let key = (log == "brand" ? 0 : 1 << 40) + t
            if tiles[key] == nil {
                let path = "/logs/\(log)/tile/0/" + String(format: "%03d", t) + (width < 256 ? ".p/\(width)" : "")
                let r = try careClient.get(path, headers: auth)
                #expect(r.status == 200)
                tiles[key] = r.body
            }
            let i = Int(seq % 256) * 32
            return tiles[key]![i..<(i + 32)].map { String(format: "%02x", $0) }.joined()
        }
        for (seq, hash) in acked { #expect(try leaf("brand", seq) == hash) }
        for e in careAcks { #expect(try leaf("care", UInt64(e["seq"]!.int64Value!)) == e["leafHash"]!.stringValue!) }
        for org in c.orgs { #expect(c.nodes[org]!.stop() == 0) }
        for org in c.orgs { #expect(try c.verify(org).0 == 0) }
    }

    @Test func aNodeWithOnePeerReceivesTheThirdCompanysLogThroughIt() throws {
        let c = try ProvdCluster(peers: ["brand": ["retail"], "retail": ["brand", "care"], "care": ["retail"]])
        defer { c.stopAll() }
        try c.startAll()
        #expect(try c.post("brand", Ev.batch(30, org: "brand")).status == 200)
        #expect(c.waitConverged(["brand": 30]))
        #expect(try c.heads("care")["brand"]?.0 == 30)
        // care never talked to brand: it holds no connection to it.
        #expect(!c.nodes["care"]!.stderrLines.contains { $0.contains("peer connected") && $0.contains("brand") })
    }

    @Test func hostileClientsAreDroppedWhileReplicationCarriesOn() throws {
        let c = try ProvdCluster(
            orgs: ["brand", "retail"],
            extra: [
                "headsIntervalMs": .number("3600000"), "syncIntervalMs": .number("200"),
                "requestTimeoutMs": .number("800"),
            ])
        defer { c.stopAll() }
        try c.startAll()
        let brand = c.nodes["brand"]!
        // 1. A client whose key is not in the descriptor is refused in the TLS handshake.
        let stranger = try TLSIdentity(key: .generate())
        var tls = HTTPClientConfiguration(
            tls: TLSClientConfiguration(identity: stranger, serverKeys: .init(allowing: { _ in true })))
        tls.connectTimeout = .seconds(3)
        let strangerClient = try HTTPClient(address: brand.peer, configuration: tls)
        #expect(throws: NetError.self) { _ = try strangerClient.get("/logs/brand/checkpoint") }
        #expect(brand.waitForLog("handshake"))
        // 2. Garbage, 3. an oversized body, 4. a slow client, 5. a half-open connection, all on the API port.
        let (host, port) = NodeConfig.hostPort(brand.api)!
        func connect() -> Int32 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET, host, &a.sin_addr)
            _ = withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            return fd
        }
        /// Everything the server sends until it closes the connection; nil if it has not closed it after 10 s.
        func readAll(_ fd: Int32) -> String? {
            var out = [UInt8]()
            var buf = [UInt8](repeating: 0, count: 4096)
            var tv = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            while true {
                let n = read(fd, &buf, buf.count)
                if n == 0 || (n < 0 && errno == ECONNRESET) { return String(decoding: out, as: UTF8.self) }
                if n < 0 { return nil }
                out += buf[0..<n]
            }
        }
        let garbage = connect()
        _ = "\u{1}\u{2}GARBAGE \u{7f}\r\n\r\n".withCString { write(garbage, $0, strlen($0)) }
        #expect(readAll(garbage)?.hasPrefix("HTTP/1.1 400") == true)
        close(garbage)
        let big = connect()
        let head =
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(try c.token("brand"))\r\nContent-Length: 99999999\r\n\r\n"
        _ = head.withCString { write(big, $0, strlen($0)) }
        #expect(readAll(big)?.hasPrefix("HTTP/1.1 413") == true)
        close(big)
        let slow = connect()
        _ = "GET /healthz HTTP/1.1\r\n".withCString { write(slow, $0, strlen($0)) }
        let halfOpen = connect()
        // Meanwhile replication carries on: brand's events reach retail.
        #expect(try c.post("brand", Ev.batch(10, org: "brand")).status == 200)
        #expect(c.waitConverged(["brand": 10]))
        // The slow and the silent client are dropped after the request timeout: the server closes both.
        #expect(readAll(slow)?.hasPrefix("HTTP/1.1 408") == true)
        #expect(readAll(halfOpen) != nil, "a connection that sends nothing must be closed by the server")
        close(slow)
        close(halfOpen)
        // The node still serves everyone else, and its metrics count what it refused.
        let m = try c.client("brand").get(
            "/metrics", headers: ["Authorization": "Bearer \(try c.token("brand", auditor: true))"])
        let text = String(decoding: m.body, as: UTF8.self)
        for reason in ["handshake-refused", "malformed", "body-too-large", "timeout"] {
            let line = text.split(separator: "\n").first { $0.contains("reason=\"\(reason)\"") }
            #expect(line.map { !$0.hasSuffix(" 0") } == true, "\(reason): \(line ?? "missing")")
        }
        #expect(text.contains("prov_log_size{log=\"brand\"} 10"))
    }

    @Test func aPeerServingTamperedBundlesOrAForeignKeysCheckpointIsRejectedAndNothingIsStored() throws {
        // retail's only peer is a fake care node run by this test: it has care's key (so the TLS handshake
        // succeeds) and serves brand's real log, but changes what it serves.
        let c = try ProvdCluster(orgs: ["brand", "retail", "care"], peers: ["retail": ["care"]])
        defer { c.stopAll() }
        // brand's log: 300 entries written with brand's key, in a folder the fake peer serves from.
        let src = c.dir.appendingPathComponent("fake-care-data").path
        let brandKey = try SigningKeyFile.read(c.dir.path + "/brand/brand.key")
        let ingestor = try Ingestor(
            dataDirectory: src, consortium: c.consortium, signer: brandKey,
            linkKey: try LinkKey.load(c.dir.path + "/link.key"))
        for g in 0..<3 {
            _ = try ingestor.append(
                Array((Ev.batch(100, org: "brand", from: g * 100).joined(separator: "\n") + "\n").utf8))
        }
        final class StoreBox: @unchecked Sendable {
            // Used only under `lock` (the server's handler threads).
            let store: LogStore
            let lock = NSLock()
            init(_ s: LogStore) { store = s }
        }
        let box = StoreBox(ingestor.store)
        let mode = Mutex("tamper")
        let careKey = try SigningKeyFile.read(c.dir.path + "/care/care.key")
        let forger = try NoteSigner(name: "acme/brand", privateKey: .generate())
        let keys = c.consortium.members.map(\.key.publicKey)
        let fake = try HTTPServer.start(
            HTTPServerConfiguration(
                address: "127.0.0.1:0",
                tls: TLSServerConfiguration(
                    identity: try TLSIdentity(key: careKey.privateKey), clientKeys: TLSPeerKeys(keys)))
        ) { req, responder in
            box.lock.lock()
            defer { box.lock.unlock() }
            let store = box.store
            let m = mode.withLock { $0 }
            if req.path == "/logs/brand/checkpoint" {
                var cp = store.latest!
                if m == "forge" { cp = try! SignedCheckpoint.sign(cp.checkpoint, with: forger) }
                responder.respond(HTTPResponse(status: 200, contentType: "text/plain", body: cp.serialized))
            } else if req.path.hasPrefix("/logs/brand/checkpoints/") {
                let n = UInt64(req.path.split(separator: "/").last!)!
                var cp = try! store.checkpoint(atLeast: n)!
                if m == "forge" { cp = try! SignedCheckpoint.sign(cp.checkpoint, with: forger) }
                responder.respond(HTTPResponse(status: 200, contentType: "text/plain", body: cp.serialized))
            } else if req.path.hasPrefix("/logs/brand/tile/entries/"),
                let t = TileAddress(path: req.path.dropFirst("/logs/brand/".count))
            {
                // Tampered until the peer turns honest: a pull that began while the head checkpoint was genuine
                // (tamper mode) and reads its bundles after the switch to forge mode must still find them bad.
                var b = try! store.tile(t)
                if m != "honest" { b[b.count - 7] ^= 0x01 }
                responder.respond(HTTPResponse(status: 200, headers: [:], body: b))
            } else {
                responder.respond(HTTPResponse(status: 404, headers: [:], body: []))
            }
        }
        defer { fake.shutdown() }
        try c.start("retail")
        try c.rewrite("retail") {
            $0["peerAddresses"] = .object([JSONMember("care", .string(fake.localAddress.description))])
        }
        c.nodes["retail"]!.signal(SIGHUP)
        let retail = c.nodes["retail"]!
        #expect(retail.waitForLog("does not verify"), "\(retail.stderrLines)")
        #expect(try c.heads("retail")["brand"]?.0 == 0)
        mode.withLock { $0 = "forge" }
        #expect(retail.waitForLog("does not verify against its consortium key"), "\(retail.stderrLines)")
        #expect(try c.heads("retail")["brand"]?.0 == 0)
        // Served honestly, the same log is fetched, verified and stored.
        mode.withLock { $0 = "honest" }
        #expect(c.waitConverged(["brand": 300]))
        #expect(retail.stop() == 0)
        #expect(try c.verify("retail").0 == 0)
    }
}

/// A C2SP tlog-tiles client written from the specification's text alone (not the library's tile code): it reads
/// a node's checkpoint, tiles and entry bundles over HTTP and recomputes the root.
@Suite(.serialized, .leavesNoFiles, .timeLimit(.minutes(2))) struct TlogTilesClientTests {
    /// `<N>` as zero-padded 3-digit path elements, all but the last prefixed with `x` (tlog-tiles "Merkle Tree").
    static func index(_ n: UInt64) -> String {
        var groups: [String] = []
        var v = n
        repeat {
            groups.insert(String(format: "%03d", v % 1000), at: 0)
            v /= 1000
        } while v > 0
        return groups.enumerated().map { $0.offset < groups.count - 1 ? "x" + $0.element : $0.element }.joined(
            separator: "/")
    }

    /// RFC 6962 §2.1 MTH over leaf hashes.
    static func mth(_ leaves: ArraySlice<[UInt8]>) -> [UInt8] {
        if leaves.isEmpty { return SHA256.hash([UInt8]()).bytes }
        if leaves.count == 1 { return leaves.first! }
        var k = 1
        while k * 2 < leaves.count { k *= 2 }
        let l = mth(leaves.prefix(k))
        let r = mth(leaves.dropFirst(k))
        return SHA256.hash([0x01] + l + r).bytes
    }

    @Test func readsCheckpointTilesAndBundlesAndRecomputesTheRoot() throws {
        let c = try ProvdCluster(orgs: ["brand", "retail"])
        defer { c.stopAll() }
        try c.startAll()
        for k in 0..<6 { #expect(try c.post("brand", Ev.batch(100, org: "brand", from: k * 100)).status == 200) }
        let client = try c.client("brand")
        let auth: HTTPHeaders = ["Authorization": "Bearer \(try c.token("brand", auditor: true))"]
        let note = String(decoding: try client.get("/logs/brand/checkpoint", headers: auth).body, as: UTF8.self)
        let lines = note.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0] == "acme/brand")
        let size = UInt64(lines[1])!
        let root = [UInt8](Data(base64Encoded: String(lines[2]))!)
        #expect(size == 600)
        // Level 0: full tiles of 256 hashes, then a partial tile of size mod 256.
        var leaves: [[UInt8]] = []
        var n: UInt64 = 0
        while n * 256 < size {
            let w = min(256, size - n * 256)
            let suffix = w < 256 ? ".p/\(w)" : ""
            let tile = try client.get("/logs/brand/tile/0/\(Self.index(n))\(suffix)", headers: auth)
            #expect(tile.status == 200 && tile.body.count == Int(w) * 32)
            let bundle = try client.get("/logs/brand/tile/entries/\(Self.index(n))\(suffix)", headers: auth)
            #expect(bundle.status == 200)
            // Entry bundle: big-endian uint16 length-prefixed entries; each hashes (RFC 6962 leaf) to its tile hash.
            var at = 0
            var i = 0
            while at < bundle.body.count {
                let len = Int(bundle.body[at]) << 8 | Int(bundle.body[at + 1])
                let entry = Array(bundle.body[(at + 2)..<(at + 2 + len)])
                let leaf = SHA256.hash([0x00] + entry).bytes
                #expect(leaf == Array(tile.body[(i * 32)..<(i * 32 + 32)]))
                leaves.append(leaf)
                at += 2 + len
                i += 1
            }
            #expect(i == Int(w))
            n += 1
        }
        #expect(Self.mth(leaves[...]) == root)
        // Level 1: one partial tile of width floor(600 / 256) = 2; each hash is MTH of a full level-0 tile.
        let l1 = try client.get("/logs/brand/tile/1/000.p/2", headers: auth)
        #expect(l1.body.count == 64)
        #expect(Array(l1.body[0..<32]) == Self.mth(leaves[0..<256]))
        #expect(Array(l1.body[32..<64]) == Self.mth(leaves[256..<512]))
        // The same log, mirrored by retail, is served the same way with the same root.
        #expect(c.waitConverged(["brand": 600]))
        let retailNote = String(
            decoding: try c.client("retail").get(
                "/logs/brand/checkpoint", headers: ["Authorization": "Bearer \(try c.token("retail", auditor: true))"]
            ).body,
            as: UTF8.self)
        #expect(retailNote.split(separator: "\n")[2] == lines[2])
        // Not yet there, or not a tile path: 404 and 400.
        #expect(try client.get("/logs/brand/tile/0/003", headers: auth).status == 404)
        #expect(try client.get("/logs/brand/tile/0/3", headers: auth).status == 400)
        #expect(try client.get("/logs/brand/checkpoint").status == 401)
    }

    /// What a newcomer meets first: answers that say what was wrong (JSON Lines instead of one event or an
    /// array; no token; a token the node does not know), `bearer` in any case, and a fresh node whose empty logs
    /// are not reported as errors.
    @Test func theAPIsAnswersSayWhatWasWrong() throws {
        let c = try ProvdCluster(orgs: ["brand", "retail"])
        defer { c.stopAll() }
        try c.startAll()
        for (org, p) in c.nodes {
            let errors = p.stderrLines.filter { $0.contains(#""level":"error""#) }
            #expect(errors.isEmpty, "a fresh node of \(org) logged errors: \(errors)")
        }
        let client = try c.client("brand")
        let token = try c.token("brand")
        func post(_ body: String, _ authorization: String?) throws -> (Int, String) {
            var h: HTTPHeaders = ["Content-Type": "application/json"]
            if let authorization { h.set("Authorization", authorization) }
            let r = try client.send(method: "POST", target: "/v1/events", headers: h, body: Array(body.utf8))
            return (r.status, (try? JSON.parse(r.body))?["error"]?.stringValue ?? "")
        }
        let lines = Ev.consent(1, org: "brand") + "\n" + Ev.consent(2, org: "brand") + "\n"
        let jsonLines = try post(lines, "Bearer \(token)")
        #expect(jsonLines.0 == 400 && jsonLines.1.contains("JSON Lines"), "\(jsonLines)")
        #expect(jsonLines.1.contains("one event object, or a JSON array of events"))
        let missing = try post(Ev.consent(1, org: "brand"), nil)
        #expect(missing.0 == 401 && missing.1.contains("a bearer token is required"), "\(missing)")
        let unknown = try post(Ev.consent(1, org: "brand"), "Bearer not-a-token-of-this-node")
        #expect(unknown.0 == 401 && unknown.1.contains("not one of this node's tokens"), "\(unknown)")
        let lowercase = try post(Ev.consent(1, org: "brand"), "bearer \(token)")
        #expect(lowercase.0 == 200, "\(lowercase)")
    }
}

/// provd refuses to start, with a message that says what and where and exit code 2, on a bad configuration, a
/// locked data directory or a busy port.
@Suite(.serialized, .leavesNoFiles, .timeLimit(.minutes(2))) struct ProvdStartTests {
    /// Runs provd to its end (it must not start) and returns its exit status and stderr.
    static func failedStart(_ config: String, environment: [String: String] = [:]) throws -> (Int32, String) {
        let r = try ChildProcess.run(
            provdPath, ["--config", config, "--log-format", "text"], environment: environment, timeout: 60)
        return (r.termination.status, r.stderrText)
    }

    @Test func aBadConfigurationALockedDataDirectoryAndABusyPortAreRefused() throws {
        let c = try ProvdCluster(orgs: ["brand", "retail"])
        defer { c.stopAll() }
        let brand = try c.start("brand")
        // The same node again: its data directory is locked by the running one.
        let (locked, lockedText) = try Self.failedStart(c.configPath("brand"))
        #expect(locked == 2)
        #expect(lockedText.contains("is locked by another writer (pid \(brand.pid))"), "\(lockedText)")
        // Another node on the running node's peer port.
        try c.rewrite("retail") { $0["peer"] = .string(brand.peer) }
        let (busy, busyText) = try Self.failedStart(c.configPath("retail"))
        #expect(busy == 2)
        #expect(busyText.contains("peer listener \(brand.peer)"), "\(busyText)")
        // A misspelt field, and a file others may read (it holds tokens).
        try c.rewrite("retail") {
            $0["peer"] = .string("127.0.0.1:0"); $0["sycnIntervalMs"] = .number("100")
        }
        let (bad, badText) = try Self.failedStart(c.configPath("retail"))
        #expect(bad == 2)
        #expect(badText.contains("field 'sycnIntervalMs' is not known"), "\(badText)")
        try c.rewrite("retail") { $0["sycnIntervalMs"] = nil }
        chmod(c.configPath("retail"), 0o644)
        let (open, openText) = try Self.failedStart(c.configPath("retail"))
        #expect(open == 2)
        #expect(openText.contains("node.json"), "\(openText)")
        chmod(c.configPath("retail"), 0o600)
        // A log format it does not know, from the environment.
        let (format, formatText) = try Self.failedStart(c.configPath("retail"), environment: ["PROV_LOG_FORMAT": "xml"])
        #expect(format == 2)
        #expect(formatText.contains("PROV_LOG_FORMAT takes text or json"), "\(formatText)")
        // Put right, it starts; the running node is untouched throughout.
        try c.start("retail")
        #expect(try c.heads("brand")["brand"]?.0 == 0)
    }
}
