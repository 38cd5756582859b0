import Foundation
import ProvCrypto
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

    /// The value of query parameter `name` (`+` and percent escapes decoded; nil when absent or malformed).
    public func parameter(_ name: String) -> String? {
        guard let query else { return nil }
        for pair in query.utf8.split(separator: UInt8(ascii: "&")) {
            let eq = pair.firstIndex(of: UInt8(ascii: "=")) ?? pair.endIndex
            guard pair[pair.startIndex..<eq].elementsEqual(name.utf8) else { continue }
            return Self.percentDecoded(
                eq < pair.endIndex ? pair[pair.index(after: eq)...] : pair[eq..<eq], plusIsSpace: true)
        }
        return nil
    }

    /// `%XX` escapes decoded, and in a query `+` as a space; nil for a broken escape or bytes that are not UTF-8.
    static func percentDecoded(_ raw: Substring.UTF8View.SubSequence, plusIsSpace: Bool) -> String? {
        var out = [UInt8]()
        out.reserveCapacity(raw.count)
        var i = raw.startIndex
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        while i < raw.endIndex {
            let c = raw[i]
            if c == UInt8(ascii: "%") {
                let a = raw.index(after: i)
                guard a < raw.endIndex, raw.index(after: a) < raw.endIndex, let h = hex(raw[a]),
                    let l = hex(raw[raw.index(after: a)])
                else { return nil }
                out.append(h << 4 | l)
                i = raw.index(a, offsetBy: 2)
            } else {
                out.append(plusIsSpace && c == UInt8(ascii: "+") ? 0x20 : c)
                i = raw.index(after: i)
            }
        }
        return String(validating: out, as: UTF8.self)
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
        NodeResponse(status: status, contentType: "application/json", body: v.serializedBytes + [0x0A])
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

extension PeerResponse {
    /// The most a right answer to `GET path` of the tlog-tiles read API can hold (Specs/protocol.md §3): an entry
    /// bundle 256 entries of at most `Entry.maxSize` bytes with their 2-byte lengths, a hash tile 256 hashes, a
    /// checkpoint one signed note (`SignedNote.maxSize`); nil for other paths (the client's own limit). A client
    /// stops reading an answer past it, so a source cannot make it hold more than one right answer's worth.
    static func maxBody(_ path: String) -> Int? {
        guard path.hasPrefix("/logs/") else { return nil }
        if path.contains("/tile/entries/") { return 256 * (2 + Entry.maxSize) }
        if path.contains("/tile/") { return 256 * 32 }
        if path.hasSuffix("/checkpoint") || path.contains("/checkpoints/") { return SignedNote.maxSize }
        return nil
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
