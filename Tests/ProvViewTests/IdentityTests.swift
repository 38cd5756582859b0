import Foundation
import ProvCrypto
import ProvLedger
import TestSupport
import Testing

@testable import ProvView

/// Link and unlink decide which refs are one person: the last of them (by hlc, log, seq) between two refs
/// decides their edge, and a person is everything connected (Specs/view.md §3).
@Suite(.leavesNoFiles) struct IdentityTests {
    let email = "email:carol@example.com"
    let phone = "phone:+441632960002"
    let card = "cust:retail:C-9"

    func allowed(_ index: ViewIndex, _ subject: String) throws -> Bool {
        try index.permit(subject: subject, org: "brand", purpose: "dpv:DirectMarketing", at: t0 + 100_000).allowed
    }

    @Test func linkUnlinkAndRelink() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        try ledger.append("brand", Event.consent(email, "give"), now: t0 + 1000)
        #expect(try !allowed(ledger.index(), phone), "not linked yet")
        try ledger.append("care", Event.link(email, phone), now: t0 + 2000)
        #expect(try allowed(ledger.index(), phone))
        #expect(try ledger.index().view(subject: phone).refs == [ledger.ref(email), ledger.ref(phone)].sorted())
        try ledger.append("retail", Event.link(phone, email, unlink: true), now: t0 + 3000)
        #expect(try !allowed(ledger.index(), phone), "unlinked")
        #expect(try ledger.index().view(subject: phone).refs == [ledger.ref(phone)])
        try ledger.append("brand", Event.link(email, phone), now: t0 + 4000)
        let index = try ledger.index()
        #expect(try allowed(index, phone), "linked again")
        let links = try index.view(subject: email).links
        #expect(links.count == 1 && links[0].linked && links[0].decidedBy.ref.org == "brand")
    }

    @Test func aPersonIsEverythingConnected() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        try ledger.append("brand", Event.consent(email, "give"), now: t0 + 1000)
        try ledger.append("care", Event.link(email, phone), now: t0 + 2000)
        try ledger.append("retail", Event.link(phone, card), now: t0 + 3000)
        #expect(try allowed(ledger.index(), card), "email — phone — card")
        // Cutting email — phone separates the card from the email, though phone and card stay one person.
        try ledger.append("care", Event.link(email, phone, unlink: true), now: t0 + 4000)
        let index = try ledger.index()
        #expect(try !allowed(index, card))
        #expect(try index.view(subject: card).refs == [ledger.ref(phone), ledger.ref(card)].sorted())
        #expect(try index.view(subject: email).refs == [ledger.ref(email)])
    }

    /// Order by hlc, not by which log was read first: an unlink recorded before a link (by hlc) loses to it.
    @Test func theLaterEventDecidesWhicheverLogHoldsIt() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        try ledger.append("brand", Event.consent(email, "give"), now: t0 + 1000)
        try ledger.append("retail", Event.link(email, phone, unlink: true), now: t0 + 2000, sees: [:])
        try ledger.append("care", Event.link(email, phone), now: t0 + 3000, sees: [:])
        for order in [["retail", "care", "brand"], ["care", "retail", "brand"], ["brand", "care", "retail"]] {
            #expect(try allowed(ledger.index(order: order), phone))
        }
    }

    @Test func anUnknownSubjectHasAnEmptyViewNotAnError() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        try ledger.append("brand", Event.consent(email, "give"), now: t0 + 1000)
        let index = try ledger.index()
        let v = try index.view(subject: "email:nobody@example.com", at: t0)
        #expect(v.refs == [try ledger.ref("email:nobody@example.com")])
        #expect(v.consents.isEmpty && v.timeline.isEmpty && v.compliance.isEmpty && v.links.isEmpty)
        #expect(v.frontier == index.frontier && v.digest == ViewDigest.digest(v))
        let p = try index.permit(subject: "email:nobody@example.com", org: "brand", purpose: "dpv:DirectMarketing")
        #expect(!p.allowed && p.state == .unknown && p.decidedBy == nil && p.reason != nil)
        #expect(try index.timeline(subject: "email:nobody@example.com").items.isEmpty)
        // A ref that was never written is as unknown; an index with no logs at all answers the same way.
        let empty = ViewIndex(consortium: ledger.consortium, linkKey: nil)
        let r = try ledger.refText("email:nobody@example.com")
        #expect(try empty.view(subject: r, at: t0).timeline.isEmpty)
        #expect(try empty.view(subject: r, at: t0).frontier.logs.isEmpty)
    }

    /// Bad parameters name the parameter, and a raw identifier never appears in a message.
    @Test func badParametersAreNamedAndIdentifiersNeverEchoed() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        let index = try ledger.index()
        func error(_ body: () throws -> Void) -> ViewError? {
            do {
                try body()
                return nil
            } catch { return error as? ViewError }
        }
        let cases: [(ViewError?, String)] = [
            (error { _ = try index.view(subject: "email:not an address") }, "subject"),
            (error { _ = try index.view(subject: "ref:abc") }, "subject"),
            (error { _ = try index.view(subject: "carol@example.com") }, "subject"),
            (error { _ = try index.permit(subject: email, org: "acme-evil", purpose: "dpv:Marketing") }, "org"),
            (error { _ = try index.permit(subject: email, org: "brand", purpose: "dpv:Gossip") }, "purpose"),
            (
                error { _ = try index.permit(subject: email, org: "brand", purpose: "dpv:Marketing", channel: "fax") },
                "channel"
            ),
            (error { _ = try index.compliance(org: "brand", from: 10, to: 5) }, "to"),
        ]
        for (e, parameter) in cases {
            #expect(e?.code == .badParameter && e?.parameter == parameter, "\(String(describing: e))")
            #expect(e?.message.contains("carol") == false && e?.message.contains("not an address") == false)
        }
        // Without the linking key only refs are taken.
        let refsOnly = ViewIndex(consortium: ledger.consortium, linkKey: nil)
        #expect(error { _ = try refsOnly.view(subject: email) }?.parameter == "subject")
        #expect(try refsOnly.view(subject: try ledger.refText(email)).refs == [try ledger.ref(email)])
    }
}

