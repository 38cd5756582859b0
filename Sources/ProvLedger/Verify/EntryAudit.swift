import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// What the verifier needs from an entry to follow the chain.
package struct AuditedEntry: Sendable {
    package static let kindNames = ["consent", "interaction", "share", "link", "unlink", "heads"]
    package var seq: UInt64 = 0
    package var prev = SHA256Digest()
    package var hlc = HLC(wall: 0, counter: 0)
    package var deps: [EntryRef] = []
    /// 0 consent, 1 interaction, 2 share, 3 link, 4 unlink, 5 heads.
    package var kind: UInt8 = 0
    /// The body's `consentRef` and `derivedFrom` references, with the field each came from.
    package var refs: [(field: String, ref: EntryRef)] = []
}

/// Everything `prov verify` must know about the consortium to check an entry without building it.
package struct AuditContext: Sendable {
    package let origin: [UInt8]
    package let org: String
    package let members: CodeTable
    /// The consortium's vocabulary (Specs/format.md §9.1).
    package let interactions: CodeTable
    package let notices: CodeTable
    package let softwareAgents: CodeTable
    package let deviceAgents: CodeTable

    package init(consortium: Consortium, org: String) {
        origin = Array(consortium.origin(of: org).utf8)
        self.org = org
        members = CodeTable(Set(consortium.members.map(\.org)))
        let v = consortium.vocabulary
        interactions = CodeTable(Set(v.interactions))
        notices = CodeTable(Set(v.notices))
        softwareAgents = CodeTable(Set(v.softwareAgents))
        deviceAgents = CodeTable(Set(v.deviceAgents))
    }
}

/// Checks an entry's bytes against every rule `Entry.decode`, `EntryBody.validate` and the consortium membership
/// checks apply, without building the entry: no strings, no arrays but `deps`. The audit of a whole log runs
/// this on every entry; when it fails, the verifier decodes the entry to say precisely what is wrong. The fuzz
/// target and the tests hold the two to the same verdict on every input.
extension Entry {
    package static func audit(_ raw: UnsafeRawBufferPointer, _ ctx: AuditContext) throws -> AuditedEntry {
        guard raw.count <= maxSize else { throw field("entry", "over \(maxSize) bytes") }
        var r = CBORReader(raw, maxDepth: 8)
        var out = AuditedEntry()
        guard try r.readMapHeader() == 8 else { throw field("entry", "must have exactly 8 keys") }
        var keys = KeyOrder()
        var body = BodyAudit()
        var kind: Int = -1
        for _ in 0..<8 {
            switch try keys.next(&r, in: "entry") {
            case .v: guard try r.readUnsigned() == formatVersion else { throw field("v", "unsupported version") }
            case .hlc:
                guard try r.readArrayHeader() == 2 else { throw field("hlc", "must be [wall-ms, counter]") }
                out.hlc = HLC(wall: try r.readUnsigned(), counter: try r.readUnsigned())
            case .log:
                let l = try r.readTextBytes()
                guard l.count == ctx.origin.count,
                    ctx.origin.withUnsafeBytes({ memcmp($0.baseAddress!, l.baseAddress!, l.count) == 0 })
                else { throw field("log", "not this log") }
            case .seq: out.seq = try r.readUnsigned()
            case .body: try body.read(&r, ctx)
            case .deps:
                let n = try r.readArrayHeader()
                guard n <= 256 else { throw field("deps", "more than 256 heads") }
                var previous: UnsafeRawBufferPointer?
                for _ in 0..<n {
                    guard try r.readArrayHeader() == 3 else { throw field("deps", "must be [org, seq, leafHash]") }
                    let o = try r.readTextBytes()
                    guard let org = ctx.members.lookup(o), org != ctx.org else {
                        throw field("deps", "cites an unknown org or the entry's own log")
                    }
                    if let p = previous, !Self.ascending(p, o) { throw field("deps", "orgs not unique and ascending") }
                    previous = o
                    let seq = try r.readUnsigned()
                    out.deps.append(EntryRef(org: org, seq: seq, leaf: try readDigest(&r, "deps")))
                }
            case .kind:
                let k = try r.readTextBytes()
                guard let name = Vocabulary.kindTable.lookup(k) else { throw field("kind", "unknown") }
                switch name {
                case "consent": kind = 0
                case "interaction": kind = 1
                case "share": kind = 2
                case "link": kind = 3
                case "unlink": kind = 4
                default: kind = 5
                }
            case .prev: out.prev = try readDigest(&r, "prev")
            default: throw field("entry", "unknown key")
            }
        }
        try r.expectEnd()
        if out.seq == 0 && out.prev != .zero { throw field("prev", "entry 0 must have zero prev") }
        if kind == 5 && out.deps.isEmpty { throw field("deps", "a heads entry must cite at least one head") }
        try body.check(kind: kind)
        out.kind = UInt8(kind)
        out.refs = body.refs
        return out
    }

