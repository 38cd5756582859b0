import Foundation
import ProvCrypto
import ProvProcess
import Synchronization
import TestSupport
import Testing

@testable import ProvLedger

/// The `prov` binary built next to the test bundle.
let provPath: String = Bundle.main.bundleURL.appendingPathComponent("prov").path

struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
    /// Ended by a signal (`status` is then the signal number), not by exit.
    var signalled = false
    /// Still running after its time limit, and killed.
    var timedOut = false
}

/// Runs `prov` to completion, feeding `stdin`, collecting both outputs (read concurrently so no pipe fills).
func prov(_ args: [String], stdin: String? = nil, environment: [String: String] = [:]) throws -> Run {
    try run(provPath, args, input: stdin.map { Data($0.utf8) }, environment: environment)
}

/// Runs a program to completion, feeding `input`. One still running after `timeout` seconds is killed and
/// reported as timed out, so that a hang fails its test instead of stopping the whole run. It starts as from a
/// shell, with no signal blocked. `environment` adds to the test's environment; `directory` is the folder it runs
/// in.
func run(
    _ path: String, _ args: [String], input: Data? = nil, timeout: Double = 300,
    environment: [String: String] = [:], directory: String? = nil
) throws -> Run {
    let r = try ChildProcess.run(
        path, args, input: input.map { Array($0) } ?? [], environment: environment, directory: directory,
        timeout: timeout)
    return Run(
        status: r.termination.status, stdout: r.stdoutText, stderr: r.stderrText, signalled: r.termination.isSignal,
        timedOut: r.timedOut)
}

/// Kills a process that is still running after a time limit (through the process object, so that a reused pid is
/// never killed); `finish` once it has ended.
final class Watchdog: Sendable {
    private let state = Mutex<(done: Bool, fired: Bool)>((false, false))

    init(_ process: ChildProcess, after seconds: Double) {
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [self] in
            state.withLock {
                guard !$0.done else { return }
                $0.fired = process.signal(SIGKILL)
            }
        }
    }

    /// Whether it had to kill the process.
    func finish() -> Bool {
        state.withLock {
            $0.done = true
            return $0.fired
        }
    }
}

final class OutputBox: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var o = Data()
    private var e = Data()
    func set(_ isOut: Bool, _ d: Data) {
        lock.lock()
        if isOut { o = d } else { e = d }
        lock.unlock()
    }
    var out: String { lock.lock(); defer { lock.unlock() }; return String(decoding: o, as: UTF8.self) }
    var err: String { lock.lock(); defer { lock.unlock() }; return String(decoding: e, as: UTF8.self) }
}

func makeTempDir(_ tag: String = "prov-cli") throws -> URL { try TemporaryFiles.directory(tag) }

/// A consortium made with the CLI: keys, descriptor and linking key in a temporary folder.
struct CLIConsortium {
    let dir: URL
    var consortium: String { dir.path + "/consortium.json" }
    var linkKey: String { dir.path + "/link.key" }
    var data: String { dir.path + "/data" }
    func key(_ org: String) -> String { dir.path + "/\(org).key" }

    init(orgs: [String] = ["brand", "retail"], name: String = "acme") throws {
        dir = try makeTempDir()
        var members: [String] = []
        for org in orgs {
            let r = try prov(["keygen", "--org", org, "--consortium", name, "--out", dir.path + "/\(org).key"])
            guard r.status == 0 else { throw LedgerError(.io, "keygen failed: \(r.stderr)") }
            members += ["--member", "\(org)=\(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))"]
        }
        let r = try prov(
            ["consortium", "init", "--name", name] + members + ["--out", consortium, "--link-key", linkKey])
        guard r.status == 0 else { throw LedgerError(.io, "consortium init failed: \(r.stderr)") }
    }

    func append(_ lines: String, org: String = "brand", extra: [String] = []) throws -> Run {
        try prov(
            ["append", "--dir", data, "--key", key(org), "--consortium", consortium, "--link-key", linkKey] + extra,
            stdin: lines)
    }

    func verify(_ extra: [String] = []) throws -> Run {
        try prov(["verify", "--consortium", consortium] + extra + [data])
    }

    func remove() { try? FileManager.default.removeItem(at: dir) }

    /// A running `prov append --follow` process for `org`, reading its standard input from a pipe
    /// (`process.stdin`); its outputs are discarded unless asked for.
    func follow(
        org: String = "brand", stdout: ChildProcess.Output = .null, stderr: ChildProcess.Output = .null
    ) throws -> ChildProcess {
        try ChildProcess(
            provPath,
            [
                "append", "--dir", data, "--key", key(org), "--consortium", consortium, "--link-key", linkKey,
                "--follow",
            ], stdin: .pipe, stdout: stdout, stderr: stderr)
    }
}

enum Events {
    static func consent(_ i: Int) -> String {
        #"{"type":"consent","subject":"email:user\#(i)@example.com","event":"give","purposes":["dpv:DirectMarketing"],"controllers":["brand"],"recipients":["retail"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#
    }

    static func interaction(_ i: Int) -> String {
        #"{"type":"interaction","subject":"phone:+4416329600\#(String(format: "%02d", i % 100))","channel":"voice","interaction":"support-call","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"agent-42","kind":"person","onBehalfOf":"brand"},"occurredAt":"2026-11-24T10:00:00Z"}"#
    }

    static func lines(_ n: Int, from start: Int = 0) -> String {
        (start..<(start + n)).map { $0 % 2 == 0 ? consent($0) : interaction($0) }.joined(separator: "\n") + "\n"
    }
}

/// A verification failure as `prov verify` and `prov verify-receipt` report it (Specs/format.md §12.3): once, on
/// the result line of its log or receipt on standard output, without the org the line already names
/// (`brand seq 5: …` is shown as `brand: FAILED after 5 entries: seq 5: …`, `receipt: …` as `FAILED: …`).
func asReported(_ message: String) -> String {
    let prefix = message.prefix { $0.isLowercase || $0.isNumber || $0 == "-" }
    let rest = message.dropFirst(prefix.count)
    guard !prefix.isEmpty else { return message }
    if rest.hasPrefix(": ") { return String(rest.dropFirst(2)) }
    if rest.hasPrefix(" seq ") { return String(rest.dropFirst()) }
    return message
}

/// Exit 1, and every message reported once on a FAILED result line of standard output, and not on standard error.
func expectVerificationFailure(
    _ r: Run, _ messages: [String], sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(r.status == 1, "exit \(r.status): \(r.stdout) \(r.stderr)", sourceLocation: sourceLocation)
    let failed = r.stdout.split(separator: "\n").filter { $0.contains(": FAILED") }
    for m in messages {
        let shown = asReported(m)
        #expect(
            failed.contains { $0.contains(shown) }, "missing '\(shown)' in: \(r.stdout)", sourceLocation: sourceLocation
        )
        #expect(
            !r.stderr.contains(shown), "reported twice, also on stderr: \(r.stderr)", sourceLocation: sourceLocation)
    }
}
