import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// Nothing free-form reaches the ledger: a person who acts for a company is a keyed pseudonym like a customer,
/// and interaction types, notice ids and software or device agents are codes the consortium declares
/// (Specs/format.md §4, §5.4, §9.1). The examples are personal data written where a label belongs.
@Suite(.leavesNoFiles) struct IdentityTests {
    let t: TestConsortium
    init() throws { t = try TestConsortium() }

    static func interaction(_ interaction: String = "support-call", agent: String) -> String {
        #"{"type":"interaction","subject":"phone:+441632960001","channel":"voice","interaction":"\#(interaction)","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":\#(agent),"occurredAt":"2026-11-24T10:05:00Z"}"#
    }

    static func consent(notice: String) -> String {
        #"{"type":"consent","subject":"email:alice@example.com","event":"give","purposes":["dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","notice":\#(notice),"occurredAt":"2026-11-24T10:00:00Z"}"#
    }

    static let hex = String(repeating: "ab", count: 32)

    func message(_ json: String, _ t: TestConsortium? = nil) -> String {
        ledgerError { _ = try (t ?? self.t).body(json) }?.message ?? "accepted"
    }

    func entryBytes(_ body: EntryBody, org: String = "brand") -> [UInt8] {
        Entry(log: "acme/\(org)", seq: 0, prev: .zero, hlc: HLC(wall: 1, counter: 0), body: body).encoded
    }

