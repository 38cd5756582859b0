import Foundation
import ProvLedger

/// A request as the node sees it, whichever listener it came in on.
public struct NodeRequest: Sendable {
    public enum Listener: Sendable, Equatable {
        /// The peer listener: mutual TLS, the caller is the member whose key it presented.
        case peer(org: String)
        /// The API listener: bearer tokens.
        case api
    }

    public var listener: Listener
    public var method: String
    public var path: String
    public var query: String?
    /// The `Authorization` header, if any.
    public var authorization: String?
    /// The `Accept` header, if any.
    public var accept: String?
    public var body: [UInt8]

    public init(
        listener: Listener, method: String, path: String, query: String? = nil, authorization: String? = nil,
        accept: String? = nil, body: [UInt8] = []
    ) {
        self.listener = listener
        self.method = method
        self.path = path
        self.query = query
        self.authorization = authorization
        self.accept = accept
        self.body = body
    }

    /// The value of query parameter `name` (percent-decoded), if present.
    public func parameter(_ name: String) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if kv[0] == name {
                let raw = kv.count > 1 ? String(kv[1]) : ""
                return raw.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            }
        }
        return nil
    }
}

public struct NodeResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, contentType: String, headers: [(String, String)] = [], body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    static func text(_ status: Int, _ s: String, headers: [(String, String)] = []) -> NodeResponse {
        NodeResponse(
            status: status, contentType: "text/plain; charset=utf-8", headers: headers, body: Array((s + "\n").utf8))
    }

    static func json(_ status: Int, _ v: JSONValue) -> NodeResponse {
        NodeResponse(status: status, contentType: "application/json", body: Array((v.serialized + "\n").utf8))
    }

    /// A JSON error body `{"error": …}` with extra members.
    static func error(_ status: Int, _ message: String, _ extra: [JSONMember] = []) -> NodeResponse {
        json(status, .object([JSONMember("error", .string(message))] + extra))
    }

    static func bytes(_ b: [UInt8], immutable: Bool) -> NodeResponse {
        NodeResponse(
            status: 200, contentType: "application/octet-stream",
            headers: [("Cache-Control", immutable ? "public, max-age=31536000, immutable" : "no-store")], body: b)
    }
}

/// What a peer answered.
public struct PeerResponse: Sendable {
    public var status: Int
    public var contentType: String?
    public var body: [UInt8]

    public init(status: Int, contentType: String?, body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }
}

/// A client connection to one peer's listener, used by one thread at a time. It reconnects by itself after a
/// failure; `close` drops the connection (after a peer misbehaved).
public protocol PeerLink: AnyObject, Sendable {
    func request(_ method: String, _ path: String, body: [UInt8]?, contentType: String?) throws -> PeerResponse
    func close()
    /// Makes a call blocked in this link fail at once, from any thread (the node is stopping).
    func interrupt()
}

/// Makes links to a peer: the member's org and its `host:port`.
public typealias PeerLinkFactory = @Sendable (_ org: String, _ address: String) -> PeerLink
