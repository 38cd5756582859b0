import CShims
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with `posix_spawn` (`prov` starts `provd`; tests start `prov`, `provd` and a browser).
///
/// Not `Foundation.Process`: on this platform its `run()` scans `/proc/self/fd` before spawning and now and then
/// reads past a directory entry and crashes. Here the child's descriptors are set with explicit file actions
/// (its three standard ones, every other one closed by `closefrom`), it starts with no signal blocked and every
/// signal at its default action, and it is reaped by a thread of its own. A pid is signalled only while the
/// child has not been reaped, so a signal never reaches a process that reused the pid.
public final class ChildProcess: Sendable {
    /// What the child's standard input reads.
    public enum Input: Sendable {
        /// `/dev/null`.
        case null
        /// A pipe whose write end is `stdin`.
        case pipe
        /// A descriptor of ours (a terminal, a FIFO, a file), duplicated: the caller keeps and closes its own.
        case descriptor(Int32)
    }

    /// Where the child's standard output or error goes.
    public enum Output: Sendable {
        /// `/dev/null`.
        case null
        /// A pipe whose read end is `stdout` / `stderr`.
        case pipe
        /// Ours: what this process writes to, the child writes to.
        case inherit
        /// A descriptor of ours (a file, `/dev/full`), duplicated.
        case descriptor(Int32)
    }

    /// How the child ended.
    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        /// The exit status, or the signal's number.
        public var status: Int32 {
            switch self {
            case .exited(let s), .signalled(let s): s
            }
        }

        public var isSignal: Bool {
            if case .signalled = self { return true }
            return false
        }

