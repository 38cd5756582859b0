import Glibc

/// A CBOR decoding failure: what was wrong and at which byte.
package struct CBORError: Error, Equatable, CustomStringConvertible, Sendable {
    package enum Code: String, Equatable, Sendable {
        case truncated, nonShortest, indefiniteLength, floatNotAllowed, unsupportedType, unsortedKeys, duplicateKey,
            trailingBytes, depthExceeded, sizeExceeded, invalidUTF8, typeMismatch, integerOverflow
    }

    package var code: Code
    package var offset: Int
    package var reason: String

    package init(_ code: Code, _ offset: Int, _ reason: String) {
        self.code = code
        self.offset = offset
        self.reason = reason
    }

    package var description: String { "\(reason) (at byte \(offset))" }

    package static func == (a: CBORError, b: CBORError) -> Bool { a.code == b.code && a.offset == b.offset }
}

/// A CBOR data item of the deterministic subset this ledger uses (RFC 8949 §4.2.1): integers, byte and text
/// strings, arrays, maps, false, true, null. No floats, tags or indefinite lengths.
package indirect enum CBOR: Equatable, Sendable {
    case unsigned(UInt64)
    /// The value -1 - n.
    case negative(UInt64)
    case bytes([UInt8])
    case text(String)
    case array([CBOR])
    case map([Pair])
    case bool(Bool)
    case null

    package struct Pair: Equatable, Sendable {
        package var key: CBOR
        package var value: CBOR
        package init(_ key: CBOR, _ value: CBOR) {
            self.key = key
            self.value = value
        }
    }

    package static func int(_ v: Int64) -> CBOR {
        v >= 0 ? .unsigned(UInt64(v)) : .negative(UInt64(-(v + 1)))
    }

    /// The deterministic encoding; map pairs are sorted by their encoded keys.
    package var encoded: [UInt8] {
        var w = CBORWriter()
        w.write(self)
        return w.bytes
    }

    /// Decodes exactly one item that fills `bytes`.
    package static func decode(_ bytes: [UInt8], maxDepth: Int = 16, maxSize: Int = 1 << 20) throws(CBORError) -> CBOR {
        guard bytes.count <= maxSize else {
            throw CBORError(.sizeExceeded, 0, "input of \(bytes.count) bytes is over the \(maxSize)-byte limit")
        }
        return try withRawBytes(bytes) { raw throws(CBORError) in
            var r = CBORReader(raw, maxDepth: maxDepth)
            let v = try r.readValue()
            try r.expectEnd()
            return v
        }
    }
}

