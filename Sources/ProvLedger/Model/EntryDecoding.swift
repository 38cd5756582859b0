import Foundation
import ProvCrypto

/// Strict decoding of entry bytes: deterministic CBOR (the reader rejects every non-canonical form), exactly the
/// keys of format version 1, and bodies that pass `EntryBody.validate`. Accepting only one byte form per entry is
/// what makes the leaf hash a fingerprint of its meaning.
extension Entry {
    public static func decode(_ bytes: [UInt8]) throws(LedgerError) -> Entry {
        try withRawBytes(bytes) { raw throws(LedgerError) in try decode(raw) }
    }

    public static func decode(_ raw: UnsafeRawBufferPointer) throws(LedgerError) -> Entry {
        guard raw.count <= maxSize else {
            throw LedgerError(.invalidEntry, "entry is \(raw.count) bytes, over \(maxSize)")
        }
        var r = CBORReader(raw, maxDepth: 8)
        do {
            let e = try decodeEntry(&r)
            try r.expectEnd()
            return e
        } catch let e as CBORError {
            throw LedgerError(.invalidEntry, "not canonical CBOR: \(e)")
        } catch let e as LedgerError {
            throw e
        } catch {
            throw LedgerError(.invalidEntry, "\(error)")
        }
    }

    private static func decodeEntry(_ r: inout CBORReader) throws -> Entry {
        let n = try r.readMapHeader()
        var keys = KeyOrder()
        var version: UInt64?
        var hlc: HLC?
        var log: String?
        var seq: UInt64?
        var fields: BodyFields?
        var deps: [EntryRef]?
        var kind: String?
        var prev: SHA256Digest?
        for _ in 0..<n {
            let key = try keys.next(&r, in: "entry")
            switch key {
            case .v: version = try r.readUnsigned()
            case .hlc:
                guard try r.readArrayHeader() == 2 else { throw field("hlc", "must be [wall-ms, counter]") }
                hlc = HLC(wall: try r.readUnsigned(), counter: try r.readUnsigned())
            case .log: log = try r.readText()
            case .seq: seq = try r.readUnsigned()
            // "body" sorts before "kind", so the body is read into the union of all kinds' fields and checked
            // against the kind afterwards: one pass over the bytes.
            case .body: fields = try BodyFields.read(&r)
            case .deps: deps = try readRefs(&r, "deps")
            case .kind: kind = try r.readCode(Vocabulary.kindTable, "kind", what: "entry kind of format version 1")
            case .prev: prev = try readDigest(&r, "prev")
            default: throw field(key.name, "unknown key in entry")
            }
        }
        guard let version else { throw field("v", "missing") }
        guard version == formatVersion else { throw field("v", "format version \(version) is not supported (1 is)") }
        guard let hlc, let log, let seq, let fields, let deps, let kind, let prev else {
            let missing = [
                ("hlc", hlc == nil), ("log", log == nil), ("seq", seq == nil), ("body", fields == nil),
                ("deps", deps == nil), ("kind", kind == nil), ("prev", prev == nil),
            ].first { $0.1 }!.0
            throw field(missing, "missing")
        }
        guard let slash = Vocabulary.originSlash(log) else { throw field("log", "'\(log)' is not <consortium>/<org>") }
        if seq == 0 && prev != .zero { throw field("prev", "entry 0 must have 32 zero bytes as prev") }
        if !deps.isEmpty {
            let own = log[log.index(after: slash)...]
            for (i, d) in deps.enumerated() {
                if d.org == own { throw field("deps[\(i)]", "cites the entry's own log") }
                if i > 0 && deps[i - 1].org >= d.org {
                    throw field("deps", "orgs must be unique and in ascending order")
                }
            }
        }
        let body = try fields.body(kind: kind)
        try body.validate(codes: false)
        if case .heads = body, deps.isEmpty { throw field("deps", "a heads entry must cite at least one head") }
        if case .share(let b) = body, b.recipient == log[log.index(after: slash)...] {
            throw field("body.recipient", "'\(b.recipient)' is the log's own org: a share goes to another member")
        }
        return Entry(log: log, seq: seq, prev: prev, hlc: hlc, deps: deps, body: body)
    }

