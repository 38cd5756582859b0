import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// Spec tests for the deterministic CBOR codec (RFC 8949): Appendix A vectors for the subset the ledger uses,
/// the §4.2.1 deterministic encoding rules the decoder enforces, the limits, and an encode/decode round-trip
/// property over seeded random values.
@Suite struct CBORTests {
    /// An RFC 8949 Appendix A example: the value and its encoding.
    struct Vector: Sendable, CustomTestStringConvertible {
        let diagnostic: String
        let hex: String
        let value: CBOR
        var testDescription: String { "\(diagnostic) = h'\(hex)'" }
    }

    /// Input the decoder must refuse, with the error it must give: code, byte offset and a phrase of the reason.
    struct Rejection: Sendable, CustomTestStringConvertible {
        let hex: String
        let code: CBORError.Code
        let offset: Int
        let says: String
        let why: String
        init(_ hex: String, _ code: CBORError.Code, at offset: Int, says: String, _ why: String) {
            self.hex = hex
            self.code = code
            self.offset = offset
            self.says = says
            self.why = why
        }
        var testDescription: String { "\(why): h'\(hex)'" }
    }

    static func bytes(_ hex: String) -> [UInt8] { Hex.decode(hex)! }

    static func decodeError(_ bytes: [UInt8], maxDepth: Int = 16, maxSize: Int = 1 << 20) -> CBORError? {
        do throws(CBORError) {
            _ = try CBOR.decode(bytes, maxDepth: maxDepth, maxSize: maxSize)
            return nil
        } catch {
            return error
        }
    }

    static func u(_ v: UInt64) -> CBOR { .unsigned(v) }

    static func pair(_ k: CBOR, _ v: CBOR) -> CBOR.Pair { CBOR.Pair(k, v) }

    // MARK: - RFC 8949 Appendix A

    static let appendixA: [Vector] = [
        Vector(diagnostic: "0", hex: "00", value: u(0)),
        Vector(diagnostic: "1", hex: "01", value: u(1)),
        Vector(diagnostic: "10", hex: "0a", value: u(10)),
        Vector(diagnostic: "23", hex: "17", value: u(23)),
        Vector(diagnostic: "24", hex: "1818", value: u(24)),
        Vector(diagnostic: "25", hex: "1819", value: u(25)),
        Vector(diagnostic: "100", hex: "1864", value: u(100)),
        Vector(diagnostic: "1000", hex: "1903e8", value: u(1000)),
        Vector(diagnostic: "1000000", hex: "1a000f4240", value: u(1_000_000)),
        Vector(diagnostic: "1000000000000", hex: "1b000000e8d4a51000", value: u(1_000_000_000_000)),
        Vector(diagnostic: "18446744073709551615", hex: "1bffffffffffffffff", value: u(UInt64.max)),
        Vector(diagnostic: "-18446744073709551616", hex: "3bffffffffffffffff", value: .negative(UInt64.max)),
        Vector(diagnostic: "-1", hex: "20", value: .int(-1)),
        Vector(diagnostic: "-10", hex: "29", value: .int(-10)),
        Vector(diagnostic: "-100", hex: "3863", value: .int(-100)),
        Vector(diagnostic: "-1000", hex: "3903e7", value: .int(-1000)),
        Vector(diagnostic: "false", hex: "f4", value: .bool(false)),
        Vector(diagnostic: "true", hex: "f5", value: .bool(true)),
        Vector(diagnostic: "null", hex: "f6", value: .null),
        Vector(diagnostic: "h''", hex: "40", value: .bytes([])),
        Vector(diagnostic: "h'01020304'", hex: "4401020304", value: .bytes([1, 2, 3, 4])),
        Vector(diagnostic: "\"\"", hex: "60", value: .text("")),
        Vector(diagnostic: "\"a\"", hex: "6161", value: .text("a")),
        Vector(diagnostic: "\"IETF\"", hex: "6449455446", value: .text("IETF")),
        Vector(diagnostic: "\"\\\"\\\\\"", hex: "62225c", value: .text("\"\\")),
        Vector(diagnostic: "\"\\u00fc\"", hex: "62c3bc", value: .text("\u{00FC}")),
        Vector(diagnostic: "\"\\u6c34\"", hex: "63e6b0b4", value: .text("\u{6C34}")),
        Vector(diagnostic: "\"\\ud800\\udd51\"", hex: "64f0908591", value: .text("\u{10151}")),
        Vector(diagnostic: "[]", hex: "80", value: .array([])),
        Vector(diagnostic: "[1, 2, 3]", hex: "83010203", value: .array([u(1), u(2), u(3)])),
        Vector(
            diagnostic: "[1, [2, 3], [4, 5]]", hex: "8301820203820405",
            value: .array([u(1), .array([u(2), u(3)]), .array([u(4), u(5)])])),
        Vector(
            diagnostic: "[1, 2, ..., 25]", hex: "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
            value: .array((1...25).map { u($0) })),
        Vector(diagnostic: "{}", hex: "a0", value: .map([])),
        Vector(diagnostic: "{1: 2, 3: 4}", hex: "a201020304", value: .map([pair(u(1), u(2)), pair(u(3), u(4))])),
        Vector(
            diagnostic: "{\"a\": 1, \"b\": [2, 3]}", hex: "a26161016162820203",
            value: .map([pair(.text("a"), u(1)), pair(.text("b"), .array([u(2), u(3)]))])),
        Vector(
            diagnostic: "[\"a\", {\"b\": \"c\"}]", hex: "826161a161626163",
            value: .array([.text("a"), .map([pair(.text("b"), .text("c"))])])),
        Vector(
            diagnostic: "{\"a\": \"A\", \"b\": \"B\", \"c\": \"C\", \"d\": \"D\", \"e\": \"E\"}",
            hex: "a56161614161626142616361436164614461656145",
            value: .map(["a", "b", "c", "d", "e"].map { pair(.text($0), .text($0.uppercased())) })),
    ]