/// Streaming deterministic encoder into its own growable buffer: each write is a few stores, not an `Array`
/// append (whose per-call checks cost more than the bytes it copies for small items).
package struct CBORWriter {
    private final class Storage {
        var base: UnsafeMutableRawPointer
        var count = 0
        var capacity: Int

        init(capacity: Int) {
            self.capacity = max(capacity, 64)
            base = .allocate(byteCount: self.capacity, alignment: 8)
        }

        deinit { base.deallocate() }

        func grow(to needed: Int) {
            var c = capacity * 2
            while c < needed { c *= 2 }
            let n = UnsafeMutableRawPointer.allocate(byteCount: c, alignment: 8)
            n.copyMemory(from: base, byteCount: count)
            base.deallocate()
            base = n
            capacity = c
        }

        func copy() -> Storage {
            let s = Storage(capacity: capacity)
            s.base.copyMemory(from: base, byteCount: count)
            s.count = count
            return s
        }
    }

    private var storage: Storage

    package init(reservingCapacity: Int = 256) {
        storage = Storage(capacity: reservingCapacity)
    }

    /// The bytes written so far.
    package var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    package var count: Int { storage.count }

    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.base, count: storage.count))
    }

    /// Forgets what was written, keeping the buffer.
    package mutating func removeAll() {
        if !isKnownUniquelyReferenced(&storage) { storage = Storage(capacity: storage.capacity) }
        storage.count = 0
    }

    /// Room for `n` more bytes; returns where they go.
    @inline(__always)
    private mutating func reserve(_ n: Int) -> UnsafeMutableRawPointer {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        if storage.count + n > storage.capacity { storage.grow(to: storage.count + n) }
        return storage.base + storage.count
    }

    @inline(__always)
    private mutating func appendByte(_ b: UInt8) {
        reserve(1).storeBytes(of: b, as: UInt8.self)
        storage.count += 1
    }

    @inline(__always)
    private mutating func appendRaw(_ raw: UnsafeRawBufferPointer) {
        guard let src = raw.baseAddress, raw.count > 0 else { return }
        reserve(raw.count).copyMemory(from: src, byteCount: raw.count)
        storage.count += raw.count
    }

    /// Major type and argument in the shortest form (RFC 8949 §4.2.1).
    @inline(__always)
    package mutating func writeHead(major: UInt8, argument v: UInt64) {
        let m = major << 5
        if v < 24 {
            appendByte(m | UInt8(v))
            return
        }
        let p = reserve(9)
        let n: Int
        if v <= 0xff {
            p.storeBytes(of: m | 24, as: UInt8.self)
            p.storeBytes(of: UInt8(v), toByteOffset: 1, as: UInt8.self)
            n = 2
        } else if v <= 0xffff {
            p.storeBytes(of: m | 25, as: UInt8.self)
            p.storeBytes(of: UInt16(v).bigEndian, toByteOffset: 1, as: UInt16.self)
            n = 3
        } else if v <= 0xffff_ffff {
            p.storeBytes(of: m | 26, as: UInt8.self)
            p.storeBytes(of: UInt32(v).bigEndian, toByteOffset: 1, as: UInt32.self)
            n = 5
        } else {
            p.storeBytes(of: m | 27, as: UInt8.self)
            p.storeBytes(of: v.bigEndian, toByteOffset: 1, as: UInt64.self)
            n = 9
        }
        storage.count += n
    }

    package mutating func writeUnsigned(_ v: UInt64) { writeHead(major: 0, argument: v) }

    package mutating func writeInt(_ v: Int64) {
        if v >= 0 { writeHead(major: 0, argument: UInt64(v)) } else { writeHead(major: 1, argument: UInt64(-(v + 1))) }
    }

    package mutating func writeBytes(_ b: UnsafeRawBufferPointer) {
        writeHead(major: 2, argument: UInt64(b.count))
        appendRaw(b)
    }

    package mutating func writeBytes(_ b: [UInt8]) {
        b.withUnsafeBytes { writeBytes($0) }
    }

    package mutating func writeText(_ s: String) {
        let utf8 = s.utf8
        let done: Void? = utf8.withContiguousStorageIfAvailable { writeText(utf8: UnsafeRawBufferPointer($0)) }
        if done != nil { return }
        // Small strings live inline, with no contiguous storage to lend: withUTF8 copies them to the stack.
        var copy = s
        copy.withUTF8 { writeText(utf8: UnsafeRawBufferPointer($0)) }
    }

    /// A map key or other literal text: its UTF-8 bytes are in the binary, one copy.
    @inline(__always)
    package mutating func writeKey(_ k: StaticString) {
        writeText(utf8: UnsafeRawBufferPointer(start: k.utf8Start, count: k.utf8CodeUnitCount))
    }

    package mutating func writeText(utf8: UnsafeRawBufferPointer) {
        writeHead(major: 3, argument: UInt64(utf8.count))
        appendRaw(utf8)
    }

    package mutating func writeArrayHeader(_ count: Int) { writeHead(major: 4, argument: UInt64(count)) }

    package mutating func writeMapHeader(_ count: Int) { writeHead(major: 5, argument: UInt64(count)) }

    package mutating func writeBool(_ b: Bool) { appendByte(b ? 0xf5 : 0xf4) }

    package mutating func writeNull() { appendByte(0xf6) }

    package mutating func write(_ value: CBOR) {
        switch value {
        case .unsigned(let v): writeHead(major: 0, argument: v)
        case .negative(let n): writeHead(major: 1, argument: n)
        case .bytes(let b): writeBytes(b)
        case .text(let s): writeText(s)
        case .array(let items):
            writeArrayHeader(items.count)
            for i in items { write(i) }
        case .map(let pairs):
            // RFC 8949 §4.2.1: keys sorted by the bytewise order of their encodings.
            let encoded = pairs.map { ($0.key.encoded, $0.value) }.sorted { $0.0.lexicographicallyPrecedes($1.0) }
            writeMapHeader(encoded.count)
            for (k, v) in encoded {
                k.withUnsafeBytes { appendRaw($0) }
                write(v)
            }
        case .bool(let b): writeBool(b)
        case .null: writeNull()
        }
    }
}