    /// Bytewise order of two text strings of the same map or list (ASCII codes and org ids).
    @inline(__always)
    static func ascending(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        let c = memcmp(a.baseAddress!, b.baseAddress!, min(a.count, b.count))
        return c < 0 || (c == 0 && a.count < b.count)
    }
}

/// The body of an entry as the audit sees it: which keys were present, and the few values that rules across
/// fields need.
struct BodyAudit {
    var keys: UInt64 = 0
    var consentBasis = false
    var occurredAt: UInt64 = 0
    var expiresAt: UInt64?
    var refs: [(field: String, ref: EntryRef)] = []

    static func f(_ name: String, _ reason: String) -> LedgerError { Entry.field("body.\(name)", reason) }

    static func f(_ name: StaticString, _ reason: String) -> LedgerError { f("\(name)", reason) }

    static func digest(_ r: inout CBORReader, _ name: StaticString) throws {
        guard try r.readBytes().count == 32 else { throw f(name, "must be 32 bytes") }
    }

    static func code(_ r: inout CBORReader, _ table: CodeTable, _ name: StaticString) throws {
        guard table.lookup(try r.readTextBytes()) != nil else { throw f(name, "unknown code") }
    }

    /// A list of 1–32 codes (or member orgs), unique and ascending.
    static func codes(_ r: inout CBORReader, _ table: CodeTable, _ name: StaticString) throws {
        let n = try r.readArrayHeader()
        guard n >= 1 && n <= 32 else { throw f(name, "must hold 1 to 32 items") }
        var previous: UnsafeRawBufferPointer?
        for _ in 0..<n {
            let t = try r.readTextBytes()
            guard table.lookup(t) != nil else { throw f(name, "unknown code") }
            if let p = previous, !Entry.ascending(p, t) { throw f(name, "not unique and ascending") }
            previous = t
        }
    }

    static func time(_ r: inout CBORReader, _ name: StaticString) throws -> UInt64 {
        let t = try r.readUnsigned()
        guard t < Timestamp.end else { throw f(name, "not before the year 10000") }
        return t
    }

    static func ref(_ r: inout CBORReader, _ ctx: AuditContext, _ name: StaticString) throws -> EntryRef {
        guard try r.readArrayHeader() == 3 else { throw f(name, "must be [org, seq, leafHash]") }
        guard let org = ctx.members.lookup(try r.readTextBytes()) else { throw f(name, "unknown org") }
        let seq = try r.readUnsigned()
        let leaf = try r.readBytes()
        guard leaf.count == 32 else { throw f(name, "must be 32 bytes") }
        return EntryRef(org: org, seq: seq, leaf: SHA256Digest(copying: leaf.baseAddress!))
    }

