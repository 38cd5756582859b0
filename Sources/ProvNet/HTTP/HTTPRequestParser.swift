/// Request size limits of a server (Specs/transport.md §Limits).
public struct HTTPServerLimits: Sendable, Equatable {
    /// The request line, without its CRLF (longer: 414).
    public var maxRequestLineBytes: Int
    /// The header section after the request line, CRLFs included (larger: 431).
    public var maxHeaderBytes: Int
    /// Header fields per request (more: 431).
    public var maxHeaderCount: Int
    /// A request body (larger: 413, and the connection is closed).
    public var maxBodyBytes: Int

    public init(
        maxRequestLineBytes: Int = 8 * 1024, maxHeaderBytes: Int = 32 * 1024, maxHeaderCount: Int = 100,
        maxBodyBytes: Int = 1024 * 1024
    ) {
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes
    }
}

/// A request refused by the parser: the status to answer and a short reason that quotes nothing of the request.
package struct HTTPParseError: Error, Equatable, Sendable {
    package var status: Int
    package var reason: String

    package init(_ status: Int, _ reason: String) {
        self.status = status
        self.reason = reason
    }
}

/// A parsed request line and header section (RFC 9112 §3, §5), with the framing decided.
package struct HTTPRequestHead: Sendable, Equatable {
    package var method: String
    package var target: String
    package var path: String
    package var query: String?
    /// 0 for HTTP/1.0, 1 for HTTP/1.1 (and later 1.x, read as 1.1).
    package var minorVersion: Int
    package var headers: HTTPHeaders
    package var contentLength: Int
    /// Whether the connection may carry another request after this one.
    package var keepAlive: Bool
    /// The client sent `Expect: 100-continue` and a body: it waits for a 100 before sending the body.
    package var expectsContinue: Bool
}

