import ProvCrypto
import ProvLedger

/// The view digest (Specs/view.md §6): SHA-256 over a deterministic CBOR encoding of a subject's view and the
/// frontier it was computed at. It is a function of the `SubjectView` value alone, so a report's digest can be
/// recomputed from the report.
public enum ViewDigest {
    /// Orders entries as the view does: `hlc`, then org id bytewise, then seq.
    static func precedes(_ a: (HLC, String, UInt64), _ b: (HLC, String, UInt64)) -> Bool {
        if a.0 != b.0 { return a.0 < b.0 }
        if a.1 != b.1 { return a.1.utf8.lexicographicallyPrecedes(b.1.utf8) }
        return a.2 < b.2
    }

    /// What the digest covers (Specs/view.md §6.1), as read from a `SubjectView` or from a report's JSON.
    struct Input {
        struct Link {
            var a: SHA256Digest
            var b: SHA256Digest
            var linked: Bool
            var decidedBy: EntryRef
        }
        struct Consent {
            var controller: String
            var purpose: String
            var state: String
            var decidedBy: EntryRef
            var grant: EntryRef?
            var expiresAt: UInt64?
        }
        struct Finding {
            var interaction: EntryRef
            var hlc: HLC
            var classification: String
            var purpose: String?
            var lagMs: UInt64?
            var deciding: [EntryRef]
            var flags: [String]
        }
        var at: UInt64?
        var refs: [SHA256Digest]
        var links: [Link]
        var entries: [(ref: EntryRef, hlc: HLC)]
        var consents: [Consent]
        var frontier: [LogHead]
        var compliance: [Finding]
    }

    static func input(_ v: SubjectView) -> Input {
        Input(
            at: v.atGiven ? v.at : nil, refs: v.refs,
            links: v.links.map {
                Input.Link(a: $0.refs[0], b: $0.refs[1], linked: $0.linked, decidedBy: $0.decidedBy.ref)
            },
            entries: v.timeline.map { ($0.facts.ref, $0.facts.hlc) },
            consents: v.consents.map {
                Input.Consent(
                    controller: $0.controller, purpose: $0.purpose,
                    state: (v.atGiven ? $0.state : $0.recorded).rawValue,
                    decidedBy: $0.decidedBy.ref, grant: $0.grant, expiresAt: $0.expiresAt)
            },
            frontier: v.frontier.logs,
            compliance: v.compliance.map {
                Input.Finding(
                    interaction: $0.interaction.ref, hlc: $0.interaction.hlc,
                    classification: $0.classification.rawValue,
                    purpose: $0.purpose, lagMs: $0.lagMs, deciding: $0.deciding.map(\.ref), flags: $0.flags.map(\.code))
            })
    }

    /// The canonical bytes that are hashed.
    public static func encoding(_ v: SubjectView) -> [UInt8] { encoding(input(v)) }

    static func encoding(_ v: Input) -> [UInt8] {
        var w = CBORWriter(reservingCapacity: 1024)
        func bytes(_ d: SHA256Digest) { d.withUnsafeBytes { w.writeBytes($0) } }
        func ref(_ r: EntryRef) {
            w.writeArrayHeader(3)
            w.writeText(r.org)
            w.writeUnsigned(r.seq)
            bytes(r.leaf)
        }
        w.writeMapHeader(v.at != nil ? 8 : 7)
        w.writeKey("v")
        w.writeUnsigned(1)
        if let at = v.at {
            w.writeKey("at")
            w.writeUnsigned(at)
        }
        w.writeKey("refs")
        w.writeArrayHeader(v.refs.count)
        for r in v.refs.sorted() { bytes(r) }

        w.writeKey("links")
        let links = v.links.sorted { ($0.a, $0.b) < ($1.a, $1.b) }
        w.writeArrayHeader(links.count)
        for l in links {
            w.writeArrayHeader(4)
            bytes(l.a)
            bytes(l.b)
            w.writeBool(l.linked)
            ref(l.decidedBy)
        }

        w.writeKey("entries")
        let entries = v.entries.sorted { precedes(($0.hlc, $0.ref.org, $0.ref.seq), ($1.hlc, $1.ref.org, $1.ref.seq)) }
        w.writeArrayHeader(entries.count)
        for e in entries { ref(e.ref) }

        w.writeKey("consents")
        let consents = v.consents.sorted {
            $0.controller != $1.controller
                ? $0.controller.utf8.lexicographicallyPrecedes($1.controller.utf8)
                : $0.purpose.utf8.lexicographicallyPrecedes($1.purpose.utf8)
        }
        w.writeArrayHeader(consents.count)
        for c in consents {
            w.writeArrayHeader(6)
            w.writeText(c.controller)
            w.writeText(c.purpose)
            w.writeText(c.state)
            ref(c.decidedBy)
            if let g = c.grant { ref(g) } else { w.writeNull() }
            if let x = c.expiresAt { w.writeUnsigned(x) } else { w.writeNull() }
        }

        w.writeKey("frontier")
        let logs = v.frontier.sorted { $0.org.utf8.lexicographicallyPrecedes($1.org.utf8) }
        w.writeArrayHeader(logs.count)
        for l in logs {
            w.writeArrayHeader(3)
            w.writeText(l.org)
            w.writeUnsigned(l.size)
            bytes(l.root)
        }

        w.writeKey("compliance")
        let findings = v.compliance.sorted {
            precedes(($0.hlc, $0.interaction.org, $0.interaction.seq), ($1.hlc, $1.interaction.org, $1.interaction.seq))
        }
        w.writeArrayHeader(findings.count)
        for c in findings {
            w.writeArrayHeader(6)
            ref(c.interaction)
            w.writeText(c.classification)
            if let p = c.purpose { w.writeText(p) } else { w.writeNull() }
            if let l = c.lagMs { w.writeUnsigned(l) } else { w.writeNull() }
            w.writeArrayHeader(c.deciding.count)
            for d in c.deciding { ref(d) }
            w.writeArrayHeader(c.flags.count)
            for f in c.flags { w.writeText(f) }
        }
        return w.bytes
    }

    public static func digest(_ v: SubjectView) -> SHA256Digest { SHA256.hash(encoding(v)) }
}