    /// The first value the consortium does not know (an org in `deps` or the body that is not a member, a code
    /// outside its vocabulary), as `prov verify` reports it after `<org> seq <n>: `; nil when there is none. Together
    /// with `decode` and the log's origin, this is every rule `Entry.audit` applies to one entry.
    public func consortiumFailure(_ c: Consortium) -> String? {
        for d in deps where c.member(d.org) == nil { return "deps cites unknown org \(LedgerError.shown(d.org))" }
        return body.consortiumFailure(c)
    }

    static func field(_ name: String, _ reason: String) -> LedgerError {
        LedgerError(.invalidEntry, "\(name): \(reason)")
    }

    static func readDigest(_ r: inout CBORReader, _ name: String) throws -> SHA256Digest {
        let b = try r.readBytes()
        guard b.count == 32 else { throw field(name, "must be 32 bytes, got \(b.count)") }
        return SHA256Digest(copying: b.baseAddress!)
    }

    static func readRef(_ r: inout CBORReader, _ name: String) throws -> EntryRef {
        guard try r.readArrayHeader() == 3 else { throw field(name, "must be [org, seq, leafHash]") }
        let org = try r.readText()
        guard Vocabulary.isOrgID(org) else { throw field(name, "'\(org)' is not an org id") }
        return EntryRef(org: org, seq: try r.readUnsigned(), leaf: try readDigest(&r, name))
    }

    static func readRefs(_ r: inout CBORReader, _ name: String) throws -> [EntryRef] {
        let n = try r.readArrayHeader()
        guard n <= 256 else { throw field(name, "more than 256 references") }
        var out: [EntryRef] = []
        out.reserveCapacity(n)
        for i in 0..<n {
            do { out.append(try readRef(&r, name)) } catch let e as LedgerError {
                // Name the item only when something is wrong: formatting it every time costs more than reading it.
                throw LedgerError(.invalidEntry, e.message.replacingOccurrences(of: name + ":", with: "\(name)[\(i)]:"))
            }
        }
        return out
    }

    static func readTexts(_ r: inout CBORReader, _ name: String) throws -> [String] {
        let n = try r.readArrayHeader()
        guard n <= 64 else { throw field(name, "more than 64 items") }
        var out: [String] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try r.readText()) }
        return out
    }
}

/// Reads text map keys and checks that they come in deterministic order (RFC 8949 §4.2.1: shorter encodings
/// first, then bytewise), which also rules out duplicates.
struct KeyOrder {
    private var previous: (count: Int, hi: UInt64, lo: UInt64)?

    /// The next key, as one of the keys of format version 1 (a switch over it is a jump table, where a switch
    /// over strings compares them one by one).
    @inline(__always)
    mutating func next(_ r: inout CBORReader, in map: String) throws -> FieldKey {
        let k = try r.readTextBytes()
        guard k.count < 16 else {
            throw LedgerError(.invalidEntry, "\(map): unknown key '\(String(decoding: k, as: UTF8.self))'")
        }
        let (hi, lo) = FieldKey.pack(k)
        if let p = previous {
            // Deterministic order: shorter first, then bytewise; the words hold the bytes big-endian.
            guard (p.count, p.hi, p.lo) < (k.count, hi, lo) else {
                throw LedgerError(
                    .invalidEntry,
                    "\(map): key '\(String(decoding: k, as: UTF8.self))' is out of deterministic order or repeated")
            }
        }
        previous = (k.count, hi, lo)
        guard let key = FieldKey.lookup(count: k.count, hi: hi, lo: lo) else {
            throw LedgerError(.invalidEntry, "\(map): unknown key '\(String(decoding: k, as: UTF8.self))'")
        }
        return key
    }
}

/// Every map key of format version 1.
enum FieldKey: Int, CaseIterable {
    case v, hlc, log, seq, body, deps, kind, prev
    case subject, event, purposes, controllers, recipients, channel, method, legalBasis, notice, occurredAt
    case expiresAt, evidence, interaction, agent, consentRef, derivedFrom, detail, recipient, dataCategories
    case subjects, id, sha256, version, onBehalfOf, type

    var name: String { "\(self)" }

