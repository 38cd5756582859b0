import ProvCrypto

/// Record types of a segment file (Specs/format.md §10.2, §10.3).
package enum RecordType: UInt8 {
    /// An entry's canonical bytes.
    case entry = 0x01
    /// The writer's state after a group commit: tree size, Merkle frontier, last HLC, cited heads. A cache that
    /// saves re-hashing on restart; checked against the signed checkpoint that follows it.
    case state = 0x02
    /// The signed checkpoint that ends a group commit. Entries after the last one were never acknowledged.
    case checkpoint = 0x03
}

/// Segment record framing (Specs/format.md §10.3): type (1), payload length (4, big-endian), CRC-32C (4,
/// big-endian) over type, length and payload, then the payload.
package enum SegmentFormat {
    package static let magic: [UInt8] = Array("PROVSEG1".utf8)
    package static let headerSize = 9
    package static let maxPayload = 16 << 20
    /// Index record: leaf hash (32) and the record's byte offset in its segment (8, little-endian).
    package static let indexRecordSize = 40

    package static func frame(_ type: RecordType, _ payload: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let len = UInt32(payload.count)
        // The header is built on the stack: framing runs once per entry written or copied.
        var head: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (
            type.rawValue, UInt8(len >> 24), UInt8(len >> 16 & 0xff), UInt8(len >> 8 & 0xff), UInt8(len & 0xff),
            0, 0, 0, 0
        )
        withUnsafeMutableBytes(of: &head) { h in
            let crc = CRC32C.checksum(payload, seed: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: h[0..<5])))
            h[5] = UInt8(crc >> 24)
            h[6] = UInt8(crc >> 16 & 0xff)
            h[7] = UInt8(crc >> 8 & 0xff)
            h[8] = UInt8(crc & 0xff)
            out.appendRaw(UnsafeRawBufferPointer(h))
        }
        out.appendRaw(payload)
    }

    package static func segmentName(firstSeq: UInt64) -> String {
        let s = String(firstSeq)
        return String(repeating: "0", count: 20 - s.count) + s + ".seg"
    }

    /// How the bytes at `offset` frame a record (§10.3), its checksum aside.
    package enum Framing {
        /// `offset` is the end of the bytes.
        case end
        /// A whole record: its type, where its payload lies, and the offset after it.
        case record(RecordType, payload: Range<Int>, next: Int)
        /// Not a record; `why` says what is wrong as Specs/format.md §12.2 words it.
        case damaged(why: String, partial: Bool)
    }

    /// Reads the record header at `offset` of `buf`. A header or payload cut short by the end of `buf` is
    /// `partial`: more bytes could make it whole.
    @inline(__always)
    package static func framing(in buf: UnsafeRawBufferPointer, at offset: Int) -> Framing {
        if offset == buf.count { return .end }
        guard buf.count - offset >= headerSize else { return .damaged(why: "partial record header", partial: true) }
        let p = buf.baseAddress! + offset
        guard let type = RecordType(rawValue: p.load(as: UInt8.self)) else {
            return .damaged(why: "unknown record type 0x\(String(p.load(as: UInt8.self), radix: 16))", partial: false)
        }
        let len = announcedLength(p)
        guard len <= maxPayload else { return .damaged(why: "record length \(len) is over the limit", partial: false) }
        guard buf.count - offset - headerSize >= len else {
            return .damaged(why: "partial record (\(len) bytes announced)", partial: true)
        }
        return .record(
            type, payload: (offset + headerSize)..<(offset + headerSize + len), next: offset + headerSize + len)
    }

    /// The payload length in the header at `p` (at least 5 bytes).
    @inline(__always)
    package static func announcedLength(_ p: UnsafeRawPointer) -> Int {
        Int(p.load(fromByteOffset: 1, as: UInt8.self)) << 24 | Int(p.load(fromByteOffset: 2, as: UInt8.self)) << 16
            | Int(p.load(fromByteOffset: 3, as: UInt8.self)) << 8 | Int(p.load(fromByteOffset: 4, as: UInt8.self))
    }

    /// Parses one record at `offset`: `.end` at a clean end of data, `.damaged` with a description of the damage.
    /// With `checksum: false` the record's CRC is left for the caller to check with `checksumMatches`. Segment
    /// files are read through `SegmentReader`; this is for one record already in memory.
    package static func record(in buf: UnsafeRawBufferPointer, at offset: Int, checksum: Bool = true) -> RecordParse {
        switch framing(in: buf, at: offset) {
        case .end: return .end
        case .damaged(let why, _): return .damaged(why)
        case .record(let type, let range, let next):
            let payload = UnsafeRawBufferPointer(rebasing: buf[range])
            if checksum && !checksumMatches(payload) { return .damaged(checksumMismatch) }
            return .record(type, payload, next)
        }
    }

    package static let checksumMismatch = "record checksum mismatch"

    /// Whether the CRC-32C in the header before `payload` covers its first five bytes and the payload.
    package static func checksumMatches(_ payload: UnsafeRawBufferPointer) -> Bool {
        let p = payload.baseAddress! - headerSize
        let stored =
            UInt32(p.load(fromByteOffset: 5, as: UInt8.self)) << 24
            | UInt32(p.load(fromByteOffset: 6, as: UInt8.self)) << 16
            | UInt32(p.load(fromByteOffset: 7, as: UInt8.self)) << 8 | UInt32(p.load(fromByteOffset: 8, as: UInt8.self))
        return CRC32C.checksum(payload, seed: CRC32C.checksum(UnsafeRawBufferPointer(start: p, count: 5))) == stored
    }

    package enum RecordParse {
        case end
        case damaged(String)
        case record(RecordType, UnsafeRawBufferPointer, Int)
    }
}
