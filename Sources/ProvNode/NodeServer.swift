import Foundation
import ProvCrypto
import ProvLedger
import ProvNet
import Synchronization

/// A node behind real sockets: the peer listener (mutual TLS 1.3, member keys only), the API listener (HTTP, or
/// TLS with `apiTLS`), and links to peers over mutual TLS pinned to each peer's member key (Specs/protocol.md §3).
public final class NodeServer: Sendable {
    public let node: Node
    let peerServer: HTTPServer
    let apiServer: HTTPServer

    public var peerAddress: SocketAddress { peerServer.localAddress }
    public var apiAddress: SocketAddress { apiServer.localAddress }

    /// Opens the node and binds both listeners, then starts replication. Errors say what and where: a bad
    /// configuration, a locked data directory, a busy port.
    public static func start(config: NodeConfig, log: NodeLog) throws -> NodeServer {
        // Links are made once the node is open: they present its key and pin each peer to that member's keys as the
        // newest version of the descriptor has them (Specs/protocol.md §3.1, §8.3).
        let opened = NodeBox()
        let clientTimeouts = HTTPClientConfiguration()
        let node = try Node(config: config, log: log) { org, address in
            guard let node = opened.node, let identity = opened.identity else {
                return NetPeerLink(failure: LedgerError(.io, "the node is not open yet"))
            }
            var c = clientTimeouts
            c.tls = TLSClientConfiguration(
                identity: identity, serverKeys: TLSPeerKeys(allowing: { node.peer(org, mayPresent: $0) }))
            c.connectTimeout = .seconds(3)
            c.readTimeout = .seconds(20)
            return NetPeerLink(address: address, configuration: c)
        }
        // The certificate is for the key the node speaks with as it starts; after a rotation taken live it keeps it
        // until it restarts (peers accept a rotated key, not a revoked one).
        let signer = node.signer
        let identity = try TLSIdentity(key: signer.privateKey, commonName: signer.name)
        opened.set(node, identity)
        // What clients and peers cause (refusals, timeouts, failed handshakes) is limited by its kind: a flood
        // writes a few lines and a count, not a line per connection.
        let netLog: @Sendable (NetEvent) -> Void = { e in
            guard e.level >= .info else { return }
            var fields: KeyValuePairs<String, String> = ["event": e.kind.rawValue]
            if let r = e.remote { fields = ["event": e.kind.rawValue, "remote": r.description] }
            let kind = "net:" + e.kind.rawValue
            switch e.level {
            case .error: log.error(e.message, fields, kind: kind)
            case .warning: log.warn(e.message, fields, kind: kind)
            default:
                if e.kind == .listening || e.kind == .stopped || e.kind == .stopping {
                    log.info(e.message, fields)
                } else if e.kind == .overCapacity || e.kind == .evicted {
                    log.info(e.message, fields, limited: kind)
                }
            }
        }
        // Handlers never wait (a write or an add-checkpoint answers later, from the writer or a replication
        // thread), so one worker per core keeps every core busy without threads queuing for them.
        let workers = max(2, ProcessInfo.processInfo.activeProcessorCount)
        var timeouts = HTTPServerTimeouts()
        timeouts.handshake = .milliseconds(config.requestTimeoutMs)
        timeouts.header = .milliseconds(config.requestTimeoutMs)
        timeouts.body = .milliseconds(config.requestTimeoutMs)
        var peerConfig = HTTPServerConfiguration(
            address: config.peerListen,
            tls: TLSServerConfiguration(
                identity: identity,
                clientKeys: TLSPeerKeys(allowing: { [node] key in node.peerOrg(presenting: key) != nil })))
        peerConfig.limits.maxBodyBytes = 2 << 20
        peerConfig.maxBufferedBodyBytes = 16 << 20
        peerConfig.maxConnections = config.maxConnections
        peerConfig.maxConnectionsPerAddress = config.maxConnectionsPerAddress
        peerConfig.timeouts = timeouts
        peerConfig.logger = netLog
        peerConfig.workerThreads = workers
        peerConfig.headCheck = { [node] head, length in
            guard let key = head.peerKey, let org = node.peerOrg(presenting: key) else {
                return .text(403, "not a member\n")
            }
            return node.admit(Self.nodeRequest(head, listener: .peer(org: org)), contentLength: length).map(
                Self.response)
        }
        let peerServer: HTTPServer
        do {
            peerServer = try HTTPServer.start(peerConfig) { [node] req, responder in
                guard let key = req.peerKey, let org = node.peerOrg(presenting: key) else {
                    responder.respond(.text(403, "not a member\n"))
                    return
                }
                node.handle(Self.nodeRequest(req, listener: .peer(org: org))) { r in responder.respond(Self.response(r))
                }
            }
        } catch let e as NetError {
            node.stop()
            throw LedgerError(.config, "peer listener \(config.peerListen): \(e.reason)")
        }
        var apiConfig = HTTPServerConfiguration(
            address: config.apiListen, tls: config.apiTLS ? TLSServerConfiguration(identity: identity) : nil)
        apiConfig.limits.maxBodyBytes = Node.maxEventsBody
        apiConfig.maxBufferedBodyBytes = config.bodyBudgetBytes
        apiConfig.maxConnections = config.maxConnections
        apiConfig.maxConnectionsPerAddress = config.maxConnectionsPerAddress
        apiConfig.timeouts = timeouts
        apiConfig.logger = netLog
        apiConfig.workerThreads = workers
        apiConfig.headCheck = { [node] head, length in
            node.admit(Self.nodeRequest(head, listener: .api), contentLength: length).map(Self.response)
        }
        let apiServer: HTTPServer
        do {
            apiServer = try HTTPServer.start(apiConfig) { [node] req, responder in
                node.handle(Self.nodeRequest(req, listener: .api)) { r in responder.respond(Self.response(r)) }
            }
        } catch let e as NetError {
            peerServer.shutdown()
            node.stop()
            throw LedgerError(.config, "API listener \(config.apiListen): \(e.reason)")
        }
        node.transportCounters = { [peerServer, apiServer] in
            let p = peerServer.counters
            let a = apiServer.counters
            return [
                "handshake-refused": UInt64(p.handshakeRefused + a.handshakeRefused),
                "handshake-failed": UInt64(p.handshakeFailed + a.handshakeFailed),
                "malformed": UInt64(p.badRequest + a.badRequest),
                "body-too-large": UInt64(p.tooLarge + a.tooLarge),
                "timeout": UInt64(p.timeouts + a.timeouts),
                "over-capacity": UInt64(p.overCapacity + a.overCapacity),
                "evicted-idle": UInt64(p.evicted + a.evicted),
                "over-body-budget": UInt64(p.overBudget + a.overBudget),
            ]
        }
        node.start()
        return NodeServer(node: node, peerServer: peerServer, apiServer: apiServer)
    }

