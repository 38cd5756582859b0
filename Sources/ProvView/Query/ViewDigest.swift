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

    /// The canonical bytes that are hashed.
    public static func encoding(_ v: SubjectView) -> [UInt8] {
        var w = CBORWriter(reservingCapacity: 1024)
        func bytes(_ d: SHA256Digest) { d.withUnsafeBytes { w.writeBytes($0) } }
        func ref(_ r: EntryRef) {
            w.writeArrayHeader(3)
            w.writeText(r.org)
            w.writeUnsigned(r.seq)
            bytes(r.leaf)
        }
        w.writeMapHeader(v.atGiven ? 8 : 7)
        w.writeKey("v")
        w.writeUnsigned(1)
        if v.atGiven {
            w.writeKey("at")
            w.writeUnsigned(v.at)
        }
        w.writeKey("refs")
        w.writeArrayHeader(v.refs.count)
        for r in v.refs.sorted() { bytes(r) }

        w.writeKey("links")
        let links = v.links.sorted { ($0.refs[0], $0.refs[1]) < ($1.refs[0], $1.refs[1]) }
        w.writeArrayHeader(links.count)
        for l in links {
            w.writeArrayHeader(4)
            bytes(l.refs[0])
            bytes(l.refs[1])
            w.writeBool(l.linked)
            ref(l.decidedBy.ref)
        }

        w.writeKey("entries")
        let entries = v.timeline.map(\.facts).sorted {
            precedes(($0.hlc, $0.org, $0.ref.seq), ($1.hlc, $1.org, $1.ref.seq))
        }
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
            w.writeText((v.atGiven ? c.state : c.recorded).rawValue)
            ref(c.decidedBy.ref)
            if let g = c.grant { ref(g) } else { w.writeNull() }
            if let x = c.expiresAt { w.writeUnsigned(x) } else { w.writeNull() }
        }

        w.writeKey("frontier")
        let logs = v.frontier.logs.sorted { $0.org.utf8.lexicographicallyPrecedes($1.org.utf8) }
        w.writeArrayHeader(logs.count)
        for l in logs {
            w.writeArrayHeader(3)
            w.writeText(l.org)
            w.writeUnsigned(l.size)
            bytes(l.root)
        }

        w.writeKey("compliance")
        let findings = v.compliance.sorted {
            precedes(
                ($0.interaction.hlc, $0.interaction.org, $0.interaction.ref.seq),
                ($1.interaction.hlc, $1.interaction.org, $1.interaction.ref.seq))
        }
        w.writeArrayHeader(findings.count)
        for c in findings {
            w.writeArrayHeader(6)
            ref(c.interaction.ref)
            w.writeText(c.classification.rawValue)
            if let p = c.purpose { w.writeText(p) } else { w.writeNull() }
            if let l = c.lagMs { w.writeUnsigned(l) } else { w.writeNull() }
            w.writeArrayHeader(c.deciding.count)
            for d in c.deciding { ref(d.ref) }
            w.writeArrayHeader(c.flags.count)
            for f in c.flags { w.writeText(f.code) }
        }
        return w.bytes
    }

    public static func digest(_ v: SubjectView) -> SHA256Digest { SHA256.hash(encoding(v)) }
}
