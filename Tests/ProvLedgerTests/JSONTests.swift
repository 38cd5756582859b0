import TestSupport
import Testing

@testable import ProvLedger

/// Spec tests for the strict JSON parser (RFC 8259): the forms it accepts, the values it builds, what it refuses
/// and the error (code, byte offset, column, reason) it gives, its limits, and serialize/parse round trips.
@Suite struct JSONTests {
    /// Input the parser must refuse, with the error it must give: code, byte offset and a phrase of the reason.
    struct Rejection: Sendable, CustomTestStringConvertible {
        let input: [UInt8]
        let code: JSONError.Code
        let offset: Int
        let says: String
        let why: String
        init(_ text: String, _ code: JSONError.Code, at offset: Int, says: String, _ why: String) {
            self.init(Array(text.utf8), code, at: offset, says: says, why)
        }
        init(_ input: [UInt8], _ code: JSONError.Code, at offset: Int, says: String, _ why: String) {
            self.input = input
            self.code = code
            self.offset = offset
            self.says = says
            self.why = why
        }
        var testDescription: String { why }
    }

    static func parseError(_ bytes: [UInt8], maxDepth: Int = 32, maxSize: Int = 1 << 20) -> JSONError? {
        do throws(JSONError) {
            _ = try JSON.parse(bytes, maxDepth: maxDepth, maxSize: maxSize)
            return nil
        } catch {
            return error
        }
    }

    static func parseError(_ text: String, maxDepth: Int = 32, maxSize: Int = 1 << 20) -> JSONError? {
        parseError(Array(text.utf8), maxDepth: maxDepth, maxSize: maxSize)
    }

