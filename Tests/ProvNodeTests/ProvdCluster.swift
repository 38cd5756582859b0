import Foundation
import ProvCrypto
import ProvLedger
import ProvNet
import ProvProcess
import ProvTools
import Synchronization
import TestSupport
import Testing

@testable import ProvNode

/// The `provd` binary built next to the test bundle (Bundle.main.bundleURL is the products folder on Linux).
let provdPath = Bundle.main.bundleURL.appendingPathComponent("provd").path
let provPath = Bundle.main.bundleURL.appendingPathComponent("prov").path

/// A consortium made by `prov nodes init`, each node a real `provd` on 127.0.0.1 port 0; the test tells them
/// each other's ports through `peerAddresses` and SIGHUP.
final class ProvdCluster: @unchecked Sendable {
    // `nodes` is touched from the test's thread only.
    let dir: URL
    let orgs: [String]
    var nodes: [String: NodeProcess] = [:]
    let consortium: Consortium
    /// Broadcast whenever any node logs a line (a copy stored, a peer connected, …).
    let activity = NSCondition()

    init(
        orgs: [String] = ["brand", "retail", "care"], peers: [String: [String]] = [:],
        extra: [String: JSONValue] = ["headsIntervalMs": .number("3600000"), "syncIntervalMs": .number("200")]
    ) throws {
        dir = URL(fileURLWithPath: TemporaryFiles.path("provd"))
        let setup = try ConsortiumSetup.initialize(directory: dir.path, orgs: orgs, consortium: "acme", basePort: 7400)
        self.orgs = orgs
        consortium = try Consortium.load(setup.descriptor)
        for org in orgs {
            try rewrite(org) { c in
                c["peer"] = .string("127.0.0.1:0")
                c["api"] = .string("127.0.0.1:0")
                if let p = peers[org] { c["peers"] = .array(p.map { .string($0) }) }
                for (k, v) in extra { c[k] = v }
            }
        }
    }

    func configPath(_ org: String) -> String { dir.path + "/\(org)/node.json" }
    func dataDirectory(_ org: String) -> String { dir.path + "/\(org)/data" }

    func config(_ org: String) throws -> [String: JSONValue] { try NodeFile.read(configPath(org)) }

    func token(_ org: String, auditor: Bool = false) throws -> String {
        try config(org)[auditor ? "auditorToken" : "token"]!.stringValue!
    }

    /// Changes node.json (kept owner-only: it holds tokens).
    func rewrite(_ org: String, _ change: (inout [String: JSONValue]) -> Void) throws {
        try NodeFile.update(configPath(org), change)
    }

    @discardableResult
    func start(_ org: String) throws -> NodeProcess {
        let activity = self.activity
        let p = try NodeProcess(org: org, config: configPath(org), provd: provdPath) { _ in
            activity.lock()
            activity.broadcast()
            activity.unlock()
        }
        nodes[org] = p
        return p
    }

    /// Tells every running node where the others listen, and waits until it has re-read them.
    func connect() throws {
        var addresses: [String: JSONValue] = [:]
        for (org, p) in nodes { addresses[org] = .string(p.peer) }
        for (org, p) in nodes {
            let before = p.stderrLines.filter { $0.contains("peer addresses re-read") }.count
            try rewrite(org) { c in
                c["peerAddresses"] = .object(addresses.keys.sorted().map { JSONMember($0, addresses[$0]!) })
            }
            p.signal(SIGHUP)
            guard p.waitForLog("peer addresses re-read", after: before) else {
                throw LedgerError(.io, "\(org) did not re-read its peer addresses: \(p.stderrLines.suffix(5))")
            }
        }
    }

    func startAll() throws {
        for o in orgs { try start(o) }
        try connect()
    }

    /// Ends every process by pid (SIGKILL if SIGTERM does not end it) and removes the folder.
    func stopAll() {
        for p in nodes.values { p.stop() }
        try? FileManager.default.removeItem(at: dir)
    }

    func client(_ org: String) throws -> HTTPClient {
        var c = HTTPClientConfiguration()
        c.readTimeout = .seconds(30)
        return try HTTPClient(address: nodes[org]!.api, configuration: c)
    }

    /// POST /v1/events as the company's app.
    func post(_ org: String, _ events: [String], client: HTTPClient? = nil) throws -> HTTPResponse {
        let c = try client ?? self.client(org)
        return try c.post(
            "/v1/events", body: Array(("[" + events.joined(separator: ",") + "]").utf8),
            headers: ["Authorization": "Bearer \(try token(org))", "Content-Type": "application/json"])
    }

    /// GET /v1/status as an auditor: per log (size, root).
    func heads(_ org: String) throws -> [String: (UInt64, String)] {
        let r = try client(org).get("/v1/status", headers: ["Authorization": "Bearer \(try token(org, auditor: true))"])
        let v = try JSON.parse(r.body)
        var out: [String: (UInt64, String)] = [:]
        for m in v["logs"]?.objectValue ?? [] {
            out[m.key] = (UInt64(m.value["size"]?.int64Value ?? -1), m.value["root"]?.stringValue ?? "")
        }
        return out
    }

    /// Waits (polling /v1/status, bounded) until every running node holds every log of `sizes` at that size with
    /// one root.
    func waitConverged(_ sizes: [String: UInt64], timeout: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let all = try? nodes.keys.map({ try heads($0) }),
                sizes.allSatisfy({ org, size in
                    all.allSatisfy { $0[org]?.0 == size } && Set(all.compactMap { $0[org]?.1 }).count == 1
                })
            {
                return true
            }
            // Every stored copy is logged: wait for the next line from any node (re-checked at least each second).
            activity.lock()
            _ = activity.wait(until: min(deadline, Date().addingTimeInterval(1)))
            activity.unlock()
        }
        return false
    }

    /// (size, root) per log per node, for failure messages.
    var describe: String {
        nodes.keys.sorted().map { org in "\(org): \((try? heads(org)).map { "\($0.mapValues(\.0))" } ?? "unreachable")"
        }
        .joined(separator: "; ")
    }

    /// Runs `prov verify` on a node's data directory.
    func verify(_ org: String) throws -> (Int32, String) {
        let r = try ChildProcess.run(
            provPath, ["verify", "--consortium", dir.path + "/consortium.json", dataDirectory(org)], timeout: 120)
        return (r.termination.status, r.stdoutText)
    }
}