    /// A person's employee id, however much it says about them, is stored as a 32-byte ref and nowhere as given.
    @Test func aPersonIsStoredAsARefNeverAsGiven() throws {
        let body = try t.body(Self.interaction(agent: #"{"id":"BobSmith-DOB-1980-01-02","kind":"person"}"#))
        guard case .interaction(let b) = body, case .ref(let ref) = b.agent.id else {
            Issue.record("not a person ref: \(body)")
            return
        }
        #expect(ref == t.linkKey.agentRef(org: "brand", employeeID: "BobSmith-DOB-1980-01-02"))
        let bytes = entryBytes(body)
        for piece in ["BobSmith", "1980", "DOB"] {
            #expect(bytes.firstRange(of: Array(piece.utf8)) == nil, "\(piece) is in the entry")
        }
        let rendered = Entry(log: "acme/brand", seq: 0, prev: .zero, hlc: HLC(wall: 1, counter: 0), body: body)
            .json.serialized
        #expect(rendered.contains(#""agent":{"id":"\#(SubjectRef.text(ref))","kind":"person"}"#), "\(rendered)")
        #expect(try Entry.decode(bytes).body == body)
    }

    /// Phone numbers, e-mail addresses and dates of birth given as labels cannot be stored as they are: refused, or
    /// (an employee id) pseudonymised.
    @Test func identifierLikeLabelsAreNotStored() {
        // A phone number as an interaction type, or as a software agent's name: not in the vocabulary.
        #expect(
            message(Self.interaction("555-867-5309", agent: #"{"id":"mailer","kind":"software"}"#))
                .hasPrefix(
                    "field 'interaction': a value of 12 bytes is not an interaction type of the consortium's "
                        + "vocabulary (it declares account-update, activity-sync,"))
        // An e-mail address written around the '@' check: not an employee id, not a software agent.
        #expect(
            message(Self.interaction(agent: #"{"id":"bob.jones(at)corp.org","kind":"person"}"#))
                == "field 'agent.id': a person is given by their employee id, 1-64 of A-Z a-z 0-9 . _ - (stored as "
                + "a keyed pseudonym, never as given), or by a ref:")
        #expect(
            message(Self.interaction(agent: #"{"id":"bob.jones(at)corp.org","kind":"software"}"#))
                .hasPrefix(
                    "field 'agent.id': a value of 21 bytes is not a software agent of the consortium's vocabulary "
                        + "(it declares ai-assistant, chatbot, core-banking,"))
        #expect(
            message(Self.interaction(agent: #"{"id":"BobSmith-DOB-1980-01-02","kind":"device"}"#))
                .hasPrefix("field 'agent.id': a value of 23 bytes is not a device agent of the consortium's vocabulary")
        )
        // A phone number as a notice id, or as a notice version.
        #expect(
            message(Self.consent(notice: #"{"id":"0163-296-0001","version":"7","sha256":"\#(Self.hex)"}"#))
                .hasPrefix("field 'notice.id': a value of 13 bytes is not a notice of the consortium's vocabulary"))
        #expect(
            message(Self.consent(notice: #"{"id":"privacy","version":"0163-296-0001","sha256":"\#(Self.hex)"}"#))
                == "field 'notice.version': a value of 13 bytes is not a version: 1-4 groups of 1-4 digits separated "
                + "by dots, such as 7 or 2.1")
        // No consortium can declare a phone number as a code: a code starts with a letter.
        #expect(
            ledgerError {
                _ = try ConsortiumVocabulary(
                    interactions: ["555-867-5309"], notices: [], softwareAgents: [], deviceAgents: [])
            }?.message.hasPrefix("vocabulary.interactions[0]: '555-867-5309' is not a code") == true)
    }

    /// `ticket-20261129` is judged by the vocabulary, not by a count of digits: refused while undeclared, stored
    /// once the consortium declares it.
    @Test func aValueWithDigitsIsAVocabularyQuestion() throws {
        let json = Self.interaction("ticket-20261129", agent: #"{"id":"crm","kind":"software"}"#)
        #expect(
            message(json).hasPrefix(
                "field 'interaction': a value of 15 bytes is not an interaction type of the consortium's vocabulary"))
        let s = ConsortiumVocabulary.standard
        let vocabulary = try ConsortiumVocabulary(
            interactions: s.interactions + ["ticket-20261129"], notices: s.notices, softwareAgents: s.softwareAgents,
            deviceAgents: s.deviceAgents)
        let c = try Consortium(
            name: "acme", members: t.consortium.members, linkKeyFingerprint: t.linkKey.fingerprint,
            vocabulary: vocabulary)
        let body = try EventParser(consortium: c, org: "brand", linkKey: t.linkKey).parse(try JSON.parse(json))
        guard case .interaction(let b) = body else { throw LedgerError(.io, "not an interaction") }
        #expect(b.interaction == "ticket-20261129")
        #expect(b.agent.id == .name("crm"))
    }

    /// Agent refs have their own key: scoped to the org that records the act, and never equal to a subject ref,
    /// whatever identifier gave it (Specs/format.md §5.4).
    @Test func agentRefsAreScopedAndSeparateFromSubjectRefs() throws {
        let atBrand = t.linkKey.agentRef(org: "brand", employeeID: "E-1")
        #expect(atBrand != t.linkKey.agentRef(org: "retail", employeeID: "E-1"))
        #expect(atBrand != t.linkKey.agentRef(org: "brand", employeeID: "e-1"))
        // The same text under the subject key gives another ref.
        #expect(atBrand != t.linkKey.ref(for: "person:brand:E-1"))
        #expect(atBrand != t.linkKey.ref(for: "cust:brand:E-1"))
        // The formula of the spec, spelt out: K_agent = HMAC(K_link, label); ref = HMAC(K_agent, person:<org>:<id>).
        let raw = try SecureRandom.bytes(32)
        let key = try LinkKey(bytes: raw)
        let kAgent = HMACSHA256Key(secret: raw).mac("provenance-ledger agent-ref key v1")
        #expect(
            key.agentRef(org: "brand", employeeID: "E-4711")
                == HMACSHA256Key(secret: kAgent.bytes).mac("person:brand:E-4711"))
        // The retail employee E-1 is recorded in retail's log under retail's scope.
        let retail = try t.parser("retail").parse(
            try JSON.parse(Self.interaction(agent: #"{"id":"E-1","kind":"person","onBehalfOf":"brand"}"#)))
        guard case .interaction(let b) = retail else { throw LedgerError(.io, "not an interaction") }
        #expect(b.agent.id == .ref(t.linkKey.agentRef(org: "retail", employeeID: "E-1")))
        #expect(b.agent.onBehalfOf == "brand")
    }

    /// A person may be given as a ref made before (the JSON form of an entry); it must be canonical.
    @Test func aPersonMayBeGivenAsARef() throws {
        let ref = t.linkKey.agentRef(org: "brand", employeeID: "E-7")
        let body = try t.body(Self.interaction(agent: #"{"id":"\#(SubjectRef.text(ref))","kind":"person"}"#))
        guard case .interaction(let b) = body else { throw LedgerError(.io, "not an interaction") }
        #expect(b.agent.id == .ref(ref))
        #expect(
            message(
                Self.interaction(agent: #"{"id":"ref:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB","kind":"person"}"#))
                == "field 'agent.id': 'ref:' must be followed by 43 base64url characters")
    }

    /// The stored form: a person is bytes(32), software and devices text. An entry from another writer that
    /// breaks this is rejected by the decoder, whatever the consortium.
    @Test func storedAgentIdTypeFollowsTheKind() throws {
        let person = try t.body(Self.interaction(agent: #"{"id":"E-1","kind":"person"}"#))
        guard case .interaction(var b) = person else { throw LedgerError(.io, "not an interaction") }
        b.agent.id = .name("mailer")
        #expect(
            ledgerError { _ = try Entry.decode(entryBytes(.interaction(b))) }?.message
                == "body.agent.id: a person agent is a 32-byte ref (a keyed pseudonym), never a name")
        b.agent = Agent(id: .ref(SHA256.hash("x")), kind: "software")
        #expect(
            ledgerError { _ = try Entry.decode(entryBytes(.interaction(b))) }?.message
                == "body.agent.id: a software agent is named by a code, not a ref")
        b.agent = Agent(id: .name("Bob Smith"), kind: "device")
        #expect(
            ledgerError { _ = try Entry.decode(entryBytes(.interaction(b))) }?.message
                == "body.agent.id: a value of 9 bytes that holds a space is not a code (1-64 of a-z 0-9 . _ -)")
        b.agent = Agent(id: .name("mailer"), kind: "software")
        b.interaction = "555-867-5309"
        #expect(
            ledgerError { _ = try Entry.decode(entryBytes(.interaction(b))) }?.message
                == "body.interaction: a value of 12 bytes is not a code (1-64 of a-z 0-9 . _ -)")
    }

    /// A code that is well formed but not declared decodes, and the consortium check (the one `prov verify` and
    /// `prov verify-receipt` apply) names it.
    @Test func undeclaredCodesFailTheConsortiumCheck() throws {
        let good = try t.body(Self.interaction(agent: #"{"id":"mailer","kind":"software"}"#))
        guard case .interaction(var b) = good else { throw LedgerError(.io, "not an interaction") }
        b.interaction = "ticket-20261129"
        var e = try Entry.decode(entryBytes(.interaction(b)))
        #expect(
            e.consortiumFailure(t.consortium)
                == "body.interaction: a value of 15 bytes is not an interaction type of the consortium's vocabulary")
        b.interaction = "support-call"
        b.agent = Agent(id: .name("thermostat"), kind: "software")
        e = try Entry.decode(entryBytes(.interaction(b)))
        #expect(
            e.consortiumFailure(t.consortium)
                == "body.agent.id: 'thermostat' is not a software agent of the consortium's vocabulary")
        guard
            case .consent(var c) = try t.body(
                Self.consent(notice: #"{"id":"privacy","version":"2.1","sha256":"\#(Self.hex)"}"#))
        else { throw LedgerError(.io, "not a consent") }
        c.notice?.id = "house-rules"
        e = try Entry.decode(entryBytes(.consent(c)))
        #expect(
            e.consortiumFailure(t.consortium)
                == "body.notice.id: 'house-rules' is not a notice of the consortium's vocabulary")
    }

    @Test(arguments: [
        ("7", true), ("2.1", true), ("2026.11.24", true), ("1.2.3.4", true), ("0", true), ("", false),
        ("1.2.3.4.5", false), ("12345", false), ("1..2", false), (".1", false), ("1.", false), ("v7", false),
        ("1-2", false), ("555.867.5309", true),
    ])
    func noticeVersions(_ c: (String, Bool)) {
        #expect(Vocabulary.isNoticeVersion(c.0) == c.1, "\(c.0)")
    }

    @Test(arguments: [
        ("support-call", true), ("a", true), ("web.visit_2", true), (String(repeating: "a", count: 64), true),
        (String(repeating: "a", count: 65), false), ("", false), ("1-call", false), ("-call", false),
        ("Support-Call", false), ("call me", false), ("a@b", false), ("a+b", false),
    ])
    func codes(_ c: (String, Bool)) {
        #expect(Vocabulary.isCode(c.0) == c.1, "\(c.0)")
    }
}

/// The linking key's fingerprint in the descriptor: a wrong key must not pass silently (Specs/format.md §9.2).
@Suite(.leavesNoFiles) struct LinkKeyFingerprintTests {
    let t: TestConsortium
    init() throws { t = try TestConsortium() }

    @Test func fingerprintIsTheDomainSeparatedHashOfTheKey() throws {
        let raw = try SecureRandom.bytes(32)
        let expected = SHA256.hash(Array("provenance-ledger linking-key fingerprint v1".utf8) + [0] + raw)
        #expect(try LinkKey(bytes: raw).fingerprint == expected)
        #expect(expected != SHA256.hash(raw))
    }

    @Test func descriptorCarriesItThroughJSON() throws {
        let again = try Consortium(json: try JSON.parse(t.consortium.json.prettySerialized))
        #expect(again.linkKeyFingerprint == t.linkKey.fingerprint)
        #expect(again.vocabulary == .standard)
        // Upper-case hex or a short value is refused: one text per fingerprint.
        for bad in [t.linkKey.fingerprint.hex.uppercased(), "abcd", "12"] {
            var text = t.consortium.json.serialized
            text = text.replacingOccurrences(of: t.linkKey.fingerprint.hex, with: bad)
            #expect(
                ledgerError { _ = try Consortium(json: try JSON.parse(text)) }?.message
                    == "consortium descriptor: linkKeyFingerprint must be 64 lower-case hex digits")
        }
    }

    @Test func theAppendPathRefusesAnotherKey() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let other = try LinkKey(bytes: SecureRandom.bytes(32))
        let error = ledgerError {
            _ = try Ingestor(
                dataDirectory: dir.path, consortium: t.consortium, signer: t.signers["brand"]!, linkKey: other,
                log: { _ in })
        }
        #expect(error?.code == .config)
        #expect(
            error?.message
                == "the linking key is not consortium acme's: its fingerprint starts \(other.fingerprint.hex.prefix(8)), "
                + "the descriptor's linkKeyFingerprint starts \(t.linkKey.fingerprint.hex.prefix(8)); use the "
                + "consortium's linking key (another key would give every customer new subject refs, split from their "
                + "earlier entries)")
        // Nothing was created for the refused key.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func aDescriptorWithoutFingerprintIsRefusedWithTheValueToAdd() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = t.consortium
        c.linkKeyFingerprint = nil
        let error = ledgerError {
            _ = try Ingestor(
                dataDirectory: dir.path, consortium: c, signer: t.signers["brand"]!, linkKey: t.linkKey, log: { _ in })
        }
        #expect(error?.message.contains(#""linkKeyFingerprint": "\#(t.linkKey.fingerprint.hex)""#) == true)
    }
}