    /// Keys are at most 15 bytes: packed big-endian into two words they compare in two instructions, in the
    /// same order as the bytes.
    @inline(__always)
    static func pack(_ raw: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        var hi: UInt64 = 0
        var lo: UInt64 = 0
        for i in 0..<raw.count {
            if i < 8 {
                hi |= UInt64(raw[i]) << (56 - 8 * UInt64(i))
            } else {
                lo |= UInt64(raw[i]) << (56 - 8 * UInt64(i - 8))
            }
        }
        return (hi, lo)
    }

    /// Generated from the key names (big-endian packing, see `pack`): a switch the compiler turns into a few
    /// compares, with no table in memory.
    @inline(__always)
    static func lookup(count: Int, hi: UInt64, lo: UInt64) -> FieldKey? {
        switch (count, hi, lo) {
        case (1, 0x7600000000000000, 0x0000000000000000): return .v
        case (3, 0x686c630000000000, 0x0000000000000000): return .hlc
        case (3, 0x6c6f670000000000, 0x0000000000000000): return .log
        case (3, 0x7365710000000000, 0x0000000000000000): return .seq
        case (4, 0x626f647900000000, 0x0000000000000000): return .body
        case (4, 0x6465707300000000, 0x0000000000000000): return .deps
        case (4, 0x6b696e6400000000, 0x0000000000000000): return .kind
        case (4, 0x7072657600000000, 0x0000000000000000): return .prev
        case (7, 0x7375626a65637400, 0x0000000000000000): return .subject
        case (5, 0x6576656e74000000, 0x0000000000000000): return .event
        case (8, 0x707572706f736573, 0x0000000000000000): return .purposes
        case (11, 0x636f6e74726f6c6c, 0x6572730000000000): return .controllers
        case (10, 0x726563697069656e, 0x7473000000000000): return .recipients
        case (7, 0x6368616e6e656c00, 0x0000000000000000): return .channel
        case (6, 0x6d6574686f640000, 0x0000000000000000): return .method
        case (10, 0x6c6567616c426173, 0x6973000000000000): return .legalBasis
        case (6, 0x6e6f746963650000, 0x0000000000000000): return .notice
        case (10, 0x6f63637572726564, 0x4174000000000000): return .occurredAt
        case (9, 0x6578706972657341, 0x7400000000000000): return .expiresAt
        case (8, 0x65766964656e6365, 0x0000000000000000): return .evidence
        case (11, 0x696e746572616374, 0x696f6e0000000000): return .interaction
        case (5, 0x6167656e74000000, 0x0000000000000000): return .agent
        case (10, 0x636f6e73656e7452, 0x6566000000000000): return .consentRef
        case (11, 0x6465726976656446, 0x726f6d0000000000): return .derivedFrom
        case (6, 0x64657461696c0000, 0x0000000000000000): return .detail
        case (9, 0x726563697069656e, 0x7400000000000000): return .recipient
        case (14, 0x6461746143617465, 0x676f726965730000): return .dataCategories
        case (8, 0x7375626a65637473, 0x0000000000000000): return .subjects
        case (2, 0x6964000000000000, 0x0000000000000000): return .id
        case (6, 0x7368613235360000, 0x0000000000000000): return .sha256
        case (7, 0x76657273696f6e00, 0x0000000000000000): return .version
        case (10, 0x6f6e426568616c66, 0x4f66000000000000): return .onBehalfOf
        case (4, 0x7479706500000000, 0x0000000000000000): return .type
        default: return nil
        }
    }

    var bit: UInt64 { 1 << UInt64(rawValue) }
}

extension CBORReader {
    /// Reads a text string that must be one of the codes of `table`; returns the table's shared string.
    mutating func readCode(_ table: CodeTable, _ name: String, what: String) throws -> String {
        let t = try readTextBytes()
        guard let s = table.lookup(t) else {
            throw Entry.field(name, "'\(String(decoding: t, as: UTF8.self))' is not a known \(what)")
        }
        return s
    }

    mutating func readCodes(_ table: CodeTable, _ name: String, what: String) throws -> [String] {
        let n = try readArrayHeader()
        guard n <= 64 else { throw Entry.field(name, "more than 64 items") }
        var out: [String] = []
        out.reserveCapacity(n)
        for i in 0..<n {
            let t = try readTextBytes()
            guard let code = table.lookup(t) else {
                throw Entry.field("\(name)[\(i)]", "'\(String(decoding: t, as: UTF8.self))' is not a known \(what)")
            }
            out.append(code)
        }
        return out
    }
}

