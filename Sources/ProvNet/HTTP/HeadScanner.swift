import Glibc

/// Finds the end of an HTTP/1.1 message head (start line and field lines, RFC 9112 §2.1) in a buffer that grows at
/// the end, resuming where the previous call stopped, and enforces the size limits while bytes arrive.
///
/// Lines end in CRLF. A bare LF is refused (RFC 9112 §2.2 lets a recipient accept it; we do not, so that we never
/// read a message differently from a stricter party in front of us). Empty lines before the start line are skipped
/// (RFC 9112 §2.2), counted against the start-line limit.
struct HeadScanner {
    enum Failure: Error, Equatable {
        case startLineTooLong, headTooLarge, tooManyFields, bareLF
    }

    var maxStartLine: Int
    var maxFieldBytes: Int
    var maxFields: Int

    private var scanned = 0
    private var lineStart = 0
    private(set) var startLine: Range<Int>?
    private var fieldsStart = 0
    private(set) var fieldLines: [Range<Int>] = []

    init(maxStartLine: Int, maxFieldBytes: Int, maxFields: Int) {
        self.maxStartLine = maxStartLine
        self.maxFieldBytes = maxFieldBytes
        self.maxFields = maxFields
    }

    mutating func reset() {
        scanned = 0
        lineStart = 0
        startLine = nil
        fieldsStart = 0
        fieldLines.removeAll(keepingCapacity: true)
    }

    /// Whether any byte of a message has arrived (empty lines before the start line do not count).
    func hasStarted(_ count: Int) -> Bool { startLine != nil || count > lineStart }

    /// The head's length when complete, nil when more bytes are needed.
    mutating func scan(_ buf: UnsafeRawBufferPointer) throws(Failure) -> Int? {
        let count = buf.count
        guard let base = buf.baseAddress else { return nil }
        while scanned < count {
            guard let hit = memchr(base + scanned, 0x0A, count - scanned) else {
                scanned = count
                break
            }
            let lf = base.distance(to: UnsafeRawPointer(hit))
            scanned = lf + 1
            guard lf > lineStart, buf[lf - 1] == 0x0D else { throw .bareLF }
            let line = lineStart..<(lf - 1)
            lineStart = lf + 1
            if startLine == nil {
                if line.isEmpty {
                    if lineStart > maxStartLine { throw .startLineTooLong }
                    continue
                }
                if line.count > maxStartLine { throw .startLineTooLong }
                startLine = line
                fieldsStart = lineStart
            } else {
                if lineStart - fieldsStart > maxFieldBytes + 2 { throw .headTooLarge }
                if line.isEmpty { return lineStart }
                fieldLines.append(line)
                if fieldLines.count > maxFields { throw .tooManyFields }
            }
        }
        // No complete line yet: bound what an unfinished line may take.
        if startLine == nil {
            if count - lineStart > maxStartLine || lineStart > maxStartLine { throw .startLineTooLong }
        } else if count - fieldsStart > maxFieldBytes + 2 {
            throw .headTooLarge
        }
        return nil
    }
}

/// Field lines (RFC 9112 §5) parsed into headers; throws a short reason that quotes nothing of the input.
func parseFieldLines(_ buf: UnsafeRawBufferPointer, _ lines: [Range<Int>]) throws(FieldLineError) -> HTTPHeaders {
    var fields: [HTTPField] = []
    fields.reserveCapacity(lines.count)
    for (index, line) in lines.enumerated() {
        let bytes = UnsafeRawBufferPointer(rebasing: buf[line])
        // RFC 9112 §5.2: obs-fold may be refused with 400.
        if bytes[0] == 0x20 || bytes[0] == 0x09 { throw FieldLineError(line: index, reason: "obsolete line folding") }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else {
            throw FieldLineError(line: index, reason: "a header line without a colon")
        }
        let name = UnsafeRawBufferPointer(rebasing: bytes[..<colon])
        // RFC 9112 §5.1: no whitespace between name and colon; the name is a token.
        guard isToken(name) else { throw FieldLineError(line: index, reason: "an invalid header name") }
        var start = colon + 1
        var end = bytes.count
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        let value = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        guard value.allSatisfy(isFieldValueChar) else {
            throw FieldLineError(line: index, reason: "a control character in a header value")
        }
        fields.append(HTTPField(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
    }
    return HTTPHeaders(fields)
}

struct FieldLineError: Error {
    var line: Int
    var reason: String
}

/// A Content-Length value: 1 to 18 digits (RFC 9110 §8.6), nothing else (no sign, no list, no spaces).
func parseContentLength(_ value: String) -> Int? {
    let u = value.utf8
    guard !u.isEmpty, u.count <= 18, u.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
    return u.reduce(0) { $0 * 10 + Int($1 - 0x30) }
}
