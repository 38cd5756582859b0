import Foundation
import ProvCrypto
import ProvLedger
import ProvNet
import Synchronization
import TestSupport
import Testing

@testable import ProvNode

/// The `provd` binary built next to the test bundle (Bundle.main.bundleURL is the products folder on Linux).
let provdPath = Bundle.main.bundleURL.appendingPathComponent("provd").path
let provPath = Bundle.main.bundleURL.appendingPathComponent("prov").path

/// One real `provd` process: started with its configuration, its ready line read, its stderr collected while it
/// runs, ended by pid.
final class ProvdProcess: @unchecked Sendable {
    // Set once in init; the lines live in `output`, which guards itself.
    let org: String
    let process = Process()
    let peer: String
    let api: String
    let output: LineBuffer

    struct StartFailed: Error, CustomStringConvertible { var description: String }

    /// stderr lines as they arrive, with a condition to wait on.
    final class LineBuffer: @unchecked Sendable {
        // `lines` is guarded by `cond`.
        let cond = NSCondition()
        var lines: [String] = []
        /// Broadcast on every line, so a test can wait for progress anywhere in a cluster.
        let activity: NSCondition?
        init(activity: NSCondition?) { self.activity = activity }

        func append(_ line: String) {
            cond.lock()
            lines.append(line)
            cond.broadcast()
            cond.unlock()
            if let a = activity {
                a.lock()
                a.broadcast()
                a.unlock()
            }
        }
    }

    init(org: String, config: String, activity: NSCondition? = nil) throws {
        self.org = org
        let output = LineBuffer(activity: activity)
        self.output = output
        process.executableURL = URL(fileURLWithPath: provdPath)
        process.arguments = ["--config", config, "--log-format", "json"]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // stderr is read while the node runs: a full pipe would block it.
        Thread.detachNewThread {
            var buffer = Data()
            while true {
                let d = err.fileHandleForReading.availableData
                if d.isEmpty { break }
                buffer.append(d)
                while let nl = buffer.firstIndex(of: 0x0A) {
                    output.append(String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self))
                    buffer.removeSubrange(buffer.startIndex...nl)
                }
            }
        }
        // The ready line: {"org":…,"peer":"host:port","api":"host:port"}, or the process ends with an error.
        let ready = out.fileHandleForReading
        var first = Data()
        while !first.contains(0x0A) {
            let d = ready.availableData
            if d.isEmpty { break }
            first.append(d)
        }
        guard let v = try? JSON.parse(Array(first)), let p = v["peer"]?.stringValue, let a = v["api"]?.stringValue
        else {
            process.waitUntilExit()
            throw StartFailed(description: "provd \(org) did not start: \(output.cond.withLock { output.lines })")
        }
        peer = p
        api = a
        Thread.detachNewThread { _ = out.fileHandleForReading.readDataToEndOfFile() }
    }

    var stderrLines: [String] {
        output.cond.lock()
        defer { output.cond.unlock() }
        return output.lines
    }

    /// Waits until a stderr line contains `text` (bounded).
    func waitForLog(_ text: String, timeout: Double = 20) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        output.cond.lock()
        defer { output.cond.unlock() }
        while true {
            if let l = output.lines.first(where: { $0.contains(text) }) { return l }
            if !output.cond.wait(until: deadline) { return nil }
        }
    }

    var pid: Int32 { process.processIdentifier }

    func signal(_ s: Int32) { kill(pid, s) }

    /// SIGTERM, then the exit status (SIGKILL after `timeout`).
    @discardableResult
    func stop(timeout: Double = 15) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    func crash() {
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }
}

/// A consortium made by `prov nodes init`, each node a real `provd` on 127.0.0.1 port 0; the test tells them
/// each other's ports through `peerAddresses` and SIGHUP.
final class ProvdCluster: @unchecked Sendable {
    // `nodes` is touched from the test's thread only.
    let dir: URL
    let orgs: [String]
    var nodes: [String: ProvdProcess] = [:]
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

    func config(_ org: String) throws -> [String: JSONValue] {
        let v = try JSON.parse(Array(try Data(contentsOf: URL(fileURLWithPath: configPath(org)))))
        var d: [String: JSONValue] = [:]
        for m in v.objectValue ?? [] { d[m.key] = m.value }
        return d
    }

    func token(_ org: String, auditor: Bool = false) throws -> String {
        try config(org)[auditor ? "auditorToken" : "token"]!.stringValue!
    }

    /// Changes node.json (kept owner-only: it holds tokens).
    func rewrite(_ org: String, _ change: (inout [String: JSONValue]) -> Void) throws {
        var c = try config(org)
        change(&c)
        let text = JSONValue.object(c.keys.sorted().map { JSONMember($0, c[$0]!) }).prettySerialized + "\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: configPath(org)))
        chmod(configPath(org), 0o600)
    }

    @discardableResult
    func start(_ org: String) throws -> ProvdProcess {
        let p = try ProvdProcess(org: org, config: configPath(org), activity: activity)
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
            let deadline = Date().addingTimeInterval(10)
            while p.stderrLines.filter({ $0.contains("peer addresses re-read") }).count == before && Date() < deadline {
                _ = p.waitForLog("peer addresses re-read", timeout: 0.2)
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
        let p = Process()
        p.executableURL = URL(fileURLWithPath: provPath)
        p.arguments = ["verify", "--consortium", dir.path + "/consortium.json", dataDirectory(org)]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = Pipe()
        try p.run()
        let d = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: d, as: UTF8.self))
    }
}
