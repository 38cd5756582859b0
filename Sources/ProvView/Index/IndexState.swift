import ProvCrypto
import ProvLedger

#if canImport(Glibc)
    import Glibc
#endif

/// One entry as the index keeps it: 104 bytes, no references to the heap (Specs/view.md §10.3). Numbers and digests
/// by value; texts and lists as interned ids; codes as their numbers in the ledger's code tables (`Vocabulary`);
/// orgs as indices into the consortium's members. Three words and two half-words hold different facts for
/// different kinds: they are private, and read and written only through the accessors named for what they hold
/// (each says for which kinds it holds it).
struct Fact: Sendable {
    var leaf: SHA256Digest
    var wall: UInt64
    private var counter32: UInt32
    private var seq32: UInt32
    var occurredAt: UInt64
    /// Consent: `expiresAt`, 0 when none (a stored `expiresAt` is after `occurredAt`, so never 0). Others: 0.
    var expiresAt: UInt64
    var subject: UInt32
    /// The next older fact of the same subject and chain; `IndexState.none` at the end.
    var next: UInt32
    /// Purposes list id (consent, interaction, share).
    var purposes: UInt32
    /// Consent: controllers. Interaction: interaction type. Share: data categories. Link, unlink: second subject.
    private var word1: UInt32
    /// Consent: recipients. Interaction: agent id. Link, unlink: next older fact in the second subject's chain.
    private var word2: UInt32
    /// Consent: notice. Interaction, share: first ref.
    private var word3: UInt32
    var org: UInt16
    /// Interaction: `agent.onBehalfOf`. Share: recipient.
    private var otherOrg: UInt16
    /// Channel number (consent, interaction).
    var channel: UInt16
    /// Legal basis number (consent, interaction).
    var legalBasis: UInt16
    /// Consent: event. Interaction: agent kind.
    private var code: UInt16
    /// Collection method number (consent).
    var method: UInt16
    private var kindCode: UInt8
    /// Interaction, share: number of `derivedFrom` refs (after the consentRef, if any).
    var refCount: UInt8
    /// Bit 0: the interaction has a consentRef (the first of its refs).
    private var flags: UInt8

    /// Log sizes and clock counters the index takes (Specs/view.md §10.1).
    static let limit = UInt64(UInt32.max)

    init(
        leaf: SHA256Digest, wall: UInt64, counter: UInt64, seq: UInt64, occurredAt: UInt64, kind: EntryKind,
        org: Int, subject: UInt32
    ) {
        self.leaf = leaf
        self.wall = wall
        counter32 = UInt32(counter)
        seq32 = UInt32(seq)
        self.occurredAt = occurredAt
        expiresAt = 0
        self.subject = subject
        next = IndexState.none
        purposes = 0
        word1 = 0
        word2 = 0
        word3 = 0
        self.org = UInt16(org)
        otherOrg = 0
        channel = 0
        legalBasis = 0
        code = 0
        method = 0
        kindCode = kind.code
        refCount = 0
        flags = 0
    }

    var counter: UInt64 { UInt64(counter32) }
    var seq: UInt64 { UInt64(seq32) }
    var kind: EntryKind { EntryKind(code: kindCode)! }

    // Consent.

    /// Controllers list id.
    var controllers: UInt32 {
        get { word1 }
        set { word1 = newValue }
    }
    /// Recipients list id, `IndexState.none` when the consent has none.
    var recipients: UInt32 {
        get { word2 }
        set { word2 = newValue }
    }
    /// The notice's id and version (one interned string, NUL between them), nil when none.
    var notice: UInt32? {
        get { word3 == 0 ? nil : word3 - 1 }
        set { word3 = newValue.map { $0 + 1 } ?? 0 }
    }
    /// Consent event number (`Vocabulary.consentEventTable`).
    var event: UInt16 {
        get { code }
        set { code = newValue }
    }

    // Interaction.

