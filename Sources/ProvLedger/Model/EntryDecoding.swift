import ProvCrypto

/// Strict decoding of entry bytes: `EntryFields` reads them (deterministic CBOR, the keys of format version 1, every
/// field's type), `EntryRules.check` applies the entry and body rules, and the value is built from the fields.
/// Accepting only one byte form per entry is what makes the leaf hash a fingerprint of its meaning.
extension Entry {
    public static func decode(_ bytes: [UInt8]) throws(LedgerError) -> Entry {
        try withRawBytes(bytes) { raw throws(LedgerError) in try decode(raw) }
    }

    public static func decode(_ raw: UnsafeRawBufferPointer) throws(LedgerError) -> Entry {
        let f = try EntryFields(reading: raw)
        // A read that succeeded read at least a map header: the buffer is not empty.
        let base = raw.baseAddress!
        try EntryRules.check(f, base)
        try f.checkEnd(raw)
        return Entry(f, base)
    }

    /// The first value the consortium does not know (an org in `deps` or the body that is not a member, a code
    /// outside its vocabulary), as `prov verify` reports it after `<org> seq <n>: `; nil when there is none. The
    /// check `Entry.audit` applies (`EntryRules.consortiumFailure`), on this entry's canonical bytes; together with
    /// `decode` and the log's origin, it is every rule the audit applies to one entry.
    public func consortiumFailure(_ c: Consortium) -> String? {
        let codes = ConsortiumCodes(c)
        return withRawBytes(encoded) { raw in
            guard let f = try? EntryFields(reading: raw) else { return nil }
            return EntryRules.consortiumFailure(f, raw.baseAddress!, codes)
        }
    }

    /// Builds the value of fields that passed `EntryRules.check`.
    init(_ f: EntryFields, _ base: UnsafeRawPointer) {
        func string(_ s: ByteSpan) -> String { s.string(base) }
        func strings(_ l: ListSpan) -> [String] {
            var out: [String] = []
            out.reserveCapacity(Int(l.count))
            for t in l.texts(base) { out.append(String(decoding: t, as: UTF8.self)) }
            return out
        }
        /// Codes as the table's own strings, which decoding a known code does not allocate.
        func codes(_ l: ListSpan, _ table: CodeTable) -> [String] {
            var out: [String] = []
            out.reserveCapacity(Int(l.count))
            for t in l.texts(base) { out.append(table.lookup(t) ?? String(decoding: t, as: UTF8.self)) }
            return out
        }
        func refs(_ l: ListSpan) -> [EntryRef] {
            var out: [EntryRef] = []
            out.reserveCapacity(Int(l.count))
            for r in l.refs(base) {
                out.append(EntryRef(org: String(decoding: r.org, as: UTF8.self), seq: r.seq, leaf: r.leaf))
            }
            return out
        }
        func ref(_ r: RefFields) -> EntryRef { EntryRef(org: string(r.org), seq: r.seq, leaf: r.leaf) }
        let body: EntryBody
        switch f.kind {
        case .consent:
            body = .consent(
                ConsentBody(
                    subject: f.subject, event: Vocabulary.consentEventTable.codes[Int(f.event)],
                    purposes: codes(f.purposes, Vocabulary.purposeTable), controllers: strings(f.controllers),
                    recipients: strings(f.recipients), channel: Vocabulary.channelTable.codes[Int(f.channel)],
                    method: Vocabulary.methodTable.codes[Int(f.method)],
                    legalBasis: Vocabulary.legalBasisTable.codes[Int(f.legalBasis)],
                    notice: f.has(.notice)
                        ? Notice(id: string(f.noticeID), version: string(f.noticeVersion), sha256: f.noticeSHA256)
                        : nil,
                    occurredAt: f.occurredAt, expiresAt: f.has(.expiresAt) ? f.expiresAt : nil,
                    evidence: f.has(.evidence) ? f.evidence : nil))
        case .interaction:
            body = .interaction(
                InteractionBody(
                    subject: f.subject, channel: Vocabulary.channelTable.codes[Int(f.channel)],
                    interaction: string(f.interaction), purposes: codes(f.purposes, Vocabulary.purposeTable),
                    legalBasis: Vocabulary.legalBasisTable.codes[Int(f.legalBasis)],
                    agent: Agent(
                        id: f.agentIsRef ? .ref(f.agentRef) : .name(string(f.agentID)),
                        kind: Vocabulary.agentKindTable.codes[Int(f.agentKind)],
                        onBehalfOf: f.hasOnBehalfOf ? string(f.onBehalfOf) : nil),
                    occurredAt: f.occurredAt, consentRef: f.has(.consentRef) ? ref(f.consentRef) : nil,
                    derivedFrom: refs(f.derivedFrom), detail: f.has(.detail) ? f.detail : nil))
        case .share:
            body = .share(
                ShareBody(
                    subject: f.subject, recipient: string(f.recipient),
                    purposes: codes(f.purposes, Vocabulary.purposeTable),
                    dataCategories: codes(f.dataCategories, Vocabulary.dataCategoryTable), occurredAt: f.occurredAt,
                    derivedFrom: refs(f.derivedFrom)))
        case .link, .unlink:
            let b = LinkBody(
                subjects: [f.subject, f.secondSubject], evidence: f.has(.evidence) ? f.evidence : nil,
                occurredAt: f.occurredAt)
            body = f.kind == .link ? .link(b) : .unlink(b)
        case .heads:
            body = .heads(HeadsBody(occurredAt: f.occurredAt))
        }
        self.init(log: string(f.log), seq: f.seq, prev: f.prev, hlc: f.hlc, deps: refs(f.deps), body: body)
    }
}
