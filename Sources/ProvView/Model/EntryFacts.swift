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
        self = try withRawBytes(bytes) { raw throws(ViewError) in
            guard let base = raw.baseAddress else { throw ViewError(.invalidEntry, "entry is empty") }
            return EntryFacts(try DecodedEntry(reading: raw, base: base).fields, base: base, leaf: leaf)
        }
    }

    /// Converts fields read from the buffer at `base`.
    init(_ f: EntryFields, base: UnsafeRawPointer, leaf: SHA256Digest) {
        func s(_ span: ByteSpan) -> String { span.string(base) }
        func list(_ l: ListSpan) -> [String] { l.texts(base).map { String(decoding: $0, as: UTF8.self) } }
        func ref(_ org: UnsafeRawBufferPointer, _ seq: UInt64, _ leaf: SHA256Digest) -> EntryRef {
            EntryRef(org: String(decoding: org, as: UTF8.self), seq: seq, leaf: leaf)
        }
        let log = s(f.log)
        let org = log.split(separator: "/", maxSplits: 1).last.map(String.init) ?? log
        let consentOrInteraction = f.kind == .consent || f.kind == .interaction
        self.init(
            ref: EntryRef(org: org, seq: f.seq, leaf: leaf), kind: f.kind, hlc: f.hlc, occurredAt: f.occurredAt,
            subjects: f.kind == .link || f.kind == .unlink
                ? [f.subject, f.secondSubject] : f.kind == .heads ? [] : [f.subject],
            channel: consentOrInteraction ? Vocabulary.channelTable.codes[Int(f.channel)] : nil,
            purposes: list(f.purposes),
            legalBasis: consentOrInteraction ? Vocabulary.legalBasisTable.codes[Int(f.legalBasis)] : nil,
            event: f.kind == .consent ? Vocabulary.consentEventTable.codes[Int(f.event)] : nil,
            method: f.kind == .consent ? Vocabulary.methodTable.codes[Int(f.method)] : nil,
            controllers: list(f.controllers), recipients: list(f.recipients),
            expiresAt: f.has(.expiresAt) ? f.expiresAt : nil,
            notice: f.has(.notice) ? NoticeFacts(id: s(f.noticeID), version: s(f.noticeVersion)) : nil,
            interaction: f.kind == .interaction ? s(f.interaction) : nil,
            agent: f.kind == .interaction
                ? AgentFacts(
                    id: f.agentIsRef ? SubjectRef.text(f.agentRef) : s(f.agentID),
                    kind: Vocabulary.agentKindTable.codes[Int(f.agentKind)],
                    onBehalfOf: f.hasOnBehalfOf ? s(f.onBehalfOf) : nil) : nil,
            consentRef: f.has(.consentRef)
                ? ref(f.consentRef.org.bytes(base), f.consentRef.seq, f.consentRef.leaf) : nil,
            derivedFrom: f.derivedFrom.refs(base).map { ref($0.org, $0.seq, $0.leaf) },
            recipient: f.kind == .share ? s(f.recipient) : nil, dataCategories: list(f.dataCategories))
    }
}
