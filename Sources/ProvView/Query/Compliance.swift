import ProvCrypto
import ProvLedger

/// Why a purpose of an interaction was not covered, in one scope.
private struct Block {
    var decision: PermitDecision
    /// The entry that decided (the withdrawal, refusal, objection, expired grant), when there is one.
    var decidedBy: UInt32?
    var reason: String

    /// What blocked it, as `ComplianceFinding.cause` names it.
    var cause: String {
        switch decision.reason {
        case .allowed: "allowed"
        case .noConsent, .status(.unknown): "no-consent"
        case .notRecipient: "not-recipient"
        case .status(let s): s.rawValue
        }
    }
}

extension IndexState {
    /// Specs/view.md §7: classifies interaction `id`. Nil when it neither relied on consent nor met an objection
    /// and its consentRef (if any) raises no flag. `person` is the person of the whole view, for the
    /// other-person check (computed when nil).
    func classify(_ id: UInt32, sizes: [UInt64], person full: [UInt32]?) -> ComplianceFinding? {
        let f = facts[Int(id)]
        let b = Int(f.org)
        let cited = (0..<orgs.count).map { o -> Int64 in logs[b].cited(o, upTo: f.seq).map { Int64($0) } ?? -1 }
        let known = Scope(sizes: sizes, known: (b, f.seq, cited), before: nil)
        let global = Scope(sizes: sizes, known: (b, f.seq, cited), before: key(f))
        let knownPerson = person(f.subject, known)
        let globalPerson = person(f.subject, global)
        let onConsent = Int(f.legalBasis) == Vocabulary.consentBasis
        let actor = UInt32(b)
        let onBehalf = f.onBehalfOf.map(UInt32.init)
        let at = f.occurredAt

        var violation: (UInt32, Block)?
        var lag: (UInt32, Block, Block?)?
        var relied: [UInt32] = []
        for p in lists.list(f.purposes) {
            let k = block(knownPerson, known, actor, onBehalf, p, at: at, onConsent: onConsent)
            if let kb = k.block {
                if violation == nil { violation = (p, kb) }
                continue
            }
            let g = block(globalPerson, global, actor, onBehalf, p, at: at, onConsent: onConsent)
            if let gb = g.block, lag == nil { lag = (p, gb, nil) }
            if let r = k.relied, !relied.contains(r) { relied.append(r) }
        }
        let flags = f.hasConsentRef ? consentRefFlags(f, sizes: sizes, person: full, global: global) : []
        let facts = entryFacts(id)
        var finding = ComplianceFinding(
            interaction: facts, classification: .lawful, purpose: nil, reason: "", cause: nil, lagMs: nil,
            seenAfterMs: nil,
            deciding: relied.map(deciding), flags: flags)
        if let (p, kb) = violation {
            finding.classification = .violation
            finding.purpose = strings.string(p)
            finding.reason = "\(orgs[b]) acted although what it had already recorded or received showed \(kb.reason)"
            finding.cause = kb.cause
            finding.deciding = kb.decidedBy.map { [deciding($0)] } ?? []
        } else if let (p, gb, _) = lag {
            finding.classification = .propagationLag
            finding.purpose = strings.string(p)
            finding.reason = "\(orgs[b]) had not yet seen that \(gb.reason)"
            finding.cause = gb.cause
            if let w = gb.decidedBy {
                let wf = self.facts[Int(w)]
                finding.deciding = [deciding(w)] + relied.map(deciding)
                finding.lagMs = f.wall >= wf.wall ? f.wall - wf.wall : 0
                if Int(wf.org) != b, let seen = logs[b].firstCiting(Int(wf.org), wf.seq, after: f.seq),
                    seen < sizes[b]
                {
                    let sf = self.facts[Int(logs[b].facts[Int(seen)])]
                    finding.seenAfterMs = sf.wall >= wf.wall ? sf.wall - wf.wall : 0
                }
            }
        } else {
            guard onConsent || !flags.isEmpty else { return nil }
            finding.reason =
                onConsent
                ? "consent in force for every purpose, as far as \(orgs[b]) and the consortium knew"
                : "not based on consent; no objection applied"
        }
        return finding
    }

