import COpenSSL
import CShims
import ProvCrypto

/// An OpenSSL SSL_CTX configured for our TLS profile (Specs/transport.md §TLS): TLS 1.3 only, Ed25519 certificates,
/// the peer's key pinned in the verify callback, no session tickets or cache.
final class TLSContext: @unchecked Sendable {
    // Safe to share: the SSL_CTX is fully configured in init and afterwards only used to create SSL objects, which
    // OpenSSL allows from any thread; `peerKeys` is an immutable Sendable value.
    let ctx: OpaquePointer
    let isServer: Bool
    /// nil on a server without client authentication.
    let peerKeys: TLSPeerKeys?

    init(server: TLSServerConfiguration) throws {
        isServer = true
        peerKeys = server.clientKeys
        ctx = try Self.makeContext(server: true, identity: server.identity)
        let mode = server.clientKeys == nil ? SSL_VERIFY_NONE : (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT)
        SSL_CTX_set_verify(ctx, mode, server.clientKeys == nil ? nil : pinningVerifyCallback)
    }

    init(client: TLSClientConfiguration) throws {
        isServer = false
        peerKeys = client.serverKeys
        ctx = try Self.makeContext(server: false, identity: client.identity)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, pinningVerifyCallback)
    }

    private static func makeContext(server: Bool, identity: TLSIdentity?) throws -> OpaquePointer {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()) else {
            throw tlsError("SSL_CTX_new failed")
        }
        var ok = false
        defer { if !ok { SSL_CTX_free(ctx) } }
        guard prov_ssl_ctx_configure_tls13(ctx) == 1 else { throw tlsError("cannot restrict the context to TLS 1.3") }
        if let identity {
            guard SSL_CTX_use_certificate(ctx, identity.certificate) == 1 else {
                throw tlsError("cannot use the certificate")
            }
            try identity.key.withEVPKey { pkey in
                guard SSL_CTX_use_PrivateKey(ctx, pkey) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
                    throw tlsError("cannot use the private key")
                }
            }
        }
        ok = true
        return ctx
    }

    deinit { SSL_CTX_free(ctx) }
}

/// What the verify callback saw during one handshake.
final class TLSVerifyState {
    let peerKeys: TLSPeerKeys?
    /// "client" on a server, "server" on a client: who the peer is, for messages.
    let peerRole: String
    /// The pinned key the peer presented, once the callback accepted it.
    var acceptedKey: Ed25519PublicKey?
    /// Why the callback refused the peer's certificate.
    var refusal: String?
    /// The raw key of a refused certificate, for the log.
    var refusedKey: [UInt8]?

    init(peerKeys: TLSPeerKeys?, peerRole: String) {
        self.peerKeys = peerKeys
        self.peerRole = peerRole
    }

    /// Applies the pinning rule to a peer certificate.
    func judge(_ cert: OpaquePointer) -> Bool {
        guard let peerKeys else { return true }
        guard let pkey = X509_get0_pubkey(cert) else {
            refusal = "the \(peerRole)'s certificate has no usable public key"
            return false
        }
        guard EVP_PKEY_get_id(pkey) == EVP_PKEY_ED25519 else {
            refusal = "the \(peerRole)'s certificate key is not an Ed25519 key"
            return false
        }
        var raw = [UInt8](repeating: 0, count: 32)
        var len = 32
        guard EVP_PKEY_get_raw_public_key(pkey, &raw, &len) == 1, len == 32,
            let key = try? Ed25519PublicKey(rawRepresentation: raw)
        else {
            refusal = "the \(peerRole)'s Ed25519 key cannot be read"
            return false
        }
        guard peerKeys.allows(key) else {
            refusal = "the \(peerRole) presented the key \(hex(raw)), which is not pinned"
            refusedKey = raw
            return false
        }
        acceptedKey = key
        return true
    }
}

/// The verify callback of every SSL_CTX we make. Chain errors (self-signed, unknown issuer) are ignored because
/// nothing is trusted through issuers; the leaf's key alone decides, by the pinning rule. Refusing here makes the
/// handshake itself fail with an alert, before any application data moves.
let pinningVerifyCallback: @convention(c) (Int32, OpaquePointer?) -> Int32 = { _, store in
    guard let store else { return 0 }
    guard let sslRaw = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()),
        let stateRaw = SSL_get_ex_data(OpaquePointer(sslRaw), prov_ssl_ex_index())
    else { return 0 }
    let state = Unmanaged<TLSVerifyState>.fromOpaque(stateRaw).takeUnretainedValue()
    // Certificates above the leaf play no part: the pinned key is the trust anchor.
    guard X509_STORE_CTX_get_error_depth(store) == 0 else { return 1 }
    if state.refusal != nil { return 0 }
    if let accepted = state.acceptedKey, let cert = X509_STORE_CTX_get_current_cert(store),
        let pkey = X509_get0_pubkey(cert)
    {
        // Called again for the same leaf (once per chain error, then once more): same answer.
        var raw = [UInt8](repeating: 0, count: 32)
        var len = 32
        if EVP_PKEY_get_raw_public_key(pkey, &raw, &len) == 1, raw == accepted.rawRepresentation { return 1 }
    }
    guard let cert = X509_STORE_CTX_get_current_cert(store), state.judge(cert) else {
        if state.refusal == nil { state.refusal = "the \(state.peerRole) presented no certificate" }
        X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION)
        return 0
    }
    return 1
}
