import CShims
import Glibc
import ProvCrypto
import Synchronization

/// Settings of an `HTTPClient`.
public struct HTTPClientConfiguration: Sendable {
    /// nil: plain HTTP. Set: TLS 1.3 with the server's key pinned, and a client certificate when `tls.identity` is
    /// set.
    public var tls: TLSClientConfiguration?
    /// For TCP connect and the TLS handshake together.
    public var connectTimeout: Duration = .seconds(5)
    /// The longest wait for the server's next bytes.
    public var readTimeout: Duration = .seconds(30)
    /// The longest wait for the socket to take more of the request.
    public var writeTimeout: Duration = .seconds(30)
    /// One whole exchange, connect included.
    public var requestTimeout: Duration = .seconds(120)
    /// A larger response body fails with `.bodyTooLarge` (and the connection is closed).
    public var maxResponseBodyBytes = 64 * 1024 * 1024
    /// Status line excluded, CRLFs included.
    public var maxResponseHeadBytes = 64 * 1024
    /// Resend a POST (or another non-idempotent request) once on a new connection when a kept-alive connection
    /// turns out closed before any response byte arrived. Off by default (RFC 9112 §9.3.1); turn it on for routes
    /// whose requests are idempotent by design.
    public var retryNonIdempotent = false

    public init(tls: TLSClientConfiguration? = nil) { self.tls = tls }
}

/// A blocking HTTP/1.1 client for one server address, reusing one kept-alive connection (Specs/transport.md
/// §Client).
///
/// Calls block the calling thread until the response is read or a timeout passes: meant for dedicated threads
/// (replication), never for the cooperative thread pool. Concurrent calls on one client take turns. Throws
/// `NetError`: `.connectionRefused`, `.timeout`, `.tlsRefused` (with the reason), `.tls`, `.connectionClosed`,
/// `.malformedResponse`, `.bodyTooLarge`, `.invalidRequest`, `.invalidAddress`, `.cancelled`, `.io`.
public final class HTTPClient: Sendable {
    /// The "host:port" this client dials.
    public let address: String
    public let configuration: HTTPClientConfiguration
    private let hostHeader: String
    private let tls: TLSContext?
    private let state = Mutex<ClientState>(ClientState())
    private let opened = Atomic<Int>(0)
    /// An eventfd that `shutdown()` makes readable for good: every wait polls it beside the socket.
    private let cancelFD: Int32
    private let isShutDown = Atomic<Bool>(false)

    private struct ClientState: ~Copyable {
        var connection: ClientConnection?
    }

    /// Checks the address and builds the TLS context; connects on the first request.
    public init(address: String, configuration: HTTPClientConfiguration = HTTPClientConfiguration()) throws {
        let (host, port) = try SocketAddress.split(address)
        prov_ignore_sigpipe()
        self.address = address
        self.configuration = configuration
        hostHeader = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        tls = try configuration.tls.map { try TLSContext(client: $0) }
        cancelFD = prov_eventfd()
        guard cancelFD >= 0 else { throw NetError.posix("eventfd") }
    }

    deinit { Glibc.close(cancelFD) }

    /// Connections this client has opened so far (1 while keep-alive holds).
    public var connectionsOpened: Int { opened.load(ordering: .relaxed) }

    /// The pinned key of the server on the open connection, if any.
    public var serverKey: Ed25519PublicKey? { state.withLock { $0.connection?.tls?.peerKey } }

    /// GET `target`.
    public func get(_ target: String, headers: HTTPHeaders = [:]) throws -> HTTPResponse {
        try send(method: "GET", target: target, headers: headers)
    }

    /// POST `body` to `target`.
    public func post(_ target: String, body: [UInt8], headers: HTTPHeaders = [:]) throws -> HTTPResponse {
        try send(method: "POST", target: target, headers: headers, body: body)
    }