/// The fields of every body kind, read in one pass before the kind is known.
struct BodyFields {
    var subject: SHA256Digest?
    var event: String?
    var purposes: [String]?
    var controllers: [String]?
    var recipients: [String]?
    var channel: String?
    var method: String?
    var legalBasis: String?
    var notice: Notice?
    var occurredAt: UInt64?
    var expiresAt: UInt64?
    var evidence: SHA256Digest?
    var interaction: String?
    var agent: Agent?
    var consentRef: EntryRef?
    var derivedFrom: [EntryRef]?
    var detail: SHA256Digest?
    var recipient: String?
    var dataCategories: [String]?
    var subjects: [SHA256Digest]?
    var keys: UInt64 = 0

    static func read(_ r: inout CBORReader) throws -> BodyFields {
        let n = try r.readMapHeader()
        var order = KeyOrder()
        var b = BodyFields()
        func f(_ name: String, _ reason: String) -> LedgerError { Entry.field("body.\(name)", reason) }
        for _ in 0..<n {
            let key = try order.next(&r, in: "body")
            b.keys |= key.bit
            switch key {
            case .subject: b.subject = try Entry.readDigest(&r, "body.subject")
            case .event: b.event = try r.readCode(Vocabulary.consentEventTable, "body.event", what: "consent event")
            case .purposes: b.purposes = try r.readCodes(Vocabulary.purposeTable, "body.purposes", what: "DPV purpose")
            case .controllers: b.controllers = try Entry.readTexts(&r, "body.controllers")
            case .recipients:
                b.recipients = try Entry.readTexts(&r, "body.recipients")
                if b.recipients!.isEmpty { throw f("recipients", "an empty list is omitted, not written") }
            case .channel: b.channel = try r.readCode(Vocabulary.channelTable, "body.channel", what: "channel")
            case .method:
                b.method = try r.readCode(Vocabulary.methodTable, "body.method", what: "collection method")
            case .legalBasis:
                b.legalBasis = try r.readCode(Vocabulary.legalBasisTable, "body.legalBasis", what: "DPV legal basis")
            case .notice:
                guard try r.readMapHeader() == 3 else { throw f("notice", "must have id, sha256 and version") }
                var nk = KeyOrder()
                guard try nk.next(&r, in: "notice") == .id else { throw f("notice", "first key must be id") }
                let id = try r.readText()
                guard try nk.next(&r, in: "notice") == .sha256 else {
                    throw f("notice", "second key must be sha256")
                }
                let digest = try Entry.readDigest(&r, "body.notice.sha256")
                guard try nk.next(&r, in: "notice") == .version else {
                    throw f("notice", "third key must be version")
                }
                b.notice = Notice(id: id, version: try r.readText(), sha256: digest)
            case .occurredAt: b.occurredAt = try r.readUnsigned()
            case .expiresAt: b.expiresAt = try r.readUnsigned()
            case .evidence: b.evidence = try Entry.readDigest(&r, "body.evidence")
            case .interaction: b.interaction = try r.readText()
            case .agent:
                let an = try r.readMapHeader()
                guard an == 2 || an == 3 else { throw f("agent", "must have id, kind and optionally onBehalfOf") }
                var ak = KeyOrder()
                guard try ak.next(&r, in: "agent") == .id else { throw f("agent", "first key must be id") }
                // A person is a 32-byte ref, software and devices a name: which one, the kind says after it.
                let id: Agent.ID
                switch try r.peekMajorType() {
                case 2: id = .ref(try Entry.readDigest(&r, "body.agent.id"))
                case 3: id = .name(try r.readText())
                default: throw f("agent.id", "must be a 32-byte ref (a person) or a text name (software, device)")
                }
                guard try ak.next(&r, in: "agent") == .kind else { throw f("agent", "second key must be kind") }
                let kind = try r.readCode(Vocabulary.agentKindTable, "body.agent.kind", what: "agent kind")
                var onBehalfOf: String?
                if an == 3 {
                    guard try ak.next(&r, in: "agent") == .onBehalfOf else {
                        throw f("agent", "third key must be onBehalfOf")
                    }
                    onBehalfOf = try r.readText()
                }
                b.agent = Agent(id: id, kind: kind, onBehalfOf: onBehalfOf)
            case .consentRef: b.consentRef = try Entry.readRef(&r, "body.consentRef")
            case .derivedFrom:
                b.derivedFrom = try Entry.readRefs(&r, "body.derivedFrom")
                if b.derivedFrom!.isEmpty { throw f("derivedFrom", "an empty list is omitted, not written") }
            case .detail: b.detail = try Entry.readDigest(&r, "body.detail")
            case .recipient: b.recipient = try r.readText()
            case .dataCategories:
                b.dataCategories = try r.readCodes(
                    Vocabulary.dataCategoryTable, "body.dataCategories", what: "DPV data category")
            case .subjects:
                guard try r.readArrayHeader() == 2 else { throw f("subjects", "must hold exactly two refs") }
                b.subjects = [
                    try Entry.readDigest(&r, "body.subjects[0]"), try Entry.readDigest(&r, "body.subjects[1]"),
                ]
            default: throw f(key.name, "unknown key in an entry body")
            }
        }
        return b
    }

