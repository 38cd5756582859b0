import Foundation
import ProvCrypto
import ProvLedger
import TestSupport
import Testing

@testable import ProvView

/// A customer's journey across a sports brand, a retailer and a contact centre serving both, with one violation
/// and one propagation lag in it, and a few other customers around it.
struct Journey {
    let ledger: Ledger
    let alice = "email:alice@example.com"
    let phone = "phone:+441632960001"
    let till = "cust:retail:R-77"
    var refs: [String: EntryRef] = [:]
    /// When the brand recorded the withdrawal, and when the contact centre acted without having seen it.
    var withdrawnAt: UInt64 = 0
    var lagActedAt: UInt64 = 0
    var caughtUpAt: UInt64 = 0

    init() throws {
        ledger = try Ledger()
        var now = t0
        func at(_ step: UInt64) -> UInt64 {
            now += step
            return now
        }
        refs["give-web"] = try ledger.append(
            "brand",
            Event.consent(
                alice, "give", purposes: ["dpv:DirectMarketing", "dpv:Personalisation"],
                recipients: ["care", "retail"], occurred: t0 - 5000, notice: ("privacy", "7")),
            now: at(1000))
        refs["give-app"] = try ledger.append(
            "brand",
            Event.consent(
                alice, "give", purposes: ["dpv:ResearchAndDevelopment", "dpv:ServicePersonalisation"], channel: "app",
                occurred: t0 - 4000, expires: t0 + 365 * 86_400_000),
            now: at(1000))
        refs["link-phone"] = try ledger.append("care", Event.link(alice, phone), now: at(1000))
        refs["support-call"] = try ledger.append(
            "care",
            Event.interaction(
                phone, purposes: ["dpv:CustomerCare"], basis: "dpv:Contract", channel: "voice", type: "support-call",
                agent: "agent-42", agentKind: "person", onBehalfOf: "brand"),
            now: at(1000))
        refs["chatbot"] = try ledger.append(
            "care",
            Event.interaction(
                phone, purposes: ["dpv:CustomerCare"], basis: "dpv:LegitimateInterest", channel: "chat",
                type: "chat-answer", agent: "chatbot", agentKind: "software", onBehalfOf: "brand"),
            now: at(1000))
        refs["wearable"] = try ledger.append(
            "brand",
            Event.interaction(
                alice, purposes: ["dpv:ServicePersonalisation"], consentRef: refs["give-app"], channel: "iot",
                type: "activity-sync", agent: "wearable", agentKind: "device"),
            now: at(1000))
        refs["recommendation"] = try ledger.append(
            "brand",
            Event.interaction(
                alice, purposes: ["dpv:Personalisation"], consentRef: refs["give-web"], channel: "app",
                type: "product-recommendation", agent: "recommender", derivedFrom: [refs["wearable"]!]),
            now: at(1000))
        refs["link-till"] = try ledger.append("retail", Event.link(alice, till), now: at(1000))
        refs["purchase"] = try ledger.append(
            "retail",
            Event.interaction(
                till, purposes: ["dpv:SellProducts"], basis: "dpv:Contract", channel: "store", type: "purchase",
                agent: "store-till", agentKind: "device"),
            now: at(1000))
        refs["share"] = try ledger.append(
            "brand", Event.share(alice, to: "retail", derivedFrom: [refs["give-web"]!]), now: at(1000))
        refs["retail-mail-ok"] = try ledger.append(
            "retail", Event.interaction(alice, consentRef: refs["give-web"], derivedFrom: [refs["share"]!]),
            now: at(1000))
        // Background traffic: other customers, each with a consent and a lawful mailing.
        for i in 0..<6 {
            let other = "email:customer\(i)@example.com"
            let g = try ledger.append("brand", Event.consent(other, "give", recipients: ["retail"]), now: at(10))
            try ledger.append("retail", Event.interaction(other, consentRef: g), now: at(10))
        }
        let careSawBrand = ledger.stores["brand"]!.size - 1
        withdrawnAt = at(60_000)
        refs["withdraw"] = try ledger.append(
            "brand", Event.consent(phone, "withdraw", channel: "sms", occurred: withdrawnAt - 30_000), now: withdrawnAt)
        // The retailer has synced the withdrawal (its deps cite it) and mails anyway: a violation.
        refs["retail-mail-violation"] = try ledger.append(
            "retail", Event.interaction(alice, consentRef: refs["give-web"]), now: at(5000))
        // The contact centre has not: it sends an SMS 7 s later relying on the consent it still sees.
        lagActedAt = at(2000)
        refs["care-sms-lag"] = try ledger.append(
            "care",
            Event.interaction(
                phone, consentRef: refs["give-web"], channel: "sms", type: "marketing-email", agent: "mailer",
                onBehalfOf: "brand"),
            now: lagActedAt, sees: ["brand": careSawBrand, "retail": ledger.stores["retail"]!.size - 1])
        // Later it catches up (cites the withdrawal) while taking a call.
        caughtUpAt = at(30_000)
        refs["care-caught-up"] = try ledger.append(
            "care",
            Event.interaction(
                phone, purposes: ["dpv:CustomerCare"], basis: "dpv:Contract", channel: "voice", type: "support-call",
                agent: "agent-7", agentKind: "person", onBehalfOf: "brand"),
            now: caughtUpAt)
    }
}

