import Foundation
import ProvCrypto
import TestSupport
import Testing

/// Loads a JSON vector file that sits next to this source file.
func loadVectors(_ name: String) throws -> Any {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors/\(name)")
    return try JSONSerialization.jsonObject(with: Data(contentsOf: url))
}

struct Ed25519Vector: Sendable, CustomStringConvertible {
    var name, secret, publicKey, message, signature: String
    var description: String { name }

    static func all() throws -> [Ed25519Vector] {
        let list = try loadVectors("rfc8032-ed25519.json") as! [[String: String]]
        return list.map {
            Ed25519Vector(
                name: $0["name"]!, secret: $0["secret"]!, publicKey: $0["public"]!, message: $0["message"]!,
                signature: $0["signature"]!)
        }
    }
}

@Suite struct Ed25519Tests {
    @Test(arguments: try Ed25519Vector.all())
    func rfc8032Vector(_ v: Ed25519Vector) throws {
        let key = try Ed25519PrivateKey(seed: Hex.decode(v.secret)!)
        #expect(Hex.encode(key.publicKey.rawRepresentation) == v.publicKey)
        let message = Hex.decode(v.message)!
        let sig = try key.sign(message)
        #expect(Hex.encode(sig) == v.signature)
        #expect(key.publicKey.isValidSignature(sig, for: message))
        var tampered = message + [0]
        #expect(!key.publicKey.isValidSignature(sig, for: tampered))
        tampered = sig
        tampered[10] ^= 1
        #expect(!key.publicKey.isValidSignature(tampered, for: message))
    }

    @Test func rejectsBadKeyLengths() {
        #expect(throws: CryptoError.self) { try Ed25519PrivateKey(seed: [1, 2, 3]) }
        #expect(throws: CryptoError.self) { try Ed25519PublicKey(rawRepresentation: [UInt8](repeating: 0, count: 31)) }
    }
}

@Suite struct HashTests {
    @Test func sha256KnownAnswers() {
        #expect(SHA256.hash("abc").hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hash([UInt8]()).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func prefixedAndNodeHashesMatchPlainHash() {
        let data: [UInt8] = Array("entry".utf8)
        let leaf = data.withUnsafeBytes { SHA256.hash(prefix: 0, $0) }
        #expect(leaf == SHA256.hash([0] + data))
        let a = SHA256.hash("a")
        let b = SHA256.hash("b")
        #expect(SHA256.node(a, b) == SHA256.hash([1] + a.bytes + b.bytes))
    }

    @Test func hmacRFC4231() throws {
        let list = try loadVectors("hmac-rfc4231.json") as! [[String: String]]
        #expect(list.count == 3)
        for v in list {
            let key = HMACSHA256Key(secret: Hex.decode(v["key"]!)!)
            #expect(key.mac(Hex.decode(v["data"]!)!).hex == v["mac"]!, "\(v["name"]!)")
        }
    }

    @Test func crc32cCheckValue() {
        // The standard check value of CRC-32C over "123456789".
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32C.checksum($0) } == 0xE306_9283)
        // Incremental use gives the same result as one call.
        let bytes = [UInt8](repeating: 0x5a, count: 1000)
        let whole = bytes.withUnsafeBytes { CRC32C.checksum($0) }
        let part = bytes.withUnsafeBytes { b in
            CRC32C.checksum(
                UnsafeRawBufferPointer(rebasing: b[13...]),
                seed: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[..<13])))
        }
        #expect(whole == part)
    }

    @Test func hexRoundTripAndRejects() {
        #expect(Hex.decode("00ff10Ab") == [0, 255, 16, 171])
        #expect(Hex.decode("0") == nil)
        #expect(Hex.decode("zz") == nil)
        #expect(SHA256Digest(hex: String(repeating: "ab", count: 32))?.hex == String(repeating: "ab", count: 32))
        #expect(SHA256Digest(hex: "abcd") == nil)
    }
}

@Suite struct SignedNoteTests {
    @Test func c2spExampleVerifies() throws {
        let v = try loadVectors("c2sp-signed-note.json") as! [String: String]
        let key = try NoteVerifierKey(parsing: v["verifierKey"]!)
        #expect(key.name == "example.com/foo")
        #expect(String(key.keyID, radix: 16) == v["keyID"]!)
        #expect(key.description == v["verifierKey"]!)
        let note = try SignedNote(parsing: v["text"]! + "\n" + v["signatureLine"]! + "\n")
        #expect(note.text == v["text"]!)
        #expect(note.verifiedSignature(by: key) != nil)
        // One changed character in the text breaks it.
        let forged = SignedNote(text: "This is an example message!\n", signatures: note.signatures)
        #expect(forged.verifiedSignature(by: key) == nil)
    }