/// The interaction's `consentRef` is checked against what it names (Specs/view.md §7.3).
@Suite(.leavesNoFiles) struct ConsentRefTests {
    @Test func eachFlag() throws {
        let ledger = try Ledger()
        defer { ledger.remove() }
        let dan = "email:dan@example.com"
        let eve = "email:eve@example.com"
        let danGive = try ledger.append("brand", Event.consent(dan, "give"), now: t0 + 1000)
        let eveGive = try ledger.append("brand", Event.consent(eve, "give", recipients: ["retail"]), now: t0 + 2000)
        let danAnalytics = try ledger.append(
            "brand", Event.consent(dan, "give", purposes: ["dpv:ServiceUsageAnalytics"]), now: t0 + 3000)
        let danRefuse = try ledger.append(
            "brand", Event.consent(dan, "refuse", purposes: ["dpv:Personalisation"]), now: t0 + 4000)
        let otherPerson = try ledger.append("brand", Event.interaction(dan, consentRef: eveGive), now: t0 + 5000)
        let otherPurpose = try ledger.append("brand", Event.interaction(dan, consentRef: danAnalytics), now: t0 + 6000)
        let notGiven = try ledger.append(
            "brand", Event.interaction(dan, purposes: ["dpv:Personalisation"], consentRef: danRefuse), now: t0 + 7000)
        let notForActor = try ledger.append("retail", Event.interaction(dan, consentRef: danGive), now: t0 + 8000)
        let fine = try ledger.append("brand", Event.interaction(dan, consentRef: danGive), now: t0 + 9000)
        try ledger.append("brand", Event.consent(dan, "withdraw"), now: t0 + 10_000)
        let superseded = try ledger.append("brand", Event.interaction(dan, consentRef: danGive), now: t0 + 11_000)
        let index = try ledger.index()
        let findings = Dictionary(
            uniqueKeysWithValues: try index.view(subject: dan).compliance.map { ($0.interaction.ref, $0) })
        func codes(_ r: EntryRef) -> [String] { findings[r]?.flags.map(\.code) ?? ["(none)"] }
        #expect(codes(otherPerson) == ["other-person"])
        #expect(codes(otherPurpose) == ["other-purpose"])
        #expect(codes(notGiven) == ["not-in-force"])
        #expect(codes(notForActor) == ["not-for-actor"])
        #expect(codes(fine) == [])
        #expect(codes(superseded) == ["not-in-force"])
        // Classification is by state, not by the ref: dan had given consent for direct marketing to brand.
        #expect(findings[otherPerson]?.classification == .lawful)
        #expect(findings[otherPurpose]?.classification == .lawful)
        #expect(findings[notGiven]?.classification == .violation)
        #expect(findings[notForActor]?.classification == .violation)
        #expect(findings[superseded]?.classification == .violation)
    }
}
