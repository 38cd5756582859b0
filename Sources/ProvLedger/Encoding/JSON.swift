import Glibc

/// A JSON parse failure: what and where (byte offset and 1-based column).
public struct JSONError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Code: String, Equatable, Sendable {
        case unexpectedEnd, unexpectedCharacter, invalidNumber, invalidEscape, invalidUTF8,
            controlCharacter, duplicateKey, depthExceeded, sizeExceeded, trailingCharacters
    }

    public var code: Code
    public var offset: Int
    public var column: Int { offset + 1 }
    public var reason: String

    public var description: String { "column \(column): \(reason)" }

    /// `line <l>, column <c>: <reason>` for an error in a file of several lines (`bytes` is what was parsed); the
    /// column counts bytes from the start of the line, from 1.
    public func located(in bytes: [UInt8]) -> String {
        let before = bytes.prefix(min(offset, bytes.count))
        let line = before.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
        let start = before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
        return "line \(line), column \(offset - start + 1): \(reason)"
    }

    public static func == (a: JSONError, b: JSONError) -> Bool { a.code == b.code && a.offset == b.offset }
}

/// A JSON value (RFC 8259). Numbers keep their literal text; objects keep member order.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    public var objectValue: [JSONMember]? { if case .object(let o) = self { o } else { nil } }

    /// Integer literals (no fraction, no exponent) within Int64.
    public var int64Value: Int64? {
        guard case .number(let n) = self, !n.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) else {
            return nil
        }
        return Int64(n)
    }

    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

public struct JSONMember: Equatable, Sendable {
    public var key: String
    public var value: JSONValue
    public init(_ key: String, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}

/// Strict RFC 8259 parser: no comments, trailing commas, NaN, leading zeros, raw control characters, invalid
/// UTF-8, lone surrogates or duplicate keys; bounded depth and size.
public enum JSON {
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 32, maxSize: Int = 1 << 20)
        throws(JSONError) -> JSONValue
    {
        guard bytes.count <= maxSize else {
            throw JSONError(code: .sizeExceeded, offset: 0, reason: "input of \(bytes.count) bytes is over \(maxSize)")
        }
        var p = JSONParser(b: bytes, maxDepth: maxDepth)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else {
            throw p.error(.trailingCharacters, "unexpected characters after the JSON value")
        }
        return v
    }

    public static func parse(_ bytes: [UInt8], maxDepth: Int = 32, maxSize: Int = 1 << 20) throws(JSONError)
        -> JSONValue
    {
        try withRawBytes(bytes) { raw throws(JSONError) in try parse(raw, maxDepth: maxDepth, maxSize: maxSize) }
    }

    public static func parse(_ text: String, maxDepth: Int = 32, maxSize: Int = 1 << 20) throws(JSONError) -> JSONValue
    {
        try parse(Array(text.utf8), maxDepth: maxDepth, maxSize: maxSize)
    }
}

struct JSONParser {
    let b: UnsafeRawBufferPointer
    let maxDepth: Int
    var i = 0

    init(b: UnsafeRawBufferPointer, maxDepth: Int) {
        self.b = b
        self.maxDepth = maxDepth
    }

    func error(_ code: JSONError.Code, _ reason: String, at: Int? = nil) -> JSONError {
        JSONError(code: code, offset: at ?? i, reason: reason)
    }

    // RFC 8259 §2: insignificant white space is space, tab, line feed, carriage return.
    @inline(__always) mutating func skipSpace() {
        while i < b.count {
            let c = b[i]
            guard c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09 else { return }
            i += 1
        }
    }

    mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        guard i < b.count else { throw error(.unexpectedEnd, "input ends where a value should start") }
        switch b[i] {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default:
            throw error(.unexpectedCharacter, "unexpected character '\(printable(b[i]))' where a value should start")
        }
    }

    /// A member name given twice, quoted under the rule for values in error messages: a name may be an e-mail
    /// address or another identifier, shown then by its size only.
    static func duplicate(_ key: String) -> String {
        key.isEmpty || LedgerError.isShowable(key)
            ? "duplicate key \"\(key)\"" : "duplicate key with a name of \(key.utf8.count) bytes"
    }

    func printable(_ c: UInt8) -> String {
        c >= 0x20 && c < 0x7f ? String(UnicodeScalar(c)) : "\\x" + String(c, radix: 16)
    }

    mutating func literal(_ word: StaticString, _ v: JSONValue) throws(JSONError) -> JSONValue {
        let n = word.utf8CodeUnitCount
        guard b.count - i >= n, memcmp(b.baseAddress! + i, word.utf8Start, n) == 0 else {
            throw error(.unexpectedCharacter, "invalid literal (expected \(word))")
        }
        i += n
        return v
    }

    mutating func object(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= maxDepth else { throw error(.depthExceeded, "nesting deeper than \(maxDepth)") }
        i += 1
        var members: [JSONMember] = []
        var seen: Set<String> = []
        skipSpace()
        if i < b.count && b[i] == UInt8(ascii: "}") {
            i += 1
            return .object(members)
        }
        while true {
            skipSpace()
            guard i < b.count else { throw error(.unexpectedEnd, "input ends inside an object") }
            guard b[i] == UInt8(ascii: "\"") else { throw error(.unexpectedCharacter, "expected a quoted member name") }
            let keyAt = i
            let key = try string()
            // Small objects (events) compare in place; large ones keep a set, so no input costs n² comparisons.
            if members.count < 16 {
                for m in members where m.key == key {
                    throw error(.duplicateKey, Self.duplicate(key), at: keyAt)
                }
            } else {
                if seen.isEmpty { seen = Set(members.map(\.key)) }
                guard seen.insert(key).inserted else {
                    throw error(.duplicateKey, Self.duplicate(key), at: keyAt)
                }
            }
            skipSpace()
            guard i < b.count else { throw error(.unexpectedEnd, "input ends inside an object") }
            guard b[i] == UInt8(ascii: ":") else { throw error(.unexpectedCharacter, "expected ':' after member name") }
            i += 1
            skipSpace()
            members.append(JSONMember(key, try value(depth: depth)))
            skipSpace()
            guard i < b.count else { throw error(.unexpectedEnd, "input ends inside an object") }
            if b[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            guard b[i] == UInt8(ascii: "}") else {
                throw error(.unexpectedCharacter, "expected ',' or '}' after object member")
            }
            i += 1
            return .object(members)
        }
    }

    mutating func array(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= maxDepth else { throw error(.depthExceeded, "nesting deeper than \(maxDepth)") }
        i += 1
        var items: [JSONValue] = []
        skipSpace()
        if i < b.count && b[i] == UInt8(ascii: "]") {
            i += 1
            return .array(items)
        }
        while true {
            skipSpace()
            items.append(try value(depth: depth))
            skipSpace()
            guard i < b.count else { throw error(.unexpectedEnd, "input ends inside an array") }
            if b[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            guard b[i] == UInt8(ascii: "]") else {
                throw error(.unexpectedCharacter, "expected ',' or ']' after array element")
            }
            i += 1
            return .array(items)
        }
    }

    // RFC 8259 §6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    mutating func number() throws(JSONError) -> JSONValue {
        let start = i
        func digit(_ j: Int) -> Bool { j < b.count && b[j] >= 0x30 && b[j] <= 0x39 }
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard digit(i) else { throw error(.invalidNumber, "a number needs digits", at: start) }
        if b[i] == UInt8(ascii: "0") {
            i += 1
            if digit(i) { throw error(.invalidNumber, "leading zeros are not allowed", at: start) }
        } else {
            while digit(i) { i += 1 }
        }
        if i < b.count && b[i] == UInt8(ascii: ".") {
            i += 1
            guard digit(i) else { throw error(.invalidNumber, "a fraction needs digits after '.'", at: start) }
            while digit(i) { i += 1 }
        }
        if i < b.count && (b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E")) {
            i += 1
            if i < b.count && (b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-")) { i += 1 }
            guard digit(i) else { throw error(.invalidNumber, "an exponent needs digits", at: start) }
            while digit(i) { i += 1 }
        }
        return .number(String(decoding: UnsafeRawBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
    }

    /// RFC 8259 §7. The fast path covers strings without escapes.
    mutating func string() throws(JSONError) -> String {
        let start = i
        i += 1
        var j = i
        while j < b.count {
            let c = b[j]
            if c == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: b[i..<j])
                guard UTF8Check.isValid(raw) else { throw error(.invalidUTF8, "string is not valid UTF-8", at: start) }
                i = j + 1
                return String(decoding: raw, as: UTF8.self)
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw error(.controlCharacter, "raw control character in a string (escape it)", at: j) }
            j += 1
        }
        guard j < b.count else { throw error(.unexpectedEnd, "unterminated string", at: start) }
        // Slow path: unescape into a byte buffer.
        var out = [UInt8](UnsafeRawBufferPointer(rebasing: b[i..<j]))
        i = j
        while true {
            guard i < b.count else { throw error(.unexpectedEnd, "unterminated string", at: start) }
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                let ok = out.withUnsafeBytes { UTF8Check.isValid($0) }
                guard ok else { throw error(.invalidUTF8, "string is not valid UTF-8", at: start) }
                return String(decoding: out, as: UTF8.self)
            }
            if c < 0x20 { throw error(.controlCharacter, "raw control character in a string (escape it)") }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                i += 1
                continue
            }
            guard i + 1 < b.count else { throw error(.unexpectedEnd, "unterminated escape") }
            let e = b[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5c)
            case UInt8(ascii: "/"): out.append(0x2f)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0c)
            case UInt8(ascii: "n"): out.append(0x0a)
            case UInt8(ascii: "r"): out.append(0x0d)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4(at: i - 2)
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                        throw error(.invalidEscape, "high surrogate without a low surrogate", at: i - 6)
                    }
                    i += 2
                    let low = try hex4(at: i - 2)
                    guard (0xDC00...0xDFFF).contains(low) else {
                        throw error(.invalidEscape, "high surrogate followed by a non-low surrogate", at: i - 6)
                    }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw error(.invalidEscape, "lone low surrogate", at: i - 6)
                }
                appendUTF8(UInt32(scalar), to: &out)
            default:
                throw error(.invalidEscape, "invalid escape '\\\(printable(e))'", at: i - 2)
            }
        }
    }

    mutating func hex4(at escapeStart: Int) throws(JSONError) -> Int {
        guard b.count - i >= 4 else { throw error(.invalidEscape, "\\u needs four hex digits", at: escapeStart) }
        var v = 0
        for k in 0..<4 {
            let c = b[i + k]
            let d: Int
            switch c {
            case 0x30...0x39: d = Int(c) - 0x30
            case 0x41...0x46: d = Int(c) - 0x41 + 10
            case 0x61...0x66: d = Int(c) - 0x61 + 10
            default: throw error(.invalidEscape, "\\u needs four hex digits", at: escapeStart)
            }
            v = v << 4 | d
        }
        i += 4
        return v
    }

    func appendUTF8(_ s: UInt32, to out: inout [UInt8]) {
        switch s {
        case 0..<0x80: out.append(UInt8(s))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | s >> 6))
            out.append(UInt8(0x80 | s & 0x3F))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | s >> 12))
            out.append(UInt8(0x80 | s >> 6 & 0x3F))
            out.append(UInt8(0x80 | s & 0x3F))
        default:
            out.append(UInt8(0xF0 | s >> 18))
            out.append(UInt8(0x80 | s >> 12 & 0x3F))
            out.append(UInt8(0x80 | s >> 6 & 0x3F))
            out.append(UInt8(0x80 | s & 0x3F))
        }
    }
}

