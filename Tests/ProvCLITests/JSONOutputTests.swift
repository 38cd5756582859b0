import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// `--json` (Specs/cli.md §4): one JSON object on standard output with exactly the fields Specs/cli.md documents,
/// each checked against what the same command prints for a person or what the files hold.
@Suite(.leavesNoFiles) struct JSONOutputTests {
    func object(_ r: Run, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
        let v = try JSON.parse(Array(r.stdout.utf8))
        try #require(v.objectValue != nil, "not one JSON object: \(r.stdout)", sourceLocation: sourceLocation)
        return v
    }

    func keys(_ v: JSONValue?) -> [String] { v?.objectValue?.map(\.key) ?? [] }

    @Test func keygenAndKeyShow() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = dir.path + "/brand.key"
        let r = try prov(["keygen", "--org", "brand", "--consortium", "acme", "--out", key, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let k = try object(r)
        #expect(keys(k) == ["kind", "name", "consortium", "org", "keyID", "verifierKey", "keyFile"])
        let vkey = try NoteVerifierKey(parsing: try #require(k["verifierKey"]?.stringValue))
        #expect(k["kind"]?.stringValue == "signing-key" && k["name"]?.stringValue == "acme/brand")
        #expect(k["consortium"]?.stringValue == "acme" && k["org"]?.stringValue == "brand")
        #expect(k["keyID"]?.stringValue == String(format: "%08x", vkey.keyID))
        #expect(k["keyFile"]?.stringValue == key)

        // key show prints the same verifier key again, plain or as JSON (without keyFile).
        let plain = try prov(["key", "show", key])
        #expect(plain.status == 0 && plain.stdout == vkey.description + "\n", "\(plain.stderr)")
        let shown = try object(try prov(["key", "show", "--json", key]))
        #expect(keys(shown) == ["kind", "name", "consortium", "org", "keyID", "verifierKey"])
        #expect(shown["verifierKey"]?.stringValue == vkey.description)

        // The linking key: its fingerprint, the descriptor's linkKeyFingerprint.
        let c = try CLIConsortium()
        defer { c.remove() }
        let fingerprint = try Consortium.load(c.consortium).linkKeyFingerprint!.hex
        #expect(try prov(["key", "show", c.linkKey]).stdout == fingerprint + "\n")
        let link = try object(try prov(["key", "show", c.linkKey, "--json"]))
        #expect(keys(link) == ["kind", "fingerprint"] && link["fingerprint"]?.stringValue == fingerprint)
        #expect(link["kind"]?.stringValue == "linking-key")

        // Not a key file: said, without its bytes; a key others may read is refused as by every command.
        let notKey = try prov(["key", "show", c.consortium])
        #expect(
            notKey.status == 2 && notKey.stderr.contains("\(c.consortium) is a consortium descriptor, not a key file"))
        chmod(key, 0o644)
        let open = try prov(["key", "show", key])
        #expect(open.status == 2 && open.stderr.contains("chmod 600"), "\(open.stderr)")
    }

    @Test func checkpointAndReceipt() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        try #require(try c.append(Events.lines(7)).status == 0)
        let text = try prov(["checkpoint", "--dir", c.data, "--org", "brand"]).stdout
        let cp = try SignedCheckpoint(parsing: text).checkpoint
        let j = try object(try prov(["checkpoint", "--dir", c.data, "--org", "brand", "--json"]))
        #expect(keys(j) == ["org", "origin", "size", "root", "rootHex", "checkpoint"])
        #expect(j["org"]?.stringValue == "brand" && j["origin"]?.stringValue == "acme/brand")
        #expect(j["size"]?.int64Value == 7 && cp.size == 7)
        #expect(j["root"]?.stringValue == cp.root.base64 && j["rootHex"]?.stringValue == cp.root.hex)
        #expect(j["checkpoint"]?.stringValue == text)

        let receipt = try prov(["receipt", "--dir", c.data, "--org", "brand", "--seq", "3"]).stdout
        let r = try object(try prov(["receipt", "--dir", c.data, "--org", "brand", "--seq", "3", "--json"]))
        #expect(
            keys(r) == [
                "org", "seq", "leafHash", "origin", "size", "root", "rootHex", "cosignedBy", "entry", "receipt",
            ])
        #expect(r["cosignedBy"] == .array([]))
        let parsed = try Receipt(parsing: receipt)
        #expect(r["receipt"]?.stringValue == receipt)
        #expect(r["seq"]?.int64Value == 3 && r["leafHash"]?.stringValue == Merkle.leafHash(parsed.entry).hex)
        #expect(r["root"]?.stringValue == cp.root.base64 && r["size"]?.int64Value == 7)
        #expect(r["entry"]?["seq"]?.int64Value == 3 && r["entry"]?["kind"]?.stringValue == "interaction")
    }

    @Test func verifyReceipt() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        try #require(try c.append(Events.lines(4)).status == 0)
        let good = c.dir.path + "/good.tlog-proof"
        let text = try prov(["receipt", "--dir", c.data, "--org", "brand", "--seq", "2"]).stdout
        try text.write(toFile: good, atomically: true, encoding: .utf8)
        let bad = c.dir.path + "/bad.tlog-proof"
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[2] = "index 3"
        try lines.joined(separator: "\n").write(toFile: bad, atomically: true, encoding: .utf8)
        let missing = c.dir.path + "/missing.tlog-proof"

        // Several receipts and standard input: one result line each, in order.
        let all = try prov(["verify-receipt", "--consortium", c.consortium, good, bad, missing, "-"], stdin: text)
        #expect(all.status == 1)
        let out = all.stdout.split(separator: "\n").map(String.init)
        #expect(out.count == 4, "\(all.stdout)")
        #expect(out[0].hasPrefix("\(good): OK: brand seq 2 (leaf "), "\(out[0])")
        #expect(out[0].hasSuffix(") is in log acme/brand, whose checkpoint of 4 entries is signed by brand"))
        #expect(out[1] == "\(bad): FAILED: entry has seq 2 but the receipt says index 3")
        #expect(out[2] == "\(missing): NOT VERIFIED: no such file")
        #expect(out[3].hasPrefix("standard input: OK: brand seq 2 "))
        #expect(!all.stderr.contains("index 3"), "reported twice: \(all.stderr)")
        // A file that cannot be read and none failed: 2; all good: 0, and one receipt alone shows its entry.
        #expect(try prov(["verify-receipt", "--consortium", c.consortium, good, missing]).status == 2)
        let one = try prov(["verify-receipt", "--consortium", c.consortium, "-"], stdin: text)
        #expect(one.status == 0 && one.stdout.contains("\"seq\": 2"), "\(one.stdout)")

        let j = try object(
            try prov(["verify-receipt", "--consortium", c.consortium, "--json", good, bad, missing, "-"], stdin: text))
        #expect(keys(j) == ["consortium", "verdict", "exitCode", "receipts", "warnings"])
        #expect(j["verdict"]?.stringValue == "failed" && j["exitCode"]?.int64Value == 1)
        let receipts = try #require(j["receipts"]?.arrayValue)
        #expect(receipts.count == 4)
        let cp = try Receipt(parsing: text).checkpoint.checkpoint
        #expect(
            keys(receipts[0]) == [
                "file", "status", "seq", "origin", "size", "root", "rootHex", "org", "leafHash", "cosignedBy",
                "entry", "failure",
            ])
        #expect(receipts[0]["status"]?.stringValue == "ok" && receipts[0]["failure"] == .null)
        #expect(receipts[0]["root"]?.stringValue == cp.root.base64 && receipts[0]["org"]?.stringValue == "brand")
        #expect(receipts[0]["entry"]?["seq"]?.int64Value == 2)
        #expect(keys(receipts[1]) == ["file", "status", "seq", "origin", "size", "root", "rootHex", "failure"])
        #expect(receipts[1]["status"]?.stringValue == "failed")
        #expect(receipts[1]["failure"]?.stringValue == "entry has seq 2 but the receipt says index 3")
        #expect(keys(receipts[2]) == ["file", "status", "failure"])
        #expect(receipts[2]["status"]?.stringValue == "not-verified")
        #expect(receipts[3]["file"]?.stringValue == "standard input" && receipts[3]["status"]?.stringValue == "ok")
    }

    /// `prov verify --json`: per log its org, status (ok, failed, not-verified, absent), counts, latest
    /// checkpoint (root in base64 and hex), warnings and failure; the verdict and the exit code.
    @Test func verify() throws {
        let c = try CLIConsortium(orgs: ["brand", "retail", "bank", "care"])
        defer { c.remove() }
        try #require(try c.append(Events.lines(5)).status == 0)
        try #require(try c.append(Events.lines(2), org: "retail").status == 0)
        try #require(try c.append(Events.lines(1), org: "bank").status == 0)
        let cp = try SignedCheckpoint(parsing: try prov(["checkpoint", "--dir", c.data, "--org", "brand"]).stdout)
        // The human output shows the same root, base64 (Specs/cli.md §4). brand wrote first and cites nothing; retail
        // cites brand's head, bank both heads.
        let human = try c.verify()
        #expect(
            human.stdout.contains(
                "brand: OK: 5 entries, 1 checkpoint verified, 0 references checked; the latest checkpoint covers 5 "
                    + "entries, root \(cp.checkpoint.root.base64)\n"), "\(human.stdout)")
        #expect(human.stdout.contains("retail: OK: 2 entries, 1 checkpoint verified, 1 reference checked; "))
        #expect(human.stdout.contains("bank: OK: 1 entry, 1 checkpoint verified, 2 references checked; "))
        #expect(human.stdout.contains("care: no log in this directory\nOK: 3 logs, 8 entries in "), "\(human.stdout)")

        // bank fails (a flipped byte); retail is not verified: a link stands in place of its index, which is never
        // read through.
        let bankSegment = c.data + "/bank/segments/" + SegmentFormat.segmentName(firstSeq: 0)
        var raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: bankSegment)))
        raw[8 + 9 + 40] ^= 0x20
        try Data(raw).write(to: URL(fileURLWithPath: bankSegment))
        let index = c.data + "/retail/index"
        try FileManager.default.moveItem(atPath: index, toPath: c.dir.path + "/retail-index")
        try FileManager.default.createSymbolicLink(atPath: index, withDestinationPath: c.dir.path + "/retail-index")

        let r = try c.verify(["--json"])
        #expect(r.status == 1, "\(r.stdout)")
        #expect(r.stderr.isEmpty, "with --json, warnings and failures are in the object only: \(r.stderr)")
        let j = try object(r)
        #expect(
            keys(j) == ["consortium", "dataDirectory", "verdict", "exitCode", "logs", "entries", "seconds", "warnings"])
        #expect(j["consortium"]?.stringValue == "acme" && j["dataDirectory"]?.stringValue == c.data)
        #expect(j["verdict"]?.stringValue == "failed" && j["exitCode"]?.int64Value == 1)
        #expect(j["warnings"]?.arrayValue?.isEmpty == true)
        let logs = try #require(j["logs"]?.arrayValue)
        #expect(logs.map { $0["org"]?.stringValue } == ["bank", "brand", "retail", "care"])
        for l in logs {
            #expect(
                keys(l) == [
                    "org", "status", "entries", "checkpoints", "referencesChecked", "latest", "warnings", "failure",
                ])
        }
        let brand = logs[1]
        #expect(brand["status"]?.stringValue == "ok" && brand["entries"]?.int64Value == 5)
        #expect(brand["checkpoints"]?.int64Value == 1 && brand["referencesChecked"]?.int64Value == 0)
        #expect(brand["failure"] == .null && brand["warnings"]?.arrayValue?.isEmpty == true)
        #expect(keys(brand["latest"]) == ["size", "root", "rootHex"])
        #expect(brand["latest"]?["size"]?.int64Value == 5)
        #expect(brand["latest"]?["root"]?.stringValue == cp.checkpoint.root.base64)
        #expect(brand["latest"]?["rootHex"]?.stringValue == cp.checkpoint.root.hex)
        #expect(logs[0]["status"]?.stringValue == "failed")
        #expect(logs[0]["failure"]?.stringValue?.hasPrefix("seq 0: record checksum mismatch at byte 8") == true)
        #expect(logs[2]["status"]?.stringValue == "not-verified")
        #expect(logs[2]["failure"]?.stringValue == "\(index) is a symbolic link, not a regular file", "\(logs[2])")
        #expect(logs[3]["status"]?.stringValue == "absent" && logs[3]["latest"] == .null)
        #expect(logs[3]["entries"]?.int64Value == 0)

        // Without the failure, the unreadable log makes it incomplete (exit 2).
        try FileManager.default.removeItem(atPath: c.data + "/bank")
        let incomplete = try c.verify(["--json"])
        #expect(incomplete.status == 2)
        let i = try object(incomplete)
        #expect(i["verdict"]?.stringValue == "incomplete" && i["exitCode"]?.int64Value == 2)
    }
}
