import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// The consortium's code tables an entry is checked against: its members and its vocabulary (Specs/format.md
/// §9.1), looked up by bytes.
package struct ConsortiumCodes: Sendable {
    package let members: CodeTable
    package let interactions: CodeTable
    package let notices: CodeTable
    package let softwareAgents: CodeTable
    package let deviceAgents: CodeTable

    package init(_ consortium: Consortium) {
        members = CodeTable(Set(consortium.members.map(\.org)))
        let v = consortium.vocabulary
        interactions = CodeTable(Set(v.interactions))
        notices = CodeTable(Set(v.notices))
        softwareAgents = CodeTable(Set(v.softwareAgents))
        deviceAgents = CodeTable(Set(v.deviceAgents))
    }
}

/// The rules an entry's fields must follow beyond their types (Specs/format.md §3 entry rules, §4 body rules),
/// and the consortium check that follows them (membership, vocabulary). Written once, over the fields as
/// `EntryFields` reads them, for every reader of entries: `Entry.decode` checks `check` before it builds a
/// value, `Entry.audit` checks `check` and `consortiumFailure` without building one, so the two agree by
/// construction. Messages are those of Specs/format.md §4.5 and §12.2, in the order the rules are listed there.
package enum EntryRules {
    static func field(_ name: String, _ reason: String) -> LedgerError {
        LedgerError(.invalidEntry, "\(name): \(reason)")
    }

    /// Bytewise order of two texts of one list (Specs/format.md §2 rule 5, §4 lists).
    @inline(__always)
    static func ascending(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        let c = a.count == 0 || b.count == 0 ? 0 : memcmp(a.baseAddress!, b.baseAddress!, min(a.count, b.count))
        return c < 0 || (c == 0 && a.count < b.count)
    }

    @inline(__always)
    static func same(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
    }

    static func text(_ b: UnsafeRawBufferPointer) -> String { String(decoding: b, as: UTF8.self) }

    private static let entryKeys: [FieldKey] = [.hlc, .log, .seq, .body, .deps, .kind, .prev]
    private static let entryBits = FieldKey.mask(entryKeys)

    /// Checks every rule of one entry on its own but the consortium's (Specs/format.md §3 rules 2–6 and §4,
    /// membership and vocabulary aside), on fields read from the buffer at `base`.
    package static func check(_ f: EntryFields, _ base: UnsafeRawPointer) throws(LedgerError) {
        guard f.has(entry: .v) else { throw field("v", "missing") }
        guard f.version == Entry.formatVersion else {
            throw field("v", "format version \(f.version) is not supported (1 is)")
        }
        if f.keys & entryBits != entryBits, let k = entryKeys.first(where: { !f.has(entry: $0) }) {
            throw field(k.name, "missing")
        }
        let log = f.log.bytes(base)
        guard let own = f.ownOrg(base) else { throw field("log", "'\(text(log))' is not <consortium>/<org>") }
        if f.seq == 0 && f.prev != .zero { throw field("prev", "entry 0 must have 32 zero bytes as prev") }
        var previous: UnsafeRawBufferPointer?
        for (i, d) in f.deps.refs(base).enumerated() {
            if same(d.org, own) { throw field("deps[\(i)]", "cites the entry's own log") }
            if let p = previous, !ascending(p, d.org) {
                throw field("deps", "orgs must be unique and in ascending order")
            }
            previous = d.org
        }
        try checkBody(f, base)
        if f.kind == .heads && f.deps.count == 0 { throw field("deps", "a heads entry must cite at least one head") }
        if f.kind == .share, same(f.recipient.bytes(base), own) {
            throw field(
                "body.recipient",
                "'\(text(f.recipient.bytes(base)))' is the log's own org: a share goes to another member")
        }
    }

    /// The body rules (Specs/format.md §4): the keys of its kind, then each field's rule.
    static func checkBody(_ f: EntryFields, _ base: UnsafeRawPointer) throws(LedgerError) {
        func bad(_ name: String, _ reason: String) -> LedgerError { field("body.\(name)", reason) }
        let kind = f.kind
        let extra = f.bodyKeys & ~kind.bodyKeys
        if extra != 0, let k = FieldKey(rawValue: extra.trailingZeroBitCount) {
            throw bad(k.name, "is not a field of a \(kind.rawValue) body")
        }
        if f.bodyKeys & kind.requiredBits != kind.requiredBits, let k = kind.requiredKeys.first(where: { !f.has($0) }) {
            throw bad(k.name, "missing")
        }
        /// A list of 1–32 codes (looked up while reading) or org ids, unique and ascending.
        func list(_ l: ListSpan, _ name: String, orgs: Bool, allowEmpty: Bool = false) throws(LedgerError) {
            guard allowEmpty || l.count > 0 else { throw bad(name, "must not be empty") }
            guard l.count <= 32 else { throw bad(name, "more than 32 items") }
            var previous: UnsafeRawBufferPointer?
            for (i, t) in l.texts(base).enumerated() {
                if orgs && !Vocabulary.isOrgID(t) {
                    throw bad("\(name)[\(i)]", "\(LedgerError.shown(text(t))) is not an org id")
                }
                if let p = previous, !ascending(p, t) { throw bad(name, "must be unique and in ascending order") }
                previous = t
            }
        }
        func time(_ t: UInt64, _ name: String) throws(LedgerError) {
            guard t < Timestamp.end else { throw bad(name, "\(t) ms is not before the year 10000") }
        }
        func code(_ s: ByteSpan, _ name: String) throws(LedgerError) {
            let b = s.bytes(base)
            guard Vocabulary.isCode(b) else {
                throw bad(name, "\(LedgerError.shownCode(text(b))) is not a code (1-64 of a-z 0-9 . _ -)")
            }
        }
        func org(_ s: ByteSpan, _ name: String) throws(LedgerError) {
            let b = s.bytes(base)
            guard Vocabulary.isOrgID(b) else { throw bad(name, "\(LedgerError.shown(text(b))) is not an org id") }
        }
        switch kind {
        case .consent:
            try list(f.purposes, "purposes", orgs: false)
            try list(f.controllers, "controllers", orgs: true)
            try list(f.recipients, "recipients", orgs: true, allowEmpty: true)
            if f.has(.notice) {
                try code(f.noticeID, "notice.id")
                guard Vocabulary.isNoticeVersion(f.noticeVersion.bytes(base)) else {
                    throw bad(
                        "notice.version",
                        "a value of \(f.noticeVersion.count) bytes is not a version: 1-4 groups of 1-4 digits "
                            + "separated by dots, such as 7 or 2.1")
                }
            }
            try time(f.occurredAt, "occurredAt")
            if f.has(.expiresAt) {
                try time(f.expiresAt, "expiresAt")
                if f.expiresAt <= f.occurredAt { throw bad("expiresAt", "must be after occurredAt") }
            }
        case .interaction:
            try code(f.interaction, "interaction")
            try list(f.purposes, "purposes", orgs: false)
            let person = Int(f.agentKind) == Vocabulary.personAgent
            if f.agentIsRef && !person {
                let kind = Vocabulary.agentKindTable.codes[Int(f.agentKind)]
                throw bad("agent.id", "a \(kind) agent is named by a code, not a ref")
            }
            if !f.agentIsRef {
                if person { throw bad("agent.id", "a person agent is a 32-byte ref (a keyed pseudonym), never a name") }
                try code(f.agentID, "agent.id")
            }
            if f.hasOnBehalfOf { try org(f.onBehalfOf, "agent.onBehalfOf") }
            if Int(f.legalBasis) == Vocabulary.consentBasis && !f.has(.consentRef) {
                throw bad("consentRef", "required when legalBasis is dpv:Consent")
            }
            try time(f.occurredAt, "occurredAt")
            guard f.derivedFrom.count <= 64 else { throw bad("derivedFrom", "more than 64 references") }
        case .share:
            try org(f.recipient, "recipient")
            try list(f.purposes, "purposes", orgs: false)
            try list(f.dataCategories, "dataCategories", orgs: false)
            guard f.derivedFrom.count <= 64 else { throw bad("derivedFrom", "more than 64 references") }
            try time(f.occurredAt, "occurredAt")
        case .link, .unlink:
            guard f.subject < f.secondSubject else {
                throw bad("subjects", "must be two different refs in ascending byte order")
            }
            if kind == .link && !f.has(.evidence) { throw bad("evidence", "required for a link") }
            try time(f.occurredAt, "occurredAt")
        case .heads:
            try time(f.occurredAt, "occurredAt")
        }
    }

    /// The first value of the entry the consortium does not know, as `prov verify` reports it after
    /// `<org> seq <n>: ` (Specs/format.md §4.5, §12.2): an org in `deps` or the body that is not a member, an
    /// interaction type, notice id or agent name outside its vocabulary. Nil when there is none. For fields that
    /// passed `check`.
    package static func consortiumFailure(
        _ f: EntryFields, _ base: UnsafeRawPointer, _ c: ConsortiumCodes
    ) -> String? {
        for d in f.deps.refs(base) where c.members.number(d.org) == nil {
            return "deps cites unknown org \(LedgerError.shown(text(d.org)))"
        }
        func member(_ b: UnsafeRawBufferPointer, _ name: String) -> String? {
            c.members.number(b) != nil ? nil : "body.\(name): \(LedgerError.shown(text(b))) is not a consortium member"
        }
        func members(_ l: ListSpan, _ name: String) -> String? {
            for t in l.texts(base) { if let why = member(t, name) { return why } }
            return nil
        }
        func refs(_ l: ListSpan, _ name: String) -> String? {
            for r in l.refs(base) { if let why = member(r.org, name) { return why } }
            return nil
        }
        switch f.kind {
        case .consent:
            if let why = members(f.controllers, "controllers") ?? members(f.recipients, "recipients") { return why }
            let id = f.noticeID.bytes(base)
            if f.has(.notice) && c.notices.number(id) == nil {
                return "body.notice.id: \(LedgerError.shown(text(id))) is not a notice of the consortium's vocabulary"
            }
        case .interaction:
            if let why = refs(f.derivedFrom, "derivedFrom") { return why }
            if f.hasOnBehalfOf, let why = member(f.onBehalfOf.bytes(base), "agent.onBehalfOf") { return why }
            if f.has(.consentRef), let why = member(f.consentRef.org.bytes(base), "consentRef") { return why }
            let interaction = f.interaction.bytes(base)
            if c.interactions.number(interaction) == nil {
                return "body.interaction: \(LedgerError.shown(text(interaction))) is not an interaction type of the "
                    + "consortium's vocabulary"
            }
            if !f.agentIsRef {
                let kind = Int(f.agentKind)
                let name = f.agentID.bytes(base)
                let agents = kind == Vocabulary.softwareAgent ? c.softwareAgents : c.deviceAgents
                if kind == Vocabulary.personAgent || agents.number(name) == nil {
                    return "body.agent.id: \(LedgerError.shown(text(name))) is not a "
                        + "\(Vocabulary.agentKindTable.codes[kind]) agent of the consortium's vocabulary"
                }
            }
        case .share:
            if let why = member(f.recipient.bytes(base), "recipient") ?? refs(f.derivedFrom, "derivedFrom") {
                return why
            }
        case .link, .unlink, .heads:
            break
        }
        return nil
    }
}
