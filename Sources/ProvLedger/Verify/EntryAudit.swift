import ProvCrypto

/// What the verifier needs from an entry to follow the chain.
package struct AuditedEntry: Sendable {
    package var seq: UInt64 = 0
    package var prev = SHA256Digest()
    package var hlc = HLC(wall: 0, counter: 0)
    package var deps: [EntryRef] = []
    /// The kind's number, `EntryKind.code`.
    package var kind: UInt8 = 0
    /// The body's `consentRef` and `derivedFrom` references, with the field each came from.
    package var refs: [(field: String, ref: EntryRef)] = []
}

/// Everything `prov verify` must know about the consortium to check an entry without building it.
package struct AuditContext: Sendable {
    package let origin: [UInt8]
    package let org: String
    /// The consortium's members and vocabulary (Specs/format.md §9.1).
    package let codes: ConsortiumCodes

    package init(consortium: Consortium, org: String) {
        origin = Array(consortium.origin(of: org).utf8)
        self.org = org
        codes = ConsortiumCodes(consortium)
    }
}

/// Checks an entry's bytes against every rule `Entry.decode` applies, that it belongs to the log being audited,
/// and the consortium check, without building the entry: no strings, no arrays but `deps` and `refs`. The same
/// reader (`EntryFields`) and the same rules (`EntryRules`) as `Entry.decode` and `Entry.consortiumFailure`, in the
/// same order, so the audit and the decoder agree on every input by construction, and the message of a failure
/// is the one `prov verify` prints (Specs/format.md §12.2).
extension Entry {
    package static func audit(_ raw: UnsafeRawBufferPointer, _ ctx: AuditContext) throws -> AuditedEntry {
        let f = try EntryFields(reading: raw)
        let base = raw.baseAddress!
        try EntryRules.check(f, base)
        try f.checkEnd(raw)
        let log = f.log.bytes(base)
        guard ctx.origin.withUnsafeBytes({ EntryRules.same($0, log) }) else {
            throw LedgerError(
                .invalidEntry,
                "entry belongs to log '\(EntryRules.text(log))', not '\(String(decoding: ctx.origin, as: UTF8.self))'")
        }
        if let why = EntryRules.consortiumFailure(f, base, ctx.codes) { throw LedgerError(.invalidEntry, why) }
        var out = AuditedEntry(seq: f.seq, prev: f.prev, hlc: f.hlc, kind: f.kind.code)
        // Every org is a member (checked above): each ref names it by the table's own string.
        let members = ctx.codes.members
        if f.deps.count > 0 {
            out.deps.reserveCapacity(Int(f.deps.count))
            for d in f.deps.refs(base) {
                out.deps.append(EntryRef(org: members.codes[members.number(d.org)!], seq: d.seq, leaf: d.leaf))
            }
        }
        if f.has(.consentRef) {
            let r = f.consentRef
            out.refs.append(
                (
                    "consentRef",
                    EntryRef(org: members.codes[members.number(r.org.bytes(base))!], seq: r.seq, leaf: r.leaf)
                ))
        }
        for d in f.derivedFrom.refs(base) {
            out.refs.append(
                ("derivedFrom", EntryRef(org: members.codes[members.number(d.org)!], seq: d.seq, leaf: d.leaf)))
        }
        return out
    }
}