extension JSONValue {
    /// Compact serialization, members in stored order, strings escaped per RFC 8259 §7.
    public var serialized: String { String(decoding: serializedBytes, as: UTF8.self) }

    /// The compact serialization as UTF-8 bytes (what a server sends; no String is built on the way).
    public var serializedBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(to: &out, indent: nil, level: 0)
        return out
    }

    /// Two-space indented serialization for people.
    public var prettySerialized: String {
        var out: [UInt8] = []
        write(to: &out, indent: Array("  ".utf8), level: 0)
        return String(decoding: out, as: UTF8.self)
    }

    func write(to out: inout [UInt8], indent: [UInt8]?, level: Int) {
        func newline(_ l: Int) {
            if let indent {
                out.append(0x0A)
                for _ in 0..<l { out += indent }
            }
        }
        switch self {
        case .null: out += "null".utf8
        case .bool(let v): out += (v ? "true" : "false").utf8
        case .number(let n): out += n.utf8
        case .string(let s): Self.quote(s, into: &out)
        case .array(let items):
            if items.isEmpty {
                out += "[]".utf8
                return
            }
            out.append(UInt8(ascii: "["))
            for (k, v) in items.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                newline(level + 1)
                v.write(to: &out, indent: indent, level: level + 1)
            }
            newline(level)
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            if members.isEmpty {
                out += "{}".utf8
                return
            }
            out.append(UInt8(ascii: "{"))
            for (k, m) in members.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                newline(level + 1)
                Self.quote(m.key, into: &out)
                out += (indent == nil ? ":" : ": ").utf8
                m.value.write(to: &out, indent: indent, level: level + 1)
            }
            newline(level)
            out.append(UInt8(ascii: "}"))
        }
    }

    static func quote(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { b in
            // Most strings need no escape: append them whole.
            if !b.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                out += b
                return
            }
            for c in b {
                switch c {
                case UInt8(ascii: "\""): out += "\\\"".utf8
                case UInt8(ascii: "\\"): out += "\\\\".utf8
                case 0x0A: out += "\\n".utf8
                case 0x0D: out += "\\r".utf8
                case 0x09: out += "\\t".utf8
                case 0x08: out += "\\b".utf8
                case 0x0C: out += "\\f".utf8
                case 0..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    out += "\\u00".utf8
                    out.append(hex[Int(c >> 4)])
                    out.append(hex[Int(c & 15)])
                default: out.append(c)
                }
            }
        }
        out.append(UInt8(ascii: "\""))
    }

}
