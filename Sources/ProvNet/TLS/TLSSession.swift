import COpenSSL
import CShims
import Glibc
import ProvCrypto

/// Why a TLS handshake or transfer failed.
struct TLSFailure: Error {
    enum Kind {
        /// We refused the peer's key (the verify callback).
        case refusedPeer
        /// The peer sent an alert refusing us (our certificate, or our key, did not pass its check).
        case refusedByPeer
        /// Anything else: protocol errors, garbage instead of TLS records.
        case error
    }
    var kind: Kind
    var reason: String
    var peerKey: [UInt8]?
}

/// One step of non-blocking TLS I/O.
enum TLSStep {
    case done(Int)
    case wantRead
    case wantWrite
    /// The peer closed (close_notify or end of stream).
    case closed
    case failed(TLSFailure)
}

/// One TLS connection over a non-blocking socket the caller owns. Used by one thread at a time.
final class TLSSession {
    private let ssl: OpaquePointer
    private let verify: TLSVerifyState
    private let context: TLSContext
    private var sentShutdown = false

    init(context: TLSContext, fd: Int32) throws {
        ERR_clear_error()
        guard let ssl = SSL_new(context.ctx) else { throw tlsError("SSL_new failed") }
        guard let bio = prov_bio_socket_nosignal(fd) else {
            SSL_free(ssl)
            throw tlsError("cannot make the socket BIO")
        }
        SSL_set_bio(ssl, bio, bio)  // the SSL owns the BIO from here
        self.ssl = ssl
        self.context = context
        verify = TLSVerifyState(peerKeys: context.peerKeys, peerRole: context.isServer ? "client" : "server")
        // The state outlives the SSL: both are freed by this object, the SSL first (deinit).
        SSL_set_ex_data(ssl, prov_ssl_ex_index(), Unmanaged.passUnretained(verify).toOpaque())
        if context.isServer { SSL_set_accept_state(ssl) } else { SSL_set_connect_state(ssl) }
    }

    deinit { SSL_free(ssl) }

    /// The pinned key the peer presented (nil when the server asks for no client certificate).
    private(set) var peerKey: Ed25519PublicKey?

    /// Advances the handshake. `.done` when it completed and the peer's key passed the pinning rule.
    func handshake() -> TLSStep {
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 {
            if let failure = checkPeerAfterHandshake() { return .failed(failure) }
            return .done(0)
        }
        return step(rc, handshaking: true)
    }

    /// Defence in depth: the certificate the handshake ended with carries the key the callback accepted.
    private func checkPeerAfterHandshake() -> TLSFailure? {
        guard context.peerKeys != nil else { return nil }
        guard let accepted = verify.acceptedKey, let cert = SSL_get1_peer_certificate(ssl) else {
            return TLSFailure(kind: .refusedPeer, reason: verify.refusal ?? "the peer presented no pinned key")
        }
        defer { X509_free(cert) }
        var raw = [UInt8](repeating: 0, count: 32)
        var len = 32
        guard let pkey = X509_get0_pubkey(cert), EVP_PKEY_get_id(pkey) == EVP_PKEY_ED25519,
            EVP_PKEY_get_raw_public_key(pkey, &raw, &len) == 1, len == 32, raw == accepted.rawRepresentation
        else {
            return TLSFailure(kind: .refusedPeer, reason: "the peer's certificate key changed during the handshake")
        }
        peerKey = accepted
        return nil
    }

    /// Reads decrypted bytes (at most one TLS record's worth per call).
    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSStep {
        ERR_clear_error()
        let rc = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
        if rc > 0 { return .done(Int(rc)) }
        return step(rc, handshaking: false)
    }

    /// Writes bytes (partial writes allowed: returns how many were taken).
    func write(_ bytes: UnsafeRawBufferPointer) -> TLSStep {
        guard !bytes.isEmpty else { return .done(0) }
        ERR_clear_error()
        let rc = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, 1 << 20)))
        if rc > 0 { return .done(Int(rc)) }
        return step(rc, handshaking: false)
    }

    /// Sends close_notify once (best effort: a full socket buffer drops it).
    func shutdown() {
        guard !sentShutdown else { return }
        sentShutdown = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    private func step(_ rc: Int32, handshaking: Bool) -> TLSStep {
        let err = SSL_get_error(ssl, rc)
        let savedErrno = errno
        switch err {
        case SSL_ERROR_WANT_READ:
            return .wantRead
        case SSL_ERROR_WANT_WRITE:
            return .wantWrite
        case SSL_ERROR_ZERO_RETURN:
            ERR_clear_error()
            return .closed
        default:
            let (text, peerAlert, reason) = drainOpenSSLErrors()
            if let refusal = verify.refusal {
                return .failed(TLSFailure(kind: .refusedPeer, reason: refusal, peerKey: verify.refusedKey))
            }
            if reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE {
                return .failed(TLSFailure(kind: .refusedPeer, reason: "the client presented no certificate"))
            }
            if reason == SSL_R_HTTP_REQUEST {
                return .failed(TLSFailure(kind: .error, reason: "the client spoke plain HTTP to a TLS listener"))
            }
            if peerAlert {
                return .failed(TLSFailure(kind: .refusedByPeer, reason: "the peer sent the alert \"\(text ?? "?")\""))
            }
            if err == SSL_ERROR_SYSCALL {
                if savedErrno == 0 || savedErrno == ECONNRESET || savedErrno == EPIPE {
                    if handshaking {
                        return .failed(
                            TLSFailure(kind: .error, reason: "the peer closed the connection in the handshake"))
                    }
                    return .closed
                }
                return .failed(TLSFailure(kind: .error, reason: "TLS I/O failed: \(errnoText(savedErrno))"))
            }
            if !handshaking, text == "unexpected eof while reading" { return .closed }
            return .failed(TLSFailure(kind: .error, reason: text ?? "TLS error \(err)"))
        }
    }
}