    @Test func signParseVerifyRoundTrip() throws {
        let signer = try NoteSigner(name: "acme/brand", privateKey: .generate())
        let text = "acme/brand\n5\nAAAA\n"
        let note = SignedNote(text: text, signatures: [try signer.sign(text: text)])
        let parsed = try SignedNote(parsing: note.serialized)
        #expect(parsed == note)
        #expect(parsed.verifiedSignature(by: signer.verifierKey) != nil)
        let other = try NoteSigner(name: "acme/brand", privateKey: .generate())
        #expect(parsed.verifiedSignature(by: other.verifierKey) == nil)
        #expect(try NoteVerifierKey(parsing: signer.verifierKey.description) == signer.verifierKey)
    }

    @Test func cosignatureV1() throws {
        let witness = try NoteSigner(name: "acme/retail", privateKey: .generate())
        let text = "acme/brand\n5\nAAAA\n"
        let cosig = try witness.cosign(checkpointText: text, time: 1_764_000_000)
        #expect(Cosignature.time(of: cosig) == 1_764_000_000)
        let note = SignedNote(text: text, signatures: [cosig])
        #expect(note.verifiedSignature(by: witness.verifierKey.asCosigner) != nil)
        // A cosignature is not a plain signature, and the key IDs differ by the type byte.
        #expect(note.verifiedSignature(by: witness.verifierKey) == nil)
        #expect(witness.verifierKey.keyID != witness.verifierKey.asCosigner.keyID)
    }

    @Test(arguments: [
        "no blank line\n— a AAAA\n",
        "text\n\nnot a signature\n",
        "text\n\n— name\n",
        "text\n\n— name !!!!\n",
        "text\n\n— name AAAAAAAA",
    ])
    func malformedNotesAreRejected(_ note: String) {
        #expect(throws: CryptoError.self) { try SignedNote(parsing: note) }
    }

    @Test(arguments: [
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  // wrong key id
        "example.com/foo+530d903a",  // missing key
        "example.com/foo+530d903a+AAAA",  // short key
        "+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  // empty name
    ])
    func badVerifierKeysAreRejected(_ key: String) {
        #expect(throws: CryptoError.self) { try NoteVerifierKey(parsing: key) }
    }
}

@Suite(.leavesNoFiles) struct KeyFileTests {
    func tempPath() -> String {
        TemporaryFiles.path("prov-key")
    }

    @Test func writesMode600AndReadsBack() throws {
        let path = tempPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let signer = try NoteSigner(name: "acme/brand", privateKey: .generate())
        try SigningKeyFile.write(signer, to: path)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! Int
        #expect(mode == 0o600)
        let back = try SigningKeyFile.read(path)
        #expect(back.verifierKey == signer.verifierKey)
        // Never overwritten.
        #expect(throws: CryptoError.self) { try SigningKeyFile.write(signer, to: path) }
    }

    @Test func refusesGroupOrWorldReadableKey() throws {
        let path = tempPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SigningKeyFile.write(try NoteSigner(name: "acme/brand", privateKey: .generate()), to: path)
        chmod(path, 0o644)
        do {
            _ = try SigningKeyFile.read(path)
            Issue.record("a world-readable key was accepted")
        } catch let e as CryptoError {
            #expect(e.code == .keyFilePermissions)
            #expect(e.reason.contains("chmod 600"))
        }
    }
}

/// base64url without padding (RFC 4648 §5): the RFC's test vectors, and one text per value.
@Suite struct Base64URLTests {
    @Test(arguments: [
        ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ])
    func rfc4648Vectors(_ plain: String, _ encoded: String) {
        #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
        #expect(Base64URL.decodeCanonical(encoded) == Array(plain.utf8))
    }

    @Test func theUrlAlphabetAndOneTextPerValue() {
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
        #expect(Base64URL.decodeCanonical("-_8") == [0xFB, 0xFF])
        // Unused low bits must be zero, padding and the standard alphabet's + and / are not base64url.
        #expect(Base64URL.decodeCanonical("-_9") == nil)
        #expect(Base64URL.decodeCanonical("Zg==") == nil)
        #expect(Base64URL.decodeCanonical("+/8") == nil)
        #expect(Base64URL.decodeCanonical("Z") == nil)
        var rng = SystemRandomNumberGenerator()
        for n in 0..<70 {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let text = Base64URL.encode(bytes)
            #expect(Base64URL.decodeCanonical(text) == bytes)
            #expect(
                text
                    == Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                    .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: ""))
        }
    }
}
