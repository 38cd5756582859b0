import Foundation
import ProvLedger
import ProvNet
import ProvProcess

#if canImport(Glibc)
    import Glibc
#endif

/// A `provd` process started by `prov` (benchmarks, the demo) or by a test: its ready line read, its stderr
/// collected while it runs (or written to a file), stopped by pid.
package final class NodeProcess: Sendable {
    package let org: String
    let process: ChildProcess
    package let peer: String
    package let api: String
    private let sink: LineSink

    /// The `provd` binary beside this executable (building `prov` builds `provd` beside it).
    package static var provdPath: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("provd").path
    }

    /// Starts `provd --config config` and waits for its ready line; `onLine` is called with every stderr line
    /// (from a reader thread). With `logFile`, stderr goes to that file instead (the node outlives this process)
    /// and no lines are collected. Throws with the node's last message when it exits instead.
    package init(
        org: String, config: String, provd: String = NodeProcess.provdPath, logFile: String? = nil,
        onLine: (@Sendable (String) -> Void)? = nil
    ) throws {
        self.org = org
        guard access(provd, X_OK) == 0 else {
            throw LedgerError(.io, "\(provd) not found: build it with swift build (it is built beside prov)")
        }
        var logFD: Int32 = -1
        if let logFile {
            logFD = open(logFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard logFD >= 0 else {
                throw LedgerError(.io, "cannot open \(logFile) for provd's log: \(String(cString: strerror(errno)))")
            }
        }
        defer { if logFD >= 0 { close(logFD) } }
        do {
            process = try ChildProcess(
                provd, ["--config", config, "--log-format", "json"], stdout: .pipe,
                stderr: logFD >= 0 ? .descriptor(logFD) : .pipe)
        } catch { throw LedgerError(.io, "provd for \(org): \(error.reason)") }
        let sink = LineSink(onLine: onLine)
        self.sink = sink
        // stderr is read while the node runs: a full pipe would block it.
        let stderrEnded = DispatchSemaphore(value: 0)
        if let err = process.stderr {
            Thread.detachNewThread {
                err.forEachLine { sink.add($0) }
                stderrEnded.signal()
            }
        } else if let logFile {
            let p = process
            Thread.detachNewThread {
                Self.follow(logFile, while: { p.isRunning }) { sink.add($0) }
                stderrEnded.signal()
            }
        } else {
            stderrEnded.signal()
        }
        // The ready line: {"org":…,"peer":"host:port","api":"host:port"}, or the process ends with an error.
        let out = process.stdout!
        var first: [UInt8] = []
        while !first.contains(0x0A) {
            let d = out.read()
            if d.isEmpty { break }
            first += d
        }
        guard let v = try? JSON.parse(first), let p = v["peer"]?.stringValue, let a = v["api"]?.stringValue else {
            process.wait()
            _ = stderrEnded.wait(timeout: .now() + 5)  // its last lines say why
            var why = sink.all.compactMap { (try? JSON.parse($0))?["msg"]?.stringValue }.last ?? "no message"
            if let logFile, why == "no message" { why = "see \(logFile)" }
            throw LedgerError(.io, "provd for \(org) did not start: \(why)")
        }
        peer = p
        api = a
        Thread.detachNewThread { _ = out.readToEnd() }
    }

    /// Reads `path` as it grows, line by line, woken by inotify when it is written, until `running` turns false and
    /// the end is reached (the lines of a node that logs to a file are then seen as those of one that logs to a pipe).
    static func follow(_ path: String, while running: () -> Bool, _ line: (String) -> Void) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let watch = inotify_init1(Int32(IN_CLOEXEC))
        defer { if watch >= 0 { close(watch) } }
        if watch >= 0 { _ = inotify_add_watch(watch, path, UInt32(IN_MODIFY)) }
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n > 0 {
                pending += buffer[..<n]
                var start = 0
                while let nl = pending[start...].firstIndex(of: 0x0A) {
                    line(String(decoding: pending[start..<nl], as: UTF8.self))
                    start = nl + 1
                }
                pending.removeFirst(start)
                continue
            }
            guard running() else { return }
            // At the end for now: wait for the next write (or a second, to notice the node has ended).
            var p = pollfd(fd: watch, events: Int16(POLLIN), revents: 0)
            if watch >= 0, poll(&p, 1, 1000) > 0 {
                _ = buffer.withUnsafeMutableBytes { read(watch, $0.baseAddress!, $0.count) }
            } else if watch < 0 {
                usleep(20_000)  // no inotify: sample the file
            }
        }
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

    package var pid: Int32 { process.pid }

    package var isRunning: Bool { process.isRunning }

    /// Sends `s` while the process runs (never to a pid that may have been reused).
    package func signal(_ s: Int32) { process.signal(s) }

    /// Peak resident memory of the process so far (VmHWM), in bytes.
    var maxRSS: Int { Self.status(pid, "VmHWM:") }

    /// CPU time the process has used so far (user and system, all threads), in seconds: from /proc/<pid>/stat.
    var cpuSeconds: Double {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = s.lastIndex(of: ")")
        else { return 0 }
        // After the command name in parentheses: state is field 3, utime and stime are fields 14 and 15.
        let fields = s[s.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Resident memory now (VmRSS), in bytes.
    package var rss: Int { Self.status(pid, "VmRSS:") }

    private static func status(_ pid: Int32, _ field: String) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = s.split(separator: "\n").first(where: { $0.hasPrefix(field) })
        else { return 0 }
        return (Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0) * 1024
    }

    /// SIGTERM and wait (SIGKILL after `timeout`); returns the exit status (the signal's number when killed).
    @discardableResult
    package func stop(timeout: Double = 20) -> Int32 {
        process.terminate(grace: timeout).status
    }

    /// How the process ended, once it has.
    package var termination: ChildProcess.Termination? { process.termination }

    /// Waits until the process ends by itself.
    @discardableResult
    package func wait() -> ChildProcess.Termination { process.wait() }

    /// SIGKILL, as a crash: nothing is finished.
    package func crash() {
        signal(SIGKILL)
        process.wait()
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
