import ProvLedger

/// The state of consent for one (person, controller, purpose) (Specs/view.md §4).
public enum ConsentStatus: String, Sendable, CaseIterable {
    case unknown, requested, given, refused, withdrawn, revoked, expired, renewed, objected, invalidated

    /// Only a given or renewed consent, before its expiry, permits processing.
    public var permits: Bool { self == .given || self == .renewed }
}

/// The consent events of format version 1 (`body.event`).
public enum ConsentEvent: String, Sendable, CaseIterable {
    case request, give, refuse, withdraw, revoke, renew, object, invalidate
}

/// The transition table of Specs/view.md §4.2, the one place it is written in code.
public enum ConsentMachine {
    /// The state after `event` in (effective) state `state`; nil when the event leaves the state as it is, which
    /// the view reports as ignored. `state` is never `expired` as stored: it is a given or renewed consent whose
    /// `expiresAt` has passed at the event's `hlc` wall time.
    public static func next(_ state: ConsentStatus, _ event: ConsentEvent) -> ConsentStatus? {
        switch (state, event) {
        // invalidate is final: nothing moves an invalidated consent.
        case (.invalidated, _): return nil
        case (_, .invalidate): return .invalidated
        // An objection overrides everything and stays until the person gives consent again.
        case (_, .object): return .objected
        case (.objected, .give): return .given
        case (.objected, _): return nil
        case (_, .give): return .given
        case (.given, .request), (.renewed, .request): return nil
        case (_, .request): return .requested
        case (.given, .renew), (.renewed, .renew), (.expired, .renew): return .renewed
        case (_, .renew): return nil
        case (_, .refuse): return .refused
        case (_, .withdraw): return .withdrawn
        case (_, .revoke): return .revoked
        }
    }
}

/// The replayed state of one (controller, purpose), fact ids of the index.
struct PairState {
    /// As stored: never `.expired` (expiry is evaluated at a time, `effective(at:)`).
    var status = ConsentStatus.unknown
    var decidedBy = IndexState.none
    /// The give or renew in force while the status is given or renewed.
    var grant = IndexState.none
    var expiresAt: UInt64 = 0
    var applied = 0
    var ignored = 0

    func effective(at t: UInt64) -> ConsentStatus {
        status.permits && expiresAt != 0 && expiresAt <= t ? .expired : status
    }

    /// Applies fact `id` (event `event`, learned at `wall`, expiring at `expires`). Returns whether it applied.
    @discardableResult
    mutating func apply(_ id: UInt32, _ event: ConsentEvent, wall: UInt64, expires: UInt64) -> Bool {
        guard let n = ConsentMachine.next(effective(at: wall), event) else {
            ignored += 1
            return false
        }
        applied += 1
        status = n
        decidedBy = id
        if n.permits {
            grant = id
            expiresAt = expires
        } else {
            grant = IndexState.none
            expiresAt = 0
        }
        return true
    }
}

/// Which facts a query sees (Specs/view.md §2, §7): the committed entries of the frontier, optionally cut down to
/// what one company knew when it wrote an entry, or to what the consortium knew before an entry.
struct Scope {
    /// Committed size of each log.
    var sizes: [UInt64]
    /// Known frontier of an entry: its log, seq, and for each org the highest seq it had cited (or -1).
    var known: (org: Int, seq: UInt64, cited: [Int64])?
    /// Also everything ordered before this key.
    var before: OrderKey?

    @inline(__always)
    func sees(_ f: Fact, _ key: () -> OrderKey) -> Bool {
        guard f.seq < sizes[Int(f.org)] else { return false }
        guard let k = known else { return true }
        let inKnown = Int(f.org) == k.org ? f.seq <= k.seq : Int64(f.seq) <= k.cited[Int(f.org)]
        if inKnown { return true }
        guard let b = before else { return false }
        return key() < b
    }
}

extension IndexState {
    func event(_ f: Fact) -> ConsentEvent? { ConsentEvent(rawValue: Vocabulary.consentEventTable.codes[Int(f.event)]) }

    @inline(__always)
    func sees(_ scope: Scope, _ f: Fact) -> Bool { scope.sees(f) { key(f) } }

    /// The refs of the person `s` belongs to, ascending by id: the connected component of `s` over the link edges
    /// in place within `scope`. An edge is in place when the last (by order key) link or unlink entry between its
    /// two refs is a link (Specs/view.md §3).
    func person(_ s: UInt32, _ scope: Scope) -> [UInt32] {
        if linkHead[Int(s)] == Self.none { return [s] }
        var seen: Set<UInt32> = [s]
        var queue = [s]
        while let x = queue.popLast() {
            var best: [UInt32: (key: OrderKey, link: Bool)] = [:]
            var id = linkHead[Int(x)]
            while id != Self.none {
                let f = facts[Int(id)]
                let mine = f.subject == x
                let other = mine ? f.secondSubject : f.subject
                if sees(scope, f) {
                    let k = key(f)
                    if let b = best[other], b.key > k {} else { best[other] = (k, f.kind == .link) }
                }
                id = mine ? f.next : f.secondNext
            }
            for (y, b) in best where b.link && !seen.contains(y) {
                seen.insert(y)
                queue.append(y)
            }
        }
        return seen.sorted()
    }

