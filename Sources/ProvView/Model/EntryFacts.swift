import ProvCrypto
import ProvLedger

/// Who acted in an interaction. `id` is shown as recorded and treated as an opaque display string: a name from
/// the consortium's vocabulary, or a person's pseudonym (`ref:…`).
public struct AgentFacts: Sendable, Equatable {
    public var id: String
    /// `person`, `software` or `device`.
    public var kind: String
    /// The member the agent acted for, when given.
    public var onBehalfOf: String?

    public init(id: String, kind: String, onBehalfOf: String?) {
        self.id = id
        self.kind = kind
        self.onBehalfOf = onBehalfOf
    }
}

/// The notice a consent was given against, without its hash.
public struct NoticeFacts: Sendable, Equatable {
    public var id: String
    public var version: String

    public init(id: String, version: String) {
        self.id = id
        self.version = version
    }
}

/// What the view knows of one entry: every field of its body but the commitments (`evidence`, `detail`,
/// `notice.sha256`), with its reference, clock and kind. The index keeps these facts compactly and gives them
/// back as this value; `init(decoding:leaf:)` reads them from entry bytes by the same decoder, so a fact in a
/// report can be compared with the entry its receipt proves (Specs/view.md §8).
public struct EntryFacts: Sendable, Equatable {
    public var ref: EntryRef
    public var kind: EntryKind
    public var hlc: HLC
    /// When it happened, as the company asserted (ms since the epoch).
    public var occurredAt: UInt64
    /// The subject ref (consent, interaction, share), or the two refs of a link or unlink, ascending.
    public var subjects: [SHA256Digest]
    public var channel: String?
    public var purposes: [String]
    public var legalBasis: String?
    /// Consent: the event, collection method, controllers, recipients, expiry and notice.
    public var event: String?
    public var method: String?
    public var controllers: [String]
    public var recipients: [String]
    public var expiresAt: UInt64?
    public var notice: NoticeFacts?
    /// Interaction: its type, the agent, the consent relied on.
    public var interaction: String?
    public var agent: AgentFacts?
    public var consentRef: EntryRef?
    /// Interaction and share: lineage.
    public var derivedFrom: [EntryRef]
    /// Share: the company the data went to, and which data.
    public var recipient: String?
    public var dataCategories: [String]

    /// The org whose log holds the entry.
    public var org: String { ref.org }

    /// `hlc.wall − occurredAt` in ms: how long after the asserted time the ledger learned of it (negative when the
    /// asserted time is later than the ledger's clock).
    public var skewMs: Int64 { Int64(bitPattern: hlc.wall &- occurredAt) }

    public init(
        ref: EntryRef, kind: EntryKind, hlc: HLC, occurredAt: UInt64, subjects: [SHA256Digest], channel: String? = nil,
        purposes: [String] = [], legalBasis: String? = nil, event: String? = nil, method: String? = nil,
        controllers: [String] = [], recipients: [String] = [], expiresAt: UInt64? = nil, notice: NoticeFacts? = nil,
        interaction: String? = nil, agent: AgentFacts? = nil, consentRef: EntryRef? = nil,
        derivedFrom: [EntryRef] = [], recipient: String? = nil, dataCategories: [String] = []
    ) {
        self.ref = ref
        self.kind = kind
        self.hlc = hlc
        self.occurredAt = occurredAt
        self.subjects = subjects
        self.channel = channel
        self.purposes = purposes
        self.legalBasis = legalBasis
        self.event = event
        self.method = method
        self.controllers = controllers
        self.recipients = recipients
        self.expiresAt = expiresAt
        self.notice = notice
        self.interaction = interaction
        self.agent = agent
        self.consentRef = consentRef
        self.derivedFrom = derivedFrom
        self.recipient = recipient
        self.dataCategories = dataCategories
    }

    /// Reads the facts of the entry `bytes` (the org comes from the entry's `log`). Throws when the bytes are not
    /// an entry of format version 1.
    public init(decoding bytes: [UInt8], leaf: SHA256Digest) throws(ViewError) {
        var d = EntryDecoder()
        self = try withRawBytes(bytes) { raw throws(ViewError) in
            guard let base = raw.baseAddress else { throw ViewError(.invalidEntry, "entry is empty") }
            let e = try d.decode(raw, base: base)
            return EntryFacts(e, decoder: d, base: base, leaf: leaf)
        }
    }

    /// Converts a decoded entry (its spans and lists resolved against `base`).
    init(_ e: DecodedEntry, decoder d: EntryDecoder, base: UnsafeRawPointer, leaf: SHA256Digest) {
        func s(_ span: Span) -> String? { span.isPresent ? span.string(base) : nil }
        func list(_ l: ListSpan) -> [String] {
            (0..<Int(l.count)).map { d.spans[Int(l.start) + $0].string(base) }
        }
        func ref(_ r: RawRef) -> EntryRef { EntryRef(org: r.org.string(base), seq: r.seq, leaf: r.leaf) }
        let log = e.log.string(base)
        let org = log.split(separator: "/", maxSplits: 1).last.map(String.init) ?? log
        self.init(
            ref: EntryRef(org: org, seq: e.seq, leaf: leaf), kind: e.kind, hlc: e.hlc, occurredAt: e.occurredAt,
            subjects: e.kind == .link || e.kind == .unlink
                ? [e.subject, e.subject2] : e.kind == .heads ? [] : [e.subject],
            channel: s(e.channel), purposes: list(e.purposes), legalBasis: s(e.legalBasis), event: s(e.event),
            method: s(e.method), controllers: list(e.controllers), recipients: list(e.recipients),
            expiresAt: e.expiresAt == 0 ? nil : e.expiresAt,
            notice: e.noticeID.isPresent
                ? NoticeFacts(id: e.noticeID.string(base), version: s(e.noticeVersion) ?? "") : nil,
            interaction: s(e.interaction),
            agent: e.agentID.isPresent
                ? AgentFacts(
                    id: e.agentRef.map(SubjectRef.text) ?? e.agentID.string(base), kind: s(e.agentKind) ?? "",
                    onBehalfOf: s(e.onBehalfOf)) : nil,
            consentRef: e.consentRef >= 0 ? ref(d.refs[Int(e.consentRef)]) : nil,
            derivedFrom: (0..<Int(e.derivedFrom.count)).map { ref(d.refs[Int(e.derivedFrom.start) + $0]) },
            recipient: s(e.recipient), dataCategories: list(e.dataCategories))
    }
}
