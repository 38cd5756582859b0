import Foundation
import ProvCrypto

/// One change from a version of the consortium descriptor to the next (Specs/format.md §9.5): a member added or
/// removed, the quorum threshold changed, or a member's key rotated or revoked from a size of its log on. A change
/// takes effect only with the approvals of a quorum of the members of the version it changes.
public enum ConsortiumChange: Sendable, Equatable {
    /// A new member: its org id, display name, verifier key, and optionally its node's addresses.
    case add(org: String, name: String, key: NoteVerifierKey, peer: String?, api: String?)
    /// A member leaves: its log stays, frozen where each node holds it, and keeps verifying.
    case remove(org: String)
    /// The number of approvals a change needs from now on.
    case threshold(Int)
    /// A planned key change: checkpoints of `org`'s log of size at most `fromSize` stay valid under the old key,
    /// larger ones are valid under `key` only.
    case rotate(org: String, key: NoteVerifierKey, fromSize: UInt64)
    /// A stolen key: checkpoints of size past `fromSize` signed by it are refused everywhere; the log continues
    /// under `key`.
    case revoke(org: String, key: NoteVerifierKey, fromSize: UInt64)

    /// The change's type, as its JSON names it.
    public var type: String {
        switch self {
        case .add: "add"
        case .remove: "remove"
        case .threshold: "threshold"
        case .rotate: "rotate"
        case .revoke: "revoke"
        }
    }

    /// The member the change is about, if any.
    public var org: String? {
        switch self {
        case .add(let org, _, _, _, _), .remove(let org), .rotate(let org, _, _), .revoke(let org, _, _): org
        case .threshold: nil
        }
    }

    /// The key a rotation or revocation makes the member's.
    public var newKey: NoteVerifierKey? {
        switch self {
        case .rotate(_, let key, _), .revoke(_, let key, _): key
        default: nil
        }
    }

    /// In words, for results and messages: `add telco (Telco)`, `rotate brand's key from size 40`.
    public var summary: String {
        switch self {
        case .add(let org, let name, _, _, _): "add \(org) (\(name))"
        case .remove(let org): "remove \(org)"
        case .threshold(let k): "threshold \(k)"
        case .rotate(let org, let key, let n): "rotate \(org)'s key to \(Self.keyID(key)) past size \(n)"
        case .revoke(let org, let key, let n): "revoke \(org)'s key past size \(n), replaced by \(Self.keyID(key))"
        }
    }

    static func keyID(_ key: NoteVerifierKey) -> String { String(format: "%08x", key.keyID) }

    // MARK: JSON

    /// `{"type", …}` with every field of its type, in the order of Specs/format.md §9.5; `peer` and `api` of an
    /// addition are written (null when absent), so the change has one canonical form.
    public var json: JSONValue {
        var m = [JSONMember("type", .string(type))]
        switch self {
        case .add(let org, let name, let key, let peer, let api):
            m += [
                JSONMember("org", .string(org)), JSONMember("name", .string(name)),
                JSONMember("verifierKey", .string(key.description)),
                JSONMember("peer", peer.map { .string($0) } ?? .null),
                JSONMember("api", api.map { .string($0) } ?? .null),
            ]
        case .remove(let org): m.append(JSONMember("org", .string(org)))
        case .threshold(let k): m.append(JSONMember("threshold", .number(String(k))))
        case .rotate(let org, let key, let n), .revoke(let org, let key, let n):
            m += [
                JSONMember("org", .string(org)), JSONMember("verifierKey", .string(key.description)),
                JSONMember("fromSize", .number(String(n))),
            ]
        }
        return .object(m)
    }

