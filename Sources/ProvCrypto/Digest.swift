import CShims
import Foundation

/// A SHA-256 digest: 32 bytes, stored inline so that comparing and copying one costs no allocation.
public struct SHA256Digest: Hashable, Sendable, Comparable, CustomStringConvertible {
    // Four big-endian-agnostic words holding the bytes in memory order.
    private var w0: UInt64 = 0
    private var w1: UInt64 = 0
    private var w2: UInt64 = 0
    private var w3: UInt64 = 0

    /// The all-zero digest (the `prev` of entry 0).
    public static let zero = SHA256Digest()

    public init() {}

    /// Copies 32 bytes from `pointer`.
    public init(copying pointer: UnsafeRawPointer) {
        Swift.withUnsafeMutableBytes(of: &self) {
            $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: 32))
        }
    }

    /// Takes exactly 32 bytes; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        Swift.withUnsafeMutableBytes(of: &self) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
    }

    /// Parses 64 hex digits (either case).
    public init?(hex: some StringProtocol) {
        guard let bytes = Hex.decode(hex), let d = SHA256Digest(bytes: bytes) else { return nil }
        self = d
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    public var hex: String { withUnsafeBytes { Hex.encode($0) } }

    public var base64: String { Data(bytes).base64EncodedString() }

    public var description: String { hex }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: self) { try body($0) }
    }

    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeMutableBytes(of: &self) { try body($0) }
    }

    public static func < (a: SHA256Digest, b: SHA256Digest) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, 32) < 0 } }
    }
}

/// SHA-256 (FIPS 180-4) through OpenSSL.
public enum SHA256 {
    public static func hash(_ data: UnsafeRawBufferPointer) -> SHA256Digest {
        var d = SHA256Digest()
        d.withUnsafeMutableBytes { out in
            prov_sha256(data.baseAddress, data.count, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return d
    }

    public static func hash(_ bytes: some ContiguousBytes) -> SHA256Digest {
        bytes.withUnsafeBytes { hash($0) }
    }

    public static func hash(_ string: String) -> SHA256Digest {
        hash(Array(string.utf8))
    }

    /// SHA-256(prefix ‖ data).
    public static func hash(prefix: UInt8, _ data: UnsafeRawBufferPointer) -> SHA256Digest {
        var d = SHA256Digest()
        d.withUnsafeMutableBytes { out in
            prov_sha256_prefixed(
                prefix, data.baseAddress, data.count, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return d
    }

    /// SHA-256(0x01 ‖ left ‖ right).
    public static func node(_ left: SHA256Digest, _ right: SHA256Digest) -> SHA256Digest {
        var d = SHA256Digest()
        withUnsafeBytes(of: left) { l in
            withUnsafeBytes(of: right) { r in
                d.withUnsafeMutableBytes { out in
                    prov_sha256_node(
                        l.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        r.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        out.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        return d
    }
}

/// HMAC-SHA256 (RFC 2104) with the key schedule computed once.
public struct HMACSHA256Key: Sendable {
    private let state: prov_hmac_sha256_key

    public init(secret: some ContiguousBytes) {
        var s = prov_hmac_sha256_key()
        secret.withUnsafeBytes { prov_hmac_sha256_init(&s, $0.baseAddress, $0.count) }
        state = s
    }

    public func mac(_ data: UnsafeRawBufferPointer) -> SHA256Digest {
        var d = SHA256Digest()
        withUnsafePointer(to: state) { key in
            d.withUnsafeMutableBytes { out in
                prov_hmac_sha256(
                    key, data.baseAddress, data.count, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return d
    }

    public func mac(_ bytes: some ContiguousBytes) -> SHA256Digest { bytes.withUnsafeBytes { mac($0) } }

    public func mac(_ string: String) -> SHA256Digest {
        var s = string
        return s.withUTF8 { mac(UnsafeRawBufferPointer($0)) }
    }
}

/// CRC-32C (Castagnoli): the record checksum of segment files.
public enum CRC32C {
    public static func checksum(_ data: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        prov_crc32c(seed, data.baseAddress, data.count)
    }
}

/// Lower-case hex, and a strict decoder.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            for (i, b) in bytes.enumerated() {
                out[2 * i] = digits[Int(b >> 4)]
                out[2 * i + 1] = digits[Int(b & 0x0f)]
            }
            return bytes.count * 2
        }
    }

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let a = Array(bytes)
        return a.withUnsafeBytes { encode($0) }
    }

    /// Decodes an even number of hex digits; nil on any other character.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = value(utf8[i]), let lo = value(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    /// The value of one hex digit.
    @inline(__always) public static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c &- UInt8(ascii: "A") &+ 10
        default: return nil
        }
    }
}

/// Standard base64 (RFC 4648 §4), decoded strictly: only the one text that encoding the bytes gives back is
/// accepted. Foundation's decoder also takes padding bits that are not zero (`AB==` for the byte 0x00), which
/// would give one value several texts: a signed note or receipt could then be changed without changing what it
/// proves.
public enum Base64 {
    public static func decodeCanonical(_ text: some StringProtocol) -> [UInt8]? {
        guard let d = Data(base64Encoded: String(text)) else { return nil }
        let bytes = [UInt8](d)
        guard d.base64EncodedString().utf8.elementsEqual(text.utf8) else { return nil }
        return bytes
    }
}

/// base64url without padding (RFC 4648 §5), the text form of refs: written and read by table, with no Foundation
/// string work (this runs for every ref a view or report renders).
public enum Base64URL {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    static let values: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        let b = Array(bytes)
        var out = [UInt8]()
        out.reserveCapacity((b.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= b.count {
            let n = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2])
            for shift in [18, 12, 6, 0] { out.append(alphabet[Int(n >> UInt32(shift) & 63)]) }
            i += 3
        }
        let rest = b.count - i
        if rest > 0 {
            let n = UInt32(b[i]) << 16 | (rest == 2 ? UInt32(b[i + 1]) << 8 : 0)
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            if rest == 2 { out.append(alphabet[Int(n >> 6 & 63)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of `text`, only when `encode` gives `text` back (no padding, unused bits zero); nil otherwise.
    public static func decodeCanonical(_ text: some StringProtocol) -> [UInt8]? {
        let t = Array(text.utf8)
        guard t.count % 4 != 1 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(t.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        for c in t {
            let v = values[Int(c)]
            guard v != 0xFF else { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(acc >> UInt32(bits) & 0xFF))
            }
        }
        guard acc & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return out
    }
}