        public var description: String {
            switch self {
            case .exited(let s): "exit \(s)"
            case .signalled(let s): "signal \(s)"
            }
        }
    }

    public let pid: Int32
    /// The write end of the child's standard input, when it is `.pipe`.
    public let stdin: PipeEnd?
    /// The read ends of the child's standard output and error, when they are `.pipe`.
    public let stdout: PipeEnd?
    public let stderr: PipeEnd?

    private struct State {
        var termination: Termination?
        var handlers: [@Sendable (Termination) -> Void] = []
    }

    private let state = Mutex(State())
    private let ended = DispatchGroup()

    /// Starts `path` with `arguments` (not including argv[0]). `environment` is added to this process's
    /// environment (a value replaces one of the same name); `directory` is where the child starts. Throws
    /// `SpawnError` naming the program and the reason when it cannot start (no such file, not executable).
    public init(
        _ path: String, _ arguments: [String] = [], environment: [String: String] = [:], directory: String? = nil,
        stdin: Input = .null, stdout: Output = .null, stderr: Output = .null
    ) throws(SpawnError) {
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        // Pipes are made close-on-exec: the child gets its ends through dup2 only, and no other child inherits them.
        var parentEnds: [PipeEnd?] = [nil, nil, nil]
        var childFDs: [Int32] = [PROV_SPAWN_NULL, PROV_SPAWN_NULL, PROV_SPAWN_NULL]
        var toClose: [Int32] = []
        defer { for fd in toClose { close(fd) } }
        func makePipe() throws(SpawnError) -> (read: Int32, write: Int32) {
            var p: [Int32] = [-1, -1]
            guard prov_pipe_cloexec(&p) == 0 else { throw SpawnError(path, "cannot make a pipe", errno) }
            return (p[0], p[1])
        }
        switch stdin {
        case .null: break
        case .descriptor(let fd): childFDs[0] = fd
        case .pipe:
            let p = try makePipe()
            childFDs[0] = p.read
            toClose.append(p.read)
            parentEnds[0] = PipeEnd(p.write)
        }
        for (i, o) in [(1, stdout), (2, stderr)] {
            switch o {
            case .null: break
            case .inherit: childFDs[i] = PROV_SPAWN_INHERIT
            case .descriptor(let fd): childFDs[i] = fd
            case .pipe:
                let p = try makePipe()
                childFDs[i] = p.write
                toClose.append(p.write)
                parentEnds[i] = PipeEnd(p.read)
            }
        }
        var pid: pid_t = 0
        let argv = [path] + arguments
        let envp = env.map { "\($0.key)=\($0.value)" }
        let rc = Self.withCStrings(argv) { cArgv in
            Self.withCStrings(envp) { cEnvp in
                childFDs.withUnsafeBufferPointer { fds in
                    if let directory {
                        return prov_spawn(path, cArgv, cEnvp, directory, fds.baseAddress, &pid)
                    }
                    return prov_spawn(path, cArgv, cEnvp, nil, fds.baseAddress, &pid)
                }
            }
        }
        guard rc == 0 else {
            for case let e? in parentEnds { e.close() }
            throw SpawnError(path, "cannot start", rc)
        }
        self.pid = pid
        self.stdin = parentEnds[0]
        self.stdout = parentEnds[1]
        self.stderr = parentEnds[2]
        ended.enter()
        let reaper = Thread { [self] in reap() }
        reaper.name = "prov-reaper-\(pid)"
        reaper.start()
    }

    /// Waits for the child to end (keeping its pid reserved), records how, then reaps it, under the lock that
    /// `signal` takes: a signal is sent only to a child that has not been reaped.
    private func reap() {
        _ = prov_wait_exit(pid)
        let (t, handlers) = state.withLock { s -> (Termination, [@Sendable (Termination) -> Void]) in
            let raw = prov_reap(pid)
            let t: Termination =
                raw < 0
                ? .exited(-1)
                : (raw & 0x7f) == 0 ? .exited((raw >> 8) & 0xff) : .signalled(raw & 0x7f)
            s.termination = t
            let h = s.handlers
            s.handlers = []
            return (t, h)
        }
        ended.leave()
        for h in handlers { h(t) }
    }

    /// How the child ended; nil while it runs.
    public var termination: Termination? { state.withLock { $0.termination } }

    public var isRunning: Bool { termination == nil }

    /// Sends `signal` while the child runs; false when it has already ended (nothing is sent).
    @discardableResult
    public func signal(_ signal: Int32) -> Bool {
        state.withLock { s in
            guard s.termination == nil else { return false }
            return kill(pid, signal) == 0
        }
    }

    /// Waits until the child ends.
    @discardableResult
    public func wait() -> Termination {
        ended.wait()
        return termination!
    }

    /// Waits at most `seconds`; nil when the child still runs then.
    public func wait(timeout seconds: Double) -> Termination? {
        ended.wait(timeout: .now() + seconds) == .success ? termination : nil
    }

    /// Calls `handler` once the child has ended (at once, on this thread, if it has).
    public func onExit(_ handler: @escaping @Sendable (Termination) -> Void) {
        let done = state.withLock { s -> Termination? in
            if s.termination == nil { s.handlers.append(handler) }
            return s.termination
        }
        if let done { handler(done) }
    }

    /// Asks the child to stop (SIGTERM) and waits up to `grace` seconds, then kills it (SIGKILL).
    @discardableResult
    public func terminate(grace: Double = 10) -> Termination {
        signal(SIGTERM)
        if let t = wait(timeout: grace) { return t }
        signal(SIGKILL)
        return wait()
    }

    private static func withCStrings<R>(
        _ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R
    ) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    // MARK: Running to completion

    /// What a child run to completion did.
    public struct Completed: Sendable {
        public var termination: Termination
        public var stdout: [UInt8]
        public var stderr: [UInt8]
        /// Still running after its time limit, and killed.
        public var timedOut: Bool

        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    }

    /// Runs `path` to completion: `input` is written to its standard input (then closed), both outputs are read
    /// while it runs (a full pipe never blocks it), and a child still running after `timeout` seconds is killed and
    /// reported as timed out.
    public static func run(
        _ path: String, _ arguments: [String] = [], input: [UInt8]? = nil, environment: [String: String] = [:],
        directory: String? = nil, stdin: Input? = nil, stdout: Output = .pipe, timeout: Double = 300
    ) throws(SpawnError) -> Completed {
        let p = try ChildProcess(
            path, arguments, environment: environment, directory: directory,
            stdin: stdin ?? (input == nil ? .null : .pipe), stdout: stdout, stderr: .pipe)
        final class Collected: Sendable {
            let bytes = Mutex<[[UInt8]]>([[], []])
        }
        let collected = Collected()
        let readers = DispatchGroup()
        for (i, end) in [p.stdout, p.stderr].enumerated() {
            guard let end else { continue }
            readers.enter()
            Thread.detachNewThread {
                let bytes = end.readToEnd()
                collected.bytes.withLock { $0[i] = bytes }
                readers.leave()
            }
        }
        if let input, let w = p.stdin {
            Thread.detachNewThread {
                _ = try? w.write(input)
                w.close()
            }
        }
        var timedOut = false
        if p.wait(timeout: timeout) == nil {
            timedOut = true
            p.signal(SIGKILL)
        }
        let t = p.wait()
        readers.wait()
        let both = collected.bytes.withLock { $0 }
        return Completed(termination: t, stdout: both[0], stderr: both[1], timedOut: timedOut)
    }

    /// The first executable named `name` on `PATH` (or at `name` when it holds a slash).
    public static func find(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
        {
            let p = "\(dir)/\(name)"
            if access(p, X_OK) == 0 { return p }
        }
        return nil
    }
}

