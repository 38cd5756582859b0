import Foundation
import TestSupport
import ProvCrypto
import Testing

@testable import ProvLedger

/// The `prov` binary built next to the test bundle.
let provPath: String = Bundle.main.bundleURL.appendingPathComponent("prov").path

struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `prov` to completion, feeding `stdin`, collecting both outputs (read concurrently so no pipe fills).
func prov(_ args: [String], stdin: String? = nil) throws -> Run {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: provPath)
    p.arguments = args
    let out = Pipe()
    let err = Pipe()
    let inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    let box = OutputBox()
    let group = DispatchGroup()
    for (pipe, isOut) in [(out, true), (err, false)] {
        group.enter()
        DispatchQueue.global().async {
            let d = pipe.fileHandleForReading.readDataToEndOfFile()
            box.set(isOut, d)
            group.leave()
        }
    }
    if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
    try inp.fileHandleForWriting.close()
    p.waitUntilExit()
    group.wait()
    return Run(status: p.terminationStatus, stdout: box.out, stderr: box.err)
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

    init(orgs: [String] = ["brand", "retail"]) throws {
        dir = try makeTempDir()
        var members: [String] = []
        for org in orgs {
            let r = try prov(["keygen", "--org", org, "--consortium", "acme", "--out", dir.path + "/\(org).key"])
            guard r.status == 0 else { throw LedgerError(.io, "keygen failed: \(r.stderr)") }
            members += ["--member", "\(org)=\(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))"]
        }
        let r = try prov(
            ["consortium", "init", "--name", "acme"] + members + ["--out", consortium, "--link-key", linkKey])
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

    /// A `prov append --follow` process for `org`, not yet started, reading a pipe; its outputs are discarded
    /// unless set.
    func follow(org: String = "brand") -> (process: Process, input: Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: provPath)
        p.arguments = [
            "append", "--dir", data, "--key", key(org), "--consortium", consortium, "--link-key", linkKey, "--follow",
        ]
        let input = Pipe()
        p.standardInput = input
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        return (p, input)
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
