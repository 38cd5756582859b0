import Foundation
import ProvCrypto

/// The public consortium descriptor: who the members are and which keys speak for them (Specs/format.md §9.1).
/// Every check a node or auditor makes is against these keys. One value is one version of the descriptor; the
/// versions after the first each carry the change that made them and the approvals of a quorum of the version
/// before (§9.5, `ConsortiumChain`).
public struct Consortium: Sendable {
    public struct Member: Sendable, Equatable {
        public var org: String
        public var name: String
        public var origin: String
        /// The member's current key: it signs the checkpoints past every retired key's last size.
        public var key: NoteVerifierKey
        /// `host:port` of the node's peer listener, once the node has one.
        public var peer: String?
        /// `host:port` of the node's HTTP API, once the node has one.
        public var api: String?
        /// The keys the member signed with before `key`, oldest first (Specs/format.md §9.6).
        public var retiredKeys: [RetiredKey]
        /// The version that removed the member; nil while it is a member. A removed member's log stays, frozen
        /// where each node holds it, and keeps verifying with its keys.
        public var removedIn: Int?

        public init(
            org: String, name: String, origin: String, key: NoteVerifierKey, peer: String?, api: String?,
            retiredKeys: [RetiredKey] = [], removedIn: Int? = nil
        ) {
            self.org = org
            self.name = name
            self.origin = origin
            self.key = key
            self.peer = peer
            self.api = api
            self.retiredKeys = retiredKeys
            self.removedIn = removedIn
        }

        /// Whether the member belongs to this version (it was not removed).
        public var isCurrent: Bool { removedIn == nil }
    }

    /// A key a member no longer signs new checkpoints with (Specs/format.md §9.6).
    public struct RetiredKey: Sendable, Equatable {
        public var key: NoteVerifierKey
        /// The largest checkpoint size the key signs: past it, only the next key does.
        public var lastSize: UInt64
        /// Declared stolen (a revocation) rather than replaced as planned (a rotation): its cosignatures no longer
        /// count and it no longer opens the peer listener.
        public var revoked: Bool

        public init(key: NoteVerifierKey, lastSize: UInt64, revoked: Bool) {
            self.key = key
            self.lastSize = lastSize
            self.revoked = revoked
        }
    }

    public var name: String
    /// Every member of this version and of the versions before, in the order they joined; removed ones are marked
    /// (`removedIn`), so that their logs, and entries that name them, keep verifying.
    public var members: [Member]
    /// SHA-256 fingerprint of the consortium's linking key (`LinkKey.fingerprint`): every command that loads a
    /// linking key checks it against this, so a wrong key cannot split every customer's refs in two. Nil for a
    /// descriptor written before the field existed.
    public var linkKeyFingerprint: SHA256Digest?
    /// The interaction types, notice ids and agent names the members may record.
    public var vocabulary: ConsortiumVocabulary
    /// The descriptor's version: 1 for the first (a descriptor without the field), then one more per change.
    public var version: Int
    /// The hash of the version before (Specs/format.md §9.5); nil for version 1.
    public var previous: SHA256Digest?
    /// The approvals a change of this version needs, when set; nil means a majority of the current members.
    public var threshold: Int?
    /// The change that made this version from the one before; nil for version 1.
    public var change: ConsortiumChange?
    /// The signatures of members of the version before on `change`.
    public var approvals: [ConsortiumApproval]

    /// At most this many members, removed ones included.
    public static let maxMembers = 1024
    /// At most this many versions.
    public static let maxVersion = 100_000
    /// Org ids that name folders of a data directory other than logs (Specs/format.md §10.1).
    public static let reservedOrgIDs = [
        EvidenceFolder.name: "a data directory keeps equivocation evidence in a folder of that name",
        ConsortiumFolder.name:
            "a data directory keeps the versions of the consortium descriptor in a folder of that name",
        Quarantine.name: "a data directory keeps damaged copies set aside in a folder of that name",
    ]