    private init(node: Node, peerServer: HTTPServer, apiServer: HTTPServer) {
        self.node = node
        self.peerServer = peerServer
        self.apiServer = apiServer
    }

    /// Stops cleanly: the writer finishes and answers the group in flight, replication ends, the listeners
    /// close once what is in flight is answered, and the logs are closed.
    public func stop() {
        node.stop()
        apiServer.shutdown()
        peerServer.shutdown()
        node.close()
    }

    static func nodeRequest(_ r: HTTPRequest, listener: NodeRequest.Listener) -> NodeRequest {
        NodeRequest(
            listener: listener, method: r.method, path: r.path, query: r.query,
            authorization: r.headers["Authorization"], accept: r.headers["Accept"], body: r.body)
    }

    static func response(_ r: NodeResponse) -> HTTPResponse {
        var h: HTTPHeaders = [:]
        h.set("Content-Type", r.contentType)
        for (k, v) in r.headers { h.add(k, v) }
        return HTTPResponse(status: r.status, headers: h, body: r.body)
    }
}

/// A peer link over ProvNet's blocking client: mutual TLS, the peer's member key pinned. `add-checkpoint` is safe
/// to resend (a witness answers a repeated checkpoint the same way), so a dead kept-alive connection is retried.
final class NetPeerLink: PeerLink {
    let client: HTTPClient?
    let failure: Error?

    /// A link that fails every request with `failure`.
    init(failure: Error) {
        client = nil
        self.failure = failure
    }

    init(address: String, configuration: HTTPClientConfiguration) {
        var c = configuration
        c.retryNonIdempotent = true
        do {
            client = try HTTPClient(address: address, configuration: c)
            failure = nil
        } catch {
            client = nil
            failure = error
        }
    }

    func request(_ method: String, _ path: String, body: [UInt8]?, contentType: String?) throws -> PeerResponse {
        guard let client else { throw failure! }
        var headers: HTTPHeaders = [:]
        if let contentType { headers.set("Content-Type", contentType) }
        let r = try client.send(
            method: method, target: path, headers: headers, body: body ?? [], maxBodyBytes: PeerResponse.maxBody(path))
        return PeerResponse(status: r.status, contentType: r.headers["Content-Type"], body: r.body)
    }

    func close() { client?.close() }

    func interrupt() { client?.shutdown() }
}

/// The node and its TLS identity, once open, for the peer links it makes (which it starts making only after).
final class NodeBox: Sendable {
    private let value = Mutex<(Node, TLSIdentity)?>(nil)

    var node: Node? { value.withLock { $0?.0 } }
    var identity: TLSIdentity? { value.withLock { $0?.1 } }

    func set(_ node: Node, _ identity: TLSIdentity) { value.withLock { $0 = (node, identity) } }
}
