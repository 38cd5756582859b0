/// How long a server waits for each phase of a connection (Specs/transport.md §Timeouts).
public struct HTTPServerTimeouts: Sendable, Equatable {
    /// From accept to a finished TLS handshake.
    public var handshake: Duration = .seconds(10)
    /// For a whole request head: from the end of the handshake (or accept) for a connection's first request, from
    /// its first byte for a later one. A client that sends nothing is dropped after this too.
    public var header: Duration = .seconds(10)
    /// For a whole body, from the end of the head.
    public var body: Duration = .seconds(30)
    /// Between requests on a kept-alive connection, before the next request's first byte.
    public var idle: Duration = .seconds(60)
    /// A write that makes no progress (the client does not read).
    public var write: Duration = .seconds(30)
    /// For the handler to answer; after it the client gets 503 and the connection is closed.
    public var handler: Duration = .seconds(60)
    /// In `shutdown()`, for requests in flight to be answered before everything is closed.
    public var shutdownGrace: Duration = .seconds(5)

    public init() {}
}

/// Structured events a server or client reports, for the caller's log. Nothing is printed by ProvNet itself.
public struct NetEvent: Sendable {
    public enum Level: String, Sendable, Comparable {
        case debug, info, warning, error

        public static func < (a: Level, b: Level) -> Bool {
            let order: [Level] = [.debug, .info, .warning, .error]
            return order.firstIndex(of: a)! < order.firstIndex(of: b)!
        }
    }

    public enum Kind: String, Sendable {
        /// The server listens (message names the address).
        case listening
        /// `shutdown()` began: the listener is closed, requests in flight get their answers.
        case stopping
        /// The server stopped.
        case stopped
        /// A kept-alive connection idle for the idle timeout was closed (debug level: this is normal).
        case idleClosed
        /// A TLS peer's key was refused during the handshake, or the peer refused ours.
        case handshakeRefused
        /// A TLS handshake failed otherwise (not TLS, protocol error, closed midway).
        case handshakeFailed
        /// A malformed request, answered 4xx/5xx and closed.
        case badRequest
        /// A request over a size limit, answered 413/414/431 and closed.
        case tooLarge
        /// A connection dropped for a timeout.
        case timeout
        /// A connection closed at once because the server (or its address) holds its connections at the cap.
        case overCapacity
        /// An idle connection closed to make room at a connection cap.
        case evicted
        /// A request refused on its head (by `headCheck`, or over the body budget), its body not read.
        case refused
        /// accept(2) failed (for example out of file descriptors); the listener pauses briefly.
        case acceptFailed
        /// A handler's response could not be sent as given (invalid header), answered 500.
        case invalidResponse
        /// A connection failed with an I/O error.
        case connectionError
    }

    public var level: Level
    public var kind: Kind
    /// What happened, for a human; never quotes request bytes.
    public var message: String
    /// The peer's address, when the event is about one connection.
    public var remote: SocketAddress?
    /// The raw Ed25519 key the peer presented, when the event is about one (such as a refused key).
    public var peerKey: [UInt8]?

    public init(
        level: Level, kind: Kind, message: String, remote: SocketAddress? = nil, peerKey: [UInt8]? = nil
    ) {
        self.level = level
        self.kind = kind
        self.message = message
        self.remote = remote
        self.peerKey = peerKey
    }
}

/// Everything an `HTTPServer` needs besides its handler.
public struct HTTPServerConfiguration: Sendable {
    /// "host:port" to listen on; port 0 picks a free port (see `HTTPServer.localAddress`).
    public var address: String = "127.0.0.1:0"
    /// nil: plain HTTP. Set: TLS 1.3, and mutual authentication when `tls.clientKeys` is set.
    public var tls: TLSServerConfiguration?
    public var limits = HTTPServerLimits()
    public var timeouts = HTTPServerTimeouts()
    /// Threads that run the handler. Connections are served by one event-loop thread whatever their number.
    public var workerThreads = 4
    /// Open connections at most. At the cap a new connection takes the place of the longest-idle connection of the
    /// address that holds the most (counted `evicted`); when none is idle it is closed at once (`overCapacity`).
    public var maxConnections = 1024
    /// Open connections of one client address at most: past it a new connection from that address takes the place
    /// of that address's longest-idle connection, or is closed at once (`overCapacity`). One address cannot hold
    /// the whole server.
    public var maxConnectionsPerAddress = 256
    /// Request bodies held in memory at once, across every connection: a request whose body would pass it is
    /// answered 503 with `Retry-After` before its body is read.
    public var maxBufferedBodyBytes = 64 << 20
    /// Called on the loop thread with each request's head (the body not yet read; `body` is empty) and its
    /// Content-Length. A response refuses the request: it is sent with `Connection: close` and the body is never
    /// read. Must be quick: it runs on the thread that serves every connection.
    public var headCheck: (@Sendable (HTTPRequest, Int) -> HTTPResponse?)?
    /// Receives the server's log events, on the loop or a worker thread: keep it quick.
    public var logger: (@Sendable (NetEvent) -> Void)?

    public init(address: String = "127.0.0.1:0", tls: TLSServerConfiguration? = nil) {
        self.address = address
        self.tls = tls
    }
}

/// A snapshot of a server's counters, for metrics.
public struct HTTPServerCounters: Sendable, Equatable {
    /// Connections open now.
    public var connectionsOpen = 0
    /// Connections accepted since start (including those closed for capacity).
    public var connectionsAccepted = 0
    /// Requests passed to the handler.
    public var requests = 0
    /// Responses written completely.
    public var responses = 0
    /// TLS handshakes refused for the key (ours or theirs).
    public var handshakeRefused = 0
    /// TLS handshakes that failed otherwise.
    public var handshakeFailed = 0
    /// Malformed requests (400, 417, 501, 505).
    public var badRequest = 0
    /// Requests over a size limit (413, 414, 431).
    public var tooLarge = 0
    /// Connections dropped for a timeout (handshake, header, body, write, handler).
    public var timeouts = 0
    /// Connections closed at accept because `maxConnections` were open, or the address's `maxConnectionsPerAddress`.
    public var overCapacity = 0
    /// Idle connections closed to make room for a new one at a cap.
    public var evicted = 0
    /// Requests refused on their head (`headCheck`), their body not read.
    public var refusedOnHead = 0
    /// Requests answered 503 because their body would pass `maxBufferedBodyBytes`.
    public var overBudget = 0
    /// Request body bytes held in memory now.
    public var bufferedBodyBytes = 0

    public init() {}
}