    @Test(arguments: appendixA)
    func appendixAEncodes(_ v: Vector) {
        #expect(Hex.encode(v.value.encoded) == v.hex)
    }

    @Test(arguments: appendixA)
    func appendixADecodes(_ v: Vector) throws {
        let decoded = try CBOR.decode(Self.bytes(v.hex))
        #expect(decoded == v.value)
        #expect(Hex.encode(decoded.encoded) == v.hex)
        // The skipping reader walks the same item to its end.
        let bytes = Self.bytes(v.hex)
        try bytes.withUnsafeBytes { raw in
            var r = CBORReader(raw)
            try r.skipValue()
            #expect(r.offset == bytes.count)
            #expect(r.isAtEnd)
        }
    }

    /// Appendix A examples outside the deterministic subset: each is refused with the reason it is outside.
    static let appendixAOutsideSubset: [Rejection] = [
        Rejection("c249010000000000000000", .unsupportedType, at: 0, says: "tags", "bignum 18446744073709551616"),
        Rejection("c349010000000000000000", .unsupportedType, at: 0, says: "tags", "bignum -18446744073709551617"),
        Rejection("f90000", .floatNotAllowed, at: 0, says: "floating-point", "0.0 (half)"),
        Rejection("f93c00", .floatNotAllowed, at: 0, says: "floating-point", "1.0 (half)"),
        Rejection("f97bff", .floatNotAllowed, at: 0, says: "floating-point", "65504.0 (half)"),
        Rejection("f97e00", .floatNotAllowed, at: 0, says: "floating-point", "NaN (half)"),
        Rejection("fa47c35000", .floatNotAllowed, at: 0, says: "floating-point", "100000.0 (single)"),
        Rejection("fa7f800000", .floatNotAllowed, at: 0, says: "floating-point", "Infinity (single)"),
        Rejection("fb3ff199999999999a", .floatNotAllowed, at: 0, says: "floating-point", "1.1 (double)"),
        Rejection("fbfff0000000000000", .floatNotAllowed, at: 0, says: "floating-point", "-Infinity (double)"),
        Rejection("f7", .unsupportedType, at: 0, says: "undefined", "undefined"),
        Rejection("f8ff", .unsupportedType, at: 0, says: "simple values", "simple(255)"),
        Rejection(
            "c074323031332d30332d32315432303a30343a30305a", .unsupportedType, at: 0, says: "tags",
            "0(\"2013-03-21T20:04:00Z\")"),
        Rejection("c11a514b67b0", .unsupportedType, at: 0, says: "tags", "1(1363896240)"),
        Rejection("d74401020304", .unsupportedType, at: 0, says: "tags", "23(h'01020304')"),
        Rejection(
            "d82076687474703a2f2f7777772e6578616d706c652e636f6d", .unsupportedType, at: 0, says: "tags",
            "32(\"http://www.example.com\")"),
        Rejection("5f42010243030405ff", .indefiniteLength, at: 0, says: "indefinite-length", "(_ h'0102', h'030405')"),
        Rejection(
            "7f657374726561646d696e67ff", .indefiniteLength, at: 0, says: "indefinite-length",
            "(_ \"strea\", \"ming\")"),
        Rejection("9fff", .indefiniteLength, at: 0, says: "indefinite-length", "[_ ]"),
        Rejection(
            "9f018202039f0405ffff", .indefiniteLength, at: 0, says: "indefinite-length", "[_ 1, [2, 3], [_ 4, 5]]"),
        Rejection("83018202039f0405ff", .indefiniteLength, at: 5, says: "indefinite-length", "[1, [2, 3], [_ 4, 5]]"),
        Rejection("83019f0203ff820405", .indefiniteLength, at: 2, says: "indefinite-length", "[1, [_ 2, 3], [4, 5]]"),
        Rejection(
            "bf61610161629f0203ffff", .indefiniteLength, at: 0, says: "indefinite-length",
            "{_ \"a\": 1, \"b\": [_ 2, 3]}"),
        Rejection(
            "826161bf61626163ff", .indefiniteLength, at: 3, says: "indefinite-length", "[\"a\", {_ \"b\": \"c\"}]"),
    ]

    @Test(arguments: appendixAOutsideSubset)
    func appendixAOutsideTheSubsetIsRejected(_ r: Rejection) throws {
        try Self.expectRejected(r)
    }

