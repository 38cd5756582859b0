import Foundation
import ProvCrypto
import ProvLedger
import TestSupport
import Testing

@testable import ProvView

/// Every consent event in every state (Specs/view.md §4.2), driven through real logs and the index: the table the
/// test expects is read from the spec itself, so the spec and the code cannot drift apart.
@Suite(.leavesNoFiles) struct ConsentStateTests {
    /// The transition table of Specs/view.md: state → event → new state, nil where the event is ignored.
    static func specTable() throws -> [ConsentStatus: [ConsentEvent: ConsentStatus?]] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../Specs/view.md")
        let text = try String(contentsOf: url, encoding: .utf8)
        let start = try #require(text.range(of: "<!-- transition-table -->"))
        let end = try #require(text.range(of: "<!-- /transition-table -->"))
        let rows = text[start.upperBound..<end.lowerBound].split(separator: "\n").map {
            $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let events = try rows[0].dropFirst().map { try #require(ConsentEvent(rawValue: $0)) }
        var table: [ConsentStatus: [ConsentEvent: ConsentStatus?]] = [:]
        for r in rows.dropFirst(2) {
            let state = try #require(ConsentStatus(rawValue: r[0]))
            for (i, cell) in r.dropFirst().enumerated() {
                if cell == "—" {
                    table[state, default: [:]][events[i]] = .some(nil)
                } else {
                    let next: ConsentStatus = try #require(ConsentStatus(rawValue: cell), "cell '\(cell)'")
                    table[state, default: [:]][events[i]] = next
                }
            }
        }
        return table
    }

    /// The events that put a fresh subject into `state` (brand as controller, direct marketing).
    static func setup(_ state: ConsentStatus, _ subject: String) -> [String] {
        func c(_ e: String, expires: UInt64? = nil) -> String { Event.consent(subject, e, expires: expires) }
        switch state {
        case .unknown: return []
        case .requested: return [c("request")]
        case .given: return [c("give")]
        case .refused: return [c("refuse")]
        case .withdrawn: return [c("give"), c("withdraw")]
        case .revoked: return [c("give"), c("revoke")]
        // Expires half an hour before the clock the entries are written at.
        case .expired: return [c("give", expires: t0 - 1_800_000)]
        case .renewed: return [c("give"), c("renew")]
        case .objected: return [c("object")]
        case .invalidated: return [c("invalidate")]
        }
    }

    @Test func everyEventInEveryState() throws {
        let table = try Self.specTable()
        #expect(table.count == ConsentStatus.allCases.count)
        #expect(table.values.allSatisfy { $0.count == ConsentEvent.allCases.count })
        let ledger = try Ledger()
        defer { ledger.remove() }
        var now = t0
        var cells: [(state: ConsentStatus, event: ConsentEvent, subject: String, last: EntryRef?, applied: EntryRef)] =
            []
        for state in ConsentStatus.allCases {
            for event in ConsentEvent.allCases {
                let subject = "cust:brand:cell-\(state.rawValue)-\(event.rawValue)"
                var last: EntryRef?
                for e in Self.setup(state, subject) {
                    now += 1000
                    last = try ledger.append("brand", e, now: now)
                }
                now += 1000
                let applied = try ledger.append("brand", Event.consent(subject, event.rawValue), now: now)
                cells.append((state, event, subject, last, applied))
            }
        }
        let index = try ledger.index()
        let at = t0 + 10 * 86_400_000
        for cell in cells {
            let expected = try #require(table[cell.state]?[cell.event])
            let view = try index.view(subject: cell.subject, at: at)
            let got = view.consents.first { $0.controller == "brand" && $0.purpose == "dpv:DirectMarketing" }
            let permit = try index.permit(subject: cell.subject, org: "brand", purpose: "dpv:DirectMarketing", at: at)
            let label = "\(cell.state.rawValue) + \(cell.event.rawValue)"
            if let next = expected {
                #expect(got?.state == next, "\(label)")
                #expect(got?.decidedBy.ref == cell.applied, "\(label): decided by the event")
                #expect(permit.allowed == next.permits, "\(label)")
            } else {
                // Ignored: the state is what the setup left, decided by the setup's last entry.
                let before = cell.state
                #expect((got?.state ?? .unknown) == before, "\(label)")
                #expect(got?.decidedBy.ref == cell.last, "\(label): still decided by the setup")
                if let got {
                    #expect(got.eventsIgnored >= 1, "\(label)")
                } else {
                    #expect(before == .unknown, "\(label): no state at all")
                }
                #expect(permit.allowed == before.permits, "\(label)")
            }
            if !permit.allowed { #expect(permit.reason != nil, "\(label)") }
        }
    }

    /// A consent that expires permits until `expiresAt` and not from then on; the answer says which entry decided.
    @Test func permitChangesAtExpiry() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        let expires = t0 + 86_400_000
        let give = try ledger.append(
            "brand", Event.consent("email:ann@example.com", "give", recipients: ["retail"], expires: expires), now: t0)
        let index = try ledger.index()
        let before = try index.permit(
            subject: "email:Ann@Example.com", org: "retail", purpose: "dpv:DirectMarketing", channel: "email",
            at: expires - 1)
        #expect(before.allowed)
        #expect(before.state == .given && before.decidedBy?.ref == give && before.expiresAt == expires)
        #expect(before.controller == "brand" && before.recipients == ["retail"])
        let after = try index.permit(
            subject: "email:ann@example.com", org: "retail", purpose: "dpv:DirectMarketing", at: expires)
        #expect(!after.allowed)
        #expect(after.state == .expired && after.decidedBy?.ref == give)
        #expect(after.reason == "consent of brand for dpv:DirectMarketing expired at \(iso(expires))")
        // Not a recipient, not the controller: no consent names it.
        let care = try index.permit(
            subject: "email:ann@example.com", org: "care", purpose: "dpv:DirectMarketing", at: t0)
        #expect(!care.allowed && care.state == .unknown && care.decidedBy == nil)
    }

    /// A withdrawal changes the answer once it is committed to the index, not before.
    @Test func permitChangesWhenTheWithdrawalArrives() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        try ledger.append("brand", Event.consent("phone:+441632960001", "give"), now: t0)
        let index = try ledger.index()
        let ask = {
            try index.permit(
                subject: "phone:+44 1632 960001", org: "brand", purpose: "dpv:DirectMarketing", at: t0 + 5000)
        }
        #expect(try ask().allowed)
        let withdraw = try ledger.append(
            "brand", Event.consent("phone:+441632960001", "withdraw", channel: "sms"), now: t0 + 2000)
        let store = ledger.stores["brand"]!
        try index.ingest(
            org: "brand", seq: withdraw.seq, leaf: withdraw.leaf, entryBytes: try store.entryBytes(withdraw.seq))
        #expect(try ask().allowed, "ingested but not committed: not yet part of the frontier")
        try index.commit(org: "brand", size: store.size, checkpoint: store.latest!)
        let answer = try ask()
        #expect(!answer.allowed && answer.state == .withdrawn && answer.decidedBy?.ref == withdraw)
        #expect(answer.reason == "consent of brand for dpv:DirectMarketing was withdrawn")
    }