@Suite(.leavesNoFiles) struct JourneyTests {
    @Test func complianceFindsTheViolationAndTheLagAndNothingElse() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let index = try j.ledger.index()
        let view = try index.view(subject: j.alice)
        let byRef = Dictionary(uniqueKeysWithValues: view.compliance.map { ($0.interaction.ref, $0) })
        // Every interaction relying on consent is classified; those on contract or legitimate interest are not.
        #expect(
            Set(byRef.keys)
                == Set(
                    ["wearable", "recommendation", "retail-mail-ok", "retail-mail-violation", "care-sms-lag"].map {
                        j.refs[$0]!
                    }))
        let violation = try #require(byRef[j.refs["retail-mail-violation"]!])
        #expect(violation.classification == .violation)
        #expect(violation.purpose == "dpv:DirectMarketing")
        #expect(violation.deciding.map(\.ref) == [j.refs["withdraw"]!])
        #expect(violation.reason.contains("withdrawn"))
        let lag = try #require(byRef[j.refs["care-sms-lag"]!])
        #expect(lag.classification == .propagationLag)
        #expect(lag.lagMs == j.lagActedAt - j.withdrawnAt)
        #expect(lag.seenAfterMs == j.caughtUpAt - j.withdrawnAt)
        #expect(lag.deciding.map(\.ref) == [j.refs["withdraw"]!, j.refs["give-web"]!])
        for name in ["wearable", "recommendation", "retail-mail-ok"] {
            let f = try #require(byRef[j.refs[name]!])
            #expect(f.classification == .lawful, "\(name)")
            #expect(f.flags.isEmpty, "\(name): \(f.flags)")
        }
        // The consent both relied on was no longer in force for direct marketing: flagged on those two only.
        #expect(violation.flags.map(\.code) == ["not-in-force"], "\(violation.flags)")
        #expect(lag.flags.map(\.code) == ["not-in-force"], "\(lag.flags)")

        // The same findings across all subjects, by company.
        let retail = try index.compliance(org: "retail")
        #expect(retail.violations == 1 && retail.propagationLags == 0 && retail.lawful == 7)
        #expect(retail.findings.map(\.interaction.ref) == [j.refs["retail-mail-violation"]!])
        let care = try index.compliance(org: "care")
        #expect(care.violations == 0 && care.propagationLags == 1 && care.lawful == 0)
        #expect(care.findings.map(\.interaction.ref) == [j.refs["care-sms-lag"]!])
        let brand = try index.compliance(org: "brand")
        #expect(brand.findings.isEmpty && brand.lawful == 2)
        // A time range by hlc: the lag falls inside [lagActedAt, +1 ms), nothing before it.
        #expect(try index.compliance(org: "care", from: j.lagActedAt, to: j.lagActedAt + 1).findings.count == 1)
        #expect(try index.compliance(org: "care", to: j.lagActedAt).findings.isEmpty)
    }

    @Test func theViewIsTheSameWhateverOrderTheLogsCameIn() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let at = t0 + 86_400_000
        let first = try j.ledger.index()
        let reference = try first.view(subject: j.alice, at: at)
        #expect(reference.timeline.count == j.refs.count)
        var orders: [[String]] = [
            ["retail", "care", "brand"].flatMap { org in
                Array(repeating: org, count: Int(j.ledger.stores[org]!.size))
            }
        ]
        for seed: UInt64 in 1...4 { orders.append(j.ledger.shuffledOrder(seed: seed)) }
        for order in orders {
            let index = try j.ledger.index(order: order)
            let v = try index.view(subject: j.alice, at: at)
            #expect(v == reference)
            #expect(v.digest == reference.digest)
            // Every ref of the person gives the same view.
            #expect(try index.view(subject: j.phone, at: at).digest == reference.digest)
            #expect(try index.view(subject: j.till, at: at).digest == reference.digest)
            let p = try index.permit(subject: j.till, org: "care", purpose: "dpv:DirectMarketing", at: at)
            #expect(!p.allowed && p.state == .withdrawn && p.decidedBy?.ref == j.refs["withdraw"])
        }
        // The offline builder over the data directory gives the same view.
        let offline = try ViewIndex.build(
            dataDirectory: j.ledger.dir.path, consortium: j.ledger.consortium, linkKey: j.ledger.linkKey)
        #expect(offline.excluded.isEmpty)
        #expect(try offline.index.view(subject: j.alice, at: at) == reference)
    }

    @Test func theDigestDependsOnTheFrontierAndOnAnExplicitTimeOnly() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let index = try j.ledger.index()
        let expiry = t0 + 365 * 86_400_000
        // Without an explicit time the digest holds the recorded states: the same on either side of an expiry.
        let (a, b) = index.state.withLock { s in
            let ref = try! j.ledger.ref(j.alice)
            return (
                s.view(subject: ref, at: expiry - 1, atGiven: false), s.view(subject: ref, at: expiry, atGiven: false)
            )
        }
        #expect(a.consents != b.consents, "the states shown differ across the expiry")
        #expect(a.digest == b.digest)
        // With one, the time and the states at that time are part of it.
        let c = try index.view(subject: j.alice, at: expiry - 1)
        let d = try index.view(subject: j.alice, at: expiry)
        #expect(c.digest != d.digest && c.digest != a.digest)
        #expect(try index.view(subject: j.alice, at: expiry - 1).digest == c.digest)
        // An entry about someone else moves the frontier, and with it the digest.
        try j.ledger.append(
            "retail", Event.consent("email:zed@example.com", "give", controllers: ["retail"]), now: t0 + 999_000)
        let moved = try j.ledger.index()
        let e = try moved.view(subject: j.alice, at: expiry - 1)
        #expect(e.timeline == c.timeline && e.consents == c.consents)
        #expect(e.frontier != c.frontier && e.digest != c.digest)
    }

    @Test func timelineIsNewestFirstAndPagesWithoutGapsOrRepeats() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let index = try j.ledger.index()
        let full = try index.view(subject: j.phone).timeline
        #expect(full.first?.facts.ref == j.refs["care-caught-up"])
        #expect(full.last?.facts.ref == j.refs["give-web"])
        #expect(zip(full, full.dropFirst()).allSatisfy { $0.facts.hlc >= $1.facts.hlc })
        var pages: [TimelineItem] = []
        var before: String?
        repeat {
            let page = try index.timeline(subject: j.till, limit: 4, before: before)
            #expect(page.total == full.count && page.items.count <= 4)
            pages += page.items
            before = page.next?.description
        } while before != nil
        #expect(pages == full)
        // The share is shown on the entries it derives from, and each item carries company, agent and clocks.
        let give = try #require(full.first { $0.facts.ref == j.refs["give-web"] })
        #expect(give.sharedIn == [j.refs["share"]!])
        let sms = try #require(full.first { $0.facts.ref == j.refs["care-sms-lag"] })
        #expect(sms.company == "Care" && sms.facts.agent?.onBehalfOf == "brand" && sms.facts.channel == "sms")
        #expect(sms.facts.consentRef == j.refs["give-web"])
        let withdraw = try #require(full.first { $0.facts.ref == j.refs["withdraw"] })
        #expect(withdraw.facts.skewMs == 30_000)
        // A time as `before`: only what was recorded earlier.
        let early = try index.timeline(subject: j.alice, limit: 100, before: iso(j.withdrawnAt))
        #expect(early.items.allSatisfy { $0.facts.hlc.wall < j.withdrawnAt })
        #expect(throws: ViewError.self) { try index.timeline(subject: j.alice, limit: 0) }
        #expect(throws: ViewError.self) { try index.timeline(subject: j.alice, before: "yesterday") }
    }

    /// The facts the index keeps give back exactly what the entry bytes say.
    @Test func indexFactsMatchTheEntries() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let index = try j.ledger.index()
        for e in try j.ledger.entries() {
            let fromBytes = try EntryFacts(decoding: e.bytes, leaf: e.leaf)
            let o = try #require(index.consortium.members.firstIndex { $0.org == e.org })
            let fromIndex = index.state.withLock { s in s.entryFacts(s.logs[o].facts[Int(e.seq)]) }
            #expect(fromIndex == fromBytes)
            // And both agree with the ledger's full decoder.
            let entry = try Entry.decode(e.bytes)
            #expect(fromBytes.hlc == entry.hlc && fromBytes.subjects == entry.body.subjects)
            #expect(fromBytes.occurredAt == entry.body.occurredAt && fromBytes.kind == entry.body.kind)
            switch entry.body {
            case .consent(let b):
                #expect(fromBytes.purposes == b.purposes && fromBytes.controllers == b.controllers)
                #expect(fromBytes.recipients == b.recipients && fromBytes.expiresAt == b.expiresAt)
                #expect(fromBytes.event == b.event && fromBytes.channel == b.channel)
            case .interaction(let b):
                #expect(fromBytes.agent?.id == "\(b.agent.id)" && fromBytes.agent?.onBehalfOf == b.agent.onBehalfOf)
                #expect(fromBytes.consentRef == b.consentRef && fromBytes.derivedFrom == b.derivedFrom)
                #expect(fromBytes.interaction == b.interaction && fromBytes.legalBasis == b.legalBasis)
            case .share(let b):
                #expect(fromBytes.recipient == b.recipient && fromBytes.dataCategories == b.dataCategories)
            case .link, .unlink, .heads: break
            }
        }
    }
}
