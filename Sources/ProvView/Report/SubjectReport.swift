import Foundation
import ProvCrypto
import ProvLedger

/// The subject access report (GDPR Art. 15; Specs/view.md §8): everything the consortium recorded about one
/// person, with a receipt for every entry it rests on and a signed checkpoint for every log of its frontier, as
/// JSON and as a self-verifying HTML page. It carries what a reader needs to re-derive every finding (§8.5).
public struct SubjectReport: Sendable {
    /// What the report page may run and load (its script and style sheet only).
    public static let pagePolicy = PagePolicy(script: ReportScript.source, style: css)

    public static let format = "prov-subject-access-report/v1"

    public var consortium: Consortium
    public var generatedAt: UInt64
    public var view: SubjectView
    /// Per interaction of the timeline: what its company had seen when it recorded it.
    public var knowledge: [EntryRef: Knowledge]
    /// Entries the re-derivation needs that are not in the timeline, ascending by org and seq (§8.1).
    public var context: [EntryFacts]
    /// The signed checkpoint of every log of the frontier, ascending by org: every receipt is against one of them.
    public var checkpoints: [SignedCheckpoint]
    /// A C2SP tlog-proof@v1 receipt for every entry the report rests on, ascending by org and seq.
    public var receipts: [Receipt]

    public init(
        consortium: Consortium, generatedAt: UInt64, view: SubjectView, knowledge: [EntryRef: Knowledge],
        context: [EntryFacts], checkpoints: [SignedCheckpoint], receipts: [Receipt]
    ) {
        self.consortium = consortium
        self.generatedAt = generatedAt
        self.view = view
        self.knowledge = knowledge
        self.context = context
        self.checkpoints = checkpoints
        self.receipts = receipts
    }

    /// The entries the report's facts rest on: the timeline, every deciding entry, the context and every entry
    /// that shows what a company had seen.
    static func refs(of v: SubjectView, knowledge: [EntryRef: Knowledge], context: [EntryFacts]) -> [EntryRef] {
        var set = Set(v.timeline.map(\.facts.ref))
        for c in v.consents {
            set.insert(c.decidedBy.ref)
            if let g = c.grant { set.insert(g) }
        }
        for f in v.compliance {
            set.insert(f.interaction.ref)
            for d in f.deciding { set.insert(d.ref) }
        }
        for l in v.links { set.insert(l.decidedBy.ref) }
        for k in knowledge.values {
            for c in k.knew { set.insert(c.by.ref) }
            if let s = k.seenBy { set.insert(s.ref) }
        }
        for e in context { set.insert(e.ref) }
        return set.sorted { ($0.org, $0.seq) < ($1.org, $1.seq) }
    }

    /// The timeline's interactions that are not findings (§7.2: not listed), in timeline order.
    var unlisted: [EntryFacts] {
        let listed = Set(view.compliance.map(\.interaction.ref))
        return view.timeline.map(\.facts).filter { $0.kind == .interaction && !listed.contains($0.ref) }
    }

    func knew(_ r: EntryRef) -> JSONValue { .array((knowledge[r]?.knew ?? []).map(\.json)) }

