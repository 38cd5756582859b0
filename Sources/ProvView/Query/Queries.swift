import ProvCrypto
import ProvLedger

extension IndexState {
    var committedSizes: [UInt64] { logs.map(\.committed) }

    var frontier: Frontier {
        Frontier(
            logs: logs.indices.compactMap { i in
                logs[i].checkpoint.map { LogHead(org: orgs[i], size: $0.checkpoint.size, root: $0.checkpoint.root) }
            }.sorted { $0.org.utf8.lexicographicallyPrecedes($1.org.utf8) })
    }

    func company(_ org: String) -> String { consortium.member(org)?.name ?? org }

    func deciding(_ id: UInt32) -> DecidingEntry {
        let f = facts[Int(id)]
        return DecidingEntry(
            ref: entryRef(id), event: f.kind == .consent ? Vocabulary.consentEventTable.codes[Int(f.event)] : nil,
            hlc: HLC(wall: f.wall, counter: f.counter), occurredAt: f.occurredAt)
    }

    // MARK: Permit

    mutating func permit(
        subject: SHA256Digest, org: String, orgIndex o: Int, purpose: String, channel: String?, at: UInt64
    ) -> PermitAnswer {
        let sizes = committedSizes
        var answer = PermitAnswer(
            allowed: false, org: org, purpose: purpose, channel: channel, at: at, state: .unknown, controller: nil,
            decidedBy: nil, expiresAt: nil, recipients: [], reason: nil, frontier: frontier)
        guard let sid = subjectID(subject), let p = strings.lookup(purpose) else {
            answer.reason = "no consent for \(purpose) names \(org) as controller or recipient"
            return answer
        }
        let scope = Scope(sizes: sizes)
        // At the committed frontier a long history's states are kept between permits (ConsentCache).
        let (states, named) = consentStates(person: person(sid, scope), purpose: p, scope)
        let d = decide(states: states, org: UInt32(o), at: at) { c, org in
            isNamed(named, controller: c, purpose: p, org)
        }
        fill(&answer, d, org: org, purpose: purpose)
        return answer
    }

    private func fill(_ a: inout PermitAnswer, _ d: PermitDecision, org: String, purpose: String) {
        a.allowed = d.allowed
        a.state = d.status
        a.controller = d.controller.map { strings.string($0) }
        if let s = d.state {
            a.decidedBy = deciding(s.decidedBy)
            if s.grant != Self.none {
                a.expiresAt = s.expiresAt == 0 ? nil : s.expiresAt
                let g = facts[Int(s.grant)]
                a.recipients = g.recipients == Self.none ? [] : strings(ofList: g.recipients)
            }
        }
        a.reason = d.allowed ? nil : reason(d, org: org, purpose: purpose, expiresAt: a.expiresAt)
    }

    func reason(_ d: PermitDecision, org: String, purpose: String, expiresAt: UInt64?) -> String {
        let controller = d.controller.map { strings.string($0) } ?? org
        switch d.reason {
        case .allowed: return "allowed"
        case .noConsent: return "no consent for \(purpose) names \(org) as controller or recipient"
        case .notRecipient:
            return "the consent of \(controller) for \(purpose) in force does not name \(org) as a recipient"
        case .status(let s):
            switch s {
            case .unknown: return "no consent for \(purpose) names \(org) as controller or recipient"
            case .requested: return "consent of \(controller) for \(purpose) was requested, not given"
            case .refused: return "consent of \(controller) for \(purpose) was refused"
            case .withdrawn: return "consent of \(controller) for \(purpose) was withdrawn"
            case .revoked: return "consent of \(controller) for \(purpose) was revoked"
            case .expired:
                return "consent of \(controller) for \(purpose) expired at \(expiresAt.map(Render.time) ?? "?")"
            case .objected: return "the person objected to \(controller) processing for \(purpose)"
            case .invalidated: return "consent of \(controller) for \(purpose) was invalidated"
            case .given, .renewed: return "allowed"
            }
        }
    }

    // MARK: Timeline

    /// Every fact of the person within scope, newest first.
    func timelineFacts(_ person: [UInt32], _ scope: Scope) -> [UInt32] {
        var out: [(OrderKey, UInt32)] = []
        var seenLinks = Set<UInt32>()
        for s in person {
            for head in [consentHead[Int(s)], activityHead[Int(s)]] {
                var id = head
                while id != Self.none {
                    let f = facts[Int(id)]
                    if sees(scope, f) { out.append((key(f), id)) }
                    id = f.next
                }
            }
            var id = linkHead[Int(s)]
            while id != Self.none {
                let f = facts[Int(id)]
                if sees(scope, f), seenLinks.insert(id).inserted { out.append((key(f), id)) }
                id = f.subject == s ? f.next : f.secondNext
            }
        }
        out.sort { $0.0 > $1.0 }
        return out.map(\.1)
    }

