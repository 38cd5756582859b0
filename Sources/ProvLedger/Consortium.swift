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

    public init(name: String, members: [Member]) throws {
        guard Vocabulary.isConsortiumName(name) else {
            throw LedgerError(.config, "consortium name '\(name)' must be 1-64 of a-z 0-9 . - (starting alphanumeric)")
        }
        var seen = Set<String>()
        for m in members {
            guard Vocabulary.isOrgID(m.org) else {
                throw LedgerError(.config, "org id '\(m.org)' must be 1-32 of a-z 0-9 - (starting alphanumeric)")
            }
            guard seen.insert(m.org).inserted else { throw LedgerError(.config, "org '\(m.org)' is listed twice") }
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
    }

    public func member(_ org: some StringProtocol) -> Member? { members.first { $0.org == org } }

    public func member(origin: some StringProtocol) -> Member? { members.first { $0.origin == origin } }

    public func origin(of org: String) -> String { "\(name)/\(org)" }

    // MARK: JSON

    public var json: JSONValue {
        .object([
            JSONMember("consortium", .string(name)),
            JSONMember("formatVersion", .number("1")),
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
                    })),
        ])
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
        for m in top where !["consortium", "formatVersion", "members"].contains(m.key) {
            throw LedgerError(.config, "consortium descriptor: unknown field '\(m.key)'")
        }
        guard json["formatVersion"]?.int64Value == 1 else {
            throw LedgerError(.config, "consortium descriptor: formatVersion must be 1")
        }
        let name = try str(json["consortium"], "consortium")
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
        try self.init(name: name, members: members)
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
            throw LedgerError(.config, "\(path): not valid JSON: \(e)")
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

/// The consortium linking key K_link: 32 secret bytes that turn identifiers into subject refs.
public struct LinkKey: Sendable {
    let hmac: HMACSHA256Key

    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else {
            throw LedgerError(.config, "a linking key is 32 bytes, got \(bytes.count)")
        }
        hmac = HMACSHA256Key(secret: bytes)
    }

    /// Reads a linking-key file (mode 0600 enforced).
    public static func load(_ path: String) throws -> LinkKey {
        do { return try LinkKey(bytes: try SecretFile.read(path, maxSize: 32)) } catch let e as CryptoError {
            throw LedgerError(.config, e.reason)
        }
    }

    /// Creates a new random linking-key file; fails if it exists.
    public static func create(_ path: String) throws {
        do { try SecretFile.create(path, bytes: try SecureRandom.bytes(32)) } catch let e as CryptoError {
            throw LedgerError(.config, e.reason)
        }
    }

    /// HMAC-SHA256(K_link, normalised identifier).
    public func ref(for normalised: String) -> SHA256Digest { hmac.mac(normalised) }
}
