import CShims
import Dispatch
import Foundation
import ProvCrypto
import Synchronization

/// An HTTP/1.1 server over plain TCP or TLS 1.3 (Specs/transport.md).
///
/// One event-loop thread owns every connection (non-blocking sockets, epoll, non-blocking TLS); a fixed pool of
/// worker threads runs the handler. The handler gets the parsed request and an `HTTPResponder` to answer with,
/// at once or later from any thread. Thread count stays `workerThreads + 1` whatever the number of connections.
public final class HTTPServer: Sendable {
    private let loop: ServerLoop
    private let loopThreadDone = DispatchSemaphore(value: 0)
    private let stopped = Mutex(false)

    /// The address the server listens on, with the port the system picked when the configuration asked for 0.
    public var localAddress: SocketAddress { loop.localAddress }
    public var port: Int { loop.localAddress.port }
    /// The counters now, for metrics.
    public var counters: HTTPServerCounters { loop.counters.snapshot() }

    /// The request handler: called on a worker thread once per request. It must answer through the responder
    /// exactly once, now or later from any thread (a responder released unanswered answers 500).
    public typealias Handler = @Sendable (HTTPRequest, HTTPResponder) -> Void

    private init(loop: ServerLoop) { self.loop = loop }

    /// Binds, listens and starts the loop and worker threads. Throws `NetError` with code `.addressInUse` when the
    /// address is taken, `.invalidAddress` or `.invalidConfiguration` for a bad configuration, `.tls` when the
    /// identity cannot be used. Ignores SIGPIPE for the process (writes also use MSG_NOSIGNAL).
    public static func start(_ configuration: HTTPServerConfiguration, handler: @escaping Handler) throws
        -> HTTPServer
    {
        let c = configuration
        guard c.workerThreads >= 1, c.maxConnections >= 1, c.maxConnectionsPerAddress >= 1,
            c.limits.maxRequestLineBytes >= 16, c.limits.maxHeaderBytes >= 1, c.limits.maxHeaderCount >= 1,
            c.limits.maxBodyBytes >= 0, c.maxBufferedBodyBytes >= c.limits.maxBodyBytes
        else {
            throw NetError(
                .invalidConfiguration,
                "server configuration: workerThreads, maxConnections and maxConnectionsPerAddress must be at least 1, "
                    + "the request line limit at least 16, header limits at least 1, and the body budget at least "
                    + "the largest body")
        }
        prov_ignore_sigpipe()
        let addresses = try SocketAddress.resolve(c.address)
        let address = addresses.first { $0.family == AF_INET } ?? addresses[0]
        let tls = try c.tls.map { try TLSContext(server: $0) }
        let loop = try ServerLoop(configuration: c, address: address, tls: tls, handler: handler)
        let server = HTTPServer(loop: loop)
        let done = server.loopThreadDone
        let thread = Thread {
            loop.run()
            done.signal()
        }
        thread.name = "prov-net-loop"
        thread.start()
        let mode = tls == nil ? "HTTP" : (c.tls?.clientKeys == nil ? "HTTPS" : "HTTPS with client keys pinned")
        loop.log(.info, .listening, "listening on \(loop.localAddress) (\(mode))")
        return server
    }

    /// Stops accepting, lets requests in flight be answered for up to `timeouts.shutdownGrace`, closes every
    /// connection and ends the threads. Returns once the loop thread has ended. Safe to call more than once.
    public func shutdown() {
        let first = stopped.withLock { s -> Bool in
            defer { s = true }
            return !s
        }
        if first {
            loop.post(.shutdown)
            loopThreadDone.wait()
        }
    }

    deinit { shutdown() }
}

/// Answers one request. Call `respond` once, from any thread, now or later: the node answers a write only after its
/// fsync. Later calls are ignored.
public final class HTTPResponder: Sendable {
    private let loop: ServerLoop
    private let connectionID: UInt64
    private let headRequest: Bool
    private let clientAsksClose: Bool
    private let answered = Atomic<Bool>(false)

    init(loop: ServerLoop, connectionID: UInt64, headRequest: Bool, clientAsksClose: Bool) {
        self.loop = loop
        self.connectionID = connectionID
        self.headRequest = headRequest
        self.clientAsksClose = clientAsksClose
    }

    /// Sends `response` (with Content-Length; no body bytes for HEAD, 204 and 304). Returns false when this responder
    /// has already answered. A response whose header fields are invalid is replaced by a 500 and logged. A response
    /// with `Connection: close` closes the connection after it.
    @discardableResult
    public func respond(_ response: HTTPResponse) -> Bool {
        guard answered.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return false }
        send(response)
        return true
    }

    private func send(_ response: HTTPResponse) {
        let close = clientAsksClose || response.asksToClose || loop.stopping.load(ordering: .relaxed)
        let date = HTTPDate.now
        var bytes = response.serialized(headRequest: headRequest, close: close, date: date)
        if bytes == nil {
            loop.log(
                .error, .invalidResponse,
                "the handler's \(response.status) response has an invalid status or header field; sent 500 instead")
            bytes = HTTPResponse.text(500, "internal error\n").serialized(
                headRequest: headRequest, close: close, date: date)
        }
        loop.post(.response(connection: connectionID, bytes: bytes!, close: close))
    }

    deinit {
        if !answered.load(ordering: .acquiring) {
            send(HTTPResponse.text(500, "the request was not answered\n"))
        }
    }
}

/// The server's counters, updated from the loop thread and read from any thread.
final class ServerCounters: Sendable {
    let open = Atomic<Int>(0)
    let accepted = Atomic<Int>(0)
    let requests = Atomic<Int>(0)
    let responses = Atomic<Int>(0)
    let handshakeRefused = Atomic<Int>(0)
    let handshakeFailed = Atomic<Int>(0)
    let badRequest = Atomic<Int>(0)
    let tooLarge = Atomic<Int>(0)
    let timeouts = Atomic<Int>(0)
    let overCapacity = Atomic<Int>(0)
    let evicted = Atomic<Int>(0)
    let refusedOnHead = Atomic<Int>(0)
    let overBudget = Atomic<Int>(0)
    let bufferedBodyBytes = Atomic<Int>(0)

    func snapshot() -> HTTPServerCounters {
        var s = HTTPServerCounters()
        s.connectionsOpen = open.load(ordering: .relaxed)
        s.connectionsAccepted = accepted.load(ordering: .relaxed)
        s.requests = requests.load(ordering: .relaxed)
        s.responses = responses.load(ordering: .relaxed)
        s.handshakeRefused = handshakeRefused.load(ordering: .relaxed)
        s.handshakeFailed = handshakeFailed.load(ordering: .relaxed)
        s.badRequest = badRequest.load(ordering: .relaxed)
        s.tooLarge = tooLarge.load(ordering: .relaxed)
        s.timeouts = timeouts.load(ordering: .relaxed)
        s.overCapacity = overCapacity.load(ordering: .relaxed)
        s.evicted = evicted.load(ordering: .relaxed)
        s.refusedOnHead = refusedOnHead.load(ordering: .relaxed)
        s.overBudget = overBudget.load(ordering: .relaxed)
        s.bufferedBodyBytes = bufferedBodyBytes.load(ordering: .relaxed)
        return s
    }
}

extension Atomic where Value == Int {
    func increment() { wrappingAdd(1, ordering: .relaxed) }
    func decrement() { wrappingSubtract(1, ordering: .relaxed) }
}
