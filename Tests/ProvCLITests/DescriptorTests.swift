import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// The consortium descriptor as people use it (Specs/format.md §9): the linking key's fingerprint that every
/// command loading a linking key checks, the vocabulary that input and audits hold entries to, and its string
/// rules.
@Suite(.leavesNoFiles) struct DescriptorTests {
    func descriptor(_ c: CLIConsortium) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: c.consortium))) as! [String: Any]
    }

    func write(_ object: [String: Any], to path: String) throws {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(
            to: URL(fileURLWithPath: path))
    }

    static let link =
        #"{"type":"link","subjects":["email:a@example.com","phone:+441632960001"],"evidence":"ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100","occurredAt":"2026-11-24T11:20:00Z"}"#
        + "\n"

    @Test func consortiumInitWritesTheFingerprintAndTheStandardVocabulary() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        let d = try descriptor(c)
        let key = try [UInt8](Data(contentsOf: URL(fileURLWithPath: c.linkKey)))
        let expected = SHA256.hash(Array("provenance-ledger linking-key fingerprint v1".utf8) + [0] + key).hex
        #expect(d["linkKeyFingerprint"] as? String == expected)
        let loaded = try Consortium.load(c.consortium)
        #expect(loaded.vocabulary == .standard)
        // The mission's interactions are there for every member.
        for code in [
            "support-call", "chat-answer", "newsletter", "purchase", "product-recommendation", "activity-sync",
            "marketing-email",
        ] {
            #expect(loaded.vocabulary.isInteraction(code), "\(code)")
        }
        // The fields in the documented order.
        let text = try String(contentsOfFile: c.consortium, encoding: .utf8)
        let order = ["\"consortium\"", "\"formatVersion\"", "\"linkKeyFingerprint\"", "\"vocabulary\"", "\"members\""]
        let positions = order.map { text.range(of: $0)!.lowerBound }
        #expect(positions == positions.sorted())
    }

    @Test func consortiumInitTakesAVocabularyFile() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let vk = try prov(["keygen", "--org", "brand", "--consortium", "acme", "--out", dir.path + "/brand.key"])
        let member = "brand=" + vk.stdout.trimmingCharacters(in: .newlines)
        let vocabulary = dir.path + "/vocabulary.json"
        try
            #"{"interactions":["ticket-20261129","support-call"],"notices":["privacy"],"agents":{"software":["crm"],"device":[]}}"#
            .write(toFile: vocabulary, atomically: true, encoding: .utf8)
        let r = try prov([
            "consortium", "init", "--name", "acme", "--member", member, "--vocabulary", vocabulary, "--out",
            dir.path + "/c.json", "--link-key", dir.path + "/link.key",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let v = try Consortium.load(dir.path + "/c.json").vocabulary
        #expect(v.interactions == ["support-call", "ticket-20261129"] && v.softwareAgents == ["crm"])
        // An event with a declared code goes in; an undeclared one is refused with the declared list.
        let append = [
            "append", "--dir", dir.path + "/data", "--key", dir.path + "/brand.key", "--consortium",
            dir.path + "/c.json", "--link-key", dir.path + "/link.key",
        ]
        let event =
            #"{"type":"interaction","subject":"cust:brand:C1","channel":"web","interaction":"ticket-20261129","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"crm","kind":"software"},"occurredAt":"2026-11-24T10:00:00Z"}"#
        #expect(try prov(append, stdin: event + "\n").status == 0)
        let bad = try prov(append, stdin: event.replacingOccurrences(of: "\"crm\"", with: "\"mailer\"") + "\n")
        #expect(bad.status == 2)
        #expect(
            bad.stderr.contains(
                "line 1: field 'agent.id': 'mailer' is not a software agent of the consortium's vocabulary (it "
                    + "declares crm)"), "\(bad.stderr)")

        // A vocabulary file with a bad code: exit 2, naming the file and the item, and nothing written.
        try #"{"interactions":["555-867-5309"],"notices":[],"agents":{"software":[],"device":[]}}"#
            .write(toFile: vocabulary, atomically: true, encoding: .utf8)
        let refused = try prov([
            "consortium", "init", "--name", "acme", "--member", member, "--vocabulary", vocabulary, "--out",
            dir.path + "/c2.json", "--link-key", dir.path + "/link2.key",
        ])
        #expect(refused.status == 2)
        #expect(
            refused.stderr.contains(
                "--vocabulary \(vocabulary): vocabulary.interactions[0]: '555-867-5309' is not a code"),
            "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/c2.json"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/link2.key"))
    }

    /// Specs/format.md §9.2: a linking key whose fingerprint is not the descriptor's is refused; another consortium's
    /// key would give every subject other refs, and exit 0.
    @Test func appendRefusesAnotherConsortiumsLinkingKey() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        let other = try CLIConsortium()
        defer { other.remove() }
        let r = try prov(
            [
                "append", "--dir", c.data, "--key", c.key("brand"), "--consortium", c.consortium, "--link-key",
                other.linkKey,
            ], stdin: Self.link)
        #expect(r.status == 2)
        let mine = try #require(try descriptor(c)["linkKeyFingerprint"] as? String)
        let theirs = try #require(try descriptor(other)["linkKeyFingerprint"] as? String)
        #expect(
            r.stderr.contains(
                "the linking key is not consortium acme's: its fingerprint starts \(theirs.prefix(8)), the "
                    + "descriptor's linkKeyFingerprint starts \(mine.prefix(8)); use the consortium's linking key"),
            "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: c.data + "/brand"))
        #expect(try c.append(Self.link).status == 0)
    }

    /// A descriptor without the fingerprint (written before it existed): `verify` works and says so, `append`
    /// refuses it and prints the value to add.
    @Test func aDescriptorWithoutFingerprint() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        #expect(try c.append(Self.link).status == 0)
        var d = try descriptor(c)
        let fingerprint = try #require(d.removeValue(forKey: "linkKeyFingerprint") as? String)
        try write(d, to: c.consortium)
        let v = try c.verify()
        #expect(v.status == 0, "\(v.stderr)")
        #expect(v.stderr.contains("consortium descriptor \(c.consortium) has no linkKeyFingerprint"), "\(v.stderr)")
        let r = try c.append(Self.link)
        #expect(r.status == 2)
        #expect(r.stderr.contains(#"add \"linkKeyFingerprint\": \"\#(fingerprint)\" to the descriptor"#), "\(r.stderr)")
        #expect(try c.verify().stdout.contains("brand: OK: 1 entry, 1 checkpoint verified"))
    }

    @Test func aDescriptorWithoutVocabularyNamesTheFix() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        var d = try descriptor(c)
        d.removeValue(forKey: "vocabulary")
        try write(d, to: c.consortium)
        let r = try c.verify()
        #expect(r.status == 2)
        #expect(
            r.stderr.contains("consortium descriptor: no vocabulary") && r.stderr.contains("prov consortium init"),
            "\(r.stderr)")
    }

    /// Strings of a descriptor follow the strict JSON rules of events.md §7; a display name is 1-128 bytes
    /// without control, format or line-separator characters.
    @Test(arguments: [
        (#""name": "brand""#, #""name": "Br\ud800and""#, "high surrogate without a low surrogate"),
        (
            #""name": "brand""#, #""name": "Brand\u0007""#,
            "name must be 1-128 bytes without control, format or line-separator characters"
        ),
        (
            #""name": "brand""#, #""name": """#,
            "name must be 1-128 bytes without control, format or line-separator characters"
        ),
        (
            #""consortium": "acme""#, #""consortium": "acme", "consortium": "acme""#,
            "not valid JSON: line 2, column 25: duplicate key"
        ),
    ])
    func descriptorStringRules(_ c: (String, String, String)) throws {
        let cli = try CLIConsortium(orgs: ["brand"])
        defer { cli.remove() }
        let text = try String(contentsOfFile: cli.consortium, encoding: .utf8)
        #expect(text.contains(c.0))
        try text.replacingOccurrences(of: c.0, with: c.1).write(
            toFile: cli.consortium, atomically: true, encoding: .utf8)
        let r = try cli.verify()
        #expect(r.status == 2)
        #expect(r.stderr.contains(c.2), "\(r.stderr)")
    }

    /// What `prov verify` and `prov verify-receipt` hold a stored entry to: the consortium's vocabulary, whoever
    /// wrote the entry (here a writer that skips the event parser).
    @Test func verifyAndReceiptsHoldEntriesToTheVocabulary() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        let consortium = try Consortium.load(c.consortium)
        let signer = try SigningKeyFile.read(c.key("brand"))
        let ingestor = try Ingestor(
            dataDirectory: c.data, consortium: consortium, signer: signer, linkKey: try LinkKey.load(c.linkKey),
            log: { _ in })
        let parser = EventParser(consortium: consortium, org: "brand", linkKey: try LinkKey.load(c.linkKey))
        guard
            case .interaction(var b) = try parser.parse(
                try JSON.parse(Events.interaction(1)))
        else { throw LedgerError(.io, "not an interaction") }
        b.interaction = "ticket-20261129"
        var group = ingestor.store.beginGroup(now: Ingestor.now())
        _ = group.add(.interaction(b))
        _ = try ingestor.store.commit(group, signer: signer)
        ingestor.store.close()
        expectVerificationFailure(
            try c.verify(),
            [
                "brand seq 0: body.interaction: a value of 15 bytes is not an interaction type of the consortium's "
                    + "vocabulary (segment 00000000000000000000.seg, byte 8)"
            ])
        let receipt = c.dir.path + "/r.tlog-proof"
        try prov(["receipt", "--dir", c.data, "--org", "brand", "--seq", "0"]).stdout.write(
            toFile: receipt, atomically: true, encoding: .utf8)
        expectVerificationFailure(
            try prov(["verify-receipt", "--consortium", c.consortium, receipt]),
            ["receipt: brand seq 0: body.interaction: a value of 15 bytes is not an interaction type"])
    }
}