    /// Whether purpose `p` of an interaction by `actor` (for `onBehalf`) is blocked within `scope`: by an objection
    /// to the actor or the org it acted for, or, on consent, by the absence of a consent in force.
    private func block(
        _ person: [UInt32], _ scope: Scope, _ actor: UInt32, _ onBehalf: UInt32?, _ p: UInt32, at: UInt64,
        onConsent: Bool
    ) -> (block: Block?, relied: UInt32?) {
        let states = replay(consentFacts(person, scope, purpose: p), only: p)
        for o in [actor] + (onBehalf.map { [$0] } ?? []) {
            if let s = states.first(where: { $0.controller == o }), s.state.status == .objected {
                let d = PermitDecision(
                    allowed: false, status: .objected, controller: o, state: s.state, reason: .status(.objected))
                return (
                    Block(
                        decision: d, decidedBy: s.state.decidedBy,
                        reason: "the person objected to \(strings.string(o)) processing for \(strings.string(p))"),
                    nil
                )
            }
        }
        guard onConsent else { return (nil, nil) }
        let d = decide(person: person, org: actor, purpose: p, at: at, scope)
        if d.allowed { return (nil, d.state?.grant) }
        let why = reason(
            d, org: strings.string(actor), purpose: strings.string(p),
            expiresAt: d.state.flatMap { $0.expiresAt == 0 ? nil : $0.expiresAt })
        return (Block(decision: d, decidedBy: d.state?.decidedBy, reason: why), nil)
    }

    /// Specs/view.md §7.3: what is wrong with the consent an interaction names, if anything.
    private func consentRefFlags(_ f: Fact, sizes: [UInt64], person full: [UInt32]?, global: Scope)
        -> [ConsentRefFlag]
    {
        guard let r = refsOf(f).consentRef else { return [] }
        let name = "\(orgs[Int(r.org)])/\(r.seq)"
        guard r.seq < sizes[Int(r.org)] else {
            return [
                ConsentRefFlag(code: "unresolved", detail: "names \(name), which the logs of this view do not hold")
            ]
        }
        let t = logs[Int(r.org)].facts[Int(r.seq)]
        let tf = facts[Int(t)]
        guard tf.leaf == r.leaf else {
            return [
                ConsentRefFlag(
                    code: "leaf-mismatch",
                    detail: "names \(name) with leaf \(r.leaf.hex), but that entry is \(tf.leaf.hex)")
            ]
        }
        guard tf.kind == .consent, let ev = event(tf) else {
            return [ConsentRefFlag(code: "not-consent", detail: "names \(name), a \(tf.kind.rawValue) entry")]
        }
        var flags: [ConsentRefFlag] = []
        let person = full ?? self.person(f.subject, Scope(sizes: sizes))
        if !person.contains(tf.subject) {
            flags.append(ConsentRefFlag(code: "other-person", detail: "\(name) is a consent about another person"))
        }
        let mine = lists.list(f.purposes)
        let covered = lists.list(tf.purposes)
        let missing = mine.filter { !covered.contains($0) }
        if !missing.isEmpty {
            flags.append(
                ConsentRefFlag(
                    code: "other-purpose",
                    detail: "\(name) does not cover \(missing.map { strings.string($0) }.joined(separator: ", "))"))
        }
        let actor = UInt32(f.org)
        let onBehalf = f.onBehalfOf.map(UInt32.init)
        let controllers = lists.list(tf.controllers)
        if !controllers.contains(actor), !lists(t, recipient: actor), !(onBehalf.map(controllers.contains) ?? false) {
            flags.append(
                ConsentRefFlag(
                    code: "not-for-actor",
                    detail: "\(name) names \(orgs[Int(f.org)]) neither as controller nor as recipient"))
        }
        if ev != .give && ev != .renew {
            flags.append(
                ConsentRefFlag(code: "not-in-force", detail: "\(name) records a \(ev.rawValue), not a consent given"))
        } else if tf.expiresAt != 0 && tf.expiresAt <= f.occurredAt {
            flags.append(
                ConsentRefFlag(
                    code: "not-in-force",
                    detail: "\(name) expired at \(Render.time(tf.expiresAt)), before the interaction"))
        } else {
            // In force: the grant of some controller for every purpose it shares with the interaction.
            let shared = mine.filter { covered.contains($0) }
            let states = replay(consentFacts(self.person(tf.subject, global), global))
            let inForce = controllers.contains { c in
                shared.allSatisfy { p in
                    states.contains {
                        $0.controller == c && $0.purpose == p && $0.state.grant == t
                            && $0.state.effective(at: f.occurredAt).permits
                    }
                }
            }
            if !inForce {
                flags.append(
                    ConsentRefFlag(
                        code: "not-in-force",
                        detail: "\(name) was no longer the consent in force when the interaction was recorded"))
            }
        }
        return flags
    }

    /// The interactions of org `o` recorded in [from, to) among the committed entries: the seq range.
    func seqRange(_ o: Int, from: UInt64?, to: UInt64?, size: UInt64) -> Range<UInt64> {
        func firstAt(_ t: UInt64) -> UInt64 {
            var lo: UInt64 = 0
            var hi = size
            while lo < hi {
                let mid = (lo + hi) / 2
                if facts[Int(logs[o].facts[Int(mid)])].wall < t { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }
        let lo = from.map(firstAt) ?? 0
        let hi = to.map(firstAt) ?? size
        return lo..<max(lo, hi)
    }
}