    mutating func read(_ r: inout CBORReader, _ ctx: AuditContext) throws {
        let n = try r.readMapHeader()
        var order = KeyOrder()
        for _ in 0..<n {
            let key = try order.next(&r, in: "body")
            keys |= key.bit
            switch key {
            case .subject: try Self.digest(&r, "subject")
            case .evidence: try Self.digest(&r, "evidence")
            case .detail: try Self.digest(&r, "detail")
            case .event: try Self.code(&r, Vocabulary.consentEventTable, "event")
            case .purposes: try Self.codes(&r, Vocabulary.purposeTable, "purposes")
            case .controllers: try Self.codes(&r, ctx.members, "controllers")
            case .recipients: try Self.codes(&r, ctx.members, "recipients")
            case .channel: try Self.code(&r, Vocabulary.channelTable, "channel")
            case .method: try Self.code(&r, Vocabulary.methodTable, "method")
            case .legalBasis:
                let t = try r.readTextBytes()
                guard let basis = Vocabulary.legalBasisTable.lookup(t) else { throw Self.f("legalBasis", "unknown") }
                consentBasis = basis == "dpv:Consent"
            case .notice:
                guard try r.readMapHeader() == 3 else { throw Self.f("notice", "must have id, sha256, version") }
                var nk = KeyOrder()
                guard try nk.next(&r, in: "notice") == .id else { throw Self.f("notice", "id first") }
                try Self.code(&r, ctx.notices, "notice.id")
                guard try nk.next(&r, in: "notice") == .sha256 else { throw Self.f("notice", "sha256 second") }
                try Self.digest(&r, "notice.sha256")
                guard try nk.next(&r, in: "notice") == .version else { throw Self.f("notice", "version third") }
                guard Vocabulary.isNoticeVersion(try r.readTextBytes()) else { throw Self.f("notice.version", "bad") }
            case .occurredAt: occurredAt = try Self.time(&r, "occurredAt")
            case .expiresAt: expiresAt = try Self.time(&r, "expiresAt")
            case .interaction: try Self.code(&r, ctx.interactions, "interaction")
            case .agent:
                let an = try r.readMapHeader()
                guard an == 2 || an == 3 else { throw Self.f("agent", "must have id, kind, onBehalfOf") }
                var ak = KeyOrder()
                guard try ak.next(&r, in: "agent") == .id else { throw Self.f("agent", "id first") }
                // A person's ref or an agent's name; the kind after it decides which it must be.
                let isRef = try r.peekMajorType() == 2
                let id = isRef ? try r.readBytes() : try r.readTextBytes()
                guard try ak.next(&r, in: "agent") == .kind else { throw Self.f("agent", "kind second") }
                guard let kind = Vocabulary.agentKindTable.lookup(try r.readTextBytes()) else {
                    throw Self.f("agent.kind", "unknown code")
                }
                switch kind {
                case "person": guard isRef && id.count == 32 else { throw Self.f("agent.id", "a person is a ref") }
                case "software":
                    guard !isRef && ctx.softwareAgents.lookup(id) != nil else { throw Self.f("agent.id", "unknown") }
                default: guard !isRef && ctx.deviceAgents.lookup(id) != nil else { throw Self.f("agent.id", "unknown") }
                }
                if an == 3 {
                    guard try ak.next(&r, in: "agent") == .onBehalfOf else { throw Self.f("agent", "onBehalfOf third") }
                    guard ctx.members.lookup(try r.readTextBytes()) != nil else {
                        throw Self.f("agent.onBehalfOf", "unknown org")
                    }
                }
            case .consentRef: refs.append(("consentRef", try Self.ref(&r, ctx, "consentRef")))
            case .derivedFrom:
                let c = try r.readArrayHeader()
                guard c >= 1 && c <= 64 else { throw Self.f("derivedFrom", "must hold 1 to 64 refs") }
                for _ in 0..<c { refs.append(("derivedFrom", try Self.ref(&r, ctx, "derivedFrom"))) }
            case .recipient:
                guard let o = ctx.members.lookup(try r.readTextBytes()), o != ctx.org else {
                    throw Self.f("recipient", "unknown org or the log's own")
                }
            case .dataCategories: try Self.codes(&r, Vocabulary.dataCategoryTable, "dataCategories")
            case .subjects:
                guard try r.readArrayHeader() == 2 else { throw Self.f("subjects", "must hold two refs") }
                let a = try r.readBytes()
                let b = try r.readBytes()
                guard a.count == 32, b.count == 32, memcmp(a.baseAddress!, b.baseAddress!, 32) < 0 else {
                    throw Self.f("subjects", "two different 32-byte refs, ascending")
                }
            default: throw Self.f(key.name, "unknown key")
            }
        }
    }

    static let required: [UInt64] = [
        BodyFields.mask([.subject, .event, .purposes, .controllers, .channel, .method, .legalBasis, .occurredAt]),
        BodyFields.mask([.subject, .channel, .interaction, .purposes, .legalBasis, .agent, .occurredAt]),
        BodyFields.mask([.subject, .recipient, .purposes, .dataCategories, .occurredAt]),
        BodyFields.mask([.subjects, .occurredAt, .evidence]),
        BodyFields.mask([.subjects, .occurredAt]),
        BodyFields.mask([.occurredAt]),
    ]

    static let allowed: [UInt64] = ["consent", "interaction", "share", "link", "unlink", "heads"].map {
        BodyFields.allowed[$0]!
    }

    func check(kind: Int) throws {
        guard kind >= 0 else { throw Self.f("kind", "missing") }
        guard keys & ~Self.allowed[kind] == 0 else { throw Self.f("body", "field of another kind") }
        guard keys & Self.required[kind] == Self.required[kind] else { throw Self.f("body", "required field missing") }
        switch kind {
        case 0: if let x = expiresAt, x <= occurredAt { throw Self.f("expiresAt", "not after occurredAt") }
        case 1:
            if consentBasis && keys & FieldKey.consentRef.bit == 0 { throw Self.f("consentRef", "required") }
        default: break
        }
    }
}
