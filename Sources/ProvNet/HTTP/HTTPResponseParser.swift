/// A response head (RFC 9112 §4) and its framing, as a client reads it.
package struct HTTPResponseHead: Sendable, Equatable {
    package var status: Int
    package var minorVersion: Int
    package var headers: HTTPHeaders
    /// nil: the body runs to the end of the connection (RFC 9112 §6.3 rule 8).
    package var contentLength: Int?
    package var keepAlive: Bool
}

/// Parses response heads for `HTTPClient` (Specs/transport.md §Client).
package struct HTTPResponseParser {
    private var scanner: HeadScanner

    package init(maxHeadBytes: Int) {
        scanner = HeadScanner(maxStartLine: 8 * 1024, maxFieldBytes: maxHeadBytes, maxFields: 256)
    }

    package mutating func reset() { scanner.reset() }

    /// The head and its length once `buf` holds a whole head; nil when more bytes are needed. Errors say what is
    /// wrong without quoting the response.
    package mutating func parseHead(_ buf: UnsafeRawBufferPointer, requestMethod: String) throws(NetError) -> (
        HTTPResponseHead, Int
    )? {
        let length: Int
        do {
            guard let n = try scanner.scan(buf) else { return nil }
            length = n
        } catch {
            switch error {
            case .startLineTooLong: throw NetError(.malformedResponse, "the status line is longer than 8 KiB")
            case .headTooLarge, .tooManyFields:
                throw NetError(.malformedResponse, "the response head is larger than the limit")
            case .bareLF: throw NetError(.malformedResponse, "a response line ends in LF without CR")
            }
        }
        guard let line = scanner.startLine else { return nil }
        var head = try Self.parseStatusLine(UnsafeRawBufferPointer(rebasing: buf[line]))
        do {
            head.headers = try parseFieldLines(buf, scanner.fieldLines)
        } catch {
            throw NetError(.malformedResponse, "response header line \(error.line + 1): \(error.reason)")
        }
        var lengths: [Int] = []
        for field in head.headers {
            if asciiCaseInsensitiveEqual(field.name, "content-length") {
                guard let n = parseContentLength(field.value) else {
                    throw NetError(.malformedResponse, "the response has an invalid Content-Length")
                }
                lengths.append(n)
            } else if asciiCaseInsensitiveEqual(field.name, "transfer-encoding") {
                throw NetError(
                    .malformedResponse, "the response uses Transfer-Encoding, which this client does not read")
            } else if asciiCaseInsensitiveEqual(field.name, "connection"), listContains(field.value, "close") {
                head.keepAlive = false
            }
        }
        guard Set(lengths).count <= 1 else {
            throw NetError(.malformedResponse, "the response has conflicting Content-Length fields")
        }
        let noBody = requestMethod == "HEAD" || head.status == 204 || head.status == 304 || head.status < 200
        head.contentLength = noBody ? 0 : lengths.first
        if head.contentLength == nil { head.keepAlive = false }
        return (head, length)
    }

    /// RFC 9112 §4: HTTP-version SP 3DIGIT SP [reason-phrase]; the last space may be missing.
    static func parseStatusLine(_ line: UnsafeRawBufferPointer) throws(NetError) -> HTTPResponseHead {
        guard line.count >= 12, line.starts(with: "HTTP/1.".utf8), (0x30...0x39).contains(line[7]),
            line[8] == 0x20, line[9...11].allSatisfy({ (0x30...0x39).contains($0) }),
            line.count == 12 || line[12] == 0x20,
            line.dropFirst(13).allSatisfy(isFieldValueChar)
        else { throw NetError(.malformedResponse, "the response does not start with an HTTP/1.x status line") }
        let status = line[9...11].reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard status >= 100 else { throw NetError(.malformedResponse, "the status code is below 100") }
        let minor = line[7] == UInt8(ascii: "0") ? 0 : 1
        return HTTPResponseHead(
            status: status, minorVersion: minor, headers: HTTPHeaders(), contentLength: nil, keepAlive: minor == 1)
    }
}
