import Foundation
import ProvCrypto
import ProvProcess
import TestSupport
import Testing

@testable import ProvLedger

@Suite(.leavesNoFiles) struct CLIContractTests {
    @Test func keygenWritesMode600KeyAndPrintsVerifierKey() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try prov(["keygen", "--org", "brand", "--consortium", "acme", "--out", dir.path + "/k"])
        #expect(r.status == 0)
        let vkey = try NoteVerifierKey(parsing: r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(vkey.name == "acme/brand")
        let mode = try FileManager.default.attributesOfItem(atPath: dir.path + "/k")[.posixPermissions] as! Int
        #expect(mode == 0o600)
        // Never overwrites a key.
        let again = try prov(["keygen", "--org", "brand", "--consortium", "acme", "--out", dir.path + "/k"])
        #expect(again.status == 2)
        #expect(again.stderr.contains("refusing to overwrite"))
    }

    @Test func usageErrorsExitTwo() throws {
        for (args, message, usage) in [
            (["frobnicate"], "unknown command 'frobnicate' (prov --help lists the commands)", nil),
            (
                ["keygen", "--org", "brand"], "missing --consortium NAME, --out KEYFILE",
                "prov keygen --org ORG --consortium NAME --out KEYFILE [--json]"
            ),
            (
                ["verify", "--bogus", "x"],
                "unknown option --bogus for prov verify: it takes --consortium, --checkpoint, --json, --log-format",
                "prov verify --consortium FILE [--checkpoint FILE]... [--json] DATADIR"
            ),
            ([], "no command given", nil),
        ] {
            let r = try prov(args)
            #expect(r.status == 2 && r.stdout.isEmpty, "\(args)")
            let line = try #require(r.stderr.split(separator: "\n").last.map { try JSON.parse(Array($0.utf8)) })
            #expect(line["msg"]?.stringValue?.contains(message) == true, "\(args): \(r.stderr)")
            #expect(line["usage"]?.stringValue == usage, "\(args): \(r.stderr)")
        }
        // On a terminal's format, the usage line follows the message.
        let text = try prov(["--log-format", "text", "verify", "--bogus", "x"])
        #expect(
            text.stderr.hasSuffix(
                "prov: error: unknown option --bogus for prov verify: it takes --consortium, --checkpoint, --json, "
                    + "--log-format (prov verify --help says more)\n"
                    + "usage: prov verify --consortium FILE [--checkpoint FILE]... [--json] DATADIR\n"),
            "\(text.stderr)")
    }

    @Test func appendCheckpointReceiptVerifyRoundTrip() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        let r = try c.append(Events.lines(5))
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 5)
        for (i, l) in lines.enumerated() {
            let parts = l.split(separator: " ")
            #expect(parts.count == 2 && parts[0] == "\(i)" && parts[1].count == 64)
        }
        // A second append continues the sequence, from --input this time.
        let input = c.dir.path + "/more.jsonl"
        try Events.lines(3, from: 5).write(toFile: input, atomically: true, encoding: .utf8)
        let r2 = try c.append("", extra: ["--input", input])
        #expect(r2.stdout.hasPrefix("5 "))

        let cp = try prov(["checkpoint", "--dir", c.data, "--org", "brand"])
        #expect(cp.status == 0)
        let parsed = try SignedCheckpoint(parsing: cp.stdout)
        #expect(parsed.checkpoint.origin == "acme/brand" && parsed.checkpoint.size == 8)

        let receipt = try prov(["receipt", "--dir", c.data, "--org", "brand", "--seq", "6"])
        #expect(receipt.status == 0)
        #expect(receipt.stdout.hasPrefix("c2sp.org/tlog-proof@v1\nextra "))
        let path = c.dir.path + "/r.tlog-proof"
        try receipt.stdout.write(toFile: path, atomically: true, encoding: .utf8)
        let vr = try prov(["verify-receipt", "--consortium", c.consortium, path])
        #expect(vr.status == 0, "\(vr.stderr)")
        #expect(vr.stdout.contains("brand seq 6"))
        #expect(vr.stdout.contains("\"kind\": \"consent\""))
        // The same consent as the page a customer keeps; it needs the descriptor's keys.
        let page = try prov(["receipt", "--dir", c.data, "--org", "brand", "--seq", "6", "--html"])
        #expect(page.status == 2 && page.stderr.contains("--html needs --consortium"), "\(page.stderr)")
        let html = try prov(
            ["receipt", "--dir", c.data, "--org", "brand", "--seq", "6", "--html", "--consortium", c.consortium])
        #expect(html.status == 0, "\(html.stderr)")
        #expect(html.stdout.contains("data-fact=\"consent:0\"") && html.stdout.contains(">Consent given</td>"))

        let v = try c.verify()
        #expect(v.status == 0, "\(v.stderr)")
        #expect(v.stdout.contains("brand: OK: 8 entries, 2 checkpoints verified"))
    }

    /// `prov verify-receipt` on receipts changed in transit: exit 1 and a message naming what failed.
    @Test func tamperedReceiptsFailVerification() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        _ = try c.append(Events.lines(8))
        let good = try prov(["receipt", "--dir", c.data, "--org", "brand", "--seq", "5"]).stdout
        let lines = good.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func check(_ changed: [String], _ expected: String) throws {
            let path = c.dir.path + "/changed.tlog-proof"
            try changed.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
            let r = try prov(["verify-receipt", "--consortium", c.consortium, path])
            expectVerificationFailure(r, [expected])
            #expect(r.stdout.hasPrefix("\(path): FAILED: "), "\(r.stdout)")
            #expect(!r.stdout.contains("OK"))
        }
        var l = lines
        l[3] = SHA256.hash("x").base64
        try check(l, "receipt: brand seq 5: inclusion proof does not lead to the checkpoint's root hash")
        l = lines
        l[2] = "index 6"
        try check(l, "receipt: entry has seq 5 but the receipt says index 6")
        var entry = Array(Data(base64Encoded: String(lines[1].dropFirst(6)))!)
        entry[entry.count - 3] ^= 0x01
        l = lines
        l[1] = "extra " + Data(entry).base64EncodedString()
        try check(l, "receipt: brand seq 5: inclusion proof does not lead to the checkpoint's root hash")
        let sigLine = lines.firstIndex { $0.hasPrefix("\u{2014}") }!
        var parts = lines[sigLine].split(separator: " ").map(String.init)
        var sig = Array(Data(base64Encoded: parts[parts.count - 1])!)
        sig[10] ^= 0x01
        parts[parts.count - 1] = Data(sig).base64EncodedString()
        l = lines
        l[sigLine] = parts.joined(separator: " ")
        try check(l, "checkpoint signature by acme/brand does not verify against its consortium key")
        try check(Array(lines.prefix(3)), "the receipt is malformed: no blank line before the checkpoint")
    }

    @Test func badInputAppendsNothingAndNamesLineAndField() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        _ = try c.append(Events.lines(2))
        let bad =
            Events.lines(2, from: 2)
            + Events.consent(9).replacingOccurrences(of: "dpv:DirectMarketing", with: "dpv:Gossip") + "\n"
        let r = try c.append(bad)
        #expect(r.status == 2)
        #expect(
            r.stderr.contains("line 3: field 'purposes[0]': 'dpv:Gossip' is not a known DPV purpose"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        let garbage = try c.append("{\"type\":\"consent\",\n")
        #expect(garbage.status == 2)
        #expect(garbage.stderr.contains("line 1: not valid JSON"))
        // A rejected first batch of another org leaves no log behind.
        let retail = try c.append(bad, org: "retail")
        #expect(retail.status == 2)
        #expect(!FileManager.default.fileExists(atPath: c.data + "/retail"))
        let v = try c.verify()
        #expect(v.stdout.contains("brand: OK: 2 entries"))
    }

    /// In `--follow` each line stands alone: a bad one is reported with its line number in the stream and
    /// left out, the others are appended; a last line without a newline is appended too.
    @Test func followRejectsBadLinesAloneAndTakesAnUnterminatedLastLine() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        let bad = Events.consent(9).replacingOccurrences(of: "dpv:DirectMarketing", with: "dpv:Gossip")
        let input = Events.lines(3) + bad + "\n" + Events.consent(4)  // no newline at the end
        let r = try c.append(input, extra: ["--follow"])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(
            r.stderr.contains("line 4: field 'purposes[0]': 'dpv:Gossip' is not a known DPV purpose"), "\(r.stderr)")
        let acked = r.stdout.split(separator: "\n").map { $0.split(separator: " ")[0] }
        #expect(acked == ["0", "1", "2", "3"], "\(r.stdout)")
        let v = try c.verify()
        #expect(v.stdout.contains("brand: OK: 4 entries"), "\(v.stdout)")
    }

    /// A line longer than the limit, without a newline for megabytes, is reported and skipped in `--follow`; the
    /// lines around it are appended.
    @Test func followSkipsAnEndlessLine() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        let long = String(repeating: "x", count: 3 << 20)
        let r = try c.append(Events.lines(2) + long + "\n" + Events.lines(1, from: 2), extra: ["--follow"])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("line 3: longer than 65536 bytes"), "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").count == 3, "\(r.stdout)")
    }

    /// Mistakes an operator makes get exit 2 and a message, never a silent success.
    @Test func leftoverArgumentsOverwritesAndFullDisksAreErrors() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        // A file given without --input.
        let r = try prov([
            "append", "--dir", c.data, "--key", c.key("brand"), "--consortium", c.consortium, "--link-key", c.linkKey,
            "events.jsonl",
        ])
        #expect(r.status == 2 && r.stderr.contains("unexpected argument 'events.jsonl'"), "\(r.stderr)")
        // An existing descriptor is not overwritten.
        let vk = try prov(["keygen", "--org", "brand", "--consortium", "acme", "--out", c.dir.path + "/b2.key"])
        let init2 = try prov([
            "consortium", "init", "--name", "acme", "--member", "brand=" + vk.stdout.trimmingCharacters(in: .newlines),
            "--out", c.consortium, "--link-key", c.linkKey,
        ])
        #expect(init2.status == 2 && init2.stderr.contains("is not overwritten"), "\(init2.stderr)")
        #expect(try Consortium.load(c.consortium).members.count == 2)
        // Output that cannot be written (a full disk) fails the command.
        _ = try c.append(Events.lines(2))
        let full = open("/dev/full", O_WRONLY | O_CLOEXEC)
        try #require(full >= 0)
        defer { close(full) }
        let checkpoint = try ChildProcess.run(
            provPath, ["checkpoint", "--dir", c.data, "--org", "brand"], stdout: .descriptor(full), timeout: 60)
        let message = checkpoint.stderrText
        #expect(checkpoint.termination == .exited(2))
        #expect(message.contains("standard output could not be written (No space left on device)"), "\(message)")
    }

    /// A checkpoint the auditor kept for a log that is gone from the directory: the whole log was rolled back.
    @Test func keptCheckpointOfAMissingLogIsRollback() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        _ = try c.append(Events.lines(3))
        _ = try c.append(Events.lines(2), org: "retail")
        let kept = c.dir.path + "/retail.cp"
        try prov(["checkpoint", "--dir", c.data, "--org", "retail"]).stdout.write(
            toFile: kept, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: c.data + "/retail")
        let plain = try c.verify()
        #expect(plain.status == 0 && plain.stdout.contains("retail: no log in this directory"), "\(plain.stdout)")
        let r = try c.verify(["--checkpoint", kept])
        expectVerificationFailure(
            r,
            [
                "retail: rollback: a trusted checkpoint covers 2 entries but the log holds only 0 verified: entries 0..1 are missing"
            ])
        #expect(r.stderr.contains("retail: no log folder for retail in "), "\(r.stderr)")
    }

    /// Verifying a log while `append --follow` writes to it: the log's checkpoint file is read before its
    /// segments, so new entries never look like a rollback.
    @Test func verifyOfALiveLogPasses() throws {
        signal(SIGPIPE, SIG_IGN)
        let c = try CLIConsortium()
        defer { c.remove() }
        _ = try c.append(Events.lines(10))
        let p = try c.follow()
        defer { p.signal(SIGKILL) }
        let writer = p.stdin!
        let feeder = Thread {
            var n = 10
            while true {
                do { try writer.write(Events.lines(50, from: n)) } catch { break }
                n += 50
            }
        }
        feeder.start()
        for _ in 0..<15 {
            let v = try c.verify()
            #expect(v.status == 0, "\(v.stderr)")
        }
        p.signal(SIGKILL)
        p.wait()
        writer.close()
    }

    /// Specs/events.md §Subjects: what reaches the data directory is the subjects' keyed refs, never the raw
    /// identifiers given.
    @Test func rawIdentifiersAreNotWrittenAnywhere() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        let appended = try c.append(Events.lines(4))
        try #require(appended.status == 0, "\(appended.stderr)")
        #expect(appended.stdout.split(separator: "\n").count == 4, "\(appended.stdout)")
        // Every file under the data directory, as written.
        var written: [String: [UInt8]] = [:]
        for case let f as String in FileManager.default.enumerator(atPath: c.data)! {
            if let d = FileManager.default.contents(atPath: c.data + "/" + f) { written[f] = Array(d) }
        }
        // Nothing there contains the e-mail addresses or phone numbers given.
        for (f, bytes) in written {
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(!text.contains("example.com") && !text.contains("user0") && !text.contains("4416329600"), "\(f)")
        }
        // And what was scanned holds the four entries, each with the ref of its subject.
        let store = try LogStore(dataDirectory: c.data, consortium: "acme", org: "brand", writable: false)
        defer { store.close() }
        #expect(store.size == 4)
        let consortium = try Consortium.load(c.consortium)
        let linkKey = try LinkKey.load(c.linkKey)
        for seq in 0..<UInt64(4) {
            let entry = try store.entryBytes(seq)
            #expect(written.values.contains { $0.contains(entry) }, "entry \(seq) is not in the files scanned")
            let raw = seq % 2 == 0 ? "email:user\(seq)@example.com" : "phone:+44163296000\(seq)"
            let ref = linkKey.ref(for: try SubjectRef.normalise(raw, consortium: consortium).get())
            #expect(entry.contains(ref.bytes), "entry \(seq) does not carry the ref of \(raw)")
        }
    }

    @Test func worldReadableKeyIsRefused() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        chmod(c.key("brand"), 0o644)
        let r = try c.append(Events.lines(1))
        #expect(r.status == 2)
        #expect(r.stderr.contains("chmod 600"))
    }
}