    static func mask(_ keys: [FieldKey]) -> UInt64 { keys.reduce(0) { $0 | $1.bit } }

    static let allowed: [String: UInt64] = [
        "consent": mask([
            .subject, .event, .purposes, .controllers, .recipients, .channel, .method, .legalBasis, .notice,
            .occurredAt, .expiresAt, .evidence,
        ]),
        "interaction": mask([
            .subject, .channel, .interaction, .purposes, .legalBasis, .agent, .occurredAt, .consentRef, .derivedFrom,
            .detail,
        ]),
        "share": mask([.subject, .recipient, .purposes, .dataCategories, .occurredAt, .derivedFrom]),
        "link": mask([.subjects, .evidence, .occurredAt]),
        "unlink": mask([.subjects, .evidence, .occurredAt]),
        "heads": mask([.occurredAt]),
    ]

    /// Assembles the body of `kind`, refusing fields of other kinds and missing required ones.
    func body(kind: String) throws -> EntryBody {
        func f(_ name: String, _ reason: String) -> LedgerError { Entry.field("body.\(name)", reason) }
        let extra = keys & ~Self.allowed[kind]!
        if extra != 0, let k = FieldKey.allCases.first(where: { extra & $0.bit != 0 }) {
            throw f(k.name, "is not a field of a \(kind) body")
        }
        func need<T>(_ v: T?, _ name: String) throws -> T {
            guard let v else { throw f(name, "missing") }
            return v
        }
        switch kind {
        case "consent":
            return .consent(
                ConsentBody(
                    subject: try need(subject, "subject"), event: try need(event, "event"),
                    purposes: try need(purposes, "purposes"), controllers: try need(controllers, "controllers"),
                    recipients: recipients ?? [], channel: try need(channel, "channel"),
                    method: try need(method, "method"), legalBasis: try need(legalBasis, "legalBasis"),
                    notice: notice, occurredAt: try need(occurredAt, "occurredAt"), expiresAt: expiresAt,
                    evidence: evidence))
        case "interaction":
            return .interaction(
                InteractionBody(
                    subject: try need(subject, "subject"), channel: try need(channel, "channel"),
                    interaction: try need(interaction, "interaction"), purposes: try need(purposes, "purposes"),
                    legalBasis: try need(legalBasis, "legalBasis"), agent: try need(agent, "agent"),
                    occurredAt: try need(occurredAt, "occurredAt"), consentRef: consentRef,
                    derivedFrom: derivedFrom ?? [], detail: detail))
        case "share":
            return .share(
                ShareBody(
                    subject: try need(subject, "subject"), recipient: try need(recipient, "recipient"),
                    purposes: try need(purposes, "purposes"),
                    dataCategories: try need(dataCategories, "dataCategories"),
                    occurredAt: try need(occurredAt, "occurredAt"), derivedFrom: derivedFrom ?? []))
        case "heads":
            return .heads(HeadsBody(occurredAt: try need(occurredAt, "occurredAt")))
        default:
            let b = LinkBody(
                subjects: try need(subjects, "subjects"), evidence: evidence,
                occurredAt: try need(occurredAt, "occurredAt"))
            return kind == "link" ? .link(b) : .unlink(b)
        }
    }
}

