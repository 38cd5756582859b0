import Foundation
import ProvCrypto
import ProvLedger
import ProvNet
import ProvProcess
import TestSupport
import Testing

@testable import ProvNode

/// Remote audit and static publication (Specs/protocol.md §7), with real processes on 127.0.0.1: `prov fetch` from
/// a node with the auditor's token and from a static export served by a stock static file server; the data
/// directory is the auditor's trust state, against which a rollback or a fork is caught; a tampered file of the
/// export is refused.
@Suite(.serialized, .leavesNoFiles, .timeLimit(.minutes(3))) struct RemoteAuditTests {
    /// Python's http.server on 127.0.0.1 port 0 serving `folder`, and its address.
    final class StaticServer {
        let process: ChildProcess
        let address: String

        init(_ folder: String) throws {
            guard let python = ChildProcess.find("python3") else { throw LedgerError(.io, "python3 is not installed") }
            process = try ChildProcess(
                python, ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", folder], stdout: .pipe)
            // "Serving HTTP on 127.0.0.1 port 45678 (http://127.0.0.1:45678/) ..."
            var line: [UInt8] = []
            while !line.contains(0x0A) {
                let d = process.stdout!.read()
                if d.isEmpty { break }
                line += d
            }
            let text = String(decoding: line, as: UTF8.self)
            guard let r = text.range(of: "port "), let port = Int(text[r.upperBound...].prefix { $0.isNumber }) else {
                process.terminate()
                throw LedgerError(.io, "http.server did not start: \(text)")
            }
            address = "127.0.0.1:\(port)"
            let out = process.stdout!
            Thread.detachNewThread { _ = out.readToEnd() }
        }

        func stop() { process.terminate(grace: 5) }
    }

    static func prov(_ args: [String]) throws -> ChildProcess.Completed {
        try ChildProcess.run(provPath, args, timeout: 120)
    }

    @Test func fetchFromANodeAndFromAStaticExportThenCatchARollbackAndAFork() throws {
        let c = try ProvdCluster(orgs: ["brand", "retail"])
        defer { c.stopAll() }
        try c.startAll()
        for k in 0..<3 { #expect(try c.post("brand", Ev.batch(100, org: "brand", from: k * 100)).status == 200) }
        #expect(try c.post("retail", Ev.batch(40, org: "retail")).status == 200)
        #expect(c.waitConverged(["brand": 300, "retail": 40]))
        let consortium = c.dir.path + "/consortium.json"
        let node = ["--node", "http://" + c.nodes["brand"]!.api, "--token", try c.token("brand", auditor: true)]
        let audit = c.dir.path + "/audit"

        // From a node, with the auditor's token: both logs, verified; then prov verify audits them offline.
        let first = try Self.prov(["fetch", "--consortium", consortium, "--dir", audit] + node)
        #expect(first.termination == .exited(0), "\(first.stdoutText) \(first.stderrText)")
        #expect(first.stdoutText.contains("brand: fetched 300 entries, verified: 300 in all"), "\(first.stdoutText)")
        let v1 = try Self.prov(["verify", "--consortium", consortium, audit])
        #expect(v1.termination == .exited(0), "\(v1.stdoutText)")
        // What brand's log was then: the copy a rolled-back or forked source will be made from.
        let then = c.dir.path + "/then"
        try FileManager.default.createDirectory(atPath: then, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: audit + "/brand", toPath: then + "/brand")
        // It moves on; the next fetch takes only what is new.
        #expect(try c.post("brand", Ev.batch(20, org: "brand", from: 500)).status == 200)
        #expect(c.waitConverged(["brand": 320]))
        let second = try Self.prov(["fetch", "--consortium", consortium, "--dir", audit, "--json"] + node)
        #expect(second.termination == .exited(0), "\(second.stdoutText)")
        let logs = try JSON.parse(second.stdoutText)["logs"]?.arrayValue ?? []
        #expect(logs.first { $0["org"]?.stringValue == "brand" }?["fetched"]?.int64Value == 20, "\(second.stdoutText)")

        // A static export of retail's node, served by a stock static file server.
        let export = c.dir.path + "/export"
        let exported = try Self.prov([
            "tiles", "export", "--dir", c.dataDirectory("retail"), "--out", export, "--consortium", consortium,
        ])
        #expect(exported.termination == .exited(0), "\(exported.stdoutText) \(exported.stderrText)")
        let server = try StaticServer(export)
        defer { server.stop() }
        let mirror = c.dir.path + "/mirror"
        let fromTiles = try Self.prov([
            "fetch", "--url", "http://\(server.address)", "--consortium", consortium, "--dir", mirror,
        ])
        #expect(fromTiles.termination == .exited(0), "\(fromTiles.stdoutText) \(fromTiles.stderrText)")
        #expect(try Self.prov(["verify", "--consortium", consortium, mirror]).termination == .exited(0))
        // Against the auditor's trust state the same export agrees (it is up to date, or extends it).
        let again = try Self.prov([
            "fetch", "--url", "http://\(server.address)", "--consortium", consortium, "--dir", audit,
        ])
        #expect(again.termination == .exited(0), "\(again.stdoutText)")

        // A tampered bundle in the export is refused; nothing of it is kept.
        let bundle = export + "/brand/tile/entries/000"
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: bundle)))
        bytes[bytes.count / 2] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: bundle))
        let tampered = try Self.prov([
            "fetch", "--url", "http://\(server.address)", "--consortium", consortium, "--dir", c.dir.path + "/fresh",
        ])
        #expect(tampered.termination == .exited(1), "\(tampered.stdoutText)")
        #expect(
            tampered.stdoutText.contains("brand: FAILED:") && tampered.stdoutText.contains("nothing of it was kept"))

        // A source that serves the older history (a rollback): caught against the trust state.
        let rollback = c.dir.path + "/rollback"
        #expect(
            try Self.prov(["tiles", "export", "--dir", then, "--out", rollback, "--consortium", consortium])
                .termination == .exited(0))
        let old = try StaticServer(rollback)
        defer { old.stop() }
        let rolled = try Self.prov([
            "fetch", "--url", "http://\(old.address)", "--consortium", consortium, "--dir", audit,
        ])
        #expect(rolled.termination == .exited(1))
        #expect(
            rolled.stdoutText.contains("brand: FAILED: rollback: the source serves 300 entries, but 320 were verified"),
            "\(rolled.stdoutText)")

        // A source that hides a whole log (it answers 404 for its checkpoint) rolls it back to nothing.
        let empty = c.dir.path + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let none = try StaticServer(empty)
        defer { none.stop() }
        let hidden = try Self.prov([
            "fetch", "--url", "http://\(none.address)", "--consortium", consortium, "--dir", audit,
        ])
        #expect(hidden.termination == .exited(1))
        #expect(
            hidden.stdoutText.contains("brand: FAILED: rollback: the source serves 0 entries, but 320 were verified"),
            "\(hidden.stdoutText)")

        // A fork: the older history extended with another entry under brand's key. The auditor holds evidence.
        let beyond = c.dir.path + "/beyond"
        try FileManager.default.copyItem(atPath: audit, toPath: beyond)
        let config = try NodeConfig.load(c.configPath("brand"))
        func forge(_ events: [String]) throws {
            let forged = try ChildProcess.run(
                provPath,
                [
                    "append", "--dir", then, "--key", config.keyPath, "--consortium", consortium, "--link-key",
                    config.linkKeyPath,
                ], input: Array(events.map { $0 + "\n" }.joined().utf8), timeout: 60)
            #expect(forged.termination == .exited(0), "\(forged.stderrText)")
        }
        func serveExport(_ name: String) throws -> StaticServer {
            let out = c.dir.path + "/" + name
            #expect(
                try Self.prov(["tiles", "export", "--dir", then, "--out", out, "--consortium", consortium])
                    .termination == .exited(0))
            return try StaticServer(out)
        }
        try forge([Ev.consent(999, org: "brand")])
        let forkServer = try serveExport("fork")
        defer { forkServer.stop() }
        let caught = try Self.prov([
            "fetch", "--url", "http://\(forkServer.address)", "--consortium", consortium, "--dir", audit,
        ])
        #expect(caught.termination == .exited(1))
        #expect(
            caught.stdoutText.contains("brand: FAILED: equivocation: brand signed a tree of size 301"),
            "\(caught.stdoutText)")
        let evidence = try FileManager.default.contentsOfDirectory(atPath: audit + "/evidence")
        #expect(evidence.count == 1)
        let proven = try Self.prov(["verify-evidence", "--consortium", consortium, audit + "/evidence/" + evidence[0]])
        #expect(proven.termination == .exited(0), "\(proven.stdoutText)")
        // And the audit of that data directory now fails brand's log on it.
        let v2 = try Self.prov(["verify", "--consortium", consortium, audit])
        #expect(v2.termination == .exited(1) && v2.stdoutText.contains("equivocation"), "\(v2.stdoutText)")

        // A fork that is larger than what the auditor verified: the source's own tiles show that its tree does not
        // begin with the 320 entries verified here, before any entry is fetched; evidence, and nothing stored.
        try forge(Ev.batch(29, org: "brand", from: 1000))
        let largerServer = try serveExport("larger-fork")
        defer { largerServer.stop() }
        let larger = try Self.prov([
            "fetch", "--url", "http://\(largerServer.address)", "--consortium", consortium, "--dir", beyond,
        ])
        #expect(larger.termination == .exited(1))
        #expect(
            larger.stdoutText.contains(
                "brand: FAILED: equivocation: brand signed a tree of size 320 that is not the first 320 entries of "
                    + "its tree of size 330"), "\(larger.stdoutText)")
        let kept = try FileManager.default.contentsOfDirectory(atPath: beyond + "/evidence")
        #expect(kept.count == 1)
        let proof = try Self.prov(["verify-evidence", "--consortium", consortium, beyond + "/evidence/" + kept[0]])
        #expect(proof.termination == .exited(0), "\(proof.stdoutText)")
        let v3 = try Self.prov(["verify", "--consortium", consortium, beyond])
        #expect(v3.termination == .exited(1) && v3.stdoutText.contains("320 entries"), "\(v3.stdoutText)")
    }

    /// `prov bench fetch` prints the fetch beside the same run's verify and the write floor it measured, and leaves
    /// nothing behind.
    @Test func theFetchBenchmarkReportsTheVerifyAndTheWriteFloorBesideIt() throws {
        let dir = try TemporaryFiles.directory("bench-fetch")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try Self.prov(["bench", "fetch", "--entries", "1500", "--dir", dir.path])
        #expect(r.termination == .exited(0), "\(r.stderrText)")
        let v = try JSON.parse(r.stdoutText)
        #expect(v["bench"]?.stringValue == "fetch")
        for field in ["fetch_to_verify", "stored_bytes", "write_floor_seconds", "fetch_cpu_seconds_per_million"] {
            guard case .number(let n) = v[field] else {
                Issue.record("no \(field) in \(r.stdoutText)")
                continue
            }
            #expect((Double(n) ?? 0) > 0, "\(field) in \(r.stdoutText)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}
