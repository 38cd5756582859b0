import Foundation
import ProvCrypto
import ProvLedger
import TestSupport
import Testing

@testable import ProvView

/// Random histories of a few people across three companies: consents of every kind (some expiring, some naming
/// recipients, some controlled by another company), contacts on consent and on other bases (some on another
/// company's behalf, naming any consent at all), links and unlinks, each company citing a random part of what the
/// others wrote. The report of each person must verify: its statuses and findings, re-derived from the report's
/// own entries (Specs/view.md §8.5), are the index's.
struct RandomHistory {
    static let people = ["email:p0@example.com", "email:p1@example.com", "phone:+441632960010", "cust:retail:R-1"]
    static let orgs = ["brand", "retail", "care"]
    static let purposes = ["dpv:DirectMarketing", "dpv:Personalisation", "dpv:CustomerCare"]
    static let events = [
        "give", "give", "give", "withdraw", "withdraw", "object", "renew", "refuse", "request", "revoke",
    ]

    let ledger: Ledger

    init(seed: UInt64, steps: Int = 70) throws {
        ledger = try Ledger()
        var rng = SplitMix64(seed: seed)
        func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
        func some(_ a: [String]) -> [String] {
            let s = a.filter { _ in rng.next() % 2 == 0 }
            return s.isEmpty ? [pick(a)] : s
        }
        var consents: [EntryRef] = []
        var now = t0
        for _ in 0..<steps {
            now += 1000 + rng.next() % 40_000
            let org = pick(Self.orgs)
            var sees: [String: UInt64] = [:]
            for o in Self.orgs where o != org {
                let size = ledger.stores[o]!.size
                if size > 0 && rng.next() % 3 != 0 { sees[o] = size - 1 - rng.next() % min(size, 4) }
            }
            let subject = pick(Self.people)
            let others = Self.orgs.filter { $0 != org }
            switch rng.next() % 10 {
            case 0..<4:
                let controllers =
                    rng.next() % 4 == 0 ? [pick(others)] : rng.next() % 3 == 0 ? [org, pick(others)] : [org]
                let expires: UInt64? = rng.next() % 3 == 0 ? now + rng.next() % 200_000 : nil
                consents.append(
                    try ledger.append(
                        org,
                        Event.consent(
                            subject, pick(Self.events), purposes: some(Self.purposes),
                            controllers: Array(Set(controllers)).sorted(),
                            recipients: rng.next() % 2 == 0 ? some(others) : [], occurred: now - rng.next() % 5000,
                            expires: expires),
                        now: now, sees: sees))
            case 4..<8:
                let onConsent = !consents.isEmpty && rng.next() % 10 < 7
                try ledger.append(
                    org,
                    Event.interaction(
                        subject, purposes: some(Self.purposes),
                        basis: onConsent ? "dpv:Consent" : pick(["dpv:Contract", "dpv:LegitimateInterest"]),
                        consentRef: onConsent || (!consents.isEmpty && rng.next() % 4 == 0) ? pick(consents) : nil,
                        onBehalfOf: rng.next() % 4 == 0 ? pick(others) : nil, occurred: now - rng.next() % 100_000),
                    now: now, sees: sees)
            default:
                let a = pick(Self.people)
                guard let b = Self.people.filter({ $0 != a }).randomElement(using: &rng) else { continue }
                try ledger.append(org, Event.link(a, b, unlink: rng.next() % 3 == 0), now: now, sees: sees)
            }
        }
    }
}

@Suite(.leavesNoFiles) struct RederivationTests {
    @Test func everyReportOfRandomHistoriesVerifies() throws {
        var seen: [String: Int] = [:]
        for seed: UInt64 in 1...12 {
            let h = try RandomHistory(seed: seed)
            defer { h.ledger.remove() }
            let index = try h.ledger.index()
            let source = DataDirectorySource(dataDirectory: h.ledger.dir.path, consortium: "acme")
            for person in RandomHistory.people {
                let report = try index.report(subject: person, at: t0 + 3_000_000, source: source, generatedAt: t0)
                let c = try check(report, h.ledger.consortium)
                #expect(c.ok, "seed \(seed), \(person): \(c.table)")
                for f in report.view.compliance {
                    seen[f.classification.rawValue, default: 0] += 1
                    for flag in f.flags { seen[flag.code, default: 0] += 1 }
                    if let cause = f.cause { seen["cause " + cause, default: 0] += 1 }
                }
                if !report.context.isEmpty { seen["context", default: 0] += 1 }
            }
        }
        // The histories reach the cases that matter.
        for k in [
            "lawful", "violation", "propagation-lag", "not-in-force", "other-person", "cause withdrawn", "context",
        ] {
            #expect(seen[k, default: 0] > 0, "no \(k) in \(seen)")
        }
    }
}
