import ProvLedger

/// The consent states of people with a long consent history, kept between permits at the committed frontier
/// (Specs/view.md §10.1): a permit then costs what the person's new consent entries cost, not their whole history.
///
/// An entry holds, for one person (the refs of a connected component), the state of every (controller, purpose)
/// after replaying the person's visible consent facts in order (§4), the orgs named as recipients by a give or renew
/// of each pair (for §5 step 3), and where each ref's consent chain stood when it was last brought up to date.
/// A permit extends it with the facts that became visible since, when they all come after the last one applied
/// (the common case: entries arrive in order); anything else (a fact ordered before one applied, a change of the
/// person's refs) rebuilds it from the history once. Answers are exactly those of the replay.
struct ConsentCache: Sendable {
    /// People with fewer consent facts than this are replayed on each permit (it costs less than keeping them).
    var threshold = 64
    /// People kept at most; past it the cache starts over (bounded memory, whatever the queries ask).
    static let capacity = 4096

    struct Person: Sendable {
        /// The person's refs, ascending.
        var refs: [UInt32]
        /// Each ref's consent chain head (newest fact id) when this was brought up to date.
        var heads: [UInt32]
        /// Facts at or behind those heads that were not visible then (ingested, not yet committed).
        var pending: [UInt32] = []
        /// Order key of the last fact applied.
        var last: OrderKey?
        var states: [UInt64: PairState] = [:]
        /// Per pair: the orgs (string ids) a give or renew listed as recipients.
        var named: [UInt64: [UInt32]] = [:]
    }

    private var people: [UInt32: Person] = [:]

    static func pair(_ controller: UInt32, _ purpose: UInt32) -> UInt64 { UInt64(controller) << 32 | UInt64(purpose) }

    mutating func take(_ first: UInt32) -> Person? { people.removeValue(forKey: first) }

    mutating func keep(_ p: Person) {
        if people.count >= Self.capacity { people.removeAll(keepingCapacity: true) }
        people[p.refs[0]] = p
    }

    var count: Int { people.count }
}

extension IndexState {
    /// Where §5 step 3 looks for the orgs a controller's gives and renews named as recipients.
    enum NamedRecipients {
        case cached([UInt64: [UInt32]])
        case facts([UInt32])
    }

    /// The states of `person` for `purpose` at the committed frontier (`scope`) that have one, and where the named
    /// recipients are found: from the cache when the person's history is long.
    mutating func consentStates(person: [UInt32], purpose: UInt32, _ scope: Scope) -> (
        states: [(controller: UInt32, purpose: UInt32, state: PairState)], named: NamedRecipients
    ) {
        if let p = cachedPerson(person, scope) {
            var states: [(controller: UInt32, purpose: UInt32, state: PairState)] = []
            for (k, s) in p.states where UInt32(truncatingIfNeeded: k) == purpose && s.decidedBy != Self.none {
                states.append((UInt32(k >> 32), purpose, s))
            }
            return (states, .cached(p.named))
        }
        let facts = consentFacts(person, scope, purpose: purpose)
        return (replay(facts, only: purpose).filter { $0.state.decidedBy != Self.none }, .facts(facts))
    }

    /// Whether a give or renew of `controller` for `purpose` listed `org` as a recipient.
    func isNamed(_ named: NamedRecipients, controller: UInt32, purpose: UInt32, _ org: UInt32) -> Bool {
        switch named {
        case .cached(let n): n[ConsentCache.pair(controller, purpose)]?.contains(org) ?? false
        case .facts(let ids): namedAsRecipient(ids, controller: controller, org)
        }
    }

    /// The cache entry of `person`, brought up to date with `scope`; nil for a short history (not worth keeping).
    private mutating func cachedPerson(_ person: [UInt32], _ scope: Scope) -> ConsentCache.Person? {
        if var p = consentCache.take(person[0]), p.refs == person, extend(&p, scope) {
            consentCache.keep(p)
            return p
        }
        var ids: [UInt32] = []
        var pending: [UInt32] = []
        for s in person {
            var id = consentHead[Int(s)]
            while id != Self.none {
                if sees(scope, facts[Int(id)]) { ids.append(id) } else { pending.append(id) }
                id = facts[Int(id)].next
            }
        }
        guard ids.count + pending.count >= consentCache.threshold else { return nil }
        var p = ConsentCache.Person(refs: person, heads: person.map { consentHead[Int($0)] }, pending: pending)
        apply(sorted(ids), to: &p)
        consentCache.keep(p)
        return p
    }

    /// Brings `p` up to date: the facts ingested on its refs since, and those pending then, that `scope` now sees.
    /// False when one of them is ordered before a fact already applied (then `p` must be rebuilt).
    private func extend(_ p: inout ConsentCache.Person, _ scope: Scope) -> Bool {
        var fresh: [UInt32] = []
        var pending: [UInt32] = []
        for (i, s) in p.refs.enumerated() {
            var id = consentHead[Int(s)]
            while id != Self.none && id != p.heads[i] {
                if sees(scope, facts[Int(id)]) { fresh.append(id) } else { pending.append(id) }
                id = facts[Int(id)].next
            }
            p.heads[i] = consentHead[Int(s)]
        }
        for id in p.pending {
            if sees(scope, facts[Int(id)]) { fresh.append(id) } else { pending.append(id) }
        }
        p.pending = pending
        guard !fresh.isEmpty else { return true }
        let ordered = sorted(fresh)
        if let last = p.last, key(ordered[0]) < last { return false }
        apply(ordered, to: &p)
        return true
    }

    private func sorted(_ ids: [UInt32]) -> [UInt32] {
        ids.map { (key($0), $0) }.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// Replays `ids` (in order, after everything applied to `p`) into `p`'s states, as `replay` does.
    private func apply(_ ids: [UInt32], to p: inout ConsentCache.Person) {
        for id in ids {
            let f = facts[Int(id)]
            guard let ev = event(f) else { continue }
            let grants = ev == .give || ev == .renew
            let recipients = grants && f.recipients != Self.none ? Array(lists.list(f.recipients)) : []
            for purpose in lists.list(f.purposes) {
                for c in lists.list(f.controllers) {
                    let k = ConsentCache.pair(c, purpose)
                    p.states[k, default: PairState()].apply(id, ev, wall: f.wall, expires: f.expiresAt)
                    for r in recipients where !(p.named[k]?.contains(r) ?? false) { p.named[k, default: []].append(r) }
                }
            }
        }
        if let lastID = ids.last { p.last = key(lastID) }
    }

    /// Whether some give or renew of `controller` among `facts` lists `org` as a recipient.
    func namedAsRecipient(_ facts: [UInt32], controller: UInt32, _ org: UInt32) -> Bool {
        for id in facts {
            let f = self.facts[Int(id)]
            guard let ev = event(f), ev == .give || ev == .renew, lists.contains(f.controllers, controller) else {
                continue
            }
            if lists(id, recipient: org) { return true }
        }
        return false
    }
}