    public init(
        name: String, members: [Member], linkKeyFingerprint: SHA256Digest? = nil,
        vocabulary: ConsortiumVocabulary = .standard, version: Int = 1, previous: SHA256Digest? = nil,
        threshold: Int? = nil, change: ConsortiumChange? = nil, approvals: [ConsortiumApproval] = []
    ) throws(LedgerError) {
        guard Vocabulary.isConsortiumName(name) else {
            throw LedgerError(
                .config,
                "consortium name \(LedgerError.shown(name)) must be 1-64 of a-z 0-9 . - (starting alphanumeric)")
        }
        guard members.count <= Self.maxMembers else {
            throw LedgerError(.config, "a consortium has at most \(Self.maxMembers) members, removed ones included")
        }
        guard (1...Self.maxVersion).contains(version) else {
            throw LedgerError(.config, "version must be from 1 to \(Self.maxVersion), got \(version)")
        }
        var seen = Set<String>()
        var seenNames: [String: String] = [:]
        for m in members {
            guard Vocabulary.isOrgID(m.org) else {
                throw LedgerError(
                    .config, "org id \(LedgerError.shown(m.org)) must be 1-32 of a-z 0-9 - (starting alphanumeric)")
            }
            if let why = Self.reservedOrgIDs[m.org] {
                throw LedgerError(.config, "org id '\(m.org)' is reserved: \(why)")
            }
            guard seen.insert(m.org).inserted else {
                throw LedgerError(.config, "org \(LedgerError.shown(m.org)) is listed twice")
            }
            guard Self.isDisplayName(m.name) else {
                throw LedgerError(
                    .config,
                    "member \(m.org): name must be 1-128 bytes without control, format or line-separator characters "
                        + "(a display name)")
            }
            // Pages show a company by its name: two members must not look alike there.
            guard seenNames.updateValue(m.org, forKey: Self.nameKey(m.name)) == nil else {
                throw LedgerError(
                    .config,
                    "member \(m.org): its name reads as the name of member \(seenNames[Self.nameKey(m.name)]!) "
                        + "(names are compared without case, width or spacing differences)")
            }
            guard m.origin == "\(name)/\(m.org)" else {
                throw LedgerError(
                    .config,
                    "member \(m.org): log origin must be '\(name)/\(m.org)', got \(LedgerError.shown(m.origin))")
            }
            for k in [m.key] + m.retiredKeys.map(\.key) where k.name != m.origin || k.type != .ed25519 {
                throw LedgerError(
                    .config,
                    "member \(m.org): verifier key is for \(LedgerError.shown(k.name)), expected an Ed25519 key named '\(m.origin)'"
                )
            }
            try Self.checkKeyHistory(m)
            if let r = m.removedIn, !(2...version).contains(r) {
                throw LedgerError(.config, "member \(m.org): removedIn must be from 2 to the version, \(version)")
            }
        }
        let current = members.filter(\.isCurrent).count
        guard current > 0 else { throw LedgerError(.config, "a consortium needs at least one member") }
        if version == 1 {
            guard previous == nil, change == nil, approvals.isEmpty else {
                throw LedgerError(
                    .config, "version 1 has no previous, change or approvals: it is the first version of the chain")
            }
            if let m = members.first(where: { !$0.isCurrent || !$0.retiredKeys.isEmpty }) {
                throw LedgerError(
                    .config,
                    "member \(m.org): version 1 has no removed members and no retired keys (only a change makes them)")
            }
        } else {
            guard previous != nil, change != nil else {
                throw LedgerError(
                    .config,
                    "version \(version) needs previous (the hash of version \(version - 1)) and the change that made it"
                )
            }
        }
        if let t = threshold, let why = Self.thresholdFailure(t, members: current) { throw LedgerError(.config, why) }
        self.name = name
        self.members = members
        self.linkKeyFingerprint = linkKeyFingerprint
        self.vocabulary = vocabulary
        self.version = version
        self.previous = previous
        self.threshold = threshold
        self.change = change
        self.approvals = approvals
    }