    /// Sends one request and reads its response. The client writes Host (unless given), Content-Length (for a body,
    /// and for POST, PUT and PATCH); Content-Length, Transfer-Encoding and Connection fields given are dropped.
    /// `maxBodyBytes` lowers the configuration's limit on the response body for this request (what the caller knows
    /// a right answer can hold); a body over it fails with `.bodyTooLarge` before it is read.
    public func send(
        method: String, target: String, headers: HTTPHeaders = [:], body: [UInt8] = [], maxBodyBytes: Int? = nil
    ) throws -> HTTPResponse {
        let limit = min(maxBodyBytes ?? configuration.maxResponseBodyBytes, configuration.maxResponseBodyBytes)
        guard !isShutDown.load(ordering: .acquiring) else {
            throw NetError(.cancelled, "the client for \(address) was shut down")
        }
        let request = try serialize(method: method, target: target, headers: headers, body: body)
        let deadline = Instant.now + configuration.requestTimeout
        let idempotent = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"].contains(method)
        return try state.withLock { s throws -> HTTPResponse in
            var retried = false
            while true {
                if let c = s.connection, Sockets.isReadable(c.fd) {
                    s.connection = nil  // closed by the server while idle (or it sent bytes nobody asked for)
                }
                let reused = s.connection != nil
                let c: ClientConnection
                if let existing = s.connection {
                    c = existing
                } else {
                    c = try connect(deadline: deadline)
                    s.connection = c
                }
                do {
                    let (response, reusable) = try exchange(
                        c, request, method: method, limit: limit, deadline: deadline)
                    if !reusable { s.connection = nil }
                    return response
                } catch let stale as StaleConnection where reused {
                    s.connection = nil
                    if !retried && (idempotent || configuration.retryNonIdempotent)
                        && !isShutDown.load(ordering: .acquiring)
                    {
                        retried = true
                        continue
                    }
                    throw NetError(
                        .connectionClosed,
                        "\(address) closed the kept-alive connection before answering (\(stale.error.reason)); the "
                            + "\(method) was not retried")
                } catch let stale as StaleConnection {
                    s.connection = nil
                    throw stale.error
                } catch {
                    s.connection = nil
                    throw error
                }
            }
        }
    }

    /// Stops the client for good: a call blocked in connect, write or read fails at once with `.cancelled`, and so
    /// does every later call. For stopping replication threads when the node shuts down.
    public func shutdown() {
        isShutDown.store(true, ordering: .releasing)
        prov_eventfd_signal(cancelFD)
    }

    /// Closes the kept-alive connection, if any (waits for a call in flight to finish).
    public func close() {
        let c = state.withLock { s -> ClientConnection? in
            let c = s.connection
            s.connection = nil
            return c
        }
        c?.tls?.shutdown()
    }

    // MARK: Internals

    private struct StaleConnection: Error {
        var error: NetError
    }

