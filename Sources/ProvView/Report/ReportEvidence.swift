import ProvCrypto
import ProvLedger

/// One log as far as a company had seen it when it recorded an entry (Specs/view.md §7.1, §8.5): the highest seq
/// of `org` its log had referred to by then, and the entry of its log whose references reached it.
public struct Citation: Sendable, Equatable {
    public var org: String
    public var seq: UInt64
    /// The citing entry, in the acting company's log.
    public var by: DecidingEntry

    public var json: JSONValue {
        .object([
            JSONMember("org", .string(org)), JSONMember("seq", Render.number(seq)), JSONMember("by", by.json),
        ])
    }
}

/// What the company of one interaction had seen when it recorded it, as a report proves it (Specs/view.md §8.5).
public struct Knowledge: Sendable, Equatable {
    /// Per other log that holds one of the report's consent, link or unlink entries and that the company had
    /// cited by then, ascending by org.
    public var knew: [Citation]
    /// For a violation or a propagation lag decided by another log's entry *W*: the company's first entry whose
    /// known frontier holds *W* (at or before the interaction for a violation, after it for a lag).
    public var seenBy: DecidingEntry?
}

extension LogIndex {
    /// The first entry of this log whose references reach seq `target` of `org`, or nil.
    func firstReaching(_ org: Int, _ target: UInt64) -> UInt64? { firstCitation(org, reaching: target)?.seq }
}

extension IndexState {
    /// Specs/view.md §8.1: what a report adds to view `v` so that its findings can be re-derived from the report
    /// alone. `knowledge` for every interaction of the timeline; `context`, the fact ids of the consent, link and
    /// unlink entries of refs that were the person's in the scope of one of its interactions (or of the consent one
    /// names) but are not now, and of each visible entry an interaction's `consentRef` names, when not in the
    /// timeline, ascending by org and seq.
    func reportEvidence(_ v: SubjectView) -> (knowledge: [EntryRef: Knowledge], context: [UInt32]) {
        let sizes = committedSizes
        func id(_ r: EntryRef) -> UInt32? {
            guard let o = orgIndex(r.org), r.seq < logs[o].ingested else { return nil }
            return logs[o].facts[Int(r.seq)]
        }
        let full = Set(v.refs.compactMap(subjectID))
        let timeline = v.timeline.compactMap { id($0.facts.ref) }
        let inTimeline = Set(timeline)
        let interactions = timeline.filter { facts[Int($0)].kind == .interaction }
        var formerRefs = Set<UInt32>()
        var context = Set<UInt32>()
        for i in interactions {
            let f = facts[Int(i)]
            let b = Int(f.org)
            let cited = (0..<orgs.count).map { o -> Int64 in logs[b].cited(o, upTo: f.seq).map { Int64($0) } ?? -1 }
            let known = Scope(sizes: sizes, known: (b, f.seq, cited), before: nil)
            let global = Scope(sizes: sizes, known: (b, f.seq, cited), before: key(f))
            formerRefs.formUnion(person(f.subject, known).filter { !full.contains($0) })
            formerRefs.formUnion(person(f.subject, global).filter { !full.contains($0) })
            guard f.hasConsentRef, let r = refsOf(f).consentRef, r.seq < sizes[Int(r.org)] else { continue }
            let t = logs[Int(r.org)].facts[Int(r.seq)]
            if !inTimeline.contains(t) { context.insert(t) }
            // §7.3 not-in-force replays the named consent's person; another person's records are not carried.
            let tf = facts[Int(t)]
            if tf.kind == .consent && full.contains(tf.subject) {
                formerRefs.formUnion(person(tf.subject, global).filter { !full.contains($0) })
            }
        }
        for r in formerRefs {
            var id = consentHead[Int(r)]
            while id != Self.none {
                let f = facts[Int(id)]
                if f.seq < sizes[Int(f.org)] { context.insert(id) }
                id = f.next
            }
            id = linkHead[Int(r)]
            while id != Self.none {
                let f = facts[Int(id)]
                if f.seq < sizes[Int(f.org)] && !inTimeline.contains(id) { context.insert(id) }
                id = f.subject == r ? f.next : f.secondNext
            }
        }
        // The logs whose entries the re-derivation replays: only what was seen of them matters.
        var relevant = Set<Int>()
        for id in inTimeline.union(context) {
            let k = facts[Int(id)].kind
            if k == .consent || k == .link || k == .unlink { relevant.insert(Int(facts[Int(id)].org)) }
        }
        let relevantOrgs = relevant.sorted { orgs[$0].utf8.lexicographicallyPrecedes(orgs[$1].utf8) }
        let findings = Dictionary(v.compliance.map { ($0.interaction.ref, $0) }, uniquingKeysWith: { a, _ in a })
        var knowledge: [EntryRef: Knowledge] = [:]
        for i in interactions {
            let f = facts[Int(i)]
            let b = Int(f.org)
            var k = Knowledge(knew: [], seenBy: nil)
            for o in relevantOrgs where o != b {
                guard let (seq, cited) = logs[b].lastCitation(o, upTo: f.seq) else { continue }
                k.knew.append(Citation(org: orgs[o], seq: cited, by: deciding(logs[b].facts[Int(seq)])))
            }
            let ref = entryRef(i)
            // The entry that made it a violation or lag (a lag's deciding entries start with it when it has one).
            if let finding = findings[ref], finding.classification == .violation || finding.lagMs != nil,
                let w = finding.deciding.first?.ref, let o = orgIndex(w.org), o != b
            {
                let seen: UInt64?
                if finding.classification == .violation {
                    seen = logs[b].firstReaching(o, w.seq)
                } else {
                    // The entry `seenAfterMs` is measured to (Compliance.swift).
                    seen = logs[b].firstCiting(o, w.seq, after: f.seq).flatMap { $0 < sizes[b] ? $0 : nil }
                }
                k.seenBy = seen.map { deciding(logs[b].facts[Int($0)]) }
            }
            knowledge[ref] = k
        }
        let ordered = context.sorted { a, b in
            let x = facts[Int(a)]
            let y = facts[Int(b)]
            return x.org != y.org
                ? orgs[Int(x.org)].utf8.lexicographicallyPrecedes(orgs[Int(y.org)].utf8) : x.seq < y.seq
        }
        return (knowledge, ordered)
    }
}
