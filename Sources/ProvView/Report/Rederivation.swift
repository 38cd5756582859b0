import ProvCrypto
import ProvLedger

/// Specs/view.md §8.5: the view's derived facts (identity, consent states, compliance findings) recomputed from
/// the entries a report proves, with the rules of §3, §4, §5 and §7. It works on the report's entries alone, not on
/// the index, so a reader trusts a finding because the signed entries give it, not because a node said so. The
/// transition table is `ConsentMachine`'s and a pair's state is the index's `PairState`, keyed by the position of
/// the entry in `entries`.
struct Rederivation {
    /// A proven entry, and per other org the highest seq it refers to (`deps`, `consentRef`, `derivedFrom`).
    struct Proven {
        var facts: EntryFacts
        var cites: [String: UInt64]

        init(facts: EntryFacts, deps: [EntryRef]) {
            self.facts = facts
            var cites: [String: UInt64] = [:]
            for r in deps + (facts.consentRef.map { [$0] } ?? []) + facts.derivedFrom where r.org != facts.org {
                cites[r.org] = max(cites[r.org] ?? 0, r.seq)
            }
            self.cites = cites
        }
    }

    typealias Key = (HLC, String, UInt64)

    /// What a scope sees (§7.1): the entries of `org` up to `seq`, of each other org up to its `cited` seq, and,
    /// with `before`, every entry ordered before that key.
    struct Scope {
        var org: String
        var seq: UInt64
        var cited: [String: UInt64]
        var before: Key?
    }

    /// One (controller, purpose) replayed.
    struct Pair {
        var controller: String
        var purpose: String
        var state: PairState
    }

    /// A finding as the entries give it (§7.2), and whether the interaction is listed at all.
    struct Finding: Equatable {
        var listed: Bool
        var classification: ComplianceClass
        var purpose: String?
        var cause: String?
        var lagMs: UInt64?
        var deciding: [EntryRef]
        var flags: [String]
        /// The entry that made it a violation or lag, when there is one.
        var decidedBy: EntryRef?
    }

    let entries: [Proven]
    /// The person's refs, as the report gives them.
    let refs: Set<SHA256Digest>
    /// Each log's size at the frontier.
    let frontier: [String: UInt64]
    private var position: [String: Int] = [:]
    /// Consent entries, ascending by order key.
    private var consentIDs: [Int] = []
    private var linksOf: [SHA256Digest: [Int]] = [:]

    init(entries: [Proven], refs: Set<SHA256Digest>, frontier: [String: UInt64]) {
        self.entries = entries
        self.refs = refs
        self.frontier = frontier
        for (i, e) in entries.enumerated() {
            position["\(e.facts.org)/\(e.facts.ref.seq)"] = i
            switch e.facts.kind {
            case .consent where e.facts.subjects.count == 1: consentIDs.append(i)
            case .link, .unlink:
                for s in Set(e.facts.subjects) where e.facts.subjects.count == 2 { linksOf[s, default: []].append(i) }
            default: break
            }
        }
        consentIDs.sort { ViewDigest.precedes(Self.key(entries[$0]), Self.key(entries[$1])) }
    }

    static func key(_ e: Proven) -> Key { (e.facts.hlc, e.facts.org, e.facts.ref.seq) }

    /// The proven entry at `org`/`seq`, whatever leaf hash a reference gives it.
    func entry(_ org: String, _ seq: UInt64) -> Int? { position["\(org)/\(seq)"] }

    func sees(_ i: Int, _ scope: Scope?) -> Bool {
        guard let k = scope else { return true }
        let f = entries[i].facts
        if f.org == k.org ? f.ref.seq <= k.seq : k.cited[f.org].map({ f.ref.seq <= $0 }) ?? false { return true }
        guard let b = k.before else { return false }
        return ViewDigest.precedes(Self.key(entries[i]), b)
    }