    static func expectRejected(_ r: Rejection, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let e = try #require(decodeError(bytes(r.hex)), "decoded although \(r.why)", sourceLocation: sourceLocation)
        #expect(e.code == r.code, "\(e)", sourceLocation: sourceLocation)
        #expect(e.offset == r.offset, "\(e)", sourceLocation: sourceLocation)
        #expect(
            e.reason.contains(r.says), "reason \"\(e.reason)\" should mention \(r.says)", sourceLocation: sourceLocation
        )
        #expect(e.description == "\(e.reason) (at byte \(e.offset))", sourceLocation: sourceLocation)
    }

    // MARK: - Shortest form (RFC 8949 §4.2.1)

    /// Every width boundary of the head argument, for each major type with an integer argument.
    @Test func writerUsesTheShortestHead() {
        let cases: [(UInt64, String)] = [
            (0, "00"), (23, "17"), (24, "1818"), (255, "18ff"), (256, "190100"), (65535, "19ffff"),
            (65536, "1a00010000"), (0xffff_ffff, "1affffffff"), (0x1_0000_0000, "1b0000000100000000"),
            (UInt64.max, "1bffffffffffffffff"),
        ]
        for (v, hex) in cases {
            #expect(Hex.encode(CBOR.unsigned(v).encoded) == hex)
            // Same argument under major type 1 (negative), 4 (array header), 5 (map header).
            var w = CBORWriter()
            w.writeHead(major: 1, argument: v)
            w.writeHead(major: 4, argument: v)
            w.writeHead(major: 5, argument: v)
            let b = Self.bytes(hex)
            let tail = Array(b.dropFirst())
            let expected: [UInt8] = [b[0] | 0x20] + tail + [b[0] | 0x80] + tail + [b[0] | 0xa0] + tail
            #expect(w.bytes == expected)
        }
        #expect(Hex.encode(CBOR.int(Int64.min).encoded) == "3b7fffffffffffffff")
        #expect(Hex.encode(CBOR.int(Int64.max).encoded) == "1b7fffffffffffffff")
        #expect(CBOR.int(-1) == .negative(0))
        #expect(CBOR.int(0) == .unsigned(0))
    }

    @Test(arguments: [
        (23, "77"), (24, "7818"), (255, "78ff"), (256, "790100"), (65535, "79ffff"), (65536, "7a00010000"),
    ])
    func stringLengthsUseTheShortestHead(length: Int, head: String) throws {
        let text = String(repeating: "x", count: length)
        let encoded = CBOR.text(text).encoded
        #expect(Hex.encode(encoded.prefix(head.count / 2)) == head)
        #expect(encoded.count == head.count / 2 + length)
        #expect(try CBOR.decode(encoded) == .text(text))
        // Byte strings use the same lengths under major type 2.
        let bytes = CBOR.bytes([UInt8](repeating: 7, count: length)).encoded
        #expect(bytes[0] == encoded[0] & 0x1f | 0x40)
        #expect(bytes.dropFirst().prefix(head.count / 2 - 1) == encoded.dropFirst().prefix(head.count / 2 - 1))
        #expect(try CBOR.decode(bytes) == .bytes([UInt8](repeating: 7, count: length)))
    }

    /// The smallest value each head width may carry decodes; one less in the same width is refused.
    @Test func decoderAcceptsEachWidthFromItsMinimum() throws {
        #expect(try CBOR.decode(Self.bytes("1818")) == .unsigned(24))
        #expect(try CBOR.decode(Self.bytes("190100")) == .unsigned(256))
        #expect(try CBOR.decode(Self.bytes("1a00010000")) == .unsigned(65536))
        #expect(try CBOR.decode(Self.bytes("1b0000000100000000")) == .unsigned(0x1_0000_0000))
        #expect(try CBOR.decode(Self.bytes("3b0000000100000000")) == .negative(0x1_0000_0000))
    }

    static let nonShortest: [Rejection] = [
        Rejection("1817", .nonShortest, at: 0, says: "argument 23 encoded in 2 bytes", "23 in a 1-byte argument"),
        Rejection("190017", .nonShortest, at: 0, says: "argument 23 encoded in 3 bytes", "23 in a 2-byte argument"),
        Rejection("1a00000017", .nonShortest, at: 0, says: "argument 23 encoded in 5 bytes", "23 in a 4-byte argument"),
        Rejection(
            "1b0000000000000017", .nonShortest, at: 0, says: "argument 23 encoded in 9 bytes",
            "23 in an 8-byte argument"
        ),
        Rejection("1800", .nonShortest, at: 0, says: "shortest form", "0 in a 1-byte argument"),
        Rejection("1900ff", .nonShortest, at: 0, says: "argument 255 encoded in 3 bytes", "255 in a 2-byte argument"),
        Rejection("1a0000ffff", .nonShortest, at: 0, says: "argument 65535", "65535 in a 4-byte argument"),
        Rejection(
            "1b00000000ffffffff", .nonShortest, at: 0, says: "argument 4294967295", "2^32-1 in an 8-byte argument"),
        Rejection("3817", .nonShortest, at: 0, says: "shortest form", "-24 in a 1-byte argument"),
        Rejection("390017", .nonShortest, at: 0, says: "shortest form", "-24 in a 2-byte argument"),
        Rejection("5800", .nonShortest, at: 0, says: "shortest form", "h'' with a 1-byte length"),
        Rejection("5817", .nonShortest, at: 0, says: "shortest form", "byte string length 23 in 1 byte, no content"),
        Rejection("59000101", .nonShortest, at: 0, says: "shortest form", "h'01' with a 2-byte length"),
        Rejection("7800", .nonShortest, at: 0, says: "shortest form", "\"\" with a 1-byte length"),
        Rejection("780161", .nonShortest, at: 0, says: "shortest form", "\"a\" with a 1-byte length"),
        Rejection("7a0000000161", .nonShortest, at: 0, says: "shortest form", "\"a\" with a 4-byte length"),
        Rejection("9800", .nonShortest, at: 0, says: "shortest form", "[] with a 1-byte count"),
        Rejection("99000100", .nonShortest, at: 0, says: "shortest form", "[0] with a 2-byte count"),
        Rejection("b800", .nonShortest, at: 0, says: "shortest form", "{} with a 1-byte count"),
        Rejection("b9000100f6", .nonShortest, at: 0, says: "shortest form", "{0: null} with a 2-byte count"),
        Rejection("82011801", .nonShortest, at: 2, says: "argument 1 encoded in 2 bytes", "nested [1, 1] element"),
        Rejection("a1180000", .nonShortest, at: 1, says: "shortest form", "map key 0 in a 1-byte argument"),
        Rejection("a1001800", .nonShortest, at: 2, says: "shortest form", "map value 0 in a 1-byte argument"),
    ]

    @Test(arguments: nonShortest)
    func nonShortestFormIsRejected(_ r: Rejection) throws {
        try Self.expectRejected(r)
    }

    // MARK: - Indefinite lengths, reserved values, tags, simple values

    static let notWellFormedOrUnsupported: [Rejection] = [
        Rejection("5f", .indefiniteLength, at: 0, says: "indefinite-length", "indefinite byte string head"),
        Rejection("7f", .indefiniteLength, at: 0, says: "indefinite-length", "indefinite text string head"),
        Rejection("9f", .indefiniteLength, at: 0, says: "indefinite-length", "indefinite array head"),
        Rejection("bf", .indefiniteLength, at: 0, says: "indefinite-length", "indefinite map head"),
        Rejection("5fff", .indefiniteLength, at: 0, says: "indefinite-length", "empty indefinite byte string"),
        Rejection("7fff", .indefiniteLength, at: 0, says: "indefinite-length", "empty indefinite text string"),
        Rejection("bfff", .indefiniteLength, at: 0, says: "indefinite-length", "empty indefinite map"),
        Rejection("1f", .indefiniteLength, at: 0, says: "indefinite-length", "unsigned integer with ai 31"),
        Rejection("3f", .indefiniteLength, at: 0, says: "indefinite-length", "negative integer with ai 31"),
        Rejection("ff", .indefiniteLength, at: 0, says: "break code outside", "lone break"),
        Rejection("8100ff", .trailingBytes, at: 2, says: "1 bytes after", "break after a definite array"),
        Rejection("1c", .unsupportedType, at: 0, says: "reserved additional information 28", "ai 28, major 0"),
        Rejection("3d", .unsupportedType, at: 0, says: "reserved additional information 29", "ai 29, major 1"),
        Rejection("5e", .unsupportedType, at: 0, says: "reserved additional information 30", "ai 30, major 2"),
        Rejection("7c", .unsupportedType, at: 0, says: "reserved additional information 28", "ai 28, major 3"),
        Rejection("9d", .unsupportedType, at: 0, says: "reserved additional information 29", "ai 29, major 4"),
        Rejection("be", .unsupportedType, at: 0, says: "reserved additional information 30", "ai 30, major 5"),
        Rejection("fc", .unsupportedType, at: 0, says: "reserved additional information 28", "ai 28, major 7"),
        Rejection("fd", .unsupportedType, at: 0, says: "reserved additional information 29", "ai 29, major 7"),
        Rejection("fe", .unsupportedType, at: 0, says: "reserved additional information 30", "ai 30, major 7"),
        Rejection("c000", .unsupportedType, at: 0, says: "tags are not used", "tag 0 on an integer"),
        Rejection("d9d9f700", .unsupportedType, at: 0, says: "tags are not used", "self-described CBOR tag 55799"),
        Rejection("dc", .unsupportedType, at: 0, says: "tags are not used", "tag head with reserved ai"),
        Rejection("81c100", .unsupportedType, at: 1, says: "tags are not used", "tag inside an array"),
        Rejection("a100c100", .unsupportedType, at: 2, says: "tags are not used", "tag on a map value"),
        Rejection("f7", .unsupportedType, at: 0, says: "undefined is not used", "undefined"),
        Rejection("8200f7", .unsupportedType, at: 2, says: "undefined is not used", "undefined in an array"),
        Rejection("f818", .unsupportedType, at: 0, says: "simple values other than", "simple(24), two-byte form"),
        Rejection("f814", .unsupportedType, at: 0, says: "simple values other than", "false in the two-byte form"),
        Rejection("f8", .unsupportedType, at: 0, says: "simple values other than", "truncated two-byte simple value"),
        Rejection("f9", .floatNotAllowed, at: 0, says: "floating-point", "truncated half float"),
        Rejection("8201f93c00", .floatNotAllowed, at: 2, says: "floating-point", "float inside an array"),
    ]

    @Test(arguments: notWellFormedOrUnsupported)
    func outsideTheDeterministicSubsetIsRejected(_ r: Rejection) throws {
        try Self.expectRejected(r)
    }

    /// Simple values 0...19 (0xe0...0xf3) are unassigned and refused. The error should point at the byte itself.
    @Test(arguments: [("e0", 0), ("f0", 0), ("f3", 0), ("8200f0", 2), ("a1f000", 1)])
    func unassignedSimpleValuesAreRejected(hex: String, offset: Int) throws {
        let e = try #require(Self.decodeError(Self.bytes(hex)))
        #expect(e.code == .unsupportedType)
        #expect(e.reason.contains("simple value"))
        #expect(e.reason.contains("is not used"))
        #expect(e.offset == offset, "\(e)")
    }

    // MARK: - Map key order and duplicates (RFC 8949 §4.2.1)

    /// The key order example of RFC 8949 §4.2.1: 10, 100, -1, "z", "aa", [100], [-1], false.
    static let rfcKeyOrder: [CBOR] = [
        u(10), u(100), .int(-1), .text("z"), .text("aa"), .array([u(100)]), .array([.int(-1)]), .bool(false),
    ]

    @Test func writerSortsMapKeysBytewise() throws {
        var g = SplitMix64(seed: 42)
        for _ in 0..<20 {
            let shuffled = Self.rfcKeyOrder.enumerated().shuffled(using: &g).map {
                Self.pair($0.element, Self.u(UInt64($0.offset)))
            }
            let encoded = CBOR.map(shuffled).encoded
            #expect(
                Hex.encode(encoded) == "a8" + "0a00" + "186401" + "2002" + "617a03" + "62616104" + "81186405" + "812006"
                    + "f407")
            let decoded = try CBOR.decode(encoded)
            guard case .map(let pairs) = decoded else {
                Issue.record("not a map: \(decoded)")
                return
            }
            #expect(pairs.map(\.key) == Self.rfcKeyOrder)
        }
    }

    @Test func writerSortsNestedMaps() {
        let inner = CBOR.map([Self.pair(.text("b"), Self.u(2)), Self.pair(.text("a"), Self.u(1))])
        let outer = CBOR.map([Self.pair(Self.u(2), .array([inner])), Self.pair(Self.u(1), inner)])
        #expect(Hex.encode(outer.encoded) == "a2" + "01a2616101616202" + "0281a2616101616202")
    }

    /// The decoded map keeps the wire (sorted) order, and `CBOR ==` compares pairs in order, so a map built out of
    /// order does not equal its own decoding although both encode the same.
    @Test func decodedMapsAreInEncodedOrder() throws {
        let built = CBOR.map([Self.pair(Self.u(3), Self.u(4)), Self.pair(Self.u(1), Self.u(2))])
        let decoded = try CBOR.decode(built.encoded)
        #expect(decoded == .map([Self.pair(Self.u(1), Self.u(2)), Self.pair(Self.u(3), Self.u(4))]))
        #expect(decoded != built)
        #expect(decoded.encoded == built.encoded)
    }

    static let keyOrder: [Rejection] = [
        Rejection("a203040102", .unsortedKeys, at: 3, says: "not in deterministic (bytewise) order", "{3: 4, 1: 2}"),
        // RFC 7049 "canonical" length-first order puts -1 (0x20) before 100 (0x1864); bytewise order does not.
        Rejection("a22000186400", .unsortedKeys, at: 3, says: "bytewise", "length-first {-1, 100}"),
        Rejection("a262616100617a00", .unsortedKeys, at: 5, says: "bytewise", "length-first {\"aa\", \"z\"}"),
        Rejection("a2f4008000", .unsortedKeys, at: 3, says: "bytewise", "{false, []}"),
        Rejection("a3010102020101", .unsortedKeys, at: 5, says: "bytewise", "third key smaller than the second"),
        Rejection("81a202000100", .unsortedKeys, at: 4, says: "bytewise", "nested map out of order"),
        Rejection("a1a20200010000", .unsortedKeys, at: 4, says: "bytewise", "map used as a key, out of order"),
        Rejection("a201020103", .duplicateKey, at: 3, says: "map key repeated", "{1: 2, 1: 3}"),
        Rejection("a2616101616102", .duplicateKey, at: 4, says: "map key repeated", "{\"a\": 1, \"a\": 2}"),
        Rejection("a28201020082010200", .duplicateKey, at: 5, says: "map key repeated", "array key repeated"),
        Rejection("81a2f600f601", .duplicateKey, at: 4, says: "map key repeated", "nested {null: 0, null: 1}"),
    ]

    @Test(arguments: keyOrder)
    func unsortedOrDuplicateKeysAreRejected(_ r: Rejection) throws {
        try Self.expectRejected(r)
    }

    /// A map written pair by pair in the wrong order (bypassing the sorting in `write(.map)`) is refused.
    @Test func handWrittenUnsortedMapIsRejected() throws {
        var w = CBORWriter()
        w.writeMapHeader(2)
        w.writeKey("b")
        w.writeInt(1)
        w.writeKey("a")
        w.writeInt(2)
        #expect(Hex.encode(w.bytes) == "a2616201616102")
        let e = try #require(Self.decodeError(w.bytes))
        #expect(e == CBORError(.unsortedKeys, 4, ""))
    }

    /// The writer does not check for duplicate keys: it emits a map the decoder then refuses. (Surprising: the
    /// non-throwing `encoded` can produce bytes that are not valid deterministic CBOR.)
    @Test func writerEmitsDuplicateKeysThatTheDecoderRefuses() throws {
        let dup = CBOR.map([Self.pair(.unsigned(1), .unsigned(2)), Self.pair(.unsigned(1), .unsigned(3))])
        #expect(Hex.encode(dup.encoded) == "a201020103")
        let e = try #require(Self.decodeError(dup.encoded))
        #expect(e.code == .duplicateKey)
        #expect(e.offset == 3)
    }

    // MARK: - Trailing bytes and truncation

    static let trailingAndTruncated: [Rejection] = [
        Rejection("0000", .trailingBytes, at: 1, says: "1 bytes after the end of the item", "two integers"),
        Rejection("a0a0", .trailingBytes, at: 1, says: "1 bytes after", "two maps"),
        Rejection("80000000", .trailingBytes, at: 1, says: "3 bytes after", "array then three bytes"),
        Rejection("616161", .trailingBytes, at: 2, says: "1 bytes after", "\"a\" then 0x61"),
        Rejection("", .truncated, at: 0, says: "input ends where an item should start", "empty input"),
        Rejection("18", .truncated, at: 0, says: "input ends inside an item's head", "1-byte argument missing"),
        Rejection("1901", .truncated, at: 0, says: "inside an item's head", "2-byte argument cut"),
        Rejection("1a000f42", .truncated, at: 0, says: "inside an item's head", "4-byte argument cut"),
        Rejection("1b00000000", .truncated, at: 0, says: "inside an item's head", "8-byte argument cut"),
        Rejection("44010203", .truncated, at: 0, says: "a byte string of 4 bytes runs past the end", "h'01020304' cut"),
        Rejection("64494554", .truncated, at: 0, says: "a text string of 4 bytes", "\"IETF\" cut"),
        Rejection("821864", .truncated, at: 3, says: "input ends where an item should start", "[100, x] cut"),
        Rejection("82", .truncated, at: 0, says: "array of 2 items cannot fit", "array head only"),
        Rejection("a1", .truncated, at: 0, says: "map of 1 pairs cannot fit", "map head only"),
        Rejection("a101", .truncated, at: 0, says: "map of 1 pairs cannot fit", "map with a key and no value"),
        Rejection("a20102", .truncated, at: 0, says: "map of 2 pairs", "second pair missing"),
        // Huge lengths with a few bytes behind them: refused from the head, before anything is allocated.
        Rejection(
            "5b0000000100000000010203", .truncated, at: 0, says: "a byte string of 4294967296 bytes runs past the end",
            "byte string claiming 2^32 bytes"),
        Rejection(
            "5bffffffffffffffff010203", .truncated, at: 0, says: "18446744073709551615 bytes",
            "byte string claiming 2^64-1"),
        Rejection("5affffffff010203", .truncated, at: 0, says: "4294967295 bytes", "byte string claiming 2^32-1"),
        Rejection(
            "7b0000000100000000616263", .truncated, at: 0, says: "a text string of 4294967296 bytes",
            "text string claiming 2^32 bytes"),
        Rejection(
            "9bffffffffffffffff000000", .truncated, at: 0, says: "array of 18446744073709551615 items cannot fit",
            "array claiming 2^64-1 items"),
        Rejection("9a00010000", .truncated, at: 0, says: "array of 65536 items", "array claiming 65536 items"),
        Rejection(
            "bbffffffffffffffff0000", .truncated, at: 0, says: "map of 18446744073709551615 pairs",
            "map claiming 2^64-1"),
        Rejection(
            "8281" + "5b0000000100000000" + "00", .truncated, at: 2, says: "4294967296 bytes", "nested huge byte string"
        ),
    ]

    @Test(arguments: trailingAndTruncated)
    func trailingBytesAndTruncationAreRejected(_ r: Rejection) throws {
        try Self.expectRejected(r)
    }

    /// Every proper prefix of a valid item is refused as truncated, never accepted or misreported.
    @Test(arguments: [
        "8301820203820405",
        "a26161016162820203",
        "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
        "a56161614161626142616361436164614461656145",
        "a4" + "00" + "1bffffffffffffffff" + "01" + "3b0000000100000000" + "6449455446" + "82f5f6"
            + "64f0908591" + "a2" + "44010203041a000f4240" + "818080",
    ])
    func everyPrefixIsTruncated(hex: String) throws {
        let full = Self.bytes(hex)
        _ = try CBOR.decode(full)
        for n in 0..<full.count {
            let e = try #require(Self.decodeError(Array(full.prefix(n))), "prefix of \(n) bytes decoded")
            #expect(e.code == .truncated, "prefix of \(n) bytes: \(e)")
            #expect(e.offset <= n, "prefix of \(n) bytes: \(e)")
        }
    }

    // MARK: - UTF-8 (RFC 8949 §3.1: text strings are UTF-8; §5.3.1 invalid UTF-8 is invalid)

    static let badUTF8: [Rejection] = [
        Rejection("61ff", .invalidUTF8, at: 0, says: "text string is not valid UTF-8", "0xff"),
        Rejection("6180", .invalidUTF8, at: 0, says: "not valid UTF-8", "lone continuation byte"),
        Rejection("62c328", .invalidUTF8, at: 0, says: "not valid UTF-8", "lead byte then ASCII"),
        Rejection("62c0af", .invalidUTF8, at: 0, says: "not valid UTF-8", "overlong 2-byte '/'"),
        Rejection("63e08080", .invalidUTF8, at: 0, says: "not valid UTF-8", "overlong 3-byte NUL"),
        Rejection("64f0808080", .invalidUTF8, at: 0, says: "not valid UTF-8", "overlong 4-byte NUL"),
        Rejection("63eda080", .invalidUTF8, at: 0, says: "not valid UTF-8", "UTF-16 surrogate U+D800"),
        Rejection("63edbfbf", .invalidUTF8, at: 0, says: "not valid UTF-8", "UTF-16 surrogate U+DFFF"),
        Rejection("64f4908080", .invalidUTF8, at: 0, says: "not valid UTF-8", "U+110000, above U+10FFFF"),
        Rejection("64f8888080", .invalidUTF8, at: 0, says: "not valid UTF-8", "5-byte form"),
        Rejection("62e282", .invalidUTF8, at: 0, says: "not valid UTF-8", "3-byte sequence cut at the end"),
        Rejection("69616263646566676880", .invalidUTF8, at: 0, says: "not valid UTF-8", "bad byte after 8 ASCII"),
        Rejection("8200" + "61ff", .invalidUTF8, at: 2, says: "not valid UTF-8", "inside an array"),
        Rejection("a161ff00", .invalidUTF8, at: 1, says: "not valid UTF-8", "as a map key"),
    ]

    @Test(arguments: badUTF8)
    func invalidUTF8TextIsRejected(_ r: Rejection) throws {
        try Self.expectRejected(r)
    }

    @Test(arguments: [
        ("64f48fbfbf", "\u{10FFFF}"), ("63ed9fbf", "\u{D7FF}"), ("63ee8080", "\u{E000}"), ("63efbfbf", "\u{FFFF}"),
        ("62c280", "\u{80}"), ("62dfbf", "\u{7FF}"), ("63e0a080", "\u{800}"), ("64f0908080", "\u{10000}"),
        ("617f", "\u{7F}"), ("6100", "\u{0}"),
    ])
    func utf8EdgesAreAccepted(hex: String, text: String) throws {
        #expect(try CBOR.decode(Self.bytes(hex)) == .text(text))
        #expect(Hex.encode(CBOR.text(text).encoded) == hex)
    }

    /// Byte strings are not text: any bytes are fine.
    @Test func byteStringsAreNotUTF8Checked() throws {
        #expect(try CBOR.decode(Self.bytes("44ffc0eda0")) == .bytes([0xff, 0xc0, 0xed, 0xa0]))
    }

    // MARK: - Depth and size limits

    @Test func depthLimitCountsEveryLevelIncludingLeaves() throws {
        // 16 levels of nesting (15 one-element arrays around an empty one) is the default limit.
        let sixteen = [UInt8](repeating: 0x81, count: 15) + [0x80]
        #expect(try CBOR.decode(sixteen) != .null)
        let e = try #require(Self.decodeError([0x81] + sixteen))
        #expect(e.code == .depthExceeded)
        #expect(e.offset == 16)
        #expect(e.reason == "nesting deeper than 16")
        // A scalar leaf is a level too: 16 arrays around 0 is 17 levels.
        #expect(try CBOR.decode([UInt8](repeating: 0x81, count: 15) + [0x00]) != .null)
        #expect(Self.decodeError([UInt8](repeating: 0x81, count: 16) + [0x00]) == CBORError(.depthExceeded, 16, ""))
        // Maps: keys and values are one level below their map.
        let maps15: [UInt8] =
            [UInt8](repeating: 0, count: 30).enumerated().map { $0.offset % 2 == 0 ? 0xa1 : 0x00 } + [0x00]
        #expect(try CBOR.decode(maps15) != .null)
        let maps16 = [0xa1, 0x00] + maps15
        #expect(Self.decodeError(maps16) == CBORError(.depthExceeded, 31, ""))
    }

    @Test func depthLimitIsConfigurable() throws {
        #expect(try CBOR.decode([0x80], maxDepth: 1) == .array([]))
        #expect(Self.decodeError([0x81, 0x00], maxDepth: 1) == CBORError(.depthExceeded, 1, ""))
        #expect(Self.decodeError([0x81, 0x00], maxDepth: 1)?.reason == "nesting deeper than 1")
        #expect(Self.decodeError([0x00], maxDepth: 0) == CBORError(.depthExceeded, 0, ""))
        #expect(try CBOR.decode([UInt8](repeating: 0x81, count: 99) + [0x00], maxDepth: 100) != .null)
    }

    /// A megabyte of nested array heads stops at the limit instead of recursing through the stack.
    @Test func deepInputFailsAtTheLimit() throws {
        let deep = [UInt8](repeating: 0x81, count: (1 << 20) - 1) + [0x00]
        #expect(Self.decodeError(deep) == CBORError(.depthExceeded, 16, ""))
        deep.withUnsafeBytes { raw in
            var r = CBORReader(raw)
            #expect(throws: CBORError(.depthExceeded, 16, "")) { try r.skipValue() }
        }
    }

    @Test func sizeLimit() throws {
        let limit = 1 << 20
        // A byte string whose encoding is exactly the limit: head 0x5a + 4-byte length.
        let fits = [0x5a, 0x00, 0x0f, 0xff, 0xfb] + [UInt8](repeating: 0xab, count: limit - 5)
        #expect(fits.count == limit)
        guard case .bytes(let b) = try CBOR.decode(fits) else {
            Issue.record("not a byte string")
            return
        }
        #expect(b.count == limit - 5)
        let over = [0x5a, 0x00, 0x0f, 0xff, 0xfc] + [UInt8](repeating: 0xab, count: limit - 4)
        let e = try #require(Self.decodeError(over))
        #expect(e.code == .sizeExceeded)
        #expect(e.offset == 0)
        #expect(e.reason.contains("1048577 bytes"))
        #expect(e.reason.contains("1048576-byte limit"))
        // Configurable.
        #expect(try CBOR.decode(Self.bytes("6449455446"), maxSize: 5) == .text("IETF"))
        #expect(Self.decodeError(Self.bytes("6449455446"), maxSize: 4) == CBORError(.sizeExceeded, 0, ""))
    }

    // MARK: - Reader and writer API

    @Test func readerIntegerAccessors() throws {
        func readInt(_ hex: String) -> Result<Int64, CBORError> {
            Self.bytes(hex).withUnsafeBytes { raw in
                var r = CBORReader(raw)
                return Result { () throws(CBORError) in try r.readInt() }
            }
        }
        #expect(try readInt("3b7fffffffffffffff").get() == Int64.min)
        #expect(try readInt("1b7fffffffffffffff").get() == Int64.max)
        #expect(try readInt("3903e7").get() == -1000)
        guard case .failure(let over) = readInt("1b8000000000000000") else {
            Issue.record("2^63 read as Int64")
            return
        }
        #expect(over.code == .integerOverflow)
        #expect(over.reason.contains("9223372036854775808"))
        guard case .failure(let under) = readInt("3b8000000000000000") else {
            Issue.record("-2^63-1 read as Int64")
            return
        }
        #expect(under.code == .integerOverflow)
        guard case .failure(let mismatch) = readInt("40") else {
            Issue.record("byte string read as an integer")
            return
        }
        #expect(mismatch.code == .typeMismatch)
        #expect(mismatch.reason == "expected an integer, found major type 2")

        // A type mismatch leaves the reader where it was, so the caller can try another type.
        try Self.bytes("6161").withUnsafeBytes { raw throws in
            var r = CBORReader(raw)
            #expect(throws: CBORError(.typeMismatch, 0, "")) { try r.readUnsigned() }
            #expect(r.offset == 0)
            #expect(try r.readText() == "a")
            #expect(r.isAtEnd)
        }
    }

    @Test func writerCopiesOnWriteAndGrows() {
        var a = CBORWriter(reservingCapacity: 1)
        a.writeUnsigned(1)
        var b = a
        b.writeUnsigned(2)
        #expect(a.bytes == [0x01])
        #expect(b.bytes == [0x01, 0x02])
        let big = [UInt8](repeating: 0x5a, count: 100_000)
        a.writeBytes(big)
        #expect(a.count == 1 + 5 + big.count)
        #expect(a.bytes.prefix(6) == [0x01, 0x5a, 0x00, 0x01, 0x86, 0xa0])
        #expect(a.bytes.suffix(big.count) == big[...])
        #expect(b.bytes == [0x01, 0x02])
        let c = a
        a.removeAll()
        #expect(a.count == 0)
        #expect(c.count == 1 + 5 + big.count)
        a.writeNull()
        a.writeBool(true)
        a.writeBool(false)
        a.writeText("\u{6C34}")
        #expect(Hex.encode(a.bytes) == "f6f5f463e6b0b4")
    }

    /// Swift `String ==` is Unicode canonical equivalence, so two `.text` values that encode to different bytes
    /// compare equal. (Surprising for a byte-exact format: do not use `CBOR ==` as "same encoding".)
    @Test func textEqualityIsCanonicalEquivalenceNotBytes() throws {
        let composed = CBOR.text("\u{E9}")
        let decomposed = CBOR.text("e\u{301}")
        #expect(Hex.encode(composed.encoded) == "62c3a9")
        #expect(Hex.encode(decomposed.encoded) == "6365cc81")
        #expect(composed == decomposed)
        // Both may be keys of one map: the decoder compares encodings, not strings.
        let map = Self.bytes("a2" + "62c3a900" + "6365cc8101")
        #expect(try CBOR.decode(map).encoded == map)
    }

    // MARK: - Round-trip property

    static func argument(_ g: inout SplitMix64) -> UInt64 {
        switch UInt8.random(in: 0..<6, using: &g) {
        case 0: UInt64.random(in: 0..<24, using: &g)
        case 1: UInt64.random(in: 24...0xff, using: &g)
        case 2: UInt64.random(in: 0x100...0xffff, using: &g)
        case 3: UInt64.random(in: 0x1_0000...0xffff_ffff, using: &g)
        case 4: UInt64.random(in: 0x1_0000_0000...UInt64.max, using: &g)
        default:
            [23, 24, 0xff, 0x100, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000, UInt64.max].randomElement(using: &g)!
        }
    }

    static func length(_ g: inout SplitMix64) -> Int {
        UInt8.random(in: 0..<8, using: &g) == 0 ? Int.random(in: 20...300, using: &g) : Int.random(in: 0...8, using: &g)
    }

    static func scalar(_ g: inout SplitMix64) -> Unicode.Scalar {
        let ranges: [ClosedRange<UInt32>] = [
            0...0x7f, 0x80...0x7ff, 0x800...0xd7ff, 0xe000...0xffff, 0x1_0000...0x10_ffff,
        ]
        return Unicode.Scalar(UInt32.random(in: ranges.randomElement(using: &g)!, using: &g))!
    }

    static func randomValue(_ g: inout SplitMix64, depth: Int) -> CBOR {
        switch Int.random(in: 0..<(depth >= 5 ? 6 : 9), using: &g) {
        case 0: return .unsigned(argument(&g))
        case 1: return .negative(argument(&g))
        case 2: return .bytes((0..<length(&g)).map { _ in UInt8.random(in: 0...255, using: &g) })
        case 3:
            var s = String.UnicodeScalarView()
            for _ in 0..<length(&g) { s.append(scalar(&g)) }
            return .text(String(s))
        case 4: return .bool(Bool.random(using: &g))
        case 5: return .null
        case 6, 7: return .array((0..<Int.random(in: 0...6, using: &g)).map { _ in randomValue(&g, depth: depth + 1) })
        default:
            var pairs: [CBOR.Pair] = []
            var seen: Set<[UInt8]> = []
            for _ in 0..<Int.random(in: 0...6, using: &g) {
                let k = randomValue(&g, depth: depth + 1)
                if seen.insert(k.encoded).inserted { pairs.append(CBOR.Pair(k, randomValue(&g, depth: depth + 1))) }
            }
            return .map(pairs)
        }
    }

    /// The value with every map's pairs in encoded-key order, as the decoder returns it.
    static func sorted(_ v: CBOR) -> CBOR {
        switch v {
        case .array(let items): return .array(items.map(sorted))
        case .map(let pairs):
            return .map(
                pairs.map { CBOR.Pair(sorted($0.key), sorted($0.value)) }
                    .sorted { $0.key.encoded.lexicographicallyPrecedes($1.key.encoded) })
        default: return v
        }
    }

    @Test func randomValuesRoundTrip() throws {
        var g = SplitMix64(seed: 0x0C_B0_8949)
        var totalBytes = 0
        for i in 0..<3000 {
            let v = Self.randomValue(&g, depth: 0)
            let bytes = v.encoded
            totalBytes += bytes.count
            // One counterexample is enough: stop at the first instead of reporting thousands.
            let decoded = try CBOR.decode(bytes)
            try #require(Hex.encode(decoded.encoded) == Hex.encode(bytes), "value \(i)")
            try #require(decoded == Self.sorted(v), "value \(i)")
            let skipped = try bytes.withUnsafeBytes { raw in
                var r = CBORReader(raw)
                try r.skipValue()
                return r.offset
            }
            try #require(skipped == bytes.count, "value \(i)")
            // Any extra byte after a valid item is refused.
            try #require(Self.decodeError(bytes + [0x00]) == CBORError(.trailingBytes, bytes.count, ""), "value \(i)")
            // And every proper prefix of a sample of them is refused as truncated.
            if i % 100 == 0 && bytes.count < 2000 {
                for n in 0..<bytes.count {
                    try #require(
                        Self.decodeError(Array(bytes.prefix(n)))?.code == .truncated, "value \(i), prefix \(n)")
                }
            }
        }
        // The generator really produces sizeable values, not just scalars.
        #expect(totalBytes > 100_000)
    }
}