    /// A display name: 1–128 bytes, no control character, no format character (bidirectional overrides, zero-width
    /// characters) and no line or paragraph separator: what a page shows is what the name is.
    package static func isDisplayName(_ s: String) -> Bool {
        (1...128).contains(s.utf8.count)
            && !s.unicodeScalars.contains(where: {
                [.control, .format, .lineSeparator, .paragraphSeparator].contains($0.properties.generalCategory)
            })
    }

    /// How two names are compared for looking alike: compatibility-normalised (NFKC), case-folded, and with runs
    /// of white space as one space, trimmed.
    static func nameKey(_ s: String) -> String {
        s.precomposedStringWithCompatibilityMapping.lowercased().split(whereSeparator: \.isWhitespace).joined(
            separator: " ")
    }

    /// A node address of the descriptor: 1–255 bytes, no space and no control character.
    package static func isAddress(_ s: String) -> Bool {
        (1...255).contains(s.utf8.count) && !s.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F })
    }

    /// Why `t` cannot be the threshold of a version with `members` current members, or nil: it must be a majority
    /// at least, so that two changes of one version never both reach a quorum, and at most every member.
    static func thresholdFailure(_ t: Int, members n: Int) -> String? {
        guard t < majority(n) || t > n else { return nil }
        return "threshold \(t) is out of range: with \(Phrase.count(n, "member")) it must be from \(majority(n)) "
            + "(a majority, so that two changes of one version cannot both reach a quorum) to \(n)"
    }

    /// floor(n / 2) + 1.
    public static func majority(_ n: Int) -> Int { n / 2 + 1 }

    /// The members of this version (not removed).
    public var currentMembers: [Member] { members.filter(\.isCurrent) }

    /// The approvals a change of this version needs: the threshold, or a majority of the current members.
    public var quorum: Int { threshold ?? Self.majority(currentMembers.count) }

    /// Why `key` must not be used with this consortium, or nil when its fingerprint is the descriptor's. A
    /// descriptor without a fingerprint cannot tell, and is refused too: the message gives the value to add.
    public func linkKeyMismatch(_ key: LinkKey) -> String? {
        guard let expected = linkKeyFingerprint else {
            return "the consortium descriptor of \(name) has no linkKeyFingerprint, so the linking key cannot be "
                + "checked (a descriptor written by an older prov): if this linking key is the consortium's, add "
                + "\"linkKeyFingerprint\": \"\(key.fingerprint.hex)\" to the descriptor and give every member the new copy"
        }
        guard key.fingerprint != expected else { return nil }
        return "the linking key is not consortium \(name)'s: its fingerprint starts \(key.fingerprint.hex.prefix(8)), "
            + "the descriptor's linkKeyFingerprint starts \(expected.hex.prefix(8)); use the consortium's linking key "
            + "(another key would give every customer new subject refs, split from their earlier entries)"
    }

    /// The member `org`, removed ones included (their logs keep verifying).
    public func member(_ org: some StringProtocol) -> Member? { members.first { $0.org == org } }

    public func member(origin: some StringProtocol) -> Member? { members.first { $0.origin == origin } }

    /// The member `org` when it belongs to this version (not removed).
    public func currentMember(_ org: some StringProtocol) -> Member? { members.first { $0.org == org && $0.isCurrent } }

    public func origin(of org: String) -> String { "\(name)/\(org)" }

    // MARK: JSON

    /// The descriptor as `prov consortium init` and `prov consortium apply` write it: fields in the order of
    /// Specs/format.md §9.1 and §9.5. A first version without a threshold is written as before versions existed.
    public var json: JSONValue {
        var top = [JSONMember("consortium", .string(name)), JSONMember("formatVersion", .number("1"))]
        if version > 1 { top.append(JSONMember("version", .number(String(version)))) }
        if let p = previous { top.append(JSONMember("previous", .string(p.hex))) }
        if let t = threshold { top.append(JSONMember("threshold", .number(String(t)))) }
        if let f = linkKeyFingerprint { top.append(JSONMember("linkKeyFingerprint", .string(f.hex))) }
        top.append(JSONMember("vocabulary", vocabulary.json))
        top.append(JSONMember("members", .array(members.map(Self.memberJSON))))
        if let c = change { top.append(JSONMember("change", c.json)) }
        if version > 1 { top.append(JSONMember("approvals", .array(approvals.map(\.json)))) }
        return .object(top)
    }

    static func memberJSON(_ m: Member) -> JSONValue {
        var fields = [
            JSONMember("org", .string(m.org)),
            JSONMember("name", .string(m.name)),
            JSONMember("origin", .string(m.origin)),
            JSONMember("verifierKey", .string(m.key.description)),
            JSONMember("peer", m.peer.map { .string($0) } ?? .null),
            JSONMember("api", m.api.map { .string($0) } ?? .null),
        ]
        if !m.retiredKeys.isEmpty {
            fields.append(
                JSONMember(
                    "retiredKeys",
                    .array(
                        m.retiredKeys.map { r in
                            .object([
                                JSONMember("verifierKey", .string(r.key.description)),
                                JSONMember("lastSize", .number(String(r.lastSize))),
                                JSONMember("revoked", .bool(r.revoked)),
                            ])
                        })))
        }
        if let r = m.removedIn { fields.append(JSONMember("removedIn", .number(String(r)))) }
        return .object(fields)
    }

    /// Top-level fields of one version.
    static let fields = [
        "consortium", "formatVersion", "version", "previous", "threshold", "linkKeyFingerprint", "vocabulary",
        "members", "change", "approvals",
    ]

    public init(json: JSONValue) throws {
        func str(_ v: JSONValue?, _ what: String) throws -> String {
            guard let s = v?.stringValue else {
                throw LedgerError(.config, "consortium descriptor: \(what) must be a string")
            }
            return s
        }
        func optStr(_ v: JSONValue?, _ what: String) throws -> String? {
            if v == nil || v == .null { return nil }
            return try str(v, what)
        }
        func integer(_ v: JSONValue?, _ what: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let v else { return nil }
            guard let n = v.canonicalIntegerValue, n <= UInt64(range.upperBound), Int(n) >= range.lowerBound else {
                throw LedgerError(
                    .config,
                    "consortium descriptor: \(what) must be a whole number from \(range.lowerBound) to "
                        + "\(range.upperBound) in canonical form")
            }
            return Int(n)
        }
        guard let top = json.objectValue else {
            throw LedgerError(.config, "consortium descriptor must be a JSON object")
        }
        for m in top where !Self.fields.contains(m.key) {
            throw LedgerError(.config, "consortium descriptor: unknown field \(LedgerError.shown(m.key))")
        }
        guard json["formatVersion"]?.int64Value == 1 else {
            throw LedgerError(.config, "consortium descriptor: formatVersion must be 1")
        }
        let name = try str(json["consortium"], "consortium")
        var fingerprint: SHA256Digest?
        if let f = json["linkKeyFingerprint"] {
            guard let s = f.stringValue, let d = SHA256Digest(hex: s), d.hex == s else {
                throw LedgerError(.config, "consortium descriptor: linkKeyFingerprint must be 64 lower-case hex digits")
            }
            fingerprint = d
        }
        let version = try integer(json["version"], "version", 1...Self.maxVersion) ?? 1
        var previous: SHA256Digest?
        if let p = json["previous"] {
            guard let s = p.stringValue, let d = SHA256Digest(hex: s), d.hex == s else {
                throw LedgerError(.config, "consortium descriptor: previous must be 64 lower-case hex digits")
            }
            previous = d
        }
        let threshold = try integer(json["threshold"], "threshold", 1...Self.maxMembers)
        let change = try json["change"].map { v throws(LedgerError) in try ConsortiumChange(json: v) }
        var approvals: [ConsortiumApproval] = []
        if let a = json["approvals"] {
            guard let list = a.arrayValue, list.count <= Self.maxMembers + 1 else {
                throw LedgerError(
                    .config, "consortium descriptor: approvals must be an array of at most \(Self.maxMembers + 1)")
            }
            for (i, item) in list.enumerated() {
                approvals.append(try ConsortiumApproval(json: item, path: "approvals[\(i)]"))
            }
        }
        guard let vocabularyJSON = json["vocabulary"] else {
            throw LedgerError(
                .config,
                "consortium descriptor: no vocabulary (interaction types, notice ids and agent names are declared "
                    + "in the descriptor since format 1 was settled; a descriptor written by an older prov lacks "
                    + "them): add a vocabulary object as Specs/format.md §9.1 shows, or make the descriptor again "
                    + "with prov consortium init")
        }
        let vocabulary: ConsortiumVocabulary
        do { vocabulary = try ConsortiumVocabulary(json: vocabularyJSON) } catch {
            throw LedgerError(.config, "consortium descriptor: \(error.message)")
        }
        guard let list = json["members"]?.arrayValue else {
            throw LedgerError(.config, "consortium descriptor: members must be an array")
        }
        var members: [Member] = []
        for (i, m) in list.enumerated() {
            guard let fields = m.objectValue else { throw LedgerError(.config, "members[\(i)] must be an object") }
            for f in fields
            where !["org", "name", "origin", "verifierKey", "peer", "api", "retiredKeys", "removedIn"].contains(f.key) {
                throw LedgerError(
                    .config, "consortium descriptor: members[\(i)]: unknown field \(LedgerError.shown(f.key))")
            }
            let org = try str(m["org"], "members[\(i)].org")
            let key: NoteVerifierKey
            do {
                key = try NoteVerifierKey(parsing: try str(m["verifierKey"], "members[\(i)].verifierKey"))
            } catch let e as CryptoError {
                throw LedgerError(.config, "consortium descriptor: member \(org): \(e.reason)")
            }
            members.append(
                Member(
                    org: org, name: try str(m["name"], "members[\(i)].name"),
                    origin: try str(m["origin"], "members[\(i)].origin"), key: key,
                    peer: try optStr(m["peer"], "members[\(i)].peer"), api: try optStr(m["api"], "members[\(i)].api"),
                    retiredKeys: try Self.retiredKeys(m["retiredKeys"], org: org, path: "members[\(i)].retiredKeys"),
                    removedIn: try integer(m["removedIn"], "members[\(i)].removedIn", 2...Self.maxVersion)))
        }
        try self.init(
            name: name, members: members, linkKeyFingerprint: fingerprint, vocabulary: vocabulary, version: version,
            previous: previous, threshold: threshold, change: change, approvals: approvals)
    }

    static func retiredKeys(_ v: JSONValue?, org: String, path: String) throws -> [RetiredKey] {
        guard let v else { return [] }
        func bad(_ why: String) -> LedgerError { LedgerError(.config, "consortium descriptor: \(path)\(why)") }
        guard let list = v.arrayValue, list.count <= 1024 else { throw bad(" must be an array of at most 1024") }
        var out: [RetiredKey] = []
        for (i, item) in list.enumerated() {
            guard let fields = item.objectValue else { throw bad("[\(i)] must be an object") }
            for f in fields where !["verifierKey", "lastSize", "revoked"].contains(f.key) {
                throw bad("[\(i)]: unknown field \(LedgerError.shown(f.key))")
            }
            guard let s = item["verifierKey"]?.stringValue else { throw bad("[\(i)].verifierKey must be a string") }
            let key: NoteVerifierKey
            do { key = try NoteVerifierKey(parsing: s) } catch let e as CryptoError {
                throw bad("[\(i)].verifierKey: \(e.reason)")
            }
            guard let n = item["lastSize"]?.canonicalIntegerValue else {
                throw bad("[\(i)].lastSize must be a whole number from 0 to \(JSONValue.maxCanonicalInteger)")
            }
            guard case .bool(let revoked)? = item["revoked"] else { throw bad("[\(i)].revoked must be true or false") }
            out.append(RetiredKey(key: key, lastSize: n, revoked: revoked))
        }
        return out
    }

    /// Reads a descriptor: one version, or a chain of versions (Specs/format.md §9.5) of which the newest is
    /// returned once the chain has been checked from its first version on. A folder holding
    /// `consortium.v<N>.json` files is a chain too.
    public static func load(_ path: String) throws -> Consortium { try ConsortiumChain.load(path).current }

    /// Writes this one version (no history): a first version, or a version's file in a data directory.
    public func write(to path: String) throws {
        do {
            try Data((json.prettySerialized + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw LedgerError(.io, "cannot write \(path): \(error.localizedDescription)")
        }
    }
}

/// The consortium linking key K_link: 32 secret bytes that turn identifiers into subject refs, and employee ids
/// into agent refs (Specs/format.md §5).
public struct LinkKey: Sendable {
    let hmac: HMACSHA256Key
    /// K_agent = HMAC-SHA256(K_link, `agentKeyLabel`): agent refs are made with their own key, so an agent ref
    /// and a subject ref never coincide, whatever the identifiers.
    let agentHMAC: HMACSHA256Key
    /// SHA-256(`fingerprintLabel` ‖ 0x00 ‖ K_link): public, written into the consortium descriptor.
    public let fingerprint: SHA256Digest

    /// Domain-separation label of the fingerprint (Specs/format.md §9.2).
    public static let fingerprintLabel = "provenance-ledger linking-key fingerprint v1"
    /// Label from which the agent-ref key is derived (Specs/format.md §5.4). It holds no ':', so no normalised
    /// identifier (every one starts with a scheme and ':') is MACed to K_agent.
    public static let agentKeyLabel = "provenance-ledger agent-ref key v1"

    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else {
            throw LedgerError(.config, "a linking key is 32 bytes, got \(bytes.count)")
        }
        hmac = HMACSHA256Key(secret: bytes)
        agentHMAC = HMACSHA256Key(secret: hmac.mac(Self.agentKeyLabel).bytes)
        fingerprint = SHA256.hash(Array(Self.fingerprintLabel.utf8) + [0x00] + bytes)
    }

    /// Reads a linking-key file (mode 0600 enforced).
    public static func load(_ path: String) throws -> LinkKey {
        do { return try LinkKey(bytes: try SecretFile.read(path, maxSize: 32)) } catch let e as CryptoError {
            throw LedgerError(.config, e.reason)
        }
    }

    /// Creates a new random linking-key file, and returns the key; fails if the file exists.
    @discardableResult
    public static func create(_ path: String) throws -> LinkKey {
        let bytes = try SecureRandom.bytes(32)
        do { try SecretFile.create(path, bytes: bytes) } catch let e as CryptoError {
            throw LedgerError(.config, e.reason)
        }
        return try LinkKey(bytes: bytes)
    }

    /// HMAC-SHA256(K_link, normalised identifier).
    public func ref(for normalised: String) -> SHA256Digest { hmac.mac(normalised) }

    /// A person agent's ref: HMAC-SHA256(K_agent, `person:<org>:<employee id>`), `org` being the org whose log
    /// records the act, so two companies' employee `E-1` are two people.
    public func agentRef(org: String, employeeID: String) -> SHA256Digest {
        agentHMAC.mac("person:\(org):\(employeeID)")
    }
}
