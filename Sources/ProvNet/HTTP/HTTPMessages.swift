import Glibc
import ProvCrypto
import Synchronization

/// A request as the server's handler sees it.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The request target as sent ("/v1/events?x=1").
    public var target: String
    /// The target's path, not percent-decoded ("/v1/events"); "/" for an absolute-form target without one.
    public var path: String
    /// What follows "?" in the target, nil when there is no "?".
    public var query: String?
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// The client's address.
    public var remoteAddress: SocketAddress
    /// The pinned Ed25519 key the client presented, on a listener with mutual TLS; nil otherwise.
    public var peerKey: Ed25519PublicKey?

    public init(
        method: String, target: String, path: String, query: String?, headers: HTTPHeaders, body: [UInt8],
        remoteAddress: SocketAddress, peerKey: Ed25519PublicKey?
    ) {
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
        self.peerKey = peerKey
    }
}

/// A response: status, header fields and body. The server writes Content-Length (and Date, Connection) itself.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A response with a `Content-Type` and a text body.
    public init(status: Int, contentType: String, body: String) {
        self.init(status: status, headers: ["Content-Type": contentType], body: Array(body.utf8))
    }

    /// A `text/plain; charset=utf-8` response.
    public static func text(_ status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: text)
    }

    /// The standard reason phrase of a status code ("" when we have none).
    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 206: "Partial Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 417: "Expectation Failed"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: ""
        }
    }

    /// Fields the server writes itself; a handler's copies are dropped.
    static let framingFields = ["content-length", "transfer-encoding", "connection", "date", "keep-alive"]

    /// The bytes of this response on an HTTP/1.1 connection: status line, the handler's fields (framing fields
    /// dropped), Date, Content-Length (not for 204 and 304, which have no body), `Connection: close` when `close`,
    /// and the body unless the request was HEAD or the status has none. nil when a field name or value is invalid (header injection).
    package func serialized(headRequest: Bool, close: Bool, date: String) -> [UInt8]? {
        guard (200...999).contains(status) else { return nil }
        let noBody = status == 204 || status == 304
        var out = [UInt8]()
        out.reserveCapacity(128 + headers.count * 32 + (headRequest || noBody ? 0 : body.count))
        out += "HTTP/1.1 \(status) \(Self.reasonPhrase(status))\r\n".utf8
        for field in headers {
            guard isToken(field.name.utf8), field.value.utf8.allSatisfy(isFieldValueChar) else { return nil }
            if Self.framingFields.contains(where: { asciiCaseInsensitiveEqual($0, field.name) }) { continue }
            out += field.name.utf8
            out += ": ".utf8
            out += field.value.utf8
            out += "\r\n".utf8
        }
        out += "Date: \(date)\r\n".utf8
        if !noBody { out += "Content-Length: \(body.count)\r\n".utf8 }
        if close { out += "Connection: close\r\n".utf8 }
        out += "\r\n".utf8
        if !headRequest && !noBody { out += body }
        return out
    }

    /// Whether the handler asked to close the connection after this response.
    var asksToClose: Bool { headers.values("connection").contains { listContains($0, "close") } }
}

/// The IMF-fixdate of the current second (RFC 9110 §5.6.7), cached per second.
enum HTTPDate {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))

    static var now: String {
        var t = time(nil)
        return cache.withLock { c in
            if c.second == t { return c.text }
            var tm = tm()
            gmtime_r(&t, &tm)
            let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
            let text =
                "\(days[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) "
                + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) GMT"
            c = (t, text)
            return text
        }
    }
}
