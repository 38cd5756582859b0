import COpenSSL
import Foundation

/// An Ed25519 private key (RFC 8032 §5.1), held as an OpenSSL key object.
public final class Ed25519PrivateKey: @unchecked Sendable {
    // Safe to share: the EVP_PKEY is created once, never mutated, and OpenSSL allows concurrent signing with one key
    // (each call makes its own EVP_MD_CTX).
    private let pkey: OpaquePointer
    /// The 32-byte seed.
    public let seed: [UInt8]
    public let publicKey: Ed25519PublicKey

    public init(seed: [UInt8]) throws {
        guard seed.count == 32 else { throw CryptoError(.invalidKey, "an Ed25519 seed is 32 bytes, got \(seed.count)") }
        ERR_clear_error()
        guard let key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, seed, 32) else {
            throw CryptoError.openssl("cannot load Ed25519 private key")
        }
        var pub = [UInt8](repeating: 0, count: 32)
        var len = 32
        guard EVP_PKEY_get_raw_public_key(key, &pub, &len) == 1, len == 32 else {
            EVP_PKEY_free(key)
            throw CryptoError.openssl("cannot derive Ed25519 public key")
        }
        self.pkey = key
        self.seed = seed
        self.publicKey = try Ed25519PublicKey(rawRepresentation: pub)
    }

    /// A new key from 32 random bytes.
    public static func generate() throws -> Ed25519PrivateKey {
        try Ed25519PrivateKey(seed: SecureRandom.bytes(32))
    }

    deinit { EVP_PKEY_free(pkey) }

    /// Runs `body` with the OpenSSL key object, for the TLS layer (certificates and handshakes). The pointer is valid
    /// for the call only; OpenSSL functions that keep the key (`SSL_CTX_use_PrivateKey`) take their own reference.
    package func withEVPKey<R>(_ body: (OpaquePointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(pkey) }
    }

    /// PureEdDSA signature over `message` (64 bytes).
    public func sign(_ message: UnsafeRawBufferPointer) throws -> [UInt8] {
        ERR_clear_error()
        guard let ctx = EVP_MD_CTX_new() else { throw CryptoError.openssl("EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, nil, nil, pkey) == 1 else {
            throw CryptoError.openssl("EVP_DigestSignInit failed")
        }
        var sig = [UInt8](repeating: 0, count: 64)
        var len = 64
        var empty: UInt8 = 0
        let ok = withUnsafePointer(to: &empty) { emptyPtr in
            EVP_DigestSign(
                ctx, &sig, &len, message.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyPtr,
                message.count)
        }
        guard ok == 1, len == 64 else { throw CryptoError.openssl("Ed25519 signing failed") }
        return sig
    }

    public func sign(_ message: some ContiguousBytes) throws -> [UInt8] {
        try message.withUnsafeBytes { try sign($0) }
    }
}

/// An Ed25519 public key (32 bytes).
public final class Ed25519PublicKey: @unchecked Sendable, Equatable {
    // Safe to share: the EVP_PKEY is immutable after init and verification makes its own context per call.
    private let pkey: OpaquePointer
    public let rawRepresentation: [UInt8]

    public init(rawRepresentation raw: [UInt8]) throws {
        guard raw.count == 32 else {
            throw CryptoError(.invalidKey, "an Ed25519 public key is 32 bytes, got \(raw.count)")
        }
        ERR_clear_error()
        guard let key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, raw, 32) else {
            throw CryptoError.openssl("cannot load Ed25519 public key")
        }
        self.pkey = key
        self.rawRepresentation = raw
    }

    deinit { EVP_PKEY_free(pkey) }

    public static func == (a: Ed25519PublicKey, b: Ed25519PublicKey) -> Bool {
        a.rawRepresentation == b.rawRepresentation
    }

    /// True when `signature` is a valid RFC 8032 signature of `message` under this key.
    public func isValidSignature(_ signature: some ContiguousBytes, for message: UnsafeRawBufferPointer) -> Bool {
        signature.withUnsafeBytes { sig -> Bool in
            guard sig.count == 64, let ctx = EVP_MD_CTX_new() else { return false }
            defer {
                EVP_MD_CTX_free(ctx)
                ERR_clear_error()
            }
            guard EVP_DigestVerifyInit(ctx, nil, nil, nil, pkey) == 1 else { return false }
            var empty: UInt8 = 0
            return withUnsafePointer(to: &empty) { emptyPtr in
                EVP_DigestVerify(
                    ctx, sig.baseAddress!.assumingMemoryBound(to: UInt8.self), 64,
                    message.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyPtr, message.count) == 1
            }
        }
    }

    public func isValidSignature(_ signature: some ContiguousBytes, for message: some ContiguousBytes) -> Bool {
        message.withUnsafeBytes { isValidSignature(signature, for: $0) }
    }
}
