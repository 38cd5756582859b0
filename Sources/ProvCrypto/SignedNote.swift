import Foundation

/// Signature algorithm bytes of C2SP signed-note (c2sp.org/signed-note §Signature types).
public enum NoteSignatureType: UInt8, Sendable {
    case ed25519 = 0x01
    /// c2sp.org/tlog-cosignature: `cosignature/v1`, timestamped Ed25519.
    case cosignatureV1 = 0x04
}

/// A note verifier key: `name+hex(keyID)+base64(type ‖ public key)` (c2sp.org/signed-note §Verifier keys).
public struct NoteVerifierKey: Sendable, Equatable, CustomStringConvertible {
    public let name: String
    public let keyID: UInt32
    public let type: NoteSignatureType
    public let publicKey: Ed25519PublicKey

    public init(name: String, publicKey: Ed25519PublicKey, type: NoteSignatureType = .ed25519) throws {
        try Self.checkName(name)
        self.name = name
        self.publicKey = publicKey
        self.type = type
        self.keyID = Self.keyID(name: name, type: type, publicKey: publicKey.rawRepresentation)
    }

    /// Parses a verifier key string and checks that its key ID matches the name and key.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw CryptoError(.invalidKey, "verifier key must be name+keyid+base64key, got \(parts.count) fields")
        }
        let name = String(parts[0])
        try Self.checkName(name)
        guard parts[1].count == 8, let idBytes = Hex.decode(parts[1]) else {
            throw CryptoError(.invalidKey, "verifier key id must be 8 hex digits, got '\(parts[1])'")
        }
        guard let blob = Base64.decodeCanonical(parts[2]), blob.count == 33,
            let type = NoteSignatureType(rawValue: blob[0])
        else {
            throw CryptoError(.invalidKey, "verifier key for '\(name)' is not base64 of an Ed25519 key")
        }
        let key = try Ed25519PublicKey(rawRepresentation: Array(blob.dropFirst()))
        try self.init(name: name, publicKey: key, type: type)
        let claimed = idBytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard claimed == keyID else {
            throw CryptoError(
                .invalidKey, "verifier key id \(parts[1]) does not match its name and key (expected \(Self.hex(keyID)))"
            )
        }
    }

    /// The same key as a cosigner (`cosignature/v1`) verifier.
    public var asCosigner: NoteVerifierKey {
        // A name that already passed `checkName` cannot fail it again.
        try! NoteVerifierKey(name: name, publicKey: publicKey, type: .cosignatureV1)
    }

    public var description: String {
        "\(name)+\(Self.hex(keyID))+\(Data([type.rawValue] + publicKey.rawRepresentation).base64EncodedString())"
    }

    /// Key ID = SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4], big-endian (c2sp.org/signed-note §Verifier keys).
    public static func keyID(name: String, type: NoteSignatureType, publicKey: [UInt8]) -> UInt32 {
        let digest = SHA256.hash(Array(name.utf8) + [0x0A, type.rawValue] + publicKey)
        return digest.withUnsafeBytes { b in b.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
    }

    static func hex(_ id: UInt32) -> String {
        Hex.encode([UInt8(id >> 24), UInt8(id >> 16 & 0xff), UInt8(id >> 8 & 0xff), UInt8(id & 0xff)])
    }

    /// A key name is non-empty and holds no Unicode space and no '+' (c2sp.org/signed-note §Format).
    static func checkName(_ name: String) throws {
        guard !name.isEmpty, !name.contains("+"), !name.unicodeScalars.contains(where: { $0.properties.isWhitespace })
        else { throw CryptoError(.invalidKey, "key name '\(name)' is empty or contains '+' or white space") }
    }
}

/// One signature line of a signed note.
public struct NoteSignature: Sendable, Equatable {
    public var name: String
    public var keyID: UInt32
    /// The signature bytes after the 4-byte key ID (64 for Ed25519; 8 + 64 for cosignature/v1).
    public var signature: [UInt8]

    public init(name: String, keyID: UInt32, signature: [UInt8]) {
        self.name = name
        self.keyID = keyID
        self.signature = signature
    }

    /// `— name base64(keyID ‖ signature)` (the dash is U+2014).
    public var line: String {
        let id = [UInt8(keyID >> 24), UInt8(keyID >> 16 & 0xff), UInt8(keyID >> 8 & 0xff), UInt8(keyID & 0xff)]
        return "\u{2014} \(name) \(Data(id + signature).base64EncodedString())"
    }
}

/// A C2SP signed note: a text ending in a newline, a blank line, and one or more signature lines.
public struct SignedNote: Sendable, Equatable {
    public var text: String
    public var signatures: [NoteSignature]

    public init(text: String, signatures: [NoteSignature] = []) {
        self.text = text
        self.signatures = signatures
    }