/// Why a child could not be started.
public struct SpawnError: Error, Sendable, CustomStringConvertible {
    public let program: String
    public let reason: String

    init(_ program: String, _ what: String, _ code: Int32) {
        self.program = program
        reason = "\(what): \(String(cString: strerror(code)))"
    }

    public var description: String { "\(program): \(reason)" }
}

/// One end of a pipe to or from a child: closed once, by `close` or when released.
public final class PipeEnd: Sendable {
    private let fd: Atomic<Int32>

    init(_ fd: Int32) { self.fd = Atomic(fd) }

    deinit { close() }

    /// The descriptor (-1 once closed).
    public var descriptor: Int32 { fd.load(ordering: .acquiring) }

    /// Closes this end (the child then reads end-of-file, or gets SIGPIPE/EPIPE writing). Safe to call more
    /// than once, from any thread.
    public func close() {
        let old = fd.exchange(-1, ordering: .acquiringAndReleasing)
        if old >= 0 { _ = Glibc.close(old) }
    }

    /// Writes all of `bytes`; throws the errno text when the child closed its end (EPIPE: ignore SIGPIPE first).
    public func write(_ bytes: [UInt8]) throws(PipeError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { b in
                Glibc.write(descriptor, b.baseAddress! + offset, b.count - offset)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw PipeError(errno: errno)
            }
            offset += n
        }
    }

    public func write(_ text: String) throws(PipeError) { try write(Array(text.utf8)) }

    /// Reads what is there, up to `max` bytes, waiting for at least one; empty at end-of-file (or once closed).
    public func read(max: Int = 65536) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress!, max) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return [] }
            buffer.removeSubrange(n...)
            return buffer
        }
    }

    /// Reads until end-of-file.
    public func readToEnd() -> [UInt8] {
        var all: [UInt8] = []
        while true {
            let chunk = read()
            if chunk.isEmpty { return all }
            all += chunk
        }
    }

    /// Reads until end-of-file, calling `line` with every whole line (without its newline) as it arrives; a last
    /// line without a newline is passed too.
    public func forEachLine(_ line: (String) -> Void) {
        var pending: [UInt8] = []
        while true {
            let chunk = read()
            if chunk.isEmpty { break }
            pending += chunk
            var start = 0
            while let nl = pending[start...].firstIndex(of: 0x0A) {
                line(String(decoding: pending[start..<nl], as: UTF8.self))
                start = nl + 1
            }
            pending.removeFirst(start)
        }
        if !pending.isEmpty { line(String(decoding: pending, as: UTF8.self)) }
    }
}

/// A write to a pipe failed (the reader closed it).
public struct PipeError: Error, Sendable, CustomStringConvertible {
    public let errno: Int32
    public var description: String { String(cString: strerror(errno)) }
}
