import Testing

@testable import ProvNet

/// A request the parser must refuse, with the status the server answers.
struct RefusedRequest: Sendable, CustomStringConvertible {
    var name: String
    var bytes: [UInt8]
    var status: Int
    var description: String { name }

    init(_ name: String, _ text: String, _ status: Int) {
        self.name = name
        bytes = Array(text.utf8)
        self.status = status
    }

    init(_ name: String, bytes: [UInt8], _ status: Int) {
        self.name = name
        self.bytes = bytes
        self.status = status
    }
}

let smallLimits = HTTPServerLimits(maxRequestLineBytes: 64, maxHeaderBytes: 256, maxHeaderCount: 8, maxBodyBytes: 100)

/// RFC 9112 cases, each with the status of its refusal (Specs/transport.md §Requests).
let refusedRequests: [RefusedRequest] = [
    // Request line (RFC 9112 §3)
    RefusedRequest("two spaces between method and target", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    RefusedRequest("no version", "GET /\r\nHost: a\r\n\r\n", 400),
    RefusedRequest("trailing space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    RefusedRequest("lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    RefusedRequest("version without minor", "GET / HTTP/1\r\nHost: a\r\n\r\n", 400),
    RefusedRequest("HTTP/2.0 in an HTTP/1 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    RefusedRequest("method with a separator", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    RefusedRequest("target not a path", "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    RefusedRequest("target with a fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    RefusedRequest("asterisk target with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    RefusedRequest(
        "target with a non-ASCII byte",
        bytes: Array("GET /caf".utf8) + [0xC3, 0xA9] + Array(" HTTP/1.1\r\nHost: a\r\n\r\n".utf8),
        400),
    RefusedRequest(
        "request line over the limit", "GET /" + String(repeating: "a", count: 60) + " HTTP/1.1\r\n\r\n", 414),
    RefusedRequest("request line over the limit, unfinished", "GET /" + String(repeating: "a", count: 80), 414),
    // Line endings (RFC 9112 §2.2): bare LF and bare CR are refused.
    RefusedRequest("bare LF after the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    RefusedRequest("bare LF after a header", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
    RefusedRequest("bare LF ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    RefusedRequest("bare CR in a header value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
    // Field lines (RFC 9112 §5)
    RefusedRequest("obsolete line folding", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
    RefusedRequest("folding with a tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400),
    RefusedRequest("whitespace before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    RefusedRequest("header line without a colon", "GET / HTTP/1.1\r\nHost: a\r\nnonsense\r\n\r\n", 400),
    RefusedRequest("empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n", 400),
    RefusedRequest(
        "NUL in a header value", bytes: Array("GET / HTTP/1.1\r\nHost: a\r\nX: a".utf8) + [0] + Array("b\r\n\r\n".utf8),
        400),
    RefusedRequest("no Host in HTTP/1.1", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400),
    RefusedRequest("two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    RefusedRequest(
        "more header fields than the limit",
        "GET / HTTP/1.1\r\nHost: a\r\n" + (1...8).map { "X-\($0): v\r\n" }.joined() + "\r\n", 431),
    RefusedRequest(
        "header section over the limit",
        "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "v", count: 300) + "\r\n\r\n",
        431),
    RefusedRequest(
        "header section over the limit, unfinished",
        "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "v", count: 300),
        431),
    // Framing (RFC 9112 §6)
    RefusedRequest(
        "duplicate Content-Length, same value",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        400),
    RefusedRequest(
        "duplicate Content-Length, different values",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", 400),
    RefusedRequest("Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 400),
    RefusedRequest("negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    RefusedRequest("signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400),
    RefusedRequest("hex Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400),
    RefusedRequest("empty Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400),
    RefusedRequest(
        "Content-Length past 64 bits", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400
    ),
    RefusedRequest(
        "chunked Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    RefusedRequest(
        "Transfer-Encoding with Content-Length",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", 501),
    RefusedRequest("body over the limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", 413),
    RefusedRequest(
        "an Expect we cannot meet", "POST / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\nContent-Length: 1\r\n\r\nx", 417),
]

@Suite struct HTTPParserTests {
    @Test(arguments: refusedRequests)
    func refuses(_ r: RefusedRequest) {
        do {
            _ = try HTTPRequestParser.parse(r.bytes, limits: smallLimits)
            Issue.record("accepted: \(r.name)")
        } catch {
            #expect(error.status == r.status, "\(r.name): \(error.reason)")
        }
    }

    @Test func reasonsNeverQuoteTheRequest() {
        let secret = "sk-live-0123456789"
        let cases = [
            "GET /\(secret) HTTP/9.9\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: \(secret)\u{1}\r\n\r\n",
            "GET / HTTP/1.1\r\n\(secret) : a\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \(secret)\r\n\r\n",
        ]
        for text in cases {
            do {
                _ = try HTTPRequestParser.parse(Array(text.utf8), limits: HTTPServerLimits())
                Issue.record("accepted a malformed request")
            } catch {
                #expect(!error.reason.contains("sk-live"))
                #expect(!error.reason.contains("0123456789"))
            }
        }
    }

    @Test func parsesAGetWithQuery() throws {
        let text = "GET /tile/0/001?x=1&y HTTP/1.1\r\nHost: node\r\nAccept:  text/plain \r\nX-Empty:\r\n\r\n"
        let r = try #require(try HTTPRequestParser.parse(Array(text.utf8), limits: HTTPServerLimits()))
        #expect(r.head.method == "GET")
        #expect(r.head.target == "/tile/0/001?x=1&y")
        #expect(r.head.path == "/tile/0/001")
        #expect(r.head.query == "x=1&y")
        #expect(r.head.headers["accept"] == "text/plain")  // OWS trimmed, name case-insensitive
        #expect(r.head.headers["x-empty"] == "")
        #expect(r.head.keepAlive)
        #expect(r.consumed == text.utf8.count)
    }

    @Test func parsesAPostBodyAndLeavesThePipelinedRest() throws {
        let first = "POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        let second = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
        let bytes = Array((first + second).utf8)
        let r = try #require(try HTTPRequestParser.parse(bytes, limits: HTTPServerLimits()))
        #expect(r.body == Array("hello".utf8))
        #expect(r.consumed == first.utf8.count)
        let next = try #require(try HTTPRequestParser.parse(Array(bytes[r.consumed...]), limits: HTTPServerLimits()))
        #expect(next.head.path == "/next")
    }

    @Test func acceptedForms() throws {
        let limits = HTTPServerLimits()
        // RFC 9112 §2.2: empty lines before the request line are ignored.
        let leading = try #require(
            try HTTPRequestParser.parse(Array("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8), limits: limits))
        #expect(leading.head.path == "/")
        // RFC 9112 §3.2.2: absolute-form.
        let absolute = try #require(
            try HTTPRequestParser.parse(
                Array("GET http://node:80/a/b?c HTTP/1.1\r\nHost: node\r\n\r\n".utf8), limits: limits))
        #expect(absolute.head.path == "/a/b")
        #expect(absolute.head.query == "c")
        let options = try #require(
            try HTTPRequestParser.parse(Array("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n".utf8), limits: limits))
        #expect(options.head.path == "*")
        // HTTP/1.0: no Host needed, never kept alive.
        let old = try #require(try HTTPRequestParser.parse(Array("GET / HTTP/1.0\r\n\r\n".utf8), limits: limits))
        #expect(!old.head.keepAlive)
        let close = try #require(
            try HTTPRequestParser.parse(
                Array("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n".utf8), limits: limits))
        #expect(!close.head.keepAlive)
        let obsText = try #require(
            try HTTPRequestParser.parse(
                Array("GET / HTTP/1.1\r\nHost: a\r\nX: ".utf8) + [0xE9] + Array("\r\n\r\n".utf8), limits: limits))
        #expect(obsText.head.headers.count == 2)
        // At the limits exactly.
        let line = "GET /" + String(repeating: "a", count: 64 - 14) + " HTTP/1.1"
        #expect(line.utf8.count == 64)
        let atLimit = line + "\r\nHost: a\r\n" + (1...7).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        #expect(try HTTPRequestParser.parse(Array(atLimit.utf8), limits: smallLimits) != nil)
        let body = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + String(repeating: "b", count: 100)
        #expect(try HTTPRequestParser.parse(Array(body.utf8), limits: smallLimits)?.body.count == 100)
    }

    @Test func incompleteInputNeedsMore() throws {
        let text = Array("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab".utf8)
        for n in 0...text.count {
            #expect(try HTTPRequestParser.parse(Array(text[..<n]), limits: HTTPServerLimits()) == nil)
        }
    }

    /// Fed one byte at a time (the way a slow client sends), the parser finds the same head as in one piece.
    @Test func byteByByteMatchesOnePiece() throws {
        let text = Array(
            "\r\nPUT /a?b HTTP/1.1\r\nHost: a\r\nX-Long: \(String(repeating: "z", count: 300))\r\nContent-Length: 2\r\n\r\nok"
                .utf8)
        let whole = try #require(try HTTPRequestParser.parse(text, limits: HTTPServerLimits()))
        var parser = HTTPRequestParser(limits: HTTPServerLimits())
        var found: (HTTPRequestHead, Int)?
        for n in 1...text.count where found == nil {
            found = try Array(text[..<n]).withUnsafeBytes { try parser.parseHeadResult($0).get() }
        }
        let (head, length) = try #require(found)
        #expect(head == whole.head)
        #expect(length == whole.consumed - 2)
    }
}