    /// §7.1: per other org, the highest seq that a proven entry of `org` at or before `seq` refers to.
    func knownCited(_ org: String, upTo seq: UInt64) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for e in entries where e.facts.org == org && e.facts.ref.seq <= seq {
            for (o, s) in e.cites { out[o] = max(out[o] ?? 0, s) }
        }
        return out
    }

    // MARK: Identity (§3)

    /// The latest link or unlink entry in `scope` of each pair of refs with at least one in `of`, by pair.
    func links(touching of: Set<SHA256Digest>, _ scope: Scope?) -> [[SHA256Digest]: Int] {
        var best: [[SHA256Digest]: Int] = [:]
        for r in of {
            for i in linksOf[r] ?? [] where sees(i, scope) {
                let pair = entries[i].facts.subjects.sorted()
                if let b = best[pair], ViewDigest.precedes(Self.key(entries[i]), Self.key(entries[b])) { continue }
                best[pair] = i
            }
        }
        return best
    }

    /// The refs connected to `r` by links in place within `scope`.
    func person(_ r: SHA256Digest, _ scope: Scope?) -> Set<SHA256Digest> {
        var seen: Set<SHA256Digest> = [r]
        var queue = [r]
        while let x = queue.popLast() {
            for (pair, i) in links(touching: [x], scope) where entries[i].facts.kind == .link {
                for y in pair where !seen.contains(y) {
                    seen.insert(y)
                    queue.append(y)
                }
            }
        }
        return seen
    }

    // MARK: Consent (§4, §5)

    /// The consent entries of `person` in `scope`, by order key; only those listing `purpose` when given.
    func consents(_ person: Set<SHA256Digest>, _ scope: Scope?, purpose: String? = nil) -> [Int] {
        consentIDs.filter { i in
            let f = entries[i].facts
            return person.contains(f.subjects[0]) && sees(i, scope) && (purpose.map(f.purposes.contains) ?? true)
        }
    }

    /// §4.1: the entries replayed into each (controller, purpose), in the order pairs first appear.
    func replay(_ ids: [Int], only: String? = nil) -> [Pair] {
        var pairs: [Pair] = []
        for id in ids {
            let f = entries[id].facts
            guard let ev = f.event.flatMap(ConsentEvent.init(rawValue:)) else { continue }
            for p in f.purposes where only == nil || only == p {
                for c in f.controllers {
                    if let k = pairs.firstIndex(where: { $0.controller == c && $0.purpose == p }) {
                        pairs[k].state.apply(UInt32(id), ev, wall: f.hlc.wall, expires: f.expiresAt ?? 0)
                    } else {
                        var s = PairState()
                        s.apply(UInt32(id), ev, wall: f.hlc.wall, expires: f.expiresAt ?? 0)
                        pairs.append(Pair(controller: c, purpose: p, state: s))
                    }
                }
            }
        }
        return pairs
    }

    func grant(_ id: UInt32, lists org: String) -> Bool {
        id != IndexState.none && entries[Int(id)].facts.recipients.contains(org)
    }

    struct Decision {
        var allowed: Bool
        var state: PairState?
        var reason: PermitReason
    }

    /// §5 for `org`, `purpose`, at `at`, on what `scope` holds of `person`.
    func decide(_ person: Set<SHA256Digest>, org: String, purpose: String, at: UInt64, _ scope: Scope?) -> Decision {
        let ids = consents(person, scope, purpose: purpose)
        let states = replay(ids, only: purpose).filter { $0.state.decidedBy != IndexState.none }
        if let own = states.first(where: { $0.controller == org }), own.state.status == .objected {
            return Decision(allowed: false, state: own.state, reason: .status(.objected))
        }
        let ordered = states.sorted { a, b in
            if (a.controller == org) != (b.controller == org) { return a.controller == org }
            return a.controller.utf8.lexicographicallyPrecedes(b.controller.utf8)
        }
        for s in ordered {
            let eff = s.state.effective(at: at)
            if eff.permits && (s.controller == org || grant(s.state.grant, lists: org)) {
                return Decision(allowed: true, state: s.state, reason: .allowed)
            }
        }
        if let own = ordered.first, own.controller == org {
            return Decision(allowed: false, state: own.state, reason: .status(own.state.effective(at: at)))
        }
        for s in ordered {
            let named = ids.contains { i in
                let f = entries[i].facts
                return (f.event == "give" || f.event == "renew") && f.controllers.contains(s.controller)
                    && f.recipients.contains(org)
            }
            guard named else { continue }
            let eff = s.state.effective(at: at)
            return Decision(allowed: false, state: s.state, reason: eff.permits ? .notRecipient : .status(eff))
        }
        return Decision(allowed: false, state: nil, reason: .noConsent)
    }

    // MARK: Compliance (§7)

    /// Why purpose `p` is blocked in `scope`, as the `cause` names it, and the entry that decided; or the grant
    /// relied on when it is not.
    func block(
        _ person: Set<SHA256Digest>, _ scope: Scope, actor: String, onBehalf: String?, _ p: String, at: UInt64,
        onConsent: Bool
    ) -> (cause: String?, decidedBy: UInt32?, relied: UInt32?) {
        let states = replay(consents(person, scope, purpose: p), only: p)
        for o in [actor] + (onBehalf.map { [$0] } ?? []) {
            if let s = states.first(where: { $0.controller == o }), s.state.status == .objected {
                return ("objected", s.state.decidedBy, nil)
            }
        }
        guard onConsent else { return (nil, nil, nil) }
        let d = decide(person, org: actor, purpose: p, at: at, scope)
        if d.allowed { return (nil, nil, d.state?.grant) }
        let cause: String
        switch d.reason {
        case .allowed: cause = "allowed"
        case .noConsent, .status(.unknown): cause = "no-consent"
        case .notRecipient: cause = "not-recipient"
        case .status(let s): cause = s.rawValue
        }
        return (cause, d.state?.decidedBy, nil)
    }

    /// §7.2 for the proven interaction `i`, whose company's known frontier is `cited`. `claimedFlags` are the
    /// report's, used only where §8.5 says the report cannot establish a flag.
    func classify(_ i: Int, cited: [String: UInt64], claimedFlags: [String]) throws(ViewError) -> Finding {
        let f = entries[i].facts
        let known = Scope(org: f.org, seq: f.ref.seq, cited: cited, before: nil)
        let global = Scope(org: f.org, seq: f.ref.seq, cited: cited, before: Self.key(entries[i]))
        let knownPerson = person(f.subjects[0], known)
        let globalPerson = person(f.subjects[0], global)
        let onConsent = f.legalBasis == "dpv:Consent"
        let onBehalf = f.agent?.onBehalfOf
        var violation: (String, String, UInt32?)?
        var lag: (String, String, UInt32?)?
        var relied: [UInt32] = []
        for p in f.purposes {
            let k = block(
                knownPerson, known, actor: f.org, onBehalf: onBehalf, p, at: f.occurredAt, onConsent: onConsent)
            if let cause = k.cause {
                if violation == nil { violation = (p, cause, k.decidedBy) }
                continue
            }
            let g = block(
                globalPerson, global, actor: f.org, onBehalf: onBehalf, p, at: f.occurredAt, onConsent: onConsent)
            if let cause = g.cause, lag == nil { lag = (p, cause, g.decidedBy) }
            if let r = k.relied, !relied.contains(r) { relied.append(r) }
        }
        let flags = try consentRefFlags(i, global: global, claimed: claimedFlags)
        func ref(_ id: UInt32) -> EntryRef { entries[Int(id)].facts.ref }
        var out = Finding(
            listed: true, classification: .lawful, purpose: nil, cause: nil, lagMs: nil, deciding: relied.map(ref),
            flags: flags, decidedBy: nil)
        if let (p, cause, w) = violation {
            out.classification = .violation
            out.purpose = p
            out.cause = cause
            out.deciding = w.map { [ref($0)] } ?? []
            out.decidedBy = w.map(ref)
        } else if let (p, cause, w) = lag {
            out.classification = .propagationLag
            out.purpose = p
            out.cause = cause
            if let w {
                let wall = entries[Int(w)].facts.hlc.wall
                out.deciding = [ref(w)] + relied.map(ref)
                out.lagMs = f.hlc.wall >= wall ? f.hlc.wall - wall : 0
                out.decidedBy = ref(w)
            }
        } else {
            out.listed = onConsent || !flags.isEmpty
        }
        return out
    }

    /// §7.3 over the proven entries: the flags of interaction `i`'s `consentRef`.
    func consentRefFlags(_ i: Int, global: Scope, claimed: [String]) throws(ViewError) -> [String] {
        let f = entries[i].facts
        guard let r = f.consentRef else { return [] }
        guard let size = frontier[r.org], r.seq < size else { return ["unresolved"] }
        guard let t = entry(r.org, r.seq) else {
            throw ViewError(.report, "report: it does not carry \(r.org)/\(r.seq), the consent the interaction names")
        }
        let tf = entries[t].facts
        guard tf.ref.leaf == r.leaf else { return ["leaf-mismatch"] }
        guard tf.kind == .consent, let ev = tf.event.flatMap(ConsentEvent.init(rawValue:)) else {
            return ["not-consent"]
        }
        var flags: [String] = []
        let otherPerson = !refs.contains(tf.subjects[0])
        if otherPerson { flags.append("other-person") }
        if f.purposes.contains(where: { !tf.purposes.contains($0) }) { flags.append("other-purpose") }
        let onBehalf = f.agent?.onBehalfOf
        if !tf.controllers.contains(f.org) && !tf.recipients.contains(f.org)
            && !(onBehalf.map(tf.controllers.contains) ?? false)
        {
            flags.append("not-for-actor")
        }
        if ev != .give && ev != .renew {
            flags.append("not-in-force")
        } else if let x = tf.expiresAt, x <= f.occurredAt {
            flags.append("not-in-force")
        } else if otherPerson {
            // §8.5: the other person's records are not in the report; the flag is the report's.
            if claimed.contains("not-in-force") { flags.append("not-in-force") }
        } else {
            let shared = f.purposes.filter(tf.purposes.contains)
            let states = replay(consents(person(tf.subjects[0], global), global))
            let inForce = tf.controllers.contains { c in
                shared.allSatisfy { p in
                    states.contains {
                        $0.controller == c && $0.purpose == p && $0.state.grant == UInt32(t)
                            && $0.state.effective(at: f.occurredAt).permits
                    }
                }
            }
            if !inForce { flags.append("not-in-force") }
        }
        return flags
    }
}
