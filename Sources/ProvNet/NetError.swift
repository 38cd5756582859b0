import COpenSSL
import CShims
import Glibc
import ProvCrypto

/// A failure in the network layer: a bad address, a refused or timed-out connection, a refused TLS handshake, a
/// malformed or oversized response.
///
/// Errors compare equal by code, so callers and tests can match on what went wrong; `reason` says it for a human
/// (which address, which limit, what the peer did), and never quotes bytes the peer sent.
public typealias NetError = CodedError<NetErrorCode>

/// What went wrong in the network layer.
public enum NetErrorCode: String, Sendable {
    /// The "host:port" text is not an address (or the host does not resolve).
    case invalidAddress
    /// The address to listen on is taken by another socket.
    case addressInUse
    /// Nothing listens at the address (`ECONNREFUSED`).
    case connectionRefused
    /// Connecting, writing or reading took longer than the configured timeout.
    case timeout
    /// The TLS handshake was refused: the peer's key is not pinned, or the peer refused ours.
    case tlsRefused
    /// Another TLS failure (protocol error, unusable certificate, OpenSSL error).
    case tls
    /// The peer closed the connection before the exchange was complete.
    case connectionClosed
    /// The peer's response does not follow HTTP/1.1 (RFC 9112), or uses a framing we do not accept.
    case malformedResponse
    /// The response body is larger than the configured limit.
    case bodyTooLarge
    /// The request cannot be sent as given (invalid method, target or header).
    case invalidRequest
    /// The configuration cannot work (a limit of zero, no worker threads).
    case invalidConfiguration
    /// The client was shut down (`HTTPClient.shutdown()`), during the call or before it.
    case cancelled
    /// Another system call failed; the reason names it and the errno text.
    case io
}

extension NetError {
    /// An error for the failed system call `what`, from `errno`.
    static func posix(_ what: String, errno code: Int32 = errno, fileID: String = #fileID, line: Int = #line)
        -> NetError
    {
        let kind: Code =
            switch code {
            case ECONNREFUSED: .connectionRefused
            case EADDRINUSE: .addressInUse
            case ETIMEDOUT: .timeout
            case EPIPE, ECONNRESET, ECONNABORTED: .connectionClosed
            default: .io
            }
        return NetError(kind, "\(what): \(errnoText(code))", fileID: fileID, line: line)
    }
}

/// The text of an errno value.
func errnoText(_ code: Int32) -> String {
    String(cString: strerror(code))
}

/// The first entry of this thread's OpenSSL error queue as text (such as "tlsv13 alert certificate required"), its
/// reason code, and whether it is an alert the peer sent; drains the queue.
func drainOpenSSLErrors() -> (text: String?, peerAlert: Bool, reason: Int32) {
    var first: String?
    var alert = false
    var reason: Int32 = 0
    while case let e = ERR_get_error(), e != 0 {
        if first == nil {
            if let r = ERR_reason_error_string(e) {
                first = String(cString: r)
            } else {
                first = "OpenSSL error \(e)"
            }
            // Reasons from SSL_AD_REASON_OFFSET (1000) up are alerts received from the peer.
            alert = prov_err_lib(e) == ERR_LIB_SSL && prov_err_reason(e) >= 1000
            reason = prov_err_reason(e)
        }
    }
    return (first, alert, reason)
}