    public var json: JSONValue {
        let v = view
        return .object([
            JSONMember("format", .string(Self.format)),
            JSONMember("consortium", Render.consortium(consortium, keysFor: checkpoints)),
            JSONMember("generatedAt", .string(Render.time(generatedAt))),
            JSONMember("refs", .array(v.refs.map { .string(SubjectRef.text($0)) })),
            JSONMember("at", .string(Render.time(v.at))), JSONMember("atGiven", .bool(v.atGiven)),
            JSONMember("digest", .string(v.digest.hex)), JSONMember("frontier", v.frontier.json),
            JSONMember(
                "checkpoints",
                .array(
                    checkpoints.map {
                        .object([
                            JSONMember(
                                "org", .string(consortium.member(origin: $0.checkpoint.origin)?.org ?? "")),
                            JSONMember("checkpoint", .string($0.serialized)),
                        ])
                    })),
            JSONMember("links", .array(v.links.map(\.json))), JSONMember("consents", .array(v.consents.map(\.json))),
            JSONMember("timeline", .array(v.timeline.map(\.json))),
            JSONMember("shares", .array(v.timeline.filter { $0.facts.kind == .share }.map(\.json))),
            JSONMember(
                "compliance",
                .array(
                    v.compliance.map { f in
                        guard case .object(let m) = f.json else { return f.json }
                        let seen = knowledge[f.interaction.ref]?.seenBy
                        return .object(
                            m + [
                                JSONMember("knew", knew(f.interaction.ref)),
                                JSONMember("seenBy", seen?.json ?? .null),
                            ])
                    })),
            JSONMember(
                "unlisted",
                .array(
                    unlisted.map {
                        .object([JSONMember("interaction", Render.ref($0.ref)), JSONMember("knew", knew($0.ref))])
                    })),
            JSONMember(
                "context",
                .array(context.map { .object($0.json(company: Labels.company($0.org, consortium))) })),
            JSONMember(
                "receipts",
                .array(
                    receipts.map { r in
                        let leaf = Merkle.leafHash(r.entry)
                        let org = consortium.member(origin: r.checkpoint.checkpoint.origin)?.org ?? ""
                        return .object([
                            JSONMember("ref", Render.ref(EntryRef(org: org, seq: r.index, leaf: leaf))),
                            JSONMember("receipt", .string(r.serialized)),
                        ])
                    })),
        ])
    }

    public var table: String {
        "Subject access report for \(view.refs.map(SubjectRef.text).joined(separator: ", "))\n"
            + "generated \(Render.time(generatedAt)), \(receipts.count) receipts\n\n" + view.table
    }
}

extension ViewIndex {
    /// The subject access report of the person `subject` names, with receipts read through `source`. The view,
    /// what the report adds to it and every proof are taken at one frontier, under one hold of the index's lock.
    public func report(subject: String, at: UInt64? = nil, source: EntrySource, generatedAt: UInt64? = nil)
        throws(ViewError) -> SubjectReport
    {
        let ref = try resolver.ref(subject)
        let t = at ?? Self.now()
        let (v, knowledge, context, proofs, checkpoints) = state.withLock { s in
            let v = s.view(subject: ref, at: t, atGiven: at != nil)
            let (knowledge, ids) = s.reportEvidence(v)
            let context = ids.map { s.entryFacts($0) }
            let proofs = SubjectReport.refs(of: v, knowledge: knowledge, context: context).compactMap {
                r -> (EntryRef, [SHA256Digest])? in
                guard let o = s.orgIndex(r.org), r.seq < s.logs[o].committed else { return nil }
                return (r, s.inclusionProof(o, r.seq))
            }
            let checkpoints = s.logs.indices.sorted { s.orgs[$0].utf8.lexicographicallyPrecedes(s.orgs[$1].utf8) }
                .compactMap { s.logs[$0].checkpoint }
            return (v, knowledge, context, proofs, checkpoints)
        }
        let byOrigin = Dictionary(checkpoints.map { ($0.checkpoint.origin, $0) }, uniquingKeysWith: { a, _ in a })
        var receipts: [Receipt] = []
        for (r, proof) in proofs {
            guard let origin = consortium.member(r.org)?.origin, let checkpoint = byOrigin[origin] else { continue }
            let bytes: [UInt8]
            do { bytes = try source.entryBytes(org: r.org, seq: r.seq) } catch {
                throw ViewError(.source, "\(r.org) seq \(r.seq): cannot read the entry: \(error)")
            }
            guard Merkle.leafHash(bytes) == r.leaf else {
                throw ViewError(
                    .source, "\(r.org) seq \(r.seq): the store's entry does not have the leaf hash the index holds")
            }
            receipts.append(Receipt(entry: bytes, index: r.seq, proof: proof, checkpoint: checkpoint))
        }
        return SubjectReport(
            consortium: consortium, generatedAt: generatedAt ?? Self.now(), view: v, knowledge: knowledge,
            context: context, checkpoints: checkpoints, receipts: receipts)
    }
}