/// Incremental HTTP/1.1 request-head parser for one connection's input buffer (Specs/transport.md §Requests).
package struct HTTPRequestParser {
    let limits: HTTPServerLimits
    private var scanner: HeadScanner

    package init(limits: HTTPServerLimits) {
        self.limits = limits
        scanner = HeadScanner(
            maxStartLine: limits.maxRequestLineBytes, maxFieldBytes: limits.maxHeaderBytes,
            maxFields: limits.maxHeaderCount)
    }

    /// Forgets the request just parsed; call before parsing the next one from a buffer with the old one removed.
    package mutating func reset() { scanner.reset() }

    /// Whether a byte of the next request has arrived in a buffer of `count` bytes.
    package func hasStarted(_ count: Int) -> Bool { scanner.hasStarted(count) }

    /// The head and its length once the buffer holds a whole head; nil when more bytes are needed.
    package mutating func parseHead(_ buf: UnsafeRawBufferPointer) throws(HTTPParseError) -> (HTTPRequestHead, Int)? {
        let headLength: Int
        do {
            guard let n = try scanner.scan(buf) else { return nil }
            headLength = n
        } catch {
            switch error {
            case .startLineTooLong: throw HTTPParseError(414, "the request line is longer than the limit")
            case .headTooLarge: throw HTTPParseError(431, "the header section is larger than the limit")
            case .tooManyFields: throw HTTPParseError(431, "more header fields than the limit")
            case .bareLF: throw HTTPParseError(400, "a line ends in LF without CR")
            }
        }
        guard let line = scanner.startLine else { return nil }
        var head = try Self.parseRequestLine(UnsafeRawBufferPointer(rebasing: buf[line]))
        do {
            head.headers = try parseFieldLines(buf, scanner.fieldLines)
        } catch {
            throw HTTPParseError(400, "\(error.reason) (header line \(error.line + 1))")
        }
        try Self.decideFraming(&head, limits: limits)
        return (head, headLength)
    }

    /// `parseHead` as a Result, for closures that cannot throw typed errors.
    package mutating func parseHeadResult(_ buf: UnsafeRawBufferPointer) -> Result<
        (HTTPRequestHead, Int)?, HTTPParseError
    > {
        do { return .success(try parseHead(buf)) } catch { return .failure(error) }
    }

    /// RFC 9112 §3: method SP request-target SP HTTP-version, single spaces, nothing else.
    static func parseRequestLine(_ line: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPRequestHead {
        guard let sp1 = line.firstIndex(of: 0x20) else { throw HTTPParseError(400, "a malformed request line") }
        guard let sp2 = line[(sp1 + 1)...].firstIndex(of: 0x20), line[(sp2 + 1)...].firstIndex(of: 0x20) == nil
        else { throw HTTPParseError(400, "a malformed request line") }
        let method = UnsafeRawBufferPointer(rebasing: line[..<sp1])
        let target = UnsafeRawBufferPointer(rebasing: line[(sp1 + 1)..<sp2])
        let version = UnsafeRawBufferPointer(rebasing: line[(sp2 + 1)...])
        guard isToken(method) else { throw HTTPParseError(400, "an invalid method") }
        // RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT
        guard version.count == 8, version.starts(with: "HTTP/".utf8), version[6] == UInt8(ascii: "."),
            (0x30...0x39).contains(version[5]), (0x30...0x39).contains(version[7])
        else { throw HTTPParseError(400, "an invalid HTTP version") }
        guard version[5] == UInt8(ascii: "1") else { throw HTTPParseError(505, "only HTTP/1.x is supported") }
        let minor = version[7] == UInt8(ascii: "0") ? 0 : 1
        // Visible ASCII only; no fragment in a request target (RFC 9112 §3.2).
        guard !target.isEmpty, target.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E && $0 != UInt8(ascii: "#") }) else {
            throw HTTPParseError(400, "an invalid request target")
        }
        let methodText = String(decoding: method, as: UTF8.self)
        let targetText = String(decoding: target, as: UTF8.self)
        let path: Substring
        if target[0] == UInt8(ascii: "/") {
            path = targetText[...]  // origin-form
        } else if targetText == "*" {
            guard methodText == "OPTIONS" else { throw HTTPParseError(400, "an asterisk target is for OPTIONS only") }
            path = "*"
        } else if let rest = Self.absoluteFormPath(targetText) {
            path = rest  // absolute-form, which a server must accept (RFC 9112 §3.2.2)
        } else {
            throw HTTPParseError(400, "the request target is not a path")
        }
        let query: String?
        let pathOnly: String
        if let q = path.firstIndex(of: "?") {
            pathOnly = String(path[..<q])
            query = String(path[path.index(after: q)...])
        } else {
            pathOnly = String(path)
            query = nil
        }
        return HTTPRequestHead(
            method: methodText, target: targetText, path: pathOnly.isEmpty ? "/" : pathOnly, query: query,
            minorVersion: minor, headers: HTTPHeaders(), contentLength: 0, keepAlive: minor == 1,
            expectsContinue: false)
    }

    /// The path and query of an absolute-form target "http://authority/path?query".
    static func absoluteFormPath(_ target: String) -> Substring? {
        let lower = target.prefix(8).lowercased()
        let schemeLength = lower.hasPrefix("http://") ? 7 : lower.hasPrefix("https://") ? 8 : 0
        guard schemeLength > 0 else { return nil }
        let afterScheme = target.dropFirst(schemeLength)
        guard let first = afterScheme.first, first != "/" else { return nil }
        guard let slash = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        return afterScheme[slash] == "?" ? "/" + afterScheme[slash...] : afterScheme[slash...]
    }

    /// Body framing and connection semantics (RFC 9112 §6, §9.3), and the request's own limits.
    static func decideFraming(_ head: inout HTTPRequestHead, limits: HTTPServerLimits) throws(HTTPParseError) {
        var contentLength: Int?
        var hosts = 0
        for field in head.headers {
            let name = field.name
            if asciiCaseInsensitiveEqual(name, "content-length") {
                // RFC 9112 §6.3: several Content-Length fields (or a list) may be refused: we refuse them.
                guard contentLength == nil else { throw HTTPParseError(400, "more than one Content-Length") }
                guard let n = parseContentLength(field.value) else {
                    throw HTTPParseError(400, "an invalid Content-Length")
                }
                contentLength = n
            } else if asciiCaseInsensitiveEqual(name, "transfer-encoding") {
                // We read Content-Length bodies only (Specs/transport.md §Requests).
                throw HTTPParseError(501, "Transfer-Encoding is not supported: send Content-Length")
            } else if asciiCaseInsensitiveEqual(name, "host") {
                hosts += 1
            } else if asciiCaseInsensitiveEqual(name, "connection") {
                if listContains(field.value, "close") { head.keepAlive = false }
            } else if asciiCaseInsensitiveEqual(name, "expect") {
                guard asciiCaseInsensitiveEqual(field.value, "100-continue") else {
                    throw HTTPParseError(417, "only Expect: 100-continue is supported")
                }
                head.expectsContinue = true
            }
        }
        // RFC 9112 §3.2: exactly one Host in an HTTP/1.1 request.
        if head.minorVersion == 1 && hosts != 1 {
            throw HTTPParseError(400, hosts == 0 ? "no Host header" : "more than one Host header")
        }
        if head.minorVersion == 0 { head.keepAlive = false }
        head.contentLength = contentLength ?? 0
        guard head.contentLength <= limits.maxBodyBytes else {
            throw HTTPParseError(413, "the body is larger than the limit of \(limits.maxBodyBytes) bytes")
        }
        head.expectsContinue = head.expectsContinue && head.contentLength > 0 && head.minorVersion == 1
    }

    /// One whole request (head and Content-Length body) from the start of `bytes`: for tests and the fuzzer, which
    /// see the same parser the server runs.
    package static func parse(_ bytes: [UInt8], limits: HTTPServerLimits) throws(HTTPParseError) -> (
        head: HTTPRequestHead, body: [UInt8], consumed: Int
    )? {
        var parser = HTTPRequestParser(limits: limits)
        guard let (head, headLength) = try bytes.withUnsafeBytes({ parser.parseHeadResult($0) }).get() else {
            return nil
        }
        guard bytes.count - headLength >= head.contentLength else { return nil }
        return (head, Array(bytes[headLength..<(headLength + head.contentLength)]), headLength + head.contentLength)
    }
}
