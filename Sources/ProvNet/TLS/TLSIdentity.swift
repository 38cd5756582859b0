import COpenSSL
import CShims
import ProvCrypto

/// A node's TLS identity: a self-signed X.509 certificate made in process from its Ed25519 key.
///
/// Peers do not trust the certificate's issuer, validity period or name: they pin the Ed25519 key inside it (see
/// `TLSPeerKeys`, Specs/transport.md §TLS). The handshake's CertificateVerify proves the peer holds the private key.
public final class TLSIdentity: @unchecked Sendable {
    // Safe to share: the certificate is built in init and never mutated afterwards; OpenSSL reads it from any thread
    // and each SSL_CTX that uses it takes its own reference.
    let certificate: OpaquePointer
    /// The private key the certificate was made for.
    public let key: Ed25519PrivateKey
    /// The key peers pin.
    public var publicKey: Ed25519PublicKey { key.publicKey }

    /// Makes an X.509 v3 certificate for `key`, subject and issuer `CN=<commonName>`, valid from an hour ago for ten
    /// years, signed by the key itself (about 2 ms).
    public init(key: Ed25519PrivateKey, commonName: String = "provenance-ledger") throws {
        guard !commonName.isEmpty, commonName.utf8.count <= 64,
            commonName.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F })
        else {
            throw NetError(.tls, "a certificate common name is 1 to 64 printable ASCII characters")
        }
        ERR_clear_error()
        guard let x = X509_new() else { throw tlsError("X509_new failed") }
        var done = false
        defer { if !done { X509_free(x) } }
        var serial = try SecureRandom.bytes(16)
        serial[0] &= 0x7F  // RFC 5280 §4.1.2.2: a positive integer
        guard X509_set_version(x, Int(X509_VERSION_3)) == 1 else { throw tlsError("X509_set_version failed") }
        guard let bn = BN_bin2bn(serial, Int32(serial.count), nil) else { throw tlsError("BN_bin2bn failed") }
        defer { BN_free(bn) }
        guard BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != nil,
            X509_gmtime_adj(X509_getm_notBefore(x), -3600) != nil,
            X509_gmtime_adj(X509_getm_notAfter(x), 10 * 366 * 86400) != nil,
            prov_x509_set_names(x, commonName) == 1
        else { throw tlsError("cannot fill the certificate") }
        try key.withEVPKey { pkey in
            guard X509_set_pubkey(x, pkey) == 1 else { throw tlsError("X509_set_pubkey failed") }
            // Ed25519 signs the message itself: no digest (RFC 8410 §6).
            guard X509_sign(x, pkey, nil) > 0 else { throw tlsError("cannot sign the certificate") }
        }
        certificate = x
        self.key = key
        done = true
    }

    deinit { X509_free(certificate) }
}

/// Which Ed25519 keys a peer may present: the pinning rule of a TLS endpoint.
///
/// The rule runs on the event-loop thread during each handshake: keep it quick and non-blocking (a set lookup).
public struct TLSPeerKeys: Sendable {
    let allows: @Sendable (Ed25519PublicKey) -> Bool

    /// Accepts a peer when `allows` returns true for the key it presented (for example, "is a member key of the
    /// consortium descriptor as it stands now").
    public init(allowing allows: @escaping @Sendable (Ed25519PublicKey) -> Bool) {
        self.allows = allows
    }

    /// Accepts exactly these keys.
    public init(_ keys: some Sequence<Ed25519PublicKey>) {
        let set = Set(keys.map(\.rawRepresentation))
        allows = { set.contains($0.rawRepresentation) }
    }

    /// Accepts one key only (a client pinning the server it dials).
    public static func only(_ key: Ed25519PublicKey) -> TLSPeerKeys { TLSPeerKeys([key]) }
}

/// TLS for a server: its identity, and for mutual authentication the keys clients may present.
public struct TLSServerConfiguration: Sendable {
    public var identity: TLSIdentity
    /// nil: no client certificate is asked for (the API listener). Set: every client must present a certificate
    /// whose Ed25519 key these accept, or the handshake fails (the peer listener).
    public var clientKeys: TLSPeerKeys?

    public init(identity: TLSIdentity, clientKeys: TLSPeerKeys? = nil) {
        self.identity = identity
        self.clientKeys = clientKeys
    }
}

/// TLS for a client: the server keys it accepts (always pinned), and an identity when the server asks for one.
public struct TLSClientConfiguration: Sendable {
    public var identity: TLSIdentity?
    public var serverKeys: TLSPeerKeys

    public init(identity: TLSIdentity? = nil, serverKeys: TLSPeerKeys) {
        self.identity = identity
        self.serverKeys = serverKeys
    }
}

func tlsError(_ what: String) -> NetError {
    let (text, _, _) = drainOpenSSLErrors()
    return NetError(.tls, text.map { "\(what): \($0)" } ?? what)
}

func hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { Hex.encode($0) } }