/// Strict streaming decoder over a borrowed buffer: every read checks the shortest form, and nothing is
/// allocated before the input is known to hold it.
package struct CBORReader {
    package let buffer: UnsafeRawBufferPointer
    package private(set) var offset = 0
    let maxDepth: Int

    package init(_ buffer: UnsafeRawBufferPointer, maxDepth: Int = 16) {
        self.buffer = buffer
        self.maxDepth = maxDepth
    }

    package var isAtEnd: Bool { offset >= buffer.count }

    package func peekMajorType() throws(CBORError) -> UInt8 {
        guard offset < buffer.count else {
            throw CBORError(.truncated, offset, "input ends where an item should start")
        }
        return buffer[offset] >> 5
    }

    /// Reads an initial byte and its argument; checks the shortest-form rule (RFC 8949 §4.2.1).
    @inline(__always)
    mutating func readHead() throws(CBORError) -> (major: UInt8, argument: UInt64, start: Int) {
        let start = offset
        guard offset < buffer.count else {
            throw CBORError(.truncated, offset, "input ends where an item should start")
        }
        let ib = buffer[offset]
        offset += 1
        let major = ib >> 5
        let ai = ib & 0x1f
        if ai < 24 { return (major, UInt64(ai), start) }
        if major == 7 {
            switch ai {
            case 24:
                throw CBORError(.unsupportedType, start, "simple values other than false, true and null are not used")
            case 25, 26, 27: throw CBORError(.floatNotAllowed, start, "floating-point numbers are not allowed")
            case 31: throw CBORError(.indefiniteLength, start, "break code outside an indefinite-length item")
            default: throw CBORError(.unsupportedType, start, "reserved additional information \(ai)")
            }
        }
        let n: Int
        switch ai {
        case 24: n = 1
        case 25: n = 2
        case 26: n = 4
        case 27: n = 8
        case 31: throw CBORError(.indefiniteLength, start, "indefinite-length items are not allowed")
        default: throw CBORError(.unsupportedType, start, "reserved additional information \(ai)")
        }
        guard buffer.count - offset >= n else { throw CBORError(.truncated, start, "input ends inside an item's head") }
        var v: UInt64 = 0
        for i in 0..<n { v = v << 8 | UInt64(buffer[offset + i]) }
        offset += n
        let minimum: UInt64 = n == 1 ? 24 : n == 2 ? 0x100 : n == 4 ? 0x1_0000 : 0x1_0000_0000
        guard v >= minimum else {
            throw CBORError(
                .nonShortest, start, "argument \(v) encoded in \(n + 1) bytes; the shortest form is shorter")
        }
        return (major, v, start)
    }

    @inline(__always)
    mutating func expect(_ major: UInt8, _ what: StaticString) throws(CBORError) -> UInt64 {
        let (m, v, start) = try readHead()
        guard m == major else {
            offset = start
            throw CBORError(.typeMismatch, start, "expected \(what), found major type \(m)")
        }
        return v
    }

    @inline(__always)
    package mutating func readUnsigned() throws(CBORError) -> UInt64 { try expect(0, "an unsigned integer") }

    package mutating func readInt() throws(CBORError) -> Int64 {
        let (m, v, start) = try readHead()
        switch m {
        case 0:
            guard v <= UInt64(Int64.max) else { throw CBORError(.integerOverflow, start, "integer \(v) exceeds Int64") }
            return Int64(v)
        case 1:
            guard v <= UInt64(Int64.max) else {
                throw CBORError(.integerOverflow, start, "integer -1-\(v) exceeds Int64")
            }
            return -1 - Int64(v)
        default:
            offset = start
            throw CBORError(.typeMismatch, start, "expected an integer, found major type \(m)")
        }
    }

    @inline(__always)
    mutating func readLength(_ major: UInt8, _ what: StaticString) throws(CBORError) -> (Int, Int) {
        let start = offset
        let v = try expect(major, what)
        guard v <= UInt64(buffer.count - offset) else {
            throw CBORError(.truncated, start, "\(what) of \(v) bytes runs past the end of the input")
        }
        return (Int(v), start)
    }

    @inline(__always)
    package mutating func readBytes() throws(CBORError) -> UnsafeRawBufferPointer {
        let (n, _) = try readLength(2, "a byte string")
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + n)])
    }

    @inline(__always)
    package mutating func readTextBytes() throws(CBORError) -> UnsafeRawBufferPointer {
        let (n, start) = try readLength(3, "a text string")
        let slice = UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + n)])
        guard UTF8Check.isValid(slice) else { throw CBORError(.invalidUTF8, start, "text string is not valid UTF-8") }
        offset += n
        return slice
    }

    /// A text string's bytes before their UTF-8 check, and where its item starts: for a reader that first compares
    /// them with known ASCII (a key, a code) and checks the others with `checkUTF8`, which then fails as
    /// `readTextBytes` would have.
    @inline(__always)
    package mutating func readTextBytesUnchecked() throws(CBORError) -> (bytes: UnsafeRawBufferPointer, start: Int) {
        let (n, start) = try readLength(3, "a text string")
        let slice = UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + n)])
        offset += n
        return (slice, start)
    }

    /// The UTF-8 check of `readTextBytes`, on text read by `readTextBytesUnchecked` from the item at `start`.
    package static func checkUTF8(_ text: UnsafeRawBufferPointer, itemAt start: Int) throws(CBORError) {
        guard UTF8Check.isValid(text) else { throw CBORError(.invalidUTF8, start, "text string is not valid UTF-8") }
    }

    package mutating func readText() throws(CBORError) -> String {
        String(decoding: try readTextBytes(), as: UTF8.self)
    }

    @inline(__always)
    package mutating func readArrayHeader() throws(CBORError) -> Int {
        let start = offset
        let v = try expect(4, "an array")
        guard v <= UInt64(buffer.count - offset) else {
            throw CBORError(.truncated, start, "array of \(v) items cannot fit in the rest of the input")
        }
        return Int(v)
    }

    @inline(__always)
    package mutating func readMapHeader() throws(CBORError) -> Int {
        let start = offset
        let v = try expect(5, "a map")
        guard v <= UInt64(buffer.count - offset) / 2 else {
            throw CBORError(.truncated, start, "map of \(v) pairs cannot fit in the rest of the input")
        }
        return Int(v)
    }

    package mutating func readBool() throws(CBORError) -> Bool {
        guard offset < buffer.count else { throw CBORError(.truncated, offset, "input ends where a boolean should be") }
        switch buffer[offset] {
        case 0xf4:
            offset += 1
            return false
        case 0xf5:
            offset += 1
            return true
        default: throw CBORError(.typeMismatch, offset, "expected a boolean")
        }
    }

    package func expectEnd() throws(CBORError) {
        guard offset == buffer.count else {
            throw CBORError(.trailingBytes, offset, "\(buffer.count - offset) bytes after the end of the item")
        }
    }

    package mutating func readValue() throws(CBORError) -> CBOR { try readValue(depth: 0, build: true)! }

    package mutating func skipValue() throws(CBORError) { _ = try readValue(depth: 0, build: false) }

    private mutating func readValue(depth: Int, build: Bool) throws(CBORError) -> CBOR? {
        guard depth < maxDepth else { throw CBORError(.depthExceeded, offset, "nesting deeper than \(maxDepth)") }
        let major = try peekMajorType()
        switch major {
        case 0: return .unsigned(try readUnsigned())
        case 1: return .negative(try expect(1, "a negative integer"))
        case 2:
            let b = try readBytes()
            return build ? .bytes(Array(b)) : .null
        case 3:
            let t = try readTextBytes()
            return build ? .text(String(decoding: t, as: UTF8.self)) : .null
        case 4:
            let n = try readArrayHeader()
            var items: [CBOR] = []
            if build { items.reserveCapacity(n) }
            for _ in 0..<n {
                let v = try readValue(depth: depth + 1, build: build)
                if build { items.append(v!) }
            }
            return .array(items)
        case 5:
            let n = try readMapHeader()
            var pairs: [CBOR.Pair] = []
            var previous: UnsafeRawBufferPointer?
            for _ in 0..<n {
                let keyStart = offset
                let k = try readValue(depth: depth + 1, build: build)
                let key = UnsafeRawBufferPointer(rebasing: buffer[keyStart..<offset])
                if let p = previous {
                    // RFC 8949 §4.2.1: keys in bytewise lexicographic order of their encodings.
                    let c = memcmp(p.baseAddress!, key.baseAddress!, min(p.count, key.count))
                    if c == 0 && p.count == key.count {
                        throw CBORError(.duplicateKey, keyStart, "map key repeated")
                    }
                    if c > 0 || (c == 0 && p.count > key.count) {
                        throw CBORError(.unsortedKeys, keyStart, "map keys not in deterministic (bytewise) order")
                    }
                }
                previous = key
                let v = try readValue(depth: depth + 1, build: build)
                if build { pairs.append(CBOR.Pair(k!, v!)) }
            }
            return .map(pairs)
        case 6:
            throw CBORError(.unsupportedType, offset, "tags are not used")
        default:
            let b = buffer[offset]
            switch b {
            case 0xf4, 0xf5: return .bool(try readBool())
            case 0xf6:
                offset += 1
                return .null
            case 0xf7: throw CBORError(.unsupportedType, offset, "undefined is not used")
            default:
                let at = offset
                _ = try readHead()  // floats and breaks get their own error
                throw CBORError(.unsupportedType, at, "simple value \(b & 0x1f) is not used")
            }
        }
    }
}