    /// Interaction type (an interned string).
    var interactionType: UInt32 {
        get { word1 }
        set { word1 = newValue }
    }
    /// Agent id (an interned string: a name, or a person's `ref:…`).
    var agent: UInt32 {
        get { word2 }
        set { word2 = newValue }
    }
    /// Agent kind number (`Vocabulary.agentKindTable`).
    var agentKind: UInt16 {
        get { code }
        set { code = newValue }
    }
    /// The member the agent acted for, nil when none.
    var onBehalfOf: UInt16? {
        get { otherOrg == 0 ? nil : otherOrg - 1 }
        set { otherOrg = newValue.map { $0 + 1 } ?? 0 }
    }
    /// Whether the first of the refs is a consentRef.
    var hasConsentRef: Bool {
        get { flags & 1 != 0 }
        set { flags = newValue ? flags | 1 : flags & ~1 }
    }

    // Interaction and share.

    /// The first of its refs in `IndexState.refs`: the consentRef if any, then `refCount` derivedFrom refs.
    var firstRef: UInt32 {
        get { word3 }
        set { word3 = newValue }
    }

    // Share.

    /// Data categories list id.
    var dataCategories: UInt32 {
        get { word1 }
        set { word1 = newValue }
    }
    /// The member the data went to.
    var recipient: UInt16 {
        get { otherOrg }
        set { otherOrg = newValue }
    }

    // Link and unlink.

    /// The second subject.
    var secondSubject: UInt32 {
        get { word1 }
        set { word1 = newValue }
    }
    /// The next older fact in the second subject's chain of links.
    var secondNext: UInt32 {
        get { word2 }
        set { word2 = newValue }
    }
}

/// A reference an entry makes (`consentRef`, `derivedFrom`), with the leaf hash it cites.
struct RefFact: Sendable {
    var leaf: SHA256Digest
    var seq: UInt64
    var org: UInt16
}

/// The order in which the view applies entries (Specs/view.md §2): `hlc`, then org id bytewise, then seq.
struct OrderKey: Comparable, Hashable {
    var wall: UInt64
    var counter: UInt64
    var rank: Int
    var seq: UInt64

    static func < (a: OrderKey, b: OrderKey) -> Bool {
        (a.wall, a.counter, a.rank, a.seq) < (b.wall, b.counter, b.rank, b.seq)
    }
}

/// What the index knows of one log.
struct LogIndex: Sendable {
    /// seq → fact id, for the entries ingested so far (0..<ingested).
    var facts = ChunkedArray<UInt32>()
    /// Entries covered by the latest committed checkpoint: what queries see.
    var committed: UInt64 = 0
    var checkpoint: SignedCheckpoint?
    var merkle = MerkleCache()
    /// Merkle subtrees of ingested blocks not yet committed, by first seq (offline builds only).
    var subtrees: [UInt64: MerkleCache.Subtree] = [:]
    /// For each org, the points where this log's references to it (`deps`, `consentRef`, `derivedFrom`) reached a
    /// higher seq: (seq of the citing entry, highest seq cited so far), both increasing.
    var cites: [[(seq: UInt64, cited: UInt64)]]

    var ingested: UInt64 { UInt64(facts.count) }

    init(orgs: Int) { cites = Array(repeating: [], count: orgs) }

    /// The highest seq of `org` this log had referred to in its entries 0...`seq`, or nil.
    func cited(_ org: Int, upTo seq: UInt64) -> UInt64? { lastCitation(org, upTo: seq)?.cited }

    /// The entry of this log at which its references to `org` reached their highest seq among entries 0...`seq`,
    /// with that seq; nil when none of them refers to `org`.
    func lastCitation(_ org: Int, upTo seq: UInt64) -> (seq: UInt64, cited: UInt64)? {
        let c = cites[org]
        let i = Self.partition(c.count) { c[$0].seq <= seq }
        return i == 0 ? nil : c[i - 1]
    }

