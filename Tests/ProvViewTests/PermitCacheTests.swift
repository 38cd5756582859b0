import Foundation
import ProvCrypto
import ProvLedger
import TestSupport
import Testing

@testable import ProvView

/// The consent states kept between permits (ConsentCache) answer exactly what replaying the person's history
/// answers, however the logs arrive: entries whose order key falls before ones already applied, commits that lag,
/// people that links join and unlinks split.
@Suite(.leavesNoFiles) struct PermitCacheTests {
    static let subjects = ["email:a@example.com", "email:b@example.com", "phone:+441632960001"]
    static let purposes = ["dpv:DirectMarketing", "dpv:ServiceProvision", "dpv:Personalisation"]
    static let events = ["request", "give", "refuse", "withdraw", "revoke", "renew", "object", "give", "renew"]

    @Test(arguments: [1, 2, 3, 4]) func keptStatesAnswerAsTheReplayDoes(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
        let ledger = try Ledger()
        defer { ledger.remove() }
        let orgs = ["brand", "retail", "care"]
        // Rounds of events; each log's clock runs on its own, so the logs' entries interleave by order key.
        var chunks: [(org: String, from: UInt64, to: UInt64, checkpoint: SignedCheckpoint)] = []
        var clock = Dictionary(uniqueKeysWithValues: orgs.map { ($0, t0) })
        for _ in 0..<12 {
            for org in orgs {
                let from = ledger.stores[org]!.size
                for _ in 0..<Int(rng.next() % 12) {
                    clock[org]! += 1 + rng.next() % 600_000
                    let json: String
                    if rng.next() % 10 == 0 {
                        json = Event.link(pick(Self.subjects), pick(Self.subjects), unlink: rng.next() % 2 == 0)
                    } else {
                        var controllers = [org]
                        if rng.next() % 3 == 0 { controllers.append(pick(orgs.filter { $0 != org })) }
                        json = Event.consent(
                            pick(Self.subjects), pick(Self.events), purposes: [pick(Self.purposes)],
                            controllers: controllers, recipients: rng.next() % 2 == 0 ? [pick(orgs)] : [],
                            expires: rng.next() % 4 == 0 ? clock[org]! + rng.next() % 7_200_000 : nil)
                    }
                    // A link between a ref and itself is refused: skip it.
                    _ = try? ledger.append(org, json, now: clock[org]!, sees: [:])
                }
                let to = ledger.stores[org]!.size
                if to > from { chunks.append((org, from, to, ledger.stores[org]!.latest!)) }
            }
        }
        // Two indexes fed the same chunks in one shuffled order (each log's chunks in order): one keeps every
        // person's states, the other never does.
        let kept = ViewIndex(consortium: ledger.consortium, linkKey: ledger.linkKey)
        kept.state.withLock { $0.consentCache.threshold = 1 }
        let replayed = ViewIndex(consortium: ledger.consortium, linkKey: ledger.linkKey)
        replayed.state.withLock { $0.consentCache.threshold = .max }
        var queue = Dictionary(grouping: chunks, by: \.org)
        var asked = 0
        while !queue.isEmpty {
            let org = pick(queue.keys.sorted())
            let c = queue[org]!.removeFirst()
            if queue[org]!.isEmpty { queue[org] = nil }
            for index in [kept, replayed] {
                for seq in c.from..<c.to {
                    let s = ledger.stores[org]!
                    try index.ingest(org: org, seq: seq, leaf: try s.leafHash(seq), entryBytes: try s.entryBytes(seq))
                }
                try index.commit(org: org, size: c.to, checkpoint: c.checkpoint)
            }
            for subject in Self.subjects {
                for asking in orgs {
                    for purpose in Self.purposes {
                        let at = t0 + rng.next() % 30_000_000
                        let a = try kept.permit(subject: subject, org: asking, purpose: purpose, at: at)
                        let b = try replayed.permit(subject: subject, org: asking, purpose: purpose, at: at)
                        #expect(a == b, "seed \(seed): \(subject) \(asking) \(purpose) at \(at)")
                        asked += 1
                    }
                }
            }
        }
        #expect(kept.state.withLock { $0.consentCache.count } > 0, "the kept index kept nobody")
        #expect(replayed.state.withLock { $0.consentCache.count } == 0)
        #expect(asked > 500)
    }
}