    /// An objection to one controller's direct marketing blocks it even where another controller's consent names
    /// it as a recipient; a later give lifts it.
    @Test func objectionOverridesOtherConsents() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        let s = "email:bo@example.com"
        try ledger.append("brand", Event.consent(s, "give", recipients: ["retail"]), now: t0)
        try ledger.append("retail", Event.consent(s, "give", controllers: ["retail"]), now: t0 + 1000)
        let objection = try ledger.append("retail", Event.consent(s, "object", controllers: ["retail"]), now: t0 + 2000)
        var index = try ledger.index()
        var answer = try index.permit(subject: s, org: "retail", purpose: "dpv:DirectMarketing", at: t0 + 5000)
        #expect(!answer.allowed && answer.state == .objected && answer.decidedBy?.ref == objection)
        #expect(try index.permit(subject: s, org: "brand", purpose: "dpv:DirectMarketing", at: t0 + 5000).allowed)
        // A renew does not lift it; a give does.
        try ledger.append("retail", Event.consent(s, "renew", controllers: ["retail"]), now: t0 + 3000)
        index = try ledger.index()
        #expect(try !index.permit(subject: s, org: "retail", purpose: "dpv:DirectMarketing", at: t0 + 5000).allowed)
        let give = try ledger.append("retail", Event.consent(s, "give", controllers: ["retail"]), now: t0 + 4000)
        index = try ledger.index()
        answer = try index.permit(subject: s, org: "retail", purpose: "dpv:DirectMarketing", at: t0 + 5000)
        #expect(answer.allowed && answer.decidedBy?.ref == give)
    }
}