    /// Reads a change; `path` names it in messages (`change`, `version 3: change`). Every field of its type is
    /// required (`peer` and `api` may be null or absent) and no other is allowed; values are range-checked here,
    /// and against the version they change by `Consortium.applying`.
    public init(json: JSONValue, path: String = "change") throws(LedgerError) {
        func bad(_ why: String) -> LedgerError { LedgerError(.config, "\(path): \(why)") }
        guard let fields = json.objectValue else { throw bad("must be a JSON object") }
        guard let type = json["type"]?.stringValue else {
            throw bad("type must be one of add, remove, threshold, rotate, revoke")
        }
        let allowed: [String]
        switch type {
        case "add": allowed = ["type", "org", "name", "verifierKey", "peer", "api"]
        case "remove": allowed = ["type", "org"]
        case "threshold": allowed = ["type", "threshold"]
        case "rotate", "revoke": allowed = ["type", "org", "verifierKey", "fromSize"]
        default:
            throw bad("type \(LedgerError.shown(type)) is not one of add, remove, threshold, rotate, revoke")
        }
        for f in fields where !allowed.contains(f.key) {
            throw bad("unknown field \(LedgerError.shown(f.key)) for a change of type \(type)")
        }
        func org() throws(LedgerError) -> String {
            guard let s = json["org"]?.stringValue else { throw bad("org must be a string") }
            guard Vocabulary.isOrgID(s) else {
                throw bad("org \(LedgerError.shown(s)) is not an org id (1-32 of a-z 0-9 -, starting alphanumeric)")
            }
            return s
        }
        func key() throws(LedgerError) -> NoteVerifierKey {
            guard let s = json["verifierKey"]?.stringValue else { throw bad("verifierKey must be a string") }
            do { return try NoteVerifierKey(parsing: s) } catch let e as CryptoError {
                throw bad("verifierKey: \(e.reason)")
            } catch { throw bad("verifierKey: \(error)") }
        }
        func address(_ f: String) throws(LedgerError) -> String? {
            guard let v = json[f], v != .null else { return nil }
            guard let s = v.stringValue, Consortium.isAddress(s) else {
                throw bad("\(f) must be null or host:port (1-255 bytes, no space or control character)")
            }
            return s
        }
        func integer(_ f: String) throws(LedgerError) -> UInt64 {
            guard let n = json[f]?.canonicalIntegerValue else {
                throw bad("\(f) must be a whole number from 0 to \(JSONValue.maxCanonicalInteger) in canonical form")
            }
            return n
        }
        switch type {
        case "add":
            let o = try org()
            guard let name = json["name"]?.stringValue else { throw bad("name must be a string") }
            guard Consortium.isDisplayName(name) else {
                throw bad("name must be 1-128 bytes without control characters (a display name)")
            }
            self = .add(org: o, name: name, key: try key(), peer: try address("peer"), api: try address("api"))
        case "remove": self = .remove(org: try org())
        case "threshold":
            let k = try integer("threshold")
            guard k >= 1, k <= Consortium.maxMembers else {
                throw bad("threshold must be from 1 to \(Consortium.maxMembers), got \(k)")
            }
            self = .threshold(Int(k))
        case "rotate": self = .rotate(org: try org(), key: try key(), fromSize: try integer("fromSize"))
        default: self = .revoke(org: try org(), key: try key(), fromSize: try integer("fromSize"))
        }
    }

    /// What every approval of the change signs (Specs/format.md §9.5): a line naming the purpose, then the
    /// consortium, the version the change makes, the hash of the version it changes and the change's canonical
    /// JSON, each line ended by LF. The first line keeps it from ever being a checkpoint or a cosignature.
    public static func message(consortium: String, version: Int, previous: SHA256Digest, change: ConsortiumChange)
        -> [UInt8]
    {
        var m = Array("\(messageLabel)\n\(consortium)\n\(version)\n\(previous.hex)\n".utf8)
        // Every value of a change is a string or an integer within range: it always has a canonical form.
        m += change.json.canonicalBytes ?? []
        m.append(0x0A)
        return m
    }

    /// The first line of what an approval signs.
    public static let messageLabel = "provenance-ledger consortium change v1"
}

/// One member's signature on a change (Specs/format.md §9.5): by the member's key in the version the change
/// changes, or, for a rotation of its own key, by the new key too.
public struct ConsortiumApproval: Sendable, Equatable {
    public var org: String
    public var keyID: UInt32
    /// The Ed25519 signature, 64 bytes.
    public var signature: [UInt8]

    public init(org: String, keyID: UInt32, signature: [UInt8]) {
        self.org = org
        self.keyID = keyID
        self.signature = signature
    }

    /// Signs `message` with `signer` for `org`.
    public static func sign(_ message: [UInt8], org: String, with signer: NoteSigner) throws -> ConsortiumApproval {
        ConsortiumApproval(
            org: org, keyID: signer.verifierKey.keyID, signature: try signer.privateKey.sign(message))
    }

    /// Whether `key` (the approval's key ID must be its) made this signature over `message`.
    public func verifies(_ message: [UInt8], with key: NoteVerifierKey) -> Bool {
        keyID == key.keyID && key.publicKey.isValidSignature(signature, for: message)
    }

    public var keyIDHex: String { String(format: "%08x", keyID) }

    /// `{"org", "keyID", "signature"}`: the key ID as 8 lower-case hex digits, the signature in base64.
    public var json: JSONValue {
        .object([
            JSONMember("org", .string(org)), JSONMember("keyID", .string(keyIDHex)),
            JSONMember("signature", .string(Data(signature).base64EncodedString())),
        ])
    }

    /// Reads one approval; `path` names it in messages (`approvals[2]`).
    public init(json: JSONValue, path: String) throws(LedgerError) {
        func bad(_ why: String) -> LedgerError { LedgerError(.config, "\(path): \(why)") }
        guard let fields = json.objectValue else { throw bad("must be an object with org, keyID and signature") }
        for f in fields where !["org", "keyID", "signature"].contains(f.key) {
            throw bad("unknown field \(LedgerError.shown(f.key))")
        }
        guard let org = json["org"]?.stringValue, Vocabulary.isOrgID(org) else {
            throw bad("org must be an org id")
        }
        guard let id = json["keyID"]?.stringValue, id.utf8.count == 8,
            id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }),
            let v = UInt32(id, radix: 16)
        else { throw bad("keyID must be 8 lower-case hex digits") }
        guard let s = json["signature"]?.stringValue, let sig = Base64.decodeCanonical(Substring(s)), sig.count == 64
        else { throw bad("signature must be the canonical base64 of a 64-byte Ed25519 signature") }
        self.init(org: org, keyID: v, signature: sig)
    }
}
