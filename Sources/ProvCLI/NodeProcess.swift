import Foundation
import ProvLedger
import ProvNet

#if canImport(Glibc)
    import Glibc
#endif

/// A `provd` process started by `prov` (benchmarks, the demo) or by a test: its ready line read, its stderr
/// collected while it runs, stopped by pid.
package final class NodeProcess: @unchecked Sendable {
    // Set once in init; the stderr lines live in `sink`, which guards itself.
    package let org: String
    let process = Process()
    package let peer: String
    package let api: String
    private let sink: LineSink
    private let exited = DispatchSemaphore(value: 0)

    /// The `provd` binary beside this executable (`swift build` puts them in one folder).
    package static var provdPath: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("provd").path
    }

    /// Starts `provd --config config` and waits for its ready line; `onLine` is called with every stderr line
    /// (from a reader thread). Throws with the node's last message when it exits instead.
    package init(
        org: String, config: String, provd: String = NodeProcess.provdPath,
        onLine: (@Sendable (String) -> Void)? = nil
    ) throws {
        self.org = org
        guard FileManager.default.isExecutableFile(atPath: provd) else {
            throw LedgerError(.io, "\(provd) not found: build it first (swift build builds provd beside prov)")
        }
        process.executableURL = URL(fileURLWithPath: provd)
        process.arguments = ["--config", config, "--log-format", "json"]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.terminationHandler = { [exited] _ in exited.signal() }
        try process.run()
        let sink = LineSink(onLine: onLine)
        self.sink = sink
        // stderr is read while the node runs: a full pipe would block it.
        let stderrEnded = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { stderrEnded.signal() }
            var buffer = Data()
            while true {
                let d = err.fileHandleForReading.availableData
                if d.isEmpty { break }
                buffer.append(d)
                while let nl = buffer.firstIndex(of: 0x0A) {
                    sink.add(String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self))
                    buffer.removeSubrange(buffer.startIndex...nl)
                }
            }
        }
        // The ready line: {"org":…,"peer":"host:port","api":"host:port"}, or the process ends with an error.
        var first = Data()
        while !first.contains(0x0A) {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            first.append(d)
        }
        guard let v = try? JSON.parse(Array(first)), let p = v["peer"]?.stringValue, let a = v["api"]?.stringValue
        else {
            process.waitUntilExit()
            _ = stderrEnded.wait(timeout: .now() + 5)  // its last lines say why
            let why = sink.all.compactMap { (try? JSON.parse($0))?["msg"]?.stringValue }.last ?? "no message"
            throw LedgerError(.io, "provd for \(org) did not start: \(why)")
        }
        peer = p
        api = a
        Thread.detachNewThread { _ = out.fileHandleForReading.readDataToEndOfFile() }
    }

    final class LineSink: @unchecked Sendable {
        // `lines` guarded by `cond`.
        let cond = NSCondition()
        var lines: [String] = []
        let onLine: (@Sendable (String) -> Void)?
        init(onLine: (@Sendable (String) -> Void)?) { self.onLine = onLine }
        func add(_ l: String) {
            cond.lock()
            lines.append(l)
            cond.broadcast()
            cond.unlock()
            onLine?(l)
        }
        var all: [String] {
            cond.lock()
            defer { cond.unlock() }
            return lines
        }
    }

    /// Every stderr line so far.
    package var stderrLines: [String] { sink.all }

    /// Waits (bounded) until more than `after` stderr lines contain `text`; true if they do.
    @discardableResult
    package func waitForLog(_ text: String, after: Int = 0, timeout: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        sink.cond.lock()
        defer { sink.cond.unlock() }
        while sink.lines.filter({ $0.contains(text) }).count <= after {
            if !sink.cond.wait(until: deadline) { return false }
        }
        return true
    }

    package var pid: Int32 { process.processIdentifier }

    /// Sends `s` while the process runs (never to a pid that may have been reused).
    package func signal(_ s: Int32) { if process.isRunning { kill(pid, s) } }

    /// Peak resident memory of the process so far (VmHWM), in bytes.
    var maxRSS: Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return 0 }
        return (Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0) * 1024
    }

    /// SIGTERM and wait (SIGKILL after `timeout`); returns the exit status.
    @discardableResult
    package func stop(timeout: Double = 20) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(pid, SIGTERM)
        if exited.wait(timeout: .now() + timeout) == .timedOut { signal(SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// SIGKILL, as a crash: nothing is finished.
    package func crash() {
        signal(SIGKILL)
        process.waitUntilExit()
    }
}

/// node.json edits (the file stays owner-only: it holds tokens).
package enum NodeFile {
    package static func read(_ path: String) throws -> [String: JSONValue] {
        var d: [String: JSONValue] = [:]
        for m in try JSON.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path)))).objectValue ?? [] {
            d[m.key] = m.value
        }
        return d
    }

    package static func update(_ path: String, _ change: (inout [String: JSONValue]) -> Void) throws {
        var c = try read(path)
        change(&c)
        let text = JSONValue.object(c.keys.sorted().map { JSONMember($0, c[$0]!) }).prettySerialized + "\n"
        guard
            FileManager.default.createFile(
                atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        else { throw LedgerError(.io, "cannot write \(path)") }
    }
}

/// A client of one node's API with its token.
struct NodeAPI {
    let client: HTTPClient
    let token: String

    init(address: String, token: String) throws {
        var c = HTTPClientConfiguration()
        c.readTimeout = .seconds(60)
        client = try HTTPClient(address: address, configuration: c)
        self.token = token
    }

    func get(_ path: String) throws -> HTTPResponse {
        try client.get(path, headers: ["Authorization": "Bearer \(token)"])
    }

    func post(_ path: String, _ body: [UInt8]) throws -> HTTPResponse {
        try client.post(
            path, body: body, headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"])
    }

    /// Sizes of the logs this node holds.
    func sizes() throws -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for m in try JSON.parse(try get("/v1/status").body)["logs"]?.objectValue ?? [] {
            out[m.key] = UInt64(m.value["size"]?.int64Value ?? 0)
        }
        return out
    }
}