    /// Maximum size of a note we parse; checkpoints and receipts are far smaller.
    public static let maxSize = 1 << 20

    public init(parsing note: String) throws {
        guard note.utf8.count <= Self.maxSize else { throw CryptoError(.malformedNote, "note larger than 1 MiB") }
        guard let split = note.range(of: "\n\n", options: .backwards) else {
            throw CryptoError(.malformedNote, "no blank line between the note text and its signatures")
        }
        let text = String(note[..<split.lowerBound]) + "\n"
        let sigBlock = note[split.upperBound...]
        guard sigBlock.hasSuffix("\n") else {
            throw CryptoError(.malformedNote, "the last signature line does not end in a newline")
        }
        var sigs: [NoteSignature] = []
        for line in sigBlock.dropLast().split(separator: "\n", omittingEmptySubsequences: false) {
            guard line.hasPrefix("\u{2014} ") else {
                throw CryptoError(.malformedNote, "signature line does not start with '\u{2014} ': \(line.prefix(40))")
            }
            let fields = line.dropFirst(2).split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 2, Data(base64Encoded: String(fields[1])) != nil else {
                throw CryptoError(.malformedNote, "signature line is not 'name base64': \(line.prefix(60))")
            }
            // Only canonical base64: padding bits that are not zero would give one signature several texts.
            guard let bytes = Base64.decodeCanonical(fields[1]) else {
                throw CryptoError(
                    .malformedNote, "signature by \(fields[0]) is not canonical base64 (its padding bits are not zero)")
            }
            guard bytes.count > 4 else {
                throw CryptoError(.malformedNote, "signature by \(fields[0]) is shorter than a key ID and a signature")
            }
            let id = bytes.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            sigs.append(NoteSignature(name: String(fields[0]), keyID: id, signature: Array(bytes.dropFirst(4))))
        }
        guard !sigs.isEmpty else { throw CryptoError(.malformedNote, "note has no signature lines") }
        guard !text.utf8.contains(where: { $0 < 0x20 && $0 != 0x0A }) else {
            throw CryptoError(.malformedNote, "note text contains a control character")
        }
        self.text = text
        self.signatures = sigs
    }

    public var serialized: String {
        text + "\n" + signatures.map { $0.line + "\n" }.joined()
    }

    /// The first signature by `key` (same name and key ID) that verifies, if any.
    public func verifiedSignature(by key: NoteVerifierKey) -> NoteSignature? {
        for sig in signatures where sig.name == key.name && sig.keyID == key.keyID {
            switch key.type {
            case .ed25519:
                if key.publicKey.isValidSignature(sig.signature, for: Array(text.utf8)) { return sig }
            case .cosignatureV1:
                guard sig.signature.count == 72 else { continue }
                let time = sig.signature.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                let message = Cosignature.message(time: time, checkpointText: text)
                if key.publicKey.isValidSignature(sig.signature.suffix(64), for: Array(message.utf8)) { return sig }
            }
        }
        return nil
    }
}

/// Signs notes with an Ed25519 key under a name.
public struct NoteSigner: Sendable {
    public let name: String
    public let privateKey: Ed25519PrivateKey
    public let verifierKey: NoteVerifierKey

    public init(name: String, privateKey: Ed25519PrivateKey) throws {
        self.name = name
        self.privateKey = privateKey
        self.verifierKey = try NoteVerifierKey(name: name, publicKey: privateKey.publicKey)
    }

    /// The signature of `text` (which must end in a newline).
    public func sign(text: String) throws -> NoteSignature {
        precondition(text.hasSuffix("\n"), "a note text ends in a newline")
        return NoteSignature(
            name: name, keyID: verifierKey.keyID, signature: try privateKey.sign(Array(text.utf8)))
    }

    /// A c2sp.org/tlog-cosignature `cosignature/v1` over a checkpoint text at `time` (Unix seconds).
    public func cosign(checkpointText: String, time: UInt64) throws -> NoteSignature {
        let message = Cosignature.message(time: time, checkpointText: checkpointText)
        let sig = try privateKey.sign(Array(message.utf8))
        let t = (0..<8).map { UInt8(time >> (56 - 8 * UInt64($0)) & 0xff) }
        return NoteSignature(name: name, keyID: verifierKey.asCosigner.keyID, signature: t + sig)
    }
}

/// c2sp.org/tlog-cosignature.
public enum Cosignature {
    /// The signed message: `cosignature/v1\ntime <T>\n` followed by the checkpoint text.
    public static func message(time: UInt64, checkpointText: String) -> String {
        "cosignature/v1\ntime \(time)\n" + checkpointText
    }

    /// The timestamp of a cosignature line.
    public static func time(of signature: NoteSignature) -> UInt64? {
        guard signature.signature.count == 72 else { return nil }
        return signature.signature.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
}