/// Strict UTF-8 validation (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF.
package enum UTF8Check {
    @inline(__always)
    package static func isValid(_ b: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        let n = b.count
        while i < n {
            // ASCII fast path, eight bytes at a time.
            while i + 8 <= n && b.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                i += 8
            }
            guard i < n else { break }
            let c = b[i]
            if c < 0x80 {
                i += 1
                continue
            }
            var need = 0
            var lo: UInt8 = 0x80
            var hi: UInt8 = 0xbf
            switch c {
            case 0xc2...0xdf: need = 1
            case 0xe0:
                need = 2
                lo = 0xa0
            case 0xe1...0xec, 0xee...0xef: need = 2
            case 0xed:
                need = 2
                hi = 0x9f
            case 0xf0:
                need = 3
                lo = 0x90
            case 0xf1...0xf3: need = 3
            case 0xf4:
                need = 3
                hi = 0x8f
            default: return false
            }
            guard i + need < n else { return false }
            let second = b[i + 1]
            guard second >= lo && second <= hi else { return false }
            for k in 2...max(2, need) where k <= need {
                guard b[i + k] & 0xc0 == 0x80 else { return false }
            }
            i += need + 1
        }
        return true
    }
}

extension Array where Element == UInt8 {
    /// Appends raw bytes with one copy (`append(contentsOf:)` on a raw buffer goes byte by byte).
    @inline(__always)
    package mutating func appendRaw(_ raw: UnsafeRawBufferPointer) {
        guard let base = raw.baseAddress, raw.count > 0 else { return }
        append(contentsOf: UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: raw.count))
    }
}
