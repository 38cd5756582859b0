import Foundation
import ProvLedger
import ProvNet

#if canImport(Glibc)
    import Glibc
#endif

/// A `provd` process started by `prov` (benchmarks, the demo): the binary next to `prov`, its ready line read,
/// its stderr collected while it runs, stopped by pid.
final class NodeProcess: @unchecked Sendable {
    // Set once in init; `lines` is guarded by `cond`.
    let org: String
    let process = Process()
    let peer: String
    let api: String
    private let cond = NSCondition()
    private var lines: [String] = []
    /// Called with every stderr line of the node (the demo shows some).
    let onLine: (@Sendable (String) -> Void)?

    /// The `provd` binary beside this executable.
    static var provdPath: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("provd").path
    }

    init(org: String, config: String, onLine: (@Sendable (String) -> Void)? = nil) throws {
        self.org = org
        self.onLine = onLine
        guard FileManager.default.isExecutableFile(atPath: Self.provdPath) else {
            throw LedgerError(.io, "\(Self.provdPath) not found: build it first (swift build builds provd beside prov)")
        }
        process.executableURL = URL(fileURLWithPath: Self.provdPath)
        process.arguments = ["--config", config, "--log-format", "json"]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let box = LineSink(cond: cond, onLine: onLine)
        Thread.detachNewThread {
            var buffer = Data()
            while true {
                let d = err.fileHandleForReading.availableData
                if d.isEmpty { break }
                buffer.append(d)
                while let nl = buffer.firstIndex(of: 0x0A) {
                    box.add(String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self))
                    buffer.removeSubrange(buffer.startIndex...nl)
                }
            }
        }
        var first = Data()
        while !first.contains(0x0A) {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            first.append(d)
        }
        guard let v = try? JSON.parse(Array(first)), let p = v["peer"]?.stringValue, let a = v["api"]?.stringValue
        else {
            process.waitUntilExit()
            let why = box.all.compactMap { (try? JSON.parse($0))?["msg"]?.stringValue }.last ?? "no message"
            throw LedgerError(.io, "provd for \(org) did not start: \(why)")
        }
        peer = p
        api = a
        Thread.detachNewThread { _ = out.fileHandleForReading.readDataToEndOfFile() }
        sink = box
    }

    private var sink: LineSink?

    final class LineSink: @unchecked Sendable {
        // `lines` guarded by `cond`.
        let cond: NSCondition
        var lines: [String] = []
        let onLine: (@Sendable (String) -> Void)?
        init(cond: NSCondition, onLine: (@Sendable (String) -> Void)?) {
            self.cond = cond
            self.onLine = onLine
        }
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

    var stderrLines: [String] { sink?.all ?? [] }

    /// Waits (bounded) until more than `after` stderr lines contain `text`; true if they do.
    @discardableResult
    func waitForLog(_ text: String, after: Int, timeout: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        cond.lock()
        defer { cond.unlock() }
        while (sink?.lines ?? []).filter({ $0.contains(text) }).count <= after {
            if !cond.wait(until: deadline) { return false }
        }
        return true
    }

    var pid: Int32 { process.processIdentifier }

    /// Peak resident memory of the process so far (VmHWM), in bytes.
    var maxRSS: Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return 0 }
        return (Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0) * 1024
    }

    /// SIGTERM and wait (SIGKILL after `timeout`); returns the exit status.
    @discardableResult
    func stop(timeout: Double = 20) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// node.json edits (the file stays owner-only: it holds tokens).
enum NodeFile {
    static func read(_ path: String) throws -> [String: JSONValue] {
        var d: [String: JSONValue] = [:]
        for m in try JSON.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path)))).objectValue ?? [] {
            d[m.key] = m.value
        }
        return d
    }

    static func update(_ path: String, _ change: (inout [String: JSONValue]) -> Void) throws {
        var c = try read(path)
        change(&c)
        let text = JSONValue.object(c.keys.sorted().map { JSONMember($0, c[$0]!) }).prettySerialized + "\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
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