    /// The first point of `cites[org]` whose highest seq cited reaches `target`, or nil.
    func firstCitation(_ org: Int, reaching target: UInt64) -> (seq: UInt64, cited: UInt64)? {
        let c = cites[org]
        let i = Self.partition(c.count) { c[$0].cited < target }
        return i < c.count ? c[i] : nil
    }

    /// The first entry of this log after `after` whose references reached seq `target` of `org`.
    func firstCiting(_ org: Int, _ target: UInt64, after: UInt64) -> UInt64? {
        firstCitation(org, reaching: target).map { max($0.seq, after + 1) }
    }

    /// The number of leading positions of 0..<`count` for which `isBefore` holds (it holds for a prefix).
    static func partition(_ count: Int, _ isBefore: (Int) -> Bool) -> Int {
        var lo = 0
        var hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if isBefore(mid) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

/// The index proper; always used under `ViewIndex`'s lock.
struct IndexState: Sendable {
    static let none = UInt32.max

    let consortium: Consortium
    /// Members in descriptor order; an org's index is its position here.
    let orgs: [String]
    let origins: [String]
    private let originBytes: [[UInt8]]
    /// Each org's position in bytewise order of org ids (the tie-break of the order key).
    let rank: [Int]
    private var orgNames = Interner()
    var logs: [LogIndex]
    var facts = ChunkedArray<Fact>()
    var refs = ChunkedArray<RefFact>()
    var subjects = SubjectTable()
    /// Per subject, the newest fact of each chain: consent entries, link and unlink entries, the rest.
    var consentHead: [UInt32] = []
    /// Consent states of people with long histories, kept between permits (Query/ConsentCache.swift).
    var consentCache = ConsentCache()
    var linkHead: [UInt32] = []
    var activityHead: [UInt32] = []
    /// Agent ids, interaction types, notice ids and versions, purposes, org ids and data categories. Codes of
    /// the format's own tables (channels, events, methods, legal bases, agent kinds) are kept as their numbers.
    var strings = Interner()
    var lists = ListInterner()

    init(consortium: Consortium) {
        self.consortium = consortium
        let orgs = consortium.members.map(\.org)
        self.orgs = orgs
        origins = consortium.members.map(\.origin)
        originBytes = origins.map { Array($0.utf8) }
        let sorted = orgs.indices.sorted { orgs[$0].utf8.lexicographicallyPrecedes(orgs[$1].utf8) }
        var rank = [Int](repeating: 0, count: orgs.count)
        for (r, i) in sorted.enumerated() { rank[i] = r }
        self.rank = rank
        logs = Array(repeating: LogIndex(orgs: orgs.count), count: orgs.count)
        for o in orgs {
            _ = orgNames.intern(o)
            _ = strings.intern(o)
        }
    }

    func orgIndex(_ org: String) -> Int? { orgNames.lookup(org).map(Int.init) }

    @inline(__always)
    func key(_ f: Fact) -> OrderKey { OrderKey(wall: f.wall, counter: f.counter, rank: rank[Int(f.org)], seq: f.seq) }

    @inline(__always)
    func key(_ id: UInt32) -> OrderKey { key(facts[Int(id)]) }

    // MARK: Ingest

    struct Failure: Error {
        var message: String
    }

    private func member(_ org: UnsafeRawBufferPointer, _ field: String) throws(Failure) -> UInt16 {
        guard let o = orgNames.lookup(org) else {
            throw Failure(message: "\(field): names an org that is not a consortium member")
        }
        return UInt16(o)
    }

    /// The id of list `l`, interned as its encoding (whose hash the decoder computed) with its items.
    private mutating func list(_ l: ListSpan, hash: UInt32, _ base: UnsafeRawPointer) -> UInt32 {
        let raw = l.encoding.bytes(base)
        if let id = lists.lookup(raw: raw, hash: hash) { return id }
        let members = l.texts(base).map { strings.intern($0) }
        return lists.add(raw: raw, hash: hash, members: members)
    }

    private mutating func subjectID(_ s: SHA256Digest, hash: UInt32) -> UInt32 {
        let (id, new) = subjects.insert(s, hash: hash)
        if new {
            consentHead.append(Self.none)
            linkHead.append(Self.none)
            activityHead.append(Self.none)
        }
        return id
    }

    /// The id of subject ref `s`, if any entry names it.
    func subjectID(_ s: SHA256Digest) -> UInt32? { subjects.find(s) }

    /// Adds entry `seq` of log `o`, which must be the next one of that log; an entry given again with the same
    /// leaf hash is ignored, with another leaf hash refused. `e`'s spans are offsets from `base`.
    mutating func insert(org o: Int, seq: UInt64, leaf: SHA256Digest, _ e: DecodedEntry, base: UnsafeRawPointer)
        throws(ViewError)
    {
        let ingested = logs[o].ingested
        if seq < ingested {
            let held = facts[Int(logs[o].facts[Int(seq)])].leaf
            guard held == leaf else {
                throw ViewError(
                    .feed,
                    "\(orgs[o]) seq \(seq): given again with leaf \(leaf.hex), but the index holds leaf "
                        + "\(held.hex): two histories of one log")
            }
            return
        }
        guard seq == ingested else {
            throw ViewError(
                .feed, "\(orgs[o]) seq \(seq): entries of a log must come in seq order; the next is \(ingested)")
        }
        do throws(Failure) {
            let log = e.fields.log.bytes(base)
            let same = originBytes[o].withUnsafeBytes {
                log.count == $0.count && memcmp(log.baseAddress!, $0.baseAddress!, log.count) == 0
            }
            guard e.fields.seq == seq, same else {
                throw Failure(message: "log and seq: the entry says \(e.fields.log.string(base)) seq \(e.fields.seq)")
            }
            guard facts.count < Int(Self.none) else { throw Failure(message: "the index is full (2^32 entries)") }
            guard seq < Fact.limit, e.fields.hlc.counter < Fact.limit else {
                throw Failure(message: "seq or hlc counter is 2^32 or more, beyond what the view index takes")
            }
            try insertChecked(org: o, seq: seq, leaf: leaf, e, base: base)
        } catch {
            throw ViewError(.invalidEntry, "\(orgs[o]) seq \(seq): \(error.message)")
        }
    }

    private mutating func insertChecked(
        org o: Int, seq: UInt64, leaf: SHA256Digest, _ e: DecodedEntry, base: UnsafeRawPointer
    ) throws(Failure) {
        let id = UInt32(facts.count)
        let x = e.fields
        // A heads entry names no subject: it only moves what its log had seen of the others.
        var f = Fact(
            leaf: leaf, wall: x.hlc.wall, counter: x.hlc.counter, seq: seq, occurredAt: x.occurredAt, kind: x.kind,
            org: o, subject: x.kind.hasSubjects ? subjectID(x.subject, hash: e.subjectHash) : Self.none)
        for r in x.deps.refs(base) { cite(o, seq, Int(try member(r.org, "deps")), r.seq) }
        switch x.kind {
        case .consent:
            f.purposes = list(x.purposes, hash: e.purposesHash, base)
            f.channel = UInt16(x.channel)
            f.expiresAt = x.has(.expiresAt) ? x.expiresAt : 0
            f.controllers = list(x.controllers, hash: e.controllersHash, base)
            f.recipients = x.has(.recipients) ? list(x.recipients, hash: e.recipientsHash, base) : Self.none
            if x.has(.notice) {
                // The id and the version, NUL between them, as one string (copied on the stack).
                let id = x.noticeID.bytes(base)
                let version = x.noticeVersion.bytes(base)
                f.notice = withUnsafeTemporaryAllocation(byteCount: id.count + 1 + version.count, alignment: 1) {
                    $0.copyMemory(from: id)
                    $0[id.count] = 0
                    UnsafeMutableRawBufferPointer(rebasing: $0[(id.count + 1)...]).copyMemory(from: version)
                    return strings.intern(UnsafeRawBufferPointer($0))
                }
            }
            f.event = UInt16(x.event)
            f.method = UInt16(x.method)
            f.legalBasis = UInt16(x.legalBasis)
            f.next = consentHead[Int(f.subject)]
            consentHead[Int(f.subject)] = id
        case .interaction, .share:
            f.purposes = list(x.purposes, hash: e.purposesHash, base)
            f.firstRef = UInt32(refs.count)
            if x.has(.consentRef) {
                let r = x.consentRef
                let org = try member(r.org.bytes(base), "body.consentRef")
                refs.append(RefFact(leaf: r.leaf, seq: r.seq, org: org))
                cite(o, seq, Int(org), r.seq)
                f.hasConsentRef = true
            }
            for r in x.derivedFrom.refs(base) {
                let org = try member(r.org, "body.derivedFrom")
                refs.append(RefFact(leaf: r.leaf, seq: r.seq, org: org))
                cite(o, seq, Int(org), r.seq)
            }
            f.refCount = UInt8(x.derivedFrom.count)
            if x.kind == .interaction {
                f.channel = UInt16(x.channel)
                f.interactionType = strings.intern(x.interaction.bytes(base), hash: e.interactionHash)
                f.agent =
                    x.agentIsRef
                    ? strings.intern(SubjectRef.text(x.agentRef))
                    : strings.intern(x.agentID.bytes(base), hash: e.agentIDHash)
                f.legalBasis = UInt16(x.legalBasis)
                f.agentKind = UInt16(x.agentKind)
                f.onBehalfOf = x.hasOnBehalfOf ? try member(x.onBehalfOf.bytes(base), "body.agent.onBehalfOf") : nil
            } else {
                f.recipient = try member(x.recipient.bytes(base), "body.recipient")
                f.dataCategories = list(x.dataCategories, hash: e.dataCategoriesHash, base)
            }
            f.next = activityHead[Int(f.subject)]
            activityHead[Int(f.subject)] = id
        case .link, .unlink:
            let second = subjectID(x.secondSubject, hash: e.secondSubjectHash)
            f.secondSubject = second
            f.next = linkHead[Int(f.subject)]
            linkHead[Int(f.subject)] = id
            f.secondNext = linkHead[Int(second)]
            linkHead[Int(second)] = id
        case .heads:
            break
        }
        facts.append(f)
        logs[o].facts.append(id)
    }

    /// Entry `seq` of log `o` refers to entry `cited` of log `other`.
    @inline(__always)
    private mutating func cite(_ o: Int, _ seq: UInt64, _ other: Int, _ cited: UInt64) {
        guard other != o else { return }
        if let last = logs[o].cites[other].last, last.cited >= cited { return }
        logs[o].cites[other].append((seq, cited))
    }

    // MARK: Reading facts back

    /// PATH(seq, D[committed]) of log `o` (RFC 9162 §2.1.3.1).
    func inclusionProof(_ o: Int, _ seq: UInt64) -> [SHA256Digest] {
        let log = logs[o]
        let facts = facts
        return Merkle.inclusionProof(
            index: seq, size: log.committed, in: log.merkle.source { facts[Int(log.facts[Int($0)])].leaf })
    }

    func leaf(_ o: Int, _ seq: UInt64) -> SHA256Digest { facts[Int(logs[o].facts[Int(seq)])].leaf }

    func refsOf(_ f: Fact) -> (consentRef: RefFact?, derivedFrom: [RefFact]) {
        let start = Int(f.firstRef)
        let cr = f.hasConsentRef ? refs[start] : nil
        let first = start + (f.hasConsentRef ? 1 : 0)
        return (cr, (0..<Int(f.refCount)).map { refs[first + $0] })
    }

    func entryRef(_ r: RefFact) -> EntryRef { EntryRef(org: orgs[Int(r.org)], seq: r.seq, leaf: r.leaf) }

    func entryRef(_ id: UInt32) -> EntryRef {
        let f = facts[Int(id)]
        return EntryRef(org: orgs[Int(f.org)], seq: f.seq, leaf: f.leaf)
    }

    private func notice(_ s: String) -> NoticeFacts {
        let parts = s.split(separator: "\u{0}", maxSplits: 1, omittingEmptySubsequences: false)
        return NoticeFacts(id: String(parts[0]), version: parts.count > 1 ? String(parts[1]) : "")
    }

    func strings(ofList id: UInt32) -> [String] { lists.list(id).map { strings.string($0) } }

    /// The facts of fact `id`, as `EntryFacts(decoding:)` reads them from the entry's bytes.
    func entryFacts(_ id: UInt32) -> EntryFacts {
        let f = facts[Int(id)]
        let ref = entryRef(id)
        let hlc = HLC(wall: f.wall, counter: f.counter)
        switch f.kind {
        case .consent:
            return EntryFacts(
                ref: ref, kind: .consent, hlc: hlc, occurredAt: f.occurredAt, subjects: [subjects[f.subject]],
                channel: Vocabulary.channelTable.codes[Int(f.channel)], purposes: strings(ofList: f.purposes),
                legalBasis: Vocabulary.legalBasisTable.codes[Int(f.legalBasis)],
                event: Vocabulary.consentEventTable.codes[Int(f.event)],
                method: Vocabulary.methodTable.codes[Int(f.method)], controllers: strings(ofList: f.controllers),
                recipients: f.recipients == Self.none ? [] : strings(ofList: f.recipients),
                expiresAt: f.expiresAt == 0 ? nil : f.expiresAt, notice: f.notice.map { notice(strings.string($0)) })
        case .interaction:
            let (cr, df) = refsOf(f)
            return EntryFacts(
                ref: ref, kind: .interaction, hlc: hlc, occurredAt: f.occurredAt, subjects: [subjects[f.subject]],
                channel: Vocabulary.channelTable.codes[Int(f.channel)], purposes: strings(ofList: f.purposes),
                legalBasis: Vocabulary.legalBasisTable.codes[Int(f.legalBasis)],
                interaction: strings.string(f.interactionType),
                agent: AgentFacts(
                    id: strings.string(f.agent), kind: Vocabulary.agentKindTable.codes[Int(f.agentKind)],
                    onBehalfOf: f.onBehalfOf.map { orgs[Int($0)] }),
                consentRef: cr.map(entryRef), derivedFrom: df.map(entryRef))
        case .share:
            let (_, df) = refsOf(f)
            return EntryFacts(
                ref: ref, kind: .share, hlc: hlc, occurredAt: f.occurredAt, subjects: [subjects[f.subject]],
                purposes: strings(ofList: f.purposes), derivedFrom: df.map(entryRef),
                recipient: orgs[Int(f.recipient)], dataCategories: strings(ofList: f.dataCategories))
        case .link, .unlink:
            return EntryFacts(
                ref: ref, kind: f.kind, hlc: hlc, occurredAt: f.occurredAt,
                subjects: [subjects[f.subject], subjects[f.secondSubject]])
        case .heads:
            return EntryFacts(ref: ref, kind: .heads, hlc: hlc, occurredAt: f.occurredAt, subjects: [])
        }
    }

    /// Bytes the index holds, by what it holds.
    var reservedBytes: Int {
        var n = facts.reservedBytes + refs.reservedBytes
        n += subjects.reservedBytes + (consentHead.capacity + linkHead.capacity + activityHead.capacity) * 4
        n += strings.reservedBytes + lists.reservedBytes
        for l in logs {
            n += l.facts.reservedBytes + l.merkle.reservedBytes + l.cites.reduce(0) { $0 + $1.capacity * 16 }
        }
        return n
    }
}