    /// Items for `ids`; `shares` are the person's facts whose shares are shown on the items they derive from.
    func timelineItems(_ ids: [UInt32], shares: [UInt32]? = nil) -> [TimelineItem] {
        var sharedIn: [EntryRef: [EntryRef]] = [:]
        for id in shares ?? ids where facts[Int(id)].kind == .share {
            let share = entryRef(id)
            for r in refsOf(facts[Int(id)]).derivedFrom { sharedIn[entryRef(r), default: []].append(share) }
        }
        return ids.map { id in
            let facts = entryFacts(id)
            return TimelineItem(facts: facts, company: company(facts.org), sharedIn: sharedIn[facts.ref] ?? [])
        }
    }

    func timeline(subject: SHA256Digest, limit: Int, before: TimelineCursor?) -> TimelinePage {
        let scope = Scope(sizes: committedSizes)
        guard let sid = subjectID(subject) else {
            return TimelinePage(
                refs: [SubjectRef.text(subject)], items: [], next: nil, total: 0, frontier: frontier)
        }
        let person = person(sid, scope)
        let all = timelineFacts(person, scope)
        var ids = all
        let total = ids.count
        if let b = before {
            let bound = OrderKey(
                wall: b.hlc.wall, counter: b.hlc.counter, rank: b.org.isEmpty ? -1 : rankOf(b.org), seq: b.seq)
            ids.removeAll { key($0) >= bound }
        }
        let page = Array(ids.prefix(limit))
        let next =
            ids.count > limit
            ? page.last.map { id -> TimelineCursor in
                let f = facts[Int(id)]
                return TimelineCursor(hlc: HLC(wall: f.wall, counter: f.counter), org: orgs[Int(f.org)], seq: f.seq)
            } : nil
        return TimelinePage(
            refs: person.map { subjects[$0] }.sorted().map(SubjectRef.text),
            items: timelineItems(page, shares: all),
            next: next, total: total, frontier: frontier)
    }

    /// The rank an org id has (or would have) in bytewise order among the members.
    func rankOf(_ org: String) -> Int {
        if let o = orgIndex(org) { return rank[o] }
        return orgs.filter { $0.utf8.lexicographicallyPrecedes(org.utf8) }.count
    }

    // MARK: View

    func view(subject: SHA256Digest, at: UInt64, atGiven: Bool) -> SubjectView {
        let sizes = committedSizes
        let scope = Scope(sizes: sizes)
        var v = SubjectView(
            refs: [subject], links: [], consents: [], timeline: [], compliance: [], frontier: frontier, at: at,
            atGiven: atGiven, digest: .zero)
        if let sid = subjectID(subject) {
            let person = person(sid, scope)
            v.refs = person.map { subjects[$0] }.sorted()
            v.links = identityLinks(person, scope)
            v.consents = consentStates(person, scope, at: at)
            let ids = timelineFacts(person, scope)
            v.timeline = timelineItems(ids)
            v.compliance = ids.compactMap { id in
                facts[Int(id)].kind == .interaction ? classify(id, sizes: sizes, person: person) : nil
            }
        }
        v.digest = ViewDigest.digest(v)
        return v
    }

    func identityLinks(_ person: [UInt32], _ scope: Scope) -> [IdentityLink] {
        var best: [UInt64: UInt32] = [:]
        for s in person {
            var id = linkHead[Int(s)]
            while id != Self.none {
                let f = facts[Int(id)]
                if sees(scope, f) {
                    let pair = UInt64(min(f.subject, f.secondSubject)) << 32 | UInt64(max(f.subject, f.secondSubject))
                    if let b = best[pair], key(b) > key(f) {} else { best[pair] = id }
                }
                id = f.subject == s ? f.next : f.secondNext
            }
        }
        return best.values.map { id in
            let f = facts[Int(id)]
            return IdentityLink(
                refs: [subjects[f.subject], subjects[f.secondSubject]].sorted(), linked: f.kind == .link,
                decidedBy: deciding(id))
        }.sorted { ($0.refs[0], $0.refs[1]) < ($1.refs[0], $1.refs[1]) }
    }

    func consentStates(_ person: [UInt32], _ scope: Scope, at: UInt64) -> [ConsentState] {
        // A pair that only saw ignored events (a renew with nothing to renew) has no state to show.
        replay(consentFacts(person, scope)).filter { $0.state.decidedBy != Self.none }.map { c, p, s in
            let grant = s.grant == Self.none ? nil : s.grant
            return ConsentState(
                controller: strings.string(c), purpose: strings.string(p), state: s.effective(at: at),
                recorded: s.status, decidedBy: deciding(s.decidedBy), grant: grant.map { entryRef($0) },
                expiresAt: grant != nil && s.expiresAt != 0 ? s.expiresAt : nil,
                recipients: grant.map { g in
                    facts[Int(g)].recipients == Self.none ? [] : strings(ofList: facts[Int(g)].recipients)
                }
                    ?? [],
                eventsApplied: s.applied, eventsIgnored: s.ignored)
        }.sorted {
            ($0.controller.utf8.lexicographicallyPrecedes($1.controller.utf8))
                || ($0.controller == $1.controller && $0.purpose.utf8.lexicographicallyPrecedes($1.purpose.utf8))
        }
    }
}