extension EntryBody {
    /// Checks the rules that hold for every stored entry, whoever wrote it: known codes, sorted unique lists,
    /// sizes. Membership of org ids is checked against the consortium by the caller.
    /// `codes: false` skips the vocabulary checks, for bodies whose codes the decoder already looked up.
    public func validate(codes checkCodes: Bool = true) throws(LedgerError) {
        func f(_ name: String, _ reason: String) -> LedgerError { Entry.field("body.\(name)", reason) }
        func codes(_ list: [String], _ name: String, in set: Set<String>, what: String) throws(LedgerError) {
            guard !list.isEmpty else { throw f(name, "must not be empty") }
            guard list.count <= 32 else { throw f(name, "more than 32 items") }
            for (i, c) in list.enumerated() {
                guard !checkCodes || set.contains(c) else {
                    throw f("\(name)[\(i)]", "\(LedgerError.shown(c)) is not a known \(what)" + Vocabulary.listing(set))
                }
                if i > 0 && list[i - 1] >= c { throw f(name, "must be unique and in ascending order") }
            }
        }
        func orgs(_ list: [String], _ name: String, allowEmpty: Bool) throws(LedgerError) {
            guard allowEmpty || !list.isEmpty else { throw f(name, "must not be empty") }
            guard list.count <= 32 else { throw f(name, "more than 32 items") }
            for (i, c) in list.enumerated() {
                guard Vocabulary.isOrgID(c) else {
                    throw f("\(name)[\(i)]", "\(LedgerError.shown(c)) is not an org id")
                }
                if i > 0 && list[i - 1] >= c { throw f(name, "must be unique and in ascending order") }
            }
        }
        func time(_ t: UInt64, _ name: String) throws(LedgerError) {
            guard t < Timestamp.end else { throw f(name, "\(t) ms is not before the year 10000") }
        }
        func one(_ value: String, _ name: String, in set: Set<String>, what: String) throws(LedgerError) {
            guard !checkCodes || set.contains(value) else {
                throw f(name, "\(LedgerError.shown(value)) is not a known \(what)" + Vocabulary.listing(set))
            }
        }
        switch self {
        case .consent(let b):
            try one(b.event, "event", in: Vocabulary.consentEvents, what: "consent event")
            try codes(b.purposes, "purposes", in: Vocabulary.purposes, what: "DPV purpose")
            try orgs(b.controllers, "controllers", allowEmpty: false)
            try orgs(b.recipients, "recipients", allowEmpty: true)
            try one(b.channel, "channel", in: Vocabulary.channels, what: "channel")
            try one(b.method, "method", in: Vocabulary.collectionMethods, what: "collection method")
            try one(b.legalBasis, "legalBasis", in: Vocabulary.legalBases, what: "DPV legal basis")
            if let n = b.notice {
                guard Vocabulary.isCode(n.id) else {
                    throw f("notice.id", "\(LedgerError.shownCode(n.id)) is not a code (1-64 of a-z 0-9 . _ -)")
                }
                guard Vocabulary.isNoticeVersion(n.version) else {
                    throw f(
                        "notice.version",
                        "a value of \(n.version.utf8.count) bytes is not a version: 1-4 groups of 1-4 digits separated "
                            + "by dots, such as 7 or 2.1")
                }
            }
            try time(b.occurredAt, "occurredAt")
            if let x = b.expiresAt {
                try time(x, "expiresAt")
                if x <= b.occurredAt { throw f("expiresAt", "must be after occurredAt") }
            }
        case .interaction(let b):
            try one(b.channel, "channel", in: Vocabulary.channels, what: "channel")
            guard Vocabulary.isCode(b.interaction) else {
                throw f("interaction", "\(LedgerError.shownCode(b.interaction)) is not a code (1-64 of a-z 0-9 . _ -)")
            }
            try codes(b.purposes, "purposes", in: Vocabulary.purposes, what: "DPV purpose")
            try one(b.legalBasis, "legalBasis", in: Vocabulary.legalBases, what: "DPV legal basis")
            try one(b.agent.kind, "agent.kind", in: Vocabulary.agentKinds, what: "agent kind")
            switch (b.agent.id, b.agent.kind) {
            case (.ref, "person"): break
            case (.ref, _): throw f("agent.id", "a \(b.agent.kind) agent is named by a code, not a ref")
            case (.name, "person"):
                throw f("agent.id", "a person agent is a 32-byte ref (a keyed pseudonym), never a name")
            case (.name(let n), _):
                guard Vocabulary.isCode(n) else {
                    throw f("agent.id", "\(LedgerError.shownCode(n)) is not a code (1-64 of a-z 0-9 . _ -)")
                }
            }
            if let o = b.agent.onBehalfOf, !Vocabulary.isOrgID(o) {
                throw f("agent.onBehalfOf", "\(LedgerError.shown(o)) is not an org id")
            }
            if b.legalBasis == "dpv:Consent" && b.consentRef == nil {
                throw f("consentRef", "required when legalBasis is dpv:Consent")
            }
            try time(b.occurredAt, "occurredAt")
            guard b.derivedFrom.count <= 64 else { throw f("derivedFrom", "more than 64 references") }
        case .share(let b):
            guard Vocabulary.isOrgID(b.recipient) else {
                throw f("recipient", "\(LedgerError.shown(b.recipient)) is not an org id")
            }
            try codes(b.purposes, "purposes", in: Vocabulary.purposes, what: "DPV purpose")
            try codes(b.dataCategories, "dataCategories", in: Vocabulary.dataCategories, what: "DPV data category")
            guard b.derivedFrom.count <= 64 else { throw f("derivedFrom", "more than 64 references") }
            try time(b.occurredAt, "occurredAt")
        case .link(let b), .unlink(let b):
            guard b.subjects.count == 2, b.subjects[0] < b.subjects[1] else {
                throw f("subjects", "must be two different refs in ascending byte order")
            }
            if case .link = self, b.evidence == nil { throw f("evidence", "required for a link") }
            try time(b.occurredAt, "occurredAt")
        case .heads(let b):
            try time(b.occurredAt, "occurredAt")
        }
    }

