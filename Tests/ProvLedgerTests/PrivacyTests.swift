import Foundation
import Testing

@testable import ProvLedger

/// Raw customer identifiers must never reach the log, and error messages end up there: an event that puts an
/// email, phone number or customer id into a field it does not belong in is rejected with a message that names the
/// field and says nothing of the identifier.
@Suite struct PrivacyTests {
    let t: TestConsortium
    init() throws { t = try TestConsortium() }

    static let email = "alice.secret@example.org"
    static let phone = "+14155550123"
    static let custID = "C98765432"

    /// Pieces of the identifiers above that no message may contain.
    static let forbidden = ["alice", "secret", "example", "4155550123", "415", "5550", "0123", "98765432"]

    static let hex = String(repeating: "ab", count: 32)

    /// Valid events of each type, as (key, raw JSON value) in order: each case replaces or adds one key.
    static let bases: [String: [(String, String)]] = [
        "consent": [
            ("type", #""consent""#), ("subject", #""cust:brand:C1""#), ("event", #""give""#),
            ("purposes", #"["dpv:DirectMarketing"]"#), ("channel", #""web""#), ("method", #""web-form""#),
            ("legalBasis", #""dpv:Consent""#), ("occurredAt", #""2026-11-24T10:00:00Z""#),
            ("notice", #"{"id":"privacy","version":"3","sha256":"\#(hex)"}"#),
        ],
        "interaction": [
            ("type", #""interaction""#), ("subject", #""cust:brand:C1""#), ("channel", #""voice""#),
            ("interaction", #""support-call""#), ("purposes", #"["dpv:CustomerCare"]"#),
            ("legalBasis", #""dpv:Contract""#),
            ("agent", #"{"id":"agent-42","kind":"person","onBehalfOf":"brand"}"#),
            ("occurredAt", #""2026-11-24T10:00:00Z""#),
        ],
        "share": [
            ("type", #""share""#), ("subject", #""cust:brand:C1""#), ("recipient", #""retail""#),
            ("purposes", #"["dpv:DirectMarketing"]"#), ("dataCategories", #"["dpv:Contact"]"#),
            ("occurredAt", #""2026-11-24T10:00:00Z""#),
        ],
        "link": [
            ("type", #""link""#), ("subjects", #"["cust:brand:C1","cust:brand:C2"]"#), ("evidence", #""\#(hex)""#),
            ("occurredAt", #""2026-11-24T10:00:00Z""#),
        ],
    ]

    /// The base event of `type` with `key` set to the raw JSON `value`.
    static func event(_ type: String, _ key: String, _ value: String) -> String {
        var fields = bases[type]!
        if let i = fields.firstIndex(where: { $0.0 == key }) {
            fields[i].1 = value
        } else {
            fields.append((key, value))
        }
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    struct Case: Sendable, CustomTestStringConvertible {
        let json: String
        /// The field the message must name, as `field '<path>'`.
        let field: String
        let testDescription: String

        init(_ type: String, _ key: String, _ value: String, field: String? = nil) {
            json = PrivacyTests.event(type, key, value)
            self.field = field ?? key
            testDescription = "\(type).\(field ?? key)"
        }
    }

    static let cases: [Case] = [
        // Subjects: an unknown scheme, a cust: org that is not a member, malformed identifiers.
        Case("consent", "subject", #""\#(email):x""#),
        Case("consent", "subject", #""Email:\#(email)""#),
        Case("consent", "subject", #""cust:\#(email):1""#),
        Case("consent", "subject", #""cust:\#(phone.dropFirst()):\#(custID)""#),
        Case("consent", "subject", #""\#(email)""#),
        Case("consent", "subject", #""phone:\#(phone)99999999""#),
        Case("link", "subjects", #"["cust:brand:C1","\#(email):\#(custID)"]"#, field: "subjects[1]"),
        // Org ids.
        Case("share", "recipient", #""email:\#(email)""#),
        Case("consent", "controllers", #"["brand","\#(email)"]"#, field: "controllers[1]"),
        Case("consent", "recipients", #"["\#(phone)"]"#, field: "recipients[0]"),
        Case(
            "interaction", "agent", #"{"id":"agent-42","kind":"person","onBehalfOf":"\#(email)"}"#,
            field: "agent.onBehalfOf"),
        Case("interaction", "consentRef", #"{"org":"\#(email)","seq":1}"#, field: "consentRef.org"),
        Case("interaction", "derivedFrom", #"[{"org":"\#(phone.dropFirst())","seq":0}]"#, field: "derivedFrom[0].org"),
        // Codes.
        Case("consent", "purposes", #"["\#(email)"]"#, field: "purposes[0]"),
        Case("share", "dataCategories", #"["phone:\#(phone)"]"#, field: "dataCategories[0]"),
        Case("consent", "channel", #""tel:\#(phone.dropFirst())""#),
        Case("consent", "method", #""\#(email)""#),
        Case("consent", "event", #""cust:brand:\#(custID)""#),
        Case("interaction", "legalBasis", #""\#(phone)""#),
        Case("interaction", "agent", #"{"id":"agent-42","kind":"\#(email)"}"#, field: "agent.kind"),
        Case("share", "type", #""\#(email)""#),
        // Timestamps and hex.
        Case("consent", "occurredAt", #""\#(email)""#),
        Case("consent", "expiresAt", #""2026-11-24T10:00:00Z \#(phone)""#),
        Case("consent", "evidence", #""\#(phone.dropFirst())""#),
        Case("consent", "notice", #"{"id":"privacy","version":"3","sha256":"\#(email)"}"#, field: "notice.sha256"),
        // Free-text tokens that fail their checks, and unknown keys inside objects.
        Case("consent", "notice", #"{"id":"\#(email) v2","version":"3","sha256":"\#(hex)"}"#, field: "notice.id"),
        Case("interaction", "interaction", #""call from \#(phone)""#),
        Case("consent", "notice", #"{"id":"privacy","version":"3","sha256":"\#(hex)","\#(email)":1}"#, field: "notice"),
        Case("interaction", "consentRef", #"{"org":"brand","seq":1,"\#(phone)":1}"#, field: "consentRef"),
    ]

    @Test func basesAreValid() throws {
        for type in Self.bases.keys.sorted() {
            _ = try t.body(Self.event(type, "type", #""\#(type)""#))
        }
    }

    @Test(arguments: cases)
    func rejectedWithoutRepeatingTheIdentifier(_ c: Case) {
        let error = ledgerError { _ = try t.body(c.json) }
        let message = error?.message ?? ""
        #expect(error?.code == .invalidEvent, "accepted: \(c.json)")
        #expect(message.hasPrefix("field '\(c.field)': "), "got: \(message)")
        for piece in Self.forbidden {
            #expect(!message.contains(piece), "'\(piece)' in: \(message)")
        }
    }

    @Test func unknownTopLevelKeyIsNotRepeated() {
        let json = Self.event("consent", Self.email, "1")
        let message = ledgerError { _ = try t.body(json) }?.message ?? ""
        #expect(message.contains("unknown field"), "got: \(message)")
        for piece in Self.forbidden { #expect(!message.contains(piece), "'\(piece)' in: \(message)") }
    }

    @Test func safeValuesAreStillQuoted() {
        #expect(LedgerError.shown("dpv:Gossip") == "'dpv:Gossip'")
        #expect(LedgerError.shown("acme-evil") == "'acme-evil'")
        #expect(LedgerError.shown("2026-11-24T10:00:00.250Z") == "'2026-11-24T10:00:00.250Z'")
        #expect(LedgerError.shown("agent-12345") == "'agent-12345'")
        #expect(LedgerError.shown(String(repeating: "x", count: 64)) == "'\(String(repeating: "x", count: 64))'")
    }

    @Test func identifierLikeValuesAreDescribed() {
        #expect(LedgerError.shown("a@b.co") == "a value of 6 bytes")
        #expect(LedgerError.shown("+441632960001") == "a value of 13 bytes")
        #expect(LedgerError.shown("cust:bank:C123456") == "a value of 17 bytes")
        #expect(LedgerError.shown("441632960001") == "a value of 12 bytes")
        #expect(LedgerError.shown("2026-11-24 10:00:00") == "a value of 19 bytes that holds a space")
        // Where a blank is, without the value: a slip its size alone would hide.
        #expect(LedgerError.shown(" web") == "a value of 4 bytes that starts with a space")
        #expect(LedgerError.shown("web\t") == "a value of 4 bytes that ends with a tab")
        #expect(LedgerError.shown("a\u{A0}b") == "a value of 4 bytes that holds a no-break space")
        #expect(LedgerError.shown("") == "a value of 0 bytes")
        #expect(LedgerError.shown(String(repeating: "x", count: 65)) == "a value of 65 bytes")
    }

    @Test func subjectErrorsNameOnlyASchemeOrAnOrg() {
        func message(_ subject: String) -> String {
            ledgerError { _ = try t.body(Self.event("consent", "subject", #""\#(subject)""#)) }?.message ?? ""
        }
        #expect(message("fax:123").contains("unknown identifier scheme 'fax:'"))
        #expect(message("cust:zeta:C1").contains("'cust:' names org 'zeta', which is not a consortium member"))
        #expect(!message("cust:Zeta9:C1").contains("Zeta9"))
        #expect(!message("Cust:brand:C1").contains("Cust"))
    }
}
