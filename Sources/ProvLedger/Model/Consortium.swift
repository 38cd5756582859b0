import Foundation
import ProvCrypto

/// The public consortium descriptor: who the members are and which keys speak for them (Specs/format.md
/// §Consortium descriptor). Every check a node or auditor makes is against these keys.
public struct Consortium: Sendable {
    public struct Member: Sendable {
        public var org: String
        public var name: String
        public var origin: String
        public var key: NoteVerifierKey
        /// `host:port` of the node's peer listener, once the node has one.
        public var peer: String?
        /// `host:port` of the node's HTTP API, once the node has one.
        public var api: String?

        public init(org: String, name: String, origin: String, key: NoteVerifierKey, peer: String?, api: String?) {
            self.org = org
            self.name = name
            self.origin = origin
            self.key = key
            self.peer = peer
            self.api = api
        }
    }

    public var name: String
    public var members: [Member]
    /// SHA-256 fingerprint of the consortium's linking key (`LinkKey.fingerprint`): every command that loads a
    /// linking key checks it against this, so a wrong key cannot split every customer's refs in two. Nil for a
    /// descriptor written before the field existed.
    public var linkKeyFingerprint: SHA256Digest?
    /// The interaction types, notice ids and agent names the members may record.
    public var vocabulary: ConsortiumVocabulary

    public init(
        name: String, members: [Member], linkKeyFingerprint: SHA256Digest? = nil,
        vocabulary: ConsortiumVocabulary = .standard
    ) throws {
        guard Vocabulary.isConsortiumName(name) else {
            throw LedgerError(.config, "consortium name '\(name)' must be 1-64 of a-z 0-9 . - (starting alphanumeric)")
        }
        var seen = Set<String>()
        for m in members {
            guard Vocabulary.isOrgID(m.org) else {
                throw LedgerError(.config, "org id '\(m.org)' must be 1-32 of a-z 0-9 - (starting alphanumeric)")
            }
            guard m.org != EvidenceFolder.name else {
                throw LedgerError(
                    .config,
                    "org id '\(m.org)' is reserved: a data directory keeps equivocation evidence in a folder of that name"
                )
            }
            guard m.org != Quarantine.name else {
                throw LedgerError(
                    .config,
                    "org id '\(m.org)' is reserved: a data directory keeps damaged copies set aside in a folder of that name"
                )
            }
            guard seen.insert(m.org).inserted else { throw LedgerError(.config, "org '\(m.org)' is listed twice") }
            guard (1...128).contains(m.name.utf8.count),
                !m.name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else {
                throw LedgerError(
                    .config, "member \(m.org): name must be 1-128 bytes without control characters (a display name)")
            }
            guard m.origin == "\(name)/\(m.org)" else {
                throw LedgerError(.config, "member \(m.org): log origin must be '\(name)/\(m.org)', got '\(m.origin)'")
            }
            guard m.key.name == m.origin, m.key.type == .ed25519 else {
                throw LedgerError(
                    .config,
                    "member \(m.org): verifier key is for '\(m.key.name)', expected an Ed25519 key named '\(m.origin)'")
            }
        }
        guard !members.isEmpty else { throw LedgerError(.config, "a consortium needs at least one member") }
        self.name = name
        self.members = members
        self.linkKeyFingerprint = linkKeyFingerprint
        self.vocabulary = vocabulary
    }

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

    public func member(_ org: some StringProtocol) -> Member? { members.first { $0.org == org } }

    public func member(origin: some StringProtocol) -> Member? { members.first { $0.origin == origin } }

    public func origin(of org: String) -> String { "\(name)/\(org)" }

    // MARK: JSON

    /// The descriptor as `prov consortium init` writes it: fields in the order of Specs/format.md §9.1.
    public var json: JSONValue {
        var top = [JSONMember("consortium", .string(name)), JSONMember("formatVersion", .number("1"))]
        if let f = linkKeyFingerprint { top.append(JSONMember("linkKeyFingerprint", .string(f.hex))) }
        top.append(JSONMember("vocabulary", vocabulary.json))
        top.append(
            JSONMember(
                "members",
                .array(
                    members.map { m in
                        .object([
                            JSONMember("org", .string(m.org)),
                            JSONMember("name", .string(m.name)),
                            JSONMember("origin", .string(m.origin)),
                            JSONMember("verifierKey", .string(m.key.description)),
                            JSONMember("peer", m.peer.map { .string($0) } ?? .null),
                            JSONMember("api", m.api.map { .string($0) } ?? .null),
                        ])
                    })))
        return .object(top)
    }

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
        guard let top = json.objectValue else {
            throw LedgerError(.config, "consortium descriptor must be a JSON object")
        }
        for m in top
        where !["consortium", "formatVersion", "linkKeyFingerprint", "vocabulary", "members"].contains(m.key) {
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
            for f in fields where !["org", "name", "origin", "verifierKey", "peer", "api"].contains(f.key) {
                throw LedgerError(.config, "consortium descriptor: members[\(i)]: unknown field '\(f.key)'")
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
                    peer: try optStr(m["peer"], "members[\(i)].peer"), api: try optStr(m["api"], "members[\(i)].api")))
        }
        try self.init(name: name, members: members, linkKeyFingerprint: fingerprint, vocabulary: vocabulary)
    }

    public static func load(_ path: String) throws -> Consortium {
        let data: Data
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw LedgerError(.config, "consortium descriptor \(path): no such file")
        }
        guard !isDirectory.boolValue else {
            throw LedgerError(.config, "consortium descriptor \(path) is a directory, not a file")
        }
        // Read to its end, so that a pipe works too (`--consortium <(...)`).
        guard let handle = FileHandle(forReadingAtPath: path), let d = try? handle.readToEnd() ?? Data() else {
            throw LedgerError(.config, "cannot read consortium descriptor \(path) (permissions?)")
        }
        data = d
        if let why = FileKind.misplaced(Array(data), expected: "a JSON consortium descriptor") {
            throw LedgerError(.config, "\(path) \(why)")
        }
        do {
            return try Consortium(json: try JSON.parse(Array(data)))
        } catch let e as JSONError {
            throw LedgerError(.config, "\(path): not valid JSON: \(e.located(in: Array(data)))")
        } catch let e as LedgerError {
            throw LedgerError(.config, "\(path): \(e.message)")
        }
    }

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