    /// The first field whose value the consortium does not know: an org that is not a member, or an interaction
    /// type, notice id or agent name outside the consortium's vocabulary. Nil when every value is known. The
    /// message is as `prov verify` prints it after `<org> seq <n>: `.
    public func consortiumFailure(_ c: Consortium) -> String? {
        for (field, o) in namedOrgs where c.member(o) == nil {
            return "body.\(field): \(LedgerError.shown(o)) is not a consortium member"
        }
        let v = c.vocabulary
        switch self {
        case .consent(let b):
            if let n = b.notice, !v.isNotice(n.id) {
                return "body.notice.id: \(LedgerError.shown(n.id)) is not a notice of the consortium's vocabulary"
            }
        case .interaction(let b):
            if !v.isInteraction(b.interaction) {
                return "body.interaction: \(LedgerError.shown(b.interaction)) is not an interaction type of the "
                    + "consortium's vocabulary"
            }
            if case .name(let n) = b.agent.id, !v.isAgent(n, kind: b.agent.kind) {
                return "body.agent.id: \(LedgerError.shown(n)) is not a \(b.agent.kind) agent of the consortium's "
                    + "vocabulary"
            }
        case .share, .link, .unlink, .heads:
            break
        }
        return nil
    }

    /// Every org id the body names, with the field that names it, for membership checks.
    public var namedOrgs: [(field: String, org: String)] {
        switch self {
        case .consent(let b):
            return b.controllers.map { ("controllers", $0) } + b.recipients.map { ("recipients", $0) }
        case .interaction(let b):
            var out = b.derivedFrom.map { ("derivedFrom", $0.org) }
            if let o = b.agent.onBehalfOf { out.append(("agent.onBehalfOf", o)) }
            if let c = b.consentRef { out.append(("consentRef", c.org)) }
            return out
        case .share(let b):
            return [("recipient", b.recipient)] + b.derivedFrom.map { ("derivedFrom", $0.org) }
        case .link, .unlink, .heads:
            return []
        }
    }
}