    /// The consent facts of `person` within `scope`, by order key; only those listing `purpose` when given.
    func consentFacts(_ person: [UInt32], _ scope: Scope, purpose: UInt32? = nil) -> [UInt32] {
        var out: [(OrderKey, UInt32)] = []
        for s in person {
            var id = consentHead[Int(s)]
            while id != Self.none {
                let f = facts[Int(id)]
                if sees(scope, f), purpose.map({ lists.contains(f.purposes, $0) }) ?? true { out.append((key(f), id)) }
                id = f.next
            }
        }
        out.sort { $0.0 < $1.0 }
        return out.map(\.1)
    }

    /// Replays `facts` (ordered) into the state of each (controller, purpose); purposes outside `only` skipped.
    func replay(_ ids: [UInt32], only: UInt32? = nil) -> [(controller: UInt32, purpose: UInt32, state: PairState)] {
        var states: [(controller: UInt32, purpose: UInt32, state: PairState)] = []
        for id in ids {
            let f = facts[Int(id)]
            guard let ev = event(f) else { continue }
            for p in lists.list(f.purposes) where only == nil || only == p {
                for c in lists.list(f.controllers) {
                    if let i = states.firstIndex(where: { $0.controller == c && $0.purpose == p }) {
                        states[i].state.apply(id, ev, wall: f.wall, expires: f.expiresAt)
                    } else {
                        var s = PairState()
                        s.apply(id, ev, wall: f.wall, expires: f.expiresAt)
                        states.append((c, p, s))
                    }
                }
            }
        }
        return states
    }

    /// Whether org (a string id) is a recipient of consent fact `id`.
    func lists(_ id: UInt32, recipient org: UInt32) -> Bool {
        let f = facts[Int(id)]
        return f.recipients != Self.none && lists.contains(f.recipients, org)
    }
}

/// How a permit was decided, in index terms.
struct PermitDecision {
    var allowed: Bool
    var status: ConsentStatus
    var controller: UInt32?
    var state: PairState?
    var reason: PermitReason
}

enum PermitReason: Equatable {
    case allowed
    case noConsent
    case notRecipient
    case status(ConsentStatus)
}

extension IndexState {
    /// Specs/view.md §5: may `org` process the person's data for `purpose` at `at`, on what the scope holds?
    func decide(person: [UInt32], org: UInt32, purpose: UInt32, at: UInt64, _ scope: Scope) -> PermitDecision {
        let facts = consentFacts(person, scope, purpose: purpose)
        // Pairs that only saw ignored events have no state.
        let states = replay(facts, only: purpose).filter { $0.state.decidedBy != IndexState.none }
        return decide(states: states, org: org, at: at) { c, o in namedAsRecipient(facts, controller: c, o) }
    }

    /// The rules of §5 over the states of (controller, `purpose`) that have one; `named(c, org)` tells whether a
    /// give or renew of controller `c` for the purpose listed `org` as a recipient.
    func decide(
        states: [(controller: UInt32, purpose: UInt32, state: PairState)], org: UInt32, at: UInt64,
        named: (UInt32, UInt32) -> Bool
    ) -> PermitDecision {
        // An objection to this org processing for this purpose overrides every other consent.
        if let own = states.first(where: { $0.controller == org }), own.state.status == .objected {
            return PermitDecision(
                allowed: false, status: .objected, controller: org, state: own.state, reason: .status(.objected))
        }
        // The org's own consent first, then other controllers by org id.
        let ordered = states.sorted { a, b in
            if (a.controller == org) != (b.controller == org) { return a.controller == org }
            return strings.string(a.controller).utf8.lexicographicallyPrecedes(strings.string(b.controller).utf8)
        }
        for s in ordered {
            let eff = s.state.effective(at: at)
            if eff.permits && (s.controller == org || lists(s.state.grant, recipient: org)) {
                return PermitDecision(
                    allowed: true, status: eff, controller: s.controller, state: s.state, reason: .allowed)
            }
        }
        // Denied: say why, from the org's own consent, else from a controller whose consent named the org.
        if let own = ordered.first, own.controller == org {
            let eff = own.state.effective(at: at)
            return PermitDecision(
                allowed: false, status: eff, controller: org, state: own.state, reason: .status(eff))
        }
        for s in ordered where named(s.controller, org) {
            let eff = s.state.effective(at: at)
            return PermitDecision(
                allowed: false, status: eff, controller: s.controller, state: s.state,
                reason: eff.permits ? .notRecipient : .status(eff))
        }
        return PermitDecision(allowed: false, status: .unknown, controller: nil, state: nil, reason: .noConsent)
    }
}