    static func expectRejected(_ r: Rejection, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let e = try #require(parseError(r.input), "parsed although: \(r.why)", sourceLocation: sourceLocation)
        #expect(e.code == r.code, "\(e)", sourceLocation: sourceLocation)
        #expect(e.offset == r.offset, "\(e)", sourceLocation: sourceLocation)
        #expect(
            e.reason.contains(r.says), "reason \"\(e.reason)\" should mention \(r.says)", sourceLocation: sourceLocation
        )
        #expect(e.column == e.offset + 1, sourceLocation: sourceLocation)
        #expect(e.description == "column \(e.offset + 1): \(e.reason)", sourceLocation: sourceLocation)
    }

    static func n(_ literal: String) -> JSONValue { .number(literal) }

    static func obj(_ members: (String, JSONValue)...) -> JSONValue {
        .object(members.map { JSONMember($0.0, $0.1) })
    }

    // MARK: - Accepted forms (RFC 8259 §2–§7)

    @Test(arguments: [
        ("null", JSONValue.null), ("true", .bool(true)), ("false", .bool(false)), ("0", n("0")), ("-0", n("-0")),
        ("7", n("7")), ("-7", n("-7")), ("123456789", n("123456789")), ("1.5", n("1.5")), ("-0.25", n("-0.25")),
        ("1.50", n("1.50")), ("1e3", n("1e3")), ("1E3", n("1E3")), ("1e+3", n("1e+3")), ("1e-3", n("1e-3")),
        ("-0.0e-0", n("-0.0e-0")), ("12.345E+67", n("12.345E+67")),
        ("123456789012345678901234567890", n("123456789012345678901234567890")),
        ("\"\"", .string("")), ("\"abc\"", .string("abc")), ("[]", .array([])), ("{}", .object([])),
        (
            "[1,\"a\",null,true,false,[],{}]",
            .array([n("1"), .string("a"), .null, .bool(true), .bool(false), .array([]), .object([])])
        ),
        ("{\"a\":1}", obj(("a", n("1")))), ("{\"\":0}", obj(("", n("0")))),
    ])
    func scalarsAndContainers(text: String, value: JSONValue) throws {
        #expect(try JSON.parse(text) == value)
        #expect(try JSON.parse(Array(text.utf8)) == value)
        // Numbers keep their literal text.
        if case .number(let lit) = value { #expect(lit == text) }
    }

    /// RFC 8259 §2: space, tab, line feed and carriage return around any token.
    @Test func whitespaceAroundEveryToken() throws {
        let text = " \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n[ \t\r\n1 \t\r\n, \t\r\ntrue \t\r\n] \t\r\n, \"b\":null } \t\r\n"
        #expect(try JSON.parse(text) == Self.obj(("a", .array([Self.n("1"), .bool(true)])), ("b", .null)))
        #expect(try JSON.parse("\n\n  42  \n") == Self.n("42"))
    }

    @Test(arguments: [
        (#""\"""#, "\""), (#""\\""#, "\\"), (#""\/""#, "/"), (#""\b""#, "\u{08}"), (#""\f""#, "\u{0C}"),
        (#""\n""#, "\n"), (#""\r""#, "\r"), (#""\t""#, "\t"), (#""\u0041""#, "A"), (#""\u00e9""#, "\u{E9}"),
        (#""\u00E9""#, "\u{E9}"), (#""\u6C34""#, "\u{6C34}"), (#""\u0000""#, "\u{0}"), (#""\u001f""#, "\u{1F}"),
        (#""\u007F""#, "\u{7F}"), (#""\u07ff""#, "\u{7FF}"), (#""\u0800""#, "\u{800}"), (#""\uffff""#, "\u{FFFF}"),
        (#""\ud834\udd1e""#, "\u{1D11E}"), (#""\uD834\uDD1E""#, "\u{1D11E}"), (#""\uD800\uDC00""#, "\u{10000}"),
        (#""\uDBFF\uDFFF""#, "\u{10FFFF}"), (#""\ud83d\ude00""#, "\u{1F600}"),
        (#""a\"b\\c\/d\be\ff\ng\rh\ti""#, "a\"b\\c/d\u{08}e\u{0C}f\ng\rh\ti"),
        (#""caf\u00e9 \u6c34 \ud83d\ude00!""#, "caf\u{E9} \u{6C34} \u{1F600}!"),
        ("\"caf\u{E9} \u{6C34} \u{1F600}\"", "caf\u{E9} \u{6C34} \u{1F600}"),
        ("\"\u{E9}\\n\u{1F600}\\u0041\u{6C34}\"", "\u{E9}\n\u{1F600}A\u{6C34}"),
        ("\"\u{7F}\"", "\u{7F}"),
    ])
    func stringEscapes(json: String, expected: String) throws {
        let v = try JSON.parse(json)
        #expect(v == .string(expected))
        #expect(v.stringValue.map { Array($0.utf8) } == Array(expected.utf8))
    }

    /// The two examples of RFC 8259 §13.
    @Test func rfc8259Examples() throws {
        let image = """
            {
              "Image": {
                  "Width":  800,
                  "Height": 600,
                  "Title":  "View from 15th Floor",
                  "Thumbnail": {
                      "Url":    "http://www.example.com/image/481989943",
                      "Height": 125,
                      "Width":  100
                  },
                  "Animated" : false,
                  "IDs": [116, 943, 234, 38793]
                }
            }
            """
        let v = try JSON.parse(image)
        #expect(
            v
                == Self.obj(
                    (
                        "Image",
                        Self.obj(
                            ("Width", Self.n("800")), ("Height", Self.n("600")),
                            ("Title", .string("View from 15th Floor")),
                            (
                                "Thumbnail",
                                Self.obj(
                                    ("Url", .string("http://www.example.com/image/481989943")),
                                    ("Height", Self.n("125")), ("Width", Self.n("100")))
                            ),
                            ("Animated", .bool(false)),
                            ("IDs", .array(["116", "943", "234", "38793"].map(Self.n)))
                        )
                    )))
        #expect(v["Image"]?["Thumbnail"]?["Width"]?.int64Value == 100)
        #expect(v["Image"]?["IDs"]?.arrayValue?.compactMap(\.int64Value) == [116, 943, 234, 38793])
        #expect(v["Image"]?.objectValue?.map(\.key) == ["Width", "Height", "Title", "Thumbnail", "Animated", "IDs"])

        let places = """
            [
              {
                 "precision": "zip",
                 "Latitude":  37.7668,
                 "Longitude": -122.3959,
                 "Address":   "",
                 "City":      "SAN FRANCISCO",
                 "State":     "CA",
                 "Zip":       "94107",
                 "Country":   "US"
              },
              {
                 "precision": "zip",
                 "Latitude":  37.371991,
                 "Longitude": -122.026020,
                 "Address":   "",
                 "City":      "SUNNYVALE",
                 "State":     "CA",
                 "Zip":       "94085",
                 "Country":   "US"
              }
            ]
            """
        let a = try #require(try JSON.parse(places).arrayValue)
        #expect(a.count == 2)
        #expect(a[0]["Latitude"] == Self.n("37.7668"))
        #expect(a[1]["Longitude"] == Self.n("-122.026020"))
        #expect(a[1]["Longitude"]?.int64Value == nil)
        #expect(a[1]["City"]?.stringValue == "SUNNYVALE")
        #expect(a[0]["Address"] == .string(""))
        #expect(a[0]["Missing"] == nil)
        #expect(a[0].objectValue?.count == 8)
    }

    @Test func accessors() throws {
        #expect(try JSON.parse("9223372036854775807").int64Value == Int64.max)
        #expect(try JSON.parse("-9223372036854775808").int64Value == Int64.min)
        #expect(try JSON.parse("9223372036854775808").int64Value == nil)
        #expect(try JSON.parse("-9223372036854775809").int64Value == nil)
        #expect(try JSON.parse("-0").int64Value == 0)
        #expect(try JSON.parse("1.0").int64Value == nil)
        #expect(try JSON.parse("1e2").int64Value == nil)
        #expect(try JSON.parse("\"1\"").int64Value == nil)
        #expect(try JSON.parse("[1]")["a"] == nil)
        #expect(try JSON.parse("{\"a\":1}").stringValue == nil)
        let kinds = try ["null", "true", "1", "\"s\"", "[]", "{}"].map { try JSON.parse($0).typeName }
        #expect(kinds == ["null", "boolean", "number", "string", "array", "object"])
    }

    /// Members keep their input order; nested objects are separate key scopes.
    @Test func objectsKeepMemberOrder() throws {
        let v = try JSON.parse(#"{"z":1,"a":{"z":2,"a":3},"m":[{"a":4},{"a":5}]}"#)
        #expect(v.objectValue?.map(\.key) == ["z", "a", "m"])
        #expect(v["a"]?.objectValue?.map(\.key) == ["z", "a"])
        #expect(v["m"]?.arrayValue?.compactMap { $0["a"]?.int64Value } == [4, 5])
    }

    /// The byte-buffer, array and String entry points agree.
    @Test func entryPointsAgree() throws {
        let text = #"{"k":["v",1,{"n":null}]}"#
        let bytes = Array(text.utf8)
        let fromBuffer = try bytes.withUnsafeBytes { raw throws in try JSON.parse(raw) }
        #expect(try JSON.parse(text) == fromBuffer)
        #expect(try JSON.parse(bytes) == fromBuffer)
        #expect(fromBuffer == Self.obj(("k", .array([.string("v"), Self.n("1"), Self.obj(("n", .null))]))))
    }

    // MARK: - Rejections

    static let rejections: [Rejection] = [
        // Empty input and whitespace only.
        Rejection("", .unexpectedEnd, at: 0, says: "input ends where a value should start", "empty input"),
        Rejection(" \n\t\r", .unexpectedEnd, at: 4, says: "input ends where a value should start", "whitespace only"),
        // Trailing commas.
        Rejection(
            "[1,]", .unexpectedCharacter, at: 3, says: "unexpected character ']' where a value should start", "[1,]"),
        Rejection("[1,2,]", .unexpectedCharacter, at: 5, says: "where a value should start", "[1,2,]"),
        Rejection("{\"a\":1,}", .unexpectedCharacter, at: 7, says: "expected a quoted member name", "{\"a\":1,}"),
        Rejection("[,]", .unexpectedCharacter, at: 1, says: "unexpected character ','", "[,]"),
        Rejection("[,1]", .unexpectedCharacter, at: 1, says: "unexpected character ','", "leading comma"),
        Rejection("{,}", .unexpectedCharacter, at: 1, says: "expected a quoted member name", "{,}"),
        Rejection("[1,,2]", .unexpectedCharacter, at: 3, says: "unexpected character ','", "double comma"),
        Rejection(
            "[1 2]", .unexpectedCharacter, at: 3, says: "expected ',' or ']' after array element", "missing comma"),
        Rejection(
            "{\"a\":1 \"b\":2}", .unexpectedCharacter, at: 7, says: "expected ',' or '}' after object member",
            "missing comma in object"),
        // Single quotes and unquoted names.
        Rejection("'a'", .unexpectedCharacter, at: 0, says: "unexpected character '''", "single-quoted string"),
        Rejection("{'a':1}", .unexpectedCharacter, at: 1, says: "expected a quoted member name", "single-quoted name"),
        Rejection("{a:1}", .unexpectedCharacter, at: 1, says: "expected a quoted member name", "unquoted name"),
        Rejection("{1:1}", .unexpectedCharacter, at: 1, says: "expected a quoted member name", "number as name"),
        Rejection("{\"a\" 1}", .unexpectedCharacter, at: 5, says: "expected ':' after member name", "missing colon"),
        Rejection("{\"a\"=1}", .unexpectedCharacter, at: 4, says: "expected ':'", "= for :"),
        Rejection("[\"a\":1]", .unexpectedCharacter, at: 4, says: "expected ',' or ']'", "member in an array"),
        // Raw control characters in strings (RFC 8259 §7: U+0000 through U+001F must be escaped).
        Rejection("\"a\u{01}b\"", .controlCharacter, at: 2, says: "raw control character in a string", "U+0001"),
        Rejection("\"\u{00}\"", .controlCharacter, at: 1, says: "raw control character", "U+0000"),
        Rejection("\"a\tb\"", .controlCharacter, at: 2, says: "raw control character", "raw tab"),
        Rejection("\"a\nb\"", .controlCharacter, at: 2, says: "raw control character", "raw line feed"),
        Rejection("\"\u{1F}\"", .controlCharacter, at: 1, says: "raw control character", "U+001F"),
        Rejection("\"\\n\u{0D}\"", .controlCharacter, at: 3, says: "raw control character", "raw CR after an escape"),
        Rejection("{\"k\u{0A}\":1}", .controlCharacter, at: 3, says: "raw control character", "in a member name"),
        // Escapes.
        Rejection(#""\x41""#, .invalidEscape, at: 1, says: "invalid escape '\\x'", "\\x"),
        Rejection(#""\'""#, .invalidEscape, at: 1, says: "invalid escape '\\''", "\\'"),
        Rejection(#""\a""#, .invalidEscape, at: 1, says: "invalid escape", "\\a"),
        Rejection(#""\U0041""#, .invalidEscape, at: 1, says: "invalid escape '\\U'", "upper-case \\U"),
        Rejection(#""\0""#, .invalidEscape, at: 1, says: "invalid escape '\\0'", "\\0"),
        Rejection(#""ab\u12""#, .invalidEscape, at: 3, says: "\\u needs four hex digits", "\\u12\""),
        Rejection(#""\u12G4""#, .invalidEscape, at: 1, says: "\\u needs four hex digits", "non-hex digit"),
        Rejection(#""\u 123""#, .invalidEscape, at: 1, says: "\\u needs four hex digits", "space in \\u"),
        Rejection(#""\u+123""#, .invalidEscape, at: 1, says: "\\u needs four hex digits", "sign in \\u"),
        Rejection("\"\\u00", .invalidEscape, at: 1, says: "\\u needs four hex digits", "\\u cut by the end of input"),
        Rejection("\"\\", .unexpectedEnd, at: 1, says: "unterminated escape", "backslash at the end of input"),
        // Lone and mismatched surrogates.
        Rejection(#""\uD800""#, .invalidEscape, at: 1, says: "high surrogate without a low surrogate", "lone high"),
        Rejection(
            #""\udbff""#, .invalidEscape, at: 1, says: "high surrogate without a low surrogate", "lone high, lower case"
        ),
        Rejection(
            #""ab\uD834x""#, .invalidEscape, at: 3, says: "high surrogate without a low surrogate", "high then x"),
        Rejection(
            #""\uD834\n""#, .invalidEscape, at: 1, says: "high surrogate without a low surrogate", "high then \\n"),
        Rejection(#""\uDC00""#, .invalidEscape, at: 1, says: "lone low surrogate", "lone low"),
        Rejection(#""\uDFFF\uD800""#, .invalidEscape, at: 1, says: "lone low surrogate", "low before high"),
        Rejection(#""\uD800\u0041""#, .invalidEscape, at: 7, says: "followed by a non-low surrogate", "high then A"),
        Rejection(#""\uD800\uD800""#, .invalidEscape, at: 7, says: "followed by a non-low surrogate", "high then high"),
        Rejection(#""\uD800\uZZZZ""#, .invalidEscape, at: 7, says: "\\u needs four hex digits", "high then bad \\u"),
        Rejection("\"\\uD800\\u", .invalidEscape, at: 7, says: "\\u needs four hex digits", "high then cut \\u"),
        // Numbers (RFC 8259 §6).
        Rejection("01", .invalidNumber, at: 0, says: "leading zeros are not allowed", "01"),
        Rejection("00", .invalidNumber, at: 0, says: "leading zeros", "00"),
        Rejection("-01", .invalidNumber, at: 0, says: "leading zeros", "-01"),
        Rejection("[1,012]", .invalidNumber, at: 3, says: "leading zeros", "012 in an array"),
        Rejection("{\"a\":007}", .invalidNumber, at: 5, says: "leading zeros", "007 as a member value"),
        Rejection("-", .invalidNumber, at: 0, says: "a number needs digits", "lone minus"),
        Rejection("-a", .invalidNumber, at: 0, says: "a number needs digits", "minus then letter"),
        Rejection("--1", .invalidNumber, at: 0, says: "a number needs digits", "double minus"),
        Rejection("1.", .invalidNumber, at: 0, says: "a fraction needs digits after '.'", "1."),
        Rejection("1.e5", .invalidNumber, at: 0, says: "a fraction needs digits", "1.e5"),
        Rejection("[0.]", .invalidNumber, at: 1, says: "a fraction needs digits", "0. in an array"),
        Rejection("1e", .invalidNumber, at: 0, says: "an exponent needs digits", "1e"),
        Rejection("1e+", .invalidNumber, at: 0, says: "an exponent needs digits", "1e+"),
        Rejection("1E-x", .invalidNumber, at: 0, says: "an exponent needs digits", "1E-x"),
        Rejection(".5", .unexpectedCharacter, at: 0, says: "unexpected character '.'", ".5"),
        Rejection("+1", .unexpectedCharacter, at: 0, says: "unexpected character '+'", "+1"),
        Rejection("0x10", .trailingCharacters, at: 1, says: "unexpected characters after the JSON value", "hex"),
        Rejection("1.5.2", .trailingCharacters, at: 3, says: "after the JSON value", "two dots"),
        Rejection("NaN", .unexpectedCharacter, at: 0, says: "unexpected character 'N'", "NaN"),
        Rejection("Infinity", .unexpectedCharacter, at: 0, says: "unexpected character 'I'", "Infinity"),
        Rejection("-Infinity", .invalidNumber, at: 0, says: "a number needs digits", "-Infinity"),
        // Literals.
        Rejection("tru", .unexpectedCharacter, at: 0, says: "invalid literal (expected true)", "tru"),
        Rejection("nul", .unexpectedCharacter, at: 0, says: "invalid literal (expected null)", "nul"),
        Rejection("fals", .unexpectedCharacter, at: 0, says: "invalid literal (expected false)", "fals"),
        Rejection("[nulL]", .unexpectedCharacter, at: 1, says: "invalid literal (expected null)", "nulL"),
        Rejection("True", .unexpectedCharacter, at: 0, says: "unexpected character 'T'", "True"),
        Rejection("undefined", .unexpectedCharacter, at: 0, says: "unexpected character 'u'", "undefined"),
        // Comments are not JSON.
        Rejection("// c\n1", .unexpectedCharacter, at: 0, says: "unexpected character '/'", "line comment"),
        Rejection("[1/*c*/]", .unexpectedCharacter, at: 2, says: "expected ',' or ']'", "block comment"),
        // Trailing garbage.
        Rejection("1 2", .trailingCharacters, at: 2, says: "unexpected characters after the JSON value", "1 2"),
        Rejection("{}}", .trailingCharacters, at: 2, says: "after the JSON value", "{}}"),
        Rejection("[]]", .trailingCharacters, at: 2, says: "after the JSON value", "[]]"),
        Rejection("truex", .trailingCharacters, at: 4, says: "after the JSON value", "truex"),
        Rejection("null,", .trailingCharacters, at: 4, says: "after the JSON value", "null,"),
        Rejection("\"a\"\"b\"", .trailingCharacters, at: 3, says: "after the JSON value", "two strings"),
        Rejection("{} \n x", .trailingCharacters, at: 5, says: "after the JSON value", "garbage after whitespace"),
        Rejection([0x31, 0x00], .trailingCharacters, at: 1, says: "after the JSON value", "NUL after the value"),
        // Unterminated input.
        Rejection("\"abc", .unexpectedEnd, at: 0, says: "unterminated string", "unterminated string"),
        Rejection("[\"a\\n", .unexpectedEnd, at: 1, says: "unterminated string", "unterminated after an escape"),
        Rejection("[1,2", .unexpectedEnd, at: 4, says: "input ends inside an array", "[1,2"),
        Rejection("[", .unexpectedEnd, at: 1, says: "input ends where a value should start", "["),
        Rejection("{", .unexpectedEnd, at: 1, says: "input ends inside an object", "{"),
        Rejection("{\"a\"", .unexpectedEnd, at: 4, says: "input ends inside an object", "{\"a\""),
        Rejection("{\"a\":", .unexpectedEnd, at: 5, says: "input ends where a value should start", "{\"a\":"),
        Rejection("{\"a\":1", .unexpectedEnd, at: 6, says: "input ends inside an object", "{\"a\":1"),
        Rejection("{\"a\":1,", .unexpectedEnd, at: 7, says: "input ends inside an object", "{\"a\":1,"),
        // Whitespace outside the four RFC 8259 characters.
        Rejection("\u{0C}1", .unexpectedCharacter, at: 0, says: "unexpected character '\\xc'", "form feed"),
        Rejection("\u{0B}1", .unexpectedCharacter, at: 0, says: "unexpected character '\\xb'", "vertical tab"),
        Rejection("\u{A0}1", .unexpectedCharacter, at: 0, says: "unexpected character '\\xc2'", "no-break space"),
        Rejection("[1,\u{2028}2]", .unexpectedCharacter, at: 3, says: "unexpected character '\\xe2'", "line separator"),
        // Duplicate member names (the parser refuses them; RFC 8259 §4 says names SHOULD be unique).
        Rejection(#"{"a":1,"a":2}"#, .duplicateKey, at: 7, says: "duplicate key \"a\"", "{\"a\":1,\"a\":2}"),
        Rejection(#"{"a":1,"b":2,"a":3}"#, .duplicateKey, at: 13, says: "duplicate key \"a\"", "non-adjacent"),
        Rejection(#"{"a":1,"\u0061":2}"#, .duplicateKey, at: 7, says: "duplicate key \"a\"", "same name via escape"),
        Rejection(#"{"":1,"":2}"#, .duplicateKey, at: 6, says: "duplicate key \"\"", "empty name twice"),
        Rejection(#"[{"x":{"y":1,"y":2}}]"#, .duplicateKey, at: 13, says: "duplicate key \"y\"", "nested"),
    ]

    @Test(arguments: rejections)
    func malformedInputIsRejected(_ r: Rejection) throws {
        try Self.expectRejected(r)
    }

    /// The same name in different objects is fine.
    @Test func sameNameInDifferentObjects() throws {
        let v = try JSON.parse(#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#)
        #expect(v["a"]?["a"]?["a"]?.int64Value == 1)
    }

    // MARK: - Non-UTF-8 input (RFC 8259 §8.1)

    static let badBytes: [Rejection] = [
        Rejection([0x22, 0xff, 0x22], .invalidUTF8, at: 0, says: "string is not valid UTF-8", "0xff in a string"),
        Rejection([0x22, 0x80, 0x22], .invalidUTF8, at: 0, says: "not valid UTF-8", "lone continuation byte"),
        Rejection([0x22, 0xc0, 0xaf, 0x22], .invalidUTF8, at: 0, says: "not valid UTF-8", "overlong '/'"),
        Rejection([0x22, 0xe0, 0x80, 0x80, 0x22], .invalidUTF8, at: 0, says: "not valid UTF-8", "overlong NUL"),
        Rejection([0x22, 0xed, 0xa0, 0x80, 0x22], .invalidUTF8, at: 0, says: "not valid UTF-8", "encoded surrogate"),
        Rejection(
            [0x22, 0xf4, 0x90, 0x80, 0x80, 0x22], .invalidUTF8, at: 0, says: "not valid UTF-8", "above U+10FFFF"),
        Rejection([0x22, 0xe2, 0x82, 0x22], .invalidUTF8, at: 0, says: "not valid UTF-8", "sequence cut by the quote"),
        Rejection([0x22, 0xc3, 0x22], .invalidUTF8, at: 0, says: "not valid UTF-8", "lead byte before the quote"),
        Rejection(
            Array("[\"ok\",\"abcdefgh".utf8) + [0xfe] + Array("\"]".utf8), .invalidUTF8, at: 6, says: "not valid UTF-8",
            "bad byte after 8 ASCII, second element"),
        // Escaped strings take the slow path; the raw bytes there are checked too.
        Rejection(Array("\"\\n".utf8) + [0xff, 0x22], .invalidUTF8, at: 0, says: "not valid UTF-8", "0xff after \\n"),
        Rejection(
            Array("\"\\u00e9".utf8) + [0xa9, 0x22], .invalidUTF8, at: 0, says: "not valid UTF-8",
            "stray continuation after \\u"),
        Rejection(
            [0x22, 0xc3] + Array("\\u00a9\"".utf8), .invalidUTF8, at: 0, says: "not valid UTF-8", "lead byte before \\u"
        ),
        Rejection(
            Array("{\"".utf8) + [0xff] + Array("\":1}".utf8), .invalidUTF8, at: 1, says: "not valid UTF-8", "in a name"),
        // Outside strings.
        Rejection([0xff], .unexpectedCharacter, at: 0, says: "unexpected character '\\xff'", "0xff alone"),
        Rejection([0x5b, 0x31, 0x2c, 0xc3, 0xa9, 0x5d], .unexpectedCharacter, at: 3, says: "'\\xc3'", "é as a value"),
        Rejection([0xef, 0xbb, 0xbf, 0x31], .unexpectedCharacter, at: 0, says: "'\\xef'", "byte order mark"),
        Rejection([0x00], .unexpectedCharacter, at: 0, says: "'\\x0'", "NUL"),
    ]

    @Test(arguments: badBytes)
    func invalidBytesAreRejected(_ r: Rejection) throws {
        try Self.expectRejected(r)
    }

    // MARK: - Limits

    @Test func depthLimitCountsContainers() throws {
        // Default 32: 32 nested arrays parse, the 33rd '[' is refused where it stands.
        let ok = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        var v = try JSON.parse(ok)
        var levels = 0
        while case .array(let items) = v {
            levels += 1
            guard let first = items.first else { break }
            v = first
        }
        #expect(levels == 32)
        let deep = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        let e = try #require(Self.parseError(deep))
        #expect(e.code == .depthExceeded)
        #expect(e.offset == 32)
        #expect(e.reason == "nesting deeper than 32")
        // Scalars do not count: 32 arrays around a number are fine.
        #expect(throws: Never.self) {
            try JSON.parse(String(repeating: "[", count: 32) + "1" + String(repeating: "]", count: 32))
        }
        // Objects count the same as arrays.
        let objects32 = String(repeating: "{\"a\":", count: 32) + "1" + String(repeating: "}", count: 32)
        #expect(throws: Never.self) { try JSON.parse(objects32) }
        let objects33 = "[" + objects32 + "]"
        #expect(Self.parseError(objects33)?.code == .depthExceeded)
        #expect(Self.parseError(objects33)?.offset == 1 + 31 * 5)
    }

    @Test func depthLimitIsConfigurable() throws {
        #expect(try JSON.parse("1", maxDepth: 0) == Self.n("1"))
        #expect(Self.parseError("[]", maxDepth: 0)?.code == .depthExceeded)
        #expect(Self.parseError("[]", maxDepth: 0)?.offset == 0)
        #expect(try JSON.parse("[[]]", maxDepth: 2) == .array([.array([])]))
        let e = try #require(Self.parseError(#"{"a":{"b":[]}}"#, maxDepth: 2))
        #expect(e.code == .depthExceeded)
        #expect(e.offset == 10)
        #expect(e.description == "column 11: nesting deeper than 2")
    }

    /// A megabyte of '[' stops at the limit instead of recursing through the stack.
    @Test func deepInputFailsAtTheLimit() {
        let e = Self.parseError([UInt8](repeating: UInt8(ascii: "["), count: 1 << 20))
        #expect(e?.code == .depthExceeded)
        #expect(e?.offset == 32)
    }

    @Test func sizeLimit() throws {
        let limit = 1 << 20
        // A string whose JSON text is exactly the limit.
        let fits = "\"" + String(repeating: "x", count: limit - 2) + "\""
        #expect(try JSON.parse(fits).stringValue?.utf8.count == limit - 2)
        let e = try #require(Self.parseError(fits + " "))
        #expect(e.code == .sizeExceeded)
        #expect(e.offset == 0)
        #expect(e.reason == "input of 1048577 bytes is over 1048576")
        #expect(try JSON.parse("12345", maxSize: 5) == Self.n("12345"))
        #expect(Self.parseError("12345", maxSize: 4)?.code == .sizeExceeded)
        // Whitespace counts towards the size.
        #expect(Self.parseError("1    ", maxSize: 4)?.code == .sizeExceeded)
    }

    // MARK: - Surprising but intended-looking behaviour, pinned down

    /// Duplicate detection compares names with Swift `String ==`, which is Unicode canonical equivalence: "é"
    /// (U+00E9) and "e" + U+0301 are distinct names per RFC 8259 §8.3 (code unit comparison) but are refused as
    /// duplicates here, and `subscript` finds either spelling.
    @Test func canonicallyEquivalentNamesCountAsDuplicates() throws {
        let composed = "{\"\u{E9}\":1,\"e\u{301}\":2}"
        let e = try #require(Self.parseError(composed))
        #expect(e.code == .duplicateKey)
        #expect(e.offset == 8)
        let v = try JSON.parse("{\"\u{E9}\":1}")
        #expect(v["e\u{301}"]?.int64Value == 1)
    }

    // MARK: - Serialization and round trips

    @Test func serializationEscapes() throws {
        let s = JSONValue.string("q\"b\\s/n\nr\rt\tb\u{08}f\u{0C}c\u{01}\u{1F}d\u{7F}\u{E9}\u{1F600}")
        #expect(s.serialized == #""q\"b\\s/n\nr\rt\tb\bf\fc\u0001\u001fd"# + "\u{7F}\u{E9}\u{1F600}\"")
        #expect(try JSON.parse(s.serialized) == s)
        let v = Self.obj(("a", .array([Self.n("1"), .null])), ("b", .object([])), ("c", .array([])))
        #expect(v.serialized == #"{"a":[1,null],"b":{},"c":[]}"#)
        #expect(v.prettySerialized == "{\n  \"a\": [\n    1,\n    null\n  ],\n  \"b\": {},\n  \"c\": []\n}")
    }

    static func randomString(_ g: inout SplitMix64) -> String {
        var s = String.UnicodeScalarView()
        let specials: [Unicode.Scalar] = [
            "\"", "\\", "/", "\u{0}", "\u{08}", "\u{0C}", "\n", "\r", "\t", "\u{1F}", "\u{7F}",
        ]
        let ranges: [ClosedRange<UInt32>] = [
            0x20...0x7e, 0x80...0x7ff, 0x800...0xd7ff, 0xe000...0xffff, 0x1_0000...0x10_ffff,
        ]
        for _ in 0..<Int.random(in: 0...12, using: &g) {
            if UInt8.random(in: 0..<4, using: &g) == 0 {
                s.append(specials.randomElement(using: &g)!)
            } else {
                s.append(Unicode.Scalar(UInt32.random(in: ranges.randomElement(using: &g)!, using: &g))!)
            }
        }
        return String(s)
    }

    static func randomNumber(_ g: inout SplitMix64) -> String {
        var t = Bool.random(using: &g) ? "-" : ""
        t += UInt8.random(in: 0..<4, using: &g) == 0 ? "0" : String(UInt64.random(in: 1...UInt64.max, using: &g))
        if Bool.random(using: &g) { t += "." + String(UInt32.random(in: 0...999_999, using: &g)) }
        if Bool.random(using: &g) {
            t += ["e", "E"].randomElement(using: &g)! + ["", "+", "-"].randomElement(using: &g)!
            t += String(UInt8.random(in: 0...99, using: &g))
        }
        return t
    }

    static func randomValue(_ g: inout SplitMix64, depth: Int) -> JSONValue {
        switch Int.random(in: 0..<(depth >= 6 ? 4 : 7), using: &g) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &g))
        case 2: return .number(randomNumber(&g))
        case 3: return .string(randomString(&g))
        case 4, 5: return .array((0..<Int.random(in: 0...5, using: &g)).map { _ in randomValue(&g, depth: depth + 1) })
        default:
            var members: [JSONMember] = []
            for _ in 0..<Int.random(in: 0...5, using: &g) {
                let key = randomString(&g)
                if !members.contains(where: { $0.key == key }) {
                    members.append(JSONMember(key, randomValue(&g, depth: depth + 1)))
                }
            }
            return .object(members)
        }
    }

    @Test func randomValuesRoundTrip() throws {
        var g = SplitMix64(seed: 8259)
        var totalBytes = 0
        for i in 0..<3000 {
            let v = Self.randomValue(&g, depth: 0)
            let compact = v.serialized
            totalBytes += compact.utf8.count
            // One counterexample is enough: stop at the first instead of reporting thousands.
            let parsed = try JSON.parse(compact)
            try #require(parsed == v, "value \(i): \(compact)")
            try #require(parsed.serialized.utf8.elementsEqual(compact.utf8), "value \(i)")
            try #require(try JSON.parse(v.prettySerialized) == v, "value \(i)")
            // Any proper prefix of a container or string is refused (a number's prefix may be a number).
            if i % 50 == 0 && v.typeName != "number" {
                let bytes = Array(compact.utf8)
                for n in 0..<bytes.count {
                    try #require(Self.parseError(Array(bytes.prefix(n))) != nil, "value \(i), prefix \(n)")
                }
            }
        }
        #expect(totalBytes > 50_000)
    }
}