    private func serialize(method: String, target: String, headers: HTTPHeaders, body: [UInt8]) throws -> [UInt8] {
        guard isToken(method.utf8) else { throw NetError(.invalidRequest, "the method is not an HTTP token") }
        guard target.hasPrefix("/") || target == "*",
            target.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E && $0 != UInt8(ascii: "#") })
        else {
            throw NetError(.invalidRequest, "the request target must be a path of visible ASCII characters")
        }
        var out = Array("\(method) \(target) HTTP/1.1\r\n".utf8)
        if !headers.contains("host") { out += "Host: \(hostHeader)\r\n".utf8 }
        for field in headers {
            guard isToken(field.name.utf8), field.value.utf8.allSatisfy(isFieldValueChar) else {
                throw NetError(
                    .invalidRequest, "a header field name is not a token, or its value has a control character")
            }
            if ["content-length", "transfer-encoding", "connection"].contains(where: {
                asciiCaseInsensitiveEqual($0, field.name)
            }) {
                continue
            }
            out += "\(field.name): \(field.value)\r\n".utf8
        }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) {
            out += "Content-Length: \(body.count)\r\n".utf8
        }
        out += "\r\n".utf8
        out += body
        return out
    }

    private func connect(deadline: Instant) throws -> ClientConnection {
        let connectDeadline = min(deadline, Instant.now + configuration.connectTimeout)
        let addresses = try SocketAddress.resolve(address)
        var lastError = NetError(.connectionRefused, "cannot connect to \(address)")
        for a in addresses {
            let fd: Int32
            do {
                fd = try Sockets.connect(to: a, deadline: connectDeadline, cancel: cancelFD)
            } catch let e as NetError {
                lastError = e
                if e.code == .timeout || e.code == .cancelled { break }
                continue
            }
            opened.increment()
            let c: ClientConnection
            do {
                c = try ClientConnection(fd: fd, tls: tls)
            } catch {
                Glibc.close(fd)
                throw error
            }
            if let session = c.tls { try handshake(session, fd: fd, deadline: connectDeadline) }
            return c
        }
        throw lastError
    }

    private func handshake(_ session: TLSSession, fd: Int32, deadline: Instant) throws {
        while true {
            switch session.handshake() {
            case .done: return
            case .wantRead:
                guard try Sockets.waitFor(fd, events: Int16(POLLIN), deadline: deadline, cancel: cancelFD) else {
                    throw NetError(.timeout, "the TLS handshake with \(address) timed out")
                }
            case .wantWrite:
                guard try Sockets.waitFor(fd, events: Int16(POLLOUT), deadline: deadline, cancel: cancelFD) else {
                    throw NetError(.timeout, "the TLS handshake with \(address) timed out")
                }
            case .closed:
                throw NetError(.tlsRefused, "\(address) closed the connection during the TLS handshake")
            case .failed(let f):
                throw tlsFailure(f)
            }
        }
    }

    private func tlsFailure(_ f: TLSFailure) -> NetError {
        switch f.kind {
        case .refusedPeer:
            return NetError(.tlsRefused, "refused the TLS handshake with \(address): \(f.reason)")
        case .refusedByPeer:
            guard let identity = configuration.tls?.identity else {
                return NetError(
                    .tlsRefused,
                    "\(address) refused the TLS handshake (\(f.reason)): it asks for a client certificate and this "
                        + "client has none")
            }
            return NetError(
                .tlsRefused,
                "\(address) refused the TLS handshake (\(f.reason)): it does not accept this client's key "
                    + hex(identity.publicKey.rawRepresentation))
        case .error:
            return NetError(.tls, "TLS with \(address) failed: \(f.reason)")
        }
    }

    /// Writes the request and reads the response. Throws `StaleConnection` when the connection failed before any
    /// byte of the response arrived.
    private func exchange(
        _ c: ClientConnection, _ request: [UInt8], method: String, limit: Int, deadline: Instant
    ) throws -> (HTTPResponse, Bool) {
        do {
            try write(c, request, deadline: deadline)
        } catch let e as NetError where e.code == .connectionClosed {
            // The server may have answered (413), or refused our certificate with an alert, and closed while the
            // request was on its way: read what it said.
            do {
                let answered = try readResponse(
                    c, method: method, limit: limit, deadline: min(deadline, Instant.now + .seconds(1)))
                return (answered.0, false)
            } catch let said as NetError where said.code == .tlsRefused || said.code == .cancelled {
                throw said
            } catch {
                throw StaleConnection(error: e)
            }
        }
        return try readResponse(c, method: method, limit: limit, deadline: deadline)
    }

    private func write(_ c: ClientConnection, _ bytes: [UInt8], deadline: Instant) throws {
        var offset = 0
        while offset < bytes.count {
            let step: TLSStep = bytes.withUnsafeBytes { raw in
                let rest = UnsafeRawBufferPointer(rebasing: raw[offset...])
                if let tls = c.tls { return tls.write(rest) }
                let n = Glibc.send(c.fd, rest.baseAddress, rest.count, Int32(MSG_NOSIGNAL))
                if n >= 0 { return .done(n) }
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return .wantWrite }
                return .failed(TLSFailure(kind: .error, reason: errnoText(errno)))
            }
            switch step {
            case .done(let n): offset += n
            case .wantWrite, .wantRead:
                let events = { if case .wantRead = step { return Int16(POLLIN) } else { return Int16(POLLOUT) } }()
                let wait = min(deadline, Instant.now + configuration.writeTimeout)
                guard try Sockets.waitFor(c.fd, events: events, deadline: wait, cancel: cancelFD) else {
                    throw NetError(.timeout, "writing the request to \(address) timed out")
                }
            case .closed:
                throw NetError(.connectionClosed, "\(address) closed the connection while the request was sent")
            case .failed(let f):
                if f.kind != .error { throw tlsFailure(f) }
                throw NetError(
                    .connectionClosed,
                    "writing the request to \(address) failed (\(f.reason)): the connection is closed")
            }
        }
    }

    /// Reads more bytes into the connection's buffer; false at the end of the stream.
    private func fill(_ c: ClientConnection, deadline: Instant, received: Bool) throws -> Bool {
        while true {
            let step: TLSStep = c.scratch.withUnsafeMutableBytes { buf in
                if let tls = c.tls { return tls.read(into: buf) }
                let n = recv(c.fd, buf.baseAddress, buf.count, 0)
                if n > 0 { return .done(n) }
                if n == 0 { return .closed }
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return .wantRead }
                return .failed(TLSFailure(kind: .error, reason: errnoText(errno)))
            }
            switch step {
            case .done(let n):
                c.input.append(contentsOf: c.scratch[..<n])
                return true
            case .wantRead, .wantWrite:
                let events = { if case .wantWrite = step { return Int16(POLLOUT) } else { return Int16(POLLIN) } }()
                let wait = min(deadline, Instant.now + configuration.readTimeout)
                guard try Sockets.waitFor(c.fd, events: events, deadline: wait, cancel: cancelFD) else {
                    throw NetError(.timeout, "\(address) did not answer in time")
                }
            case .closed:
                return false
            case .failed(let f):
                if f.kind != .error { throw tlsFailure(f) }
                let e = NetError(.connectionClosed, "the connection to \(address) failed: \(f.reason)")
                if !received { throw StaleConnection(error: e) }
                throw e
            }
        }
    }

    private func readResponse(_ c: ClientConnection, method: String, limit: Int, deadline: Instant) throws -> (
        HTTPResponse, Bool
    ) {
        var parser = HTTPResponseParser(maxHeadBytes: configuration.maxResponseHeadBytes)
        var received = !c.input.isEmpty
        var head: HTTPResponseHead
        var headLength: Int
        while true {
            let parsed = c.input.withUnsafeBytes { buf -> Result<(HTTPResponseHead, Int)?, NetError> in
                do throws(NetError) {
                    return .success(try parser.parseHead(buf, requestMethod: method))
                } catch {
                    return .failure(error)
                }
            }
            if case .success(let found?) = parsed {
                (head, headLength) = found
                if head.status < 200 {
                    // Interim responses (RFC 9110 §15.2): skip them; 101 would change protocols, which we never ask.
                    guard head.status != 101 else {
                        throw NetError(.malformedResponse, "\(address) switched protocols unasked")
                    }
                    c.input.removeFirst(headLength)
                    parser.reset()
                    continue
                }
                break
            }
            if case .failure(let e) = parsed { throw e }
            guard try fill(c, deadline: deadline, received: received) else {
                if !received {
                    let hint =
                        c.tls == nil
                        ? " (is it a TLS listener?)" : " (it may not accept this client's key)"
                    let e = NetError(
                        .connectionClosed, "\(address) closed the connection without answering\(c.fresh ? hint : "")")
                    if c.fresh { throw e }
                    throw StaleConnection(error: e)
                }
                throw NetError(
                    .malformedResponse, "\(address) closed the connection in the middle of the response head")
            }
            received = true
        }
        c.fresh = false
        c.input.removeFirst(headLength)
        if let length = head.contentLength {
            guard length <= limit else {
                throw NetError(.bodyTooLarge, "the response body of \(length) bytes is over the limit of \(limit)")
            }
            while c.input.count < length {
                guard try fill(c, deadline: deadline, received: true) else {
                    throw NetError(
                        .connectionClosed,
                        "\(address) closed the connection after \(c.input.count) of \(length) body bytes")
                }
            }
            let body: [UInt8]
            if c.input.count == length {
                body = c.input  // the usual case: the buffer is the body, no copy
                c.input = []
            } else {
                body = Array(c.input[..<length])
                c.input.removeFirst(length)
            }
            // Bytes after the response that nobody asked for: the connection cannot be trusted for the next one.
            let reusable = head.keepAlive && c.input.isEmpty
            return (HTTPResponse(status: head.status, headers: head.headers, body: body), reusable)
        }
        // No Content-Length: the body runs to the end of the connection (RFC 9112 §6.3).
        while try fill(c, deadline: deadline, received: true) {
            guard c.input.count <= limit else {
                throw NetError(.bodyTooLarge, "the response body is over the limit of \(limit) bytes")
            }
        }
        let body = c.input
        c.input = []
        return (HTTPResponse(status: head.status, headers: head.headers, body: body), false)
    }
}

/// One client connection: the socket, its TLS session and bytes read past the last response.
final class ClientConnection {
    let fd: Int32
    let tls: TLSSession?
    var input: [UInt8] = []
    /// Where reads land before they join `input`: one buffer per connection, not one per read.
    var scratch = [UInt8](repeating: 0, count: 64 * 1024)
    /// No response has been read on this connection yet.
    var fresh = true

    init(fd: Int32, tls context: TLSContext?) throws {
        self.fd = fd
        tls = try context.map { try TLSSession(context: $0, fd: fd) }
    }

    deinit { Glibc.close(fd) }
}
