import ProvNet

/// Limits small enough that fuzz inputs reach every limit check.
let fuzzLimits = HTTPServerLimits(maxRequestLineBytes: 256, maxHeaderBytes: 1024, maxHeaderCount: 16, maxBodyBytes: 512)

let roundTripLimits: HTTPServerLimits = {
    var l = fuzzLimits
    l.maxRequestLineBytes *= 4
    l.maxHeaderBytes *= 4
    return l
}()

/// One input through the HTTP request and response parsers: nothing may crash or hang; the request parser gives the
/// same answer fed in two pieces as in one; whatever it accepts re-serializes into a request it reads the same way.
func fuzzHTTP(_ bytes: [UInt8]) {
    let whole = parseRequest(bytes, split: nil)
    if case .success(let r?) = whole {
        guard r.consumed <= bytes.count, r.body.count == r.head.contentLength, r.head.contentLength <= 512 else {
            fatalError("the request parser consumed more than it was given")
        }
        // Larger limits for the copy: header bytes that are not UTF-8 come back as U+FFFD, three bytes each.
        let again = parseRequest(canonical(r.head, r.body), split: nil, limits: roundTripLimits)
        guard case .success(let r2?) = again, r2.head == r.head, r2.body == r.body else {
            fatalError("a parsed request does not read back the same after re-serializing")
        }
    }
    // Fed in two pieces, as bytes arrive on a socket.
    let split = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
    let pieces = parseRequest(bytes, split: split)
    switch (whole, pieces) {
    case (.success(let a), .success(let b)):
        if a?.head != b?.head || a?.consumed != b?.consumed { fatalError("split input parsed differently") }
    case (.failure, .failure):
        break
    default:
        fatalError("split input accepted by one reading and refused by the other")
    }
    // Responses, as the client reads them.
    var response = HTTPResponseParser(maxHeadBytes: 1024)
    for method in ["GET", "HEAD"] {
        response.reset()
        let parsed = bytes.withUnsafeBytes { buf -> (HTTPResponseHead, Int)? in
            try? response.parseHead(buf, requestMethod: method)
        }
        if let (head, length) = parsed {
            guard length <= bytes.count, (100...999).contains(head.status) else {
                fatalError("the response parser read past its input")
            }
        }
    }
}

private func parseRequest(_ bytes: [UInt8], split: Int?, limits: HTTPServerLimits = fuzzLimits) -> Result<
    (head: HTTPRequestHead, body: [UInt8], consumed: Int)?, HTTPParseError
> {
    var parser = HTTPRequestParser(limits: limits)
    if let split {
        let first = Array(bytes[..<split]).withUnsafeBytes { parser.parseHeadResult($0) }
        switch first {
        case .failure(let e): return .failure(e)
        case .success(let found?):
            return .success(framed(bytes, found))
        case .success(nil): break
        }
    }
    switch bytes.withUnsafeBytes({ parser.parseHeadResult($0) }) {
    case .failure(let e): return .failure(e)
    case .success(nil): return .success(nil)
    case .success(let found?): return .success(framed(bytes, found))
    }
}

private func framed(_ bytes: [UInt8], _ found: (HTTPRequestHead, Int)) -> (
    head: HTTPRequestHead, body: [UInt8], consumed: Int
)? {
    let (head, length) = found
    guard bytes.count - length >= head.contentLength else { return nil }
    return (head, Array(bytes[length..<(length + head.contentLength)]), length + head.contentLength)
}

/// The request in the one form we write: single spaces, `name: value` lines, CRLF everywhere.
private func canonical(_ head: HTTPRequestHead, _ body: [UInt8]) -> [UInt8] {
    var out = Array("\(head.method) \(head.target) HTTP/1.\(head.minorVersion)\r\n".utf8)
    for f in head.headers { out += Array("\(f.name): \(f.value)\r\n".utf8) }
    out += Array("\r\n".utf8)
    return out + body
}
