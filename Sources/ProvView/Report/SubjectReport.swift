import Foundation
import ProvCrypto
import ProvLedger

/// The subject access report (GDPR Art. 15; Specs/view.md §8): everything the consortium recorded about one
/// person, with a receipt for every entry it rests on, as JSON and as a self-verifying HTML page.
public struct SubjectReport: Sendable {
    public static let format = "prov-subject-access-report/v1"

    public var consortium: Consortium
    public var generatedAt: UInt64
    public var view: SubjectView
    /// A C2SP tlog-proof@v1 receipt for every entry the view rests on, ascending by org and seq.
    public var receipts: [Receipt]

    public init(consortium: Consortium, generatedAt: UInt64, view: SubjectView, receipts: [Receipt]) {
        self.consortium = consortium
        self.generatedAt = generatedAt
        self.view = view
        self.receipts = receipts
    }

    /// The entries the report's facts rest on: the timeline and every deciding entry.
    static func refs(of v: SubjectView) -> [EntryRef] {
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
        return set.sorted { ($0.org, $0.seq) < ($1.org, $1.seq) }
    }

    public var json: JSONValue {
        let v = view
        return .object([
            JSONMember("format", .string(Self.format)),
            JSONMember(
                "consortium",
                .object([
                    JSONMember("name", .string(consortium.name)),
                    JSONMember(
                        "members",
                        .array(
                            consortium.members.map {
                                .object([
                                    JSONMember("org", .string($0.org)), JSONMember("name", .string($0.name)),
                                    JSONMember("verifierKey", .string($0.key.description)),
                                ])
                            })),
                ])),
            JSONMember("generatedAt", .string(Render.time(generatedAt))),
            JSONMember("refs", .array(v.refs.map { .string(SubjectRef.text($0)) })),
            JSONMember("at", .string(Render.time(v.at))), JSONMember("atGiven", .bool(v.atGiven)),
            JSONMember("digest", .string(v.digest.hex)), JSONMember("frontier", v.frontier.json),
            JSONMember("links", .array(v.links.map(\.json))), JSONMember("consents", .array(v.consents.map(\.json))),
            JSONMember("timeline", .array(v.timeline.map(\.json))),
            JSONMember("shares", .array(v.timeline.filter { $0.facts.kind == .share }.map(\.json))),
            JSONMember("compliance", .array(v.compliance.map(\.json))),
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
    /// The subject access report of the person `subject` names, with receipts read through `source`.
    public func report(subject: String, at: UInt64? = nil, source: EntrySource, generatedAt: UInt64? = nil)
        throws(ViewError) -> SubjectReport
    {
        let v = try view(subject: subject, at: at)
        var receipts: [Receipt] = []
        let refs = SubjectReport.refs(of: v)
        for org in Set(refs.map(\.org)).sorted() {
            let o = try orgIndex(org)
            let seqs = refs.filter { $0.org == org }.map(\.seq)
            receipts += try self.receipts(org: o, seqs: seqs, source: source)
        }
        return SubjectReport(
            consortium: consortium, generatedAt: generatedAt ?? Self.now(), view: v, receipts: receipts)
    }
}
