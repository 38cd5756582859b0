import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// Record types of a segment file (Specs/format.md §Segment files).
package enum RecordType: UInt8 {
    /// An entry's canonical bytes.
    case entry = 0x01
    /// The writer's state after a group commit: tree size, Merkle frontier, last HLC, cited heads. A cache that
    /// saves re-hashing on restart; checked against the signed checkpoint that follows it.
    case state = 0x02
    /// The signed checkpoint that ends a group commit. Entries after the last one were never acknowledged.
    case checkpoint = 0x03
}

/// Segment record framing: type (1), payload length (4, big-endian), CRC-32C (4, big-endian) over type, length
/// and payload, then the payload.
package enum SegmentFormat {
    package static let magic: [UInt8] = Array("PROVSEG1".utf8)
    package static let headerSize = 9
    package static let maxPayload = 16 << 20
    /// Index record: leaf hash (32) and the record's byte offset in its segment (8, little-endian).
    package static let indexRecordSize = 40

    package static func frame(_ type: RecordType, _ payload: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let len = UInt32(payload.count)
        var head: [UInt8] = [
            type.rawValue, UInt8(len >> 24), UInt8(len >> 16 & 0xff), UInt8(len >> 8 & 0xff), UInt8(len & 0xff),
        ]
        let crc = head.withUnsafeBytes { CRC32C.checksum(payload, seed: CRC32C.checksum($0)) }
        head += [UInt8(crc >> 24), UInt8(crc >> 16 & 0xff), UInt8(crc >> 8 & 0xff), UInt8(crc & 0xff)]
        out += head
        out.appendRaw(payload)
    }

    package static func segmentName(firstSeq: UInt64) -> String {
        let s = String(firstSeq)
        return String(repeating: "0", count: 20 - s.count) + s + ".seg"
    }

    /// Parses one record at `offset`: `.end` at a clean end of data, `.damaged` with a description of the damage.
    /// With `checksum: false` the record's CRC is left for the caller to check with `checksumMatches`.
    package static func record(in buf: UnsafeRawBufferPointer, at offset: Int, checksum: Bool = true) -> RecordParse {
        if offset == buf.count { return .end }
        guard buf.count - offset >= headerSize else { return .damaged("partial record header") }
        let p = buf.baseAddress! + offset
        guard let type = RecordType(rawValue: p.load(as: UInt8.self)) else {
            return .damaged("unknown record type 0x\(String(p.load(as: UInt8.self), radix: 16))")
        }
        let len =
            Int(p.load(fromByteOffset: 1, as: UInt8.self)) << 24 | Int(p.load(fromByteOffset: 2, as: UInt8.self)) << 16
            | Int(p.load(fromByteOffset: 3, as: UInt8.self)) << 8 | Int(p.load(fromByteOffset: 4, as: UInt8.self))
        guard len <= maxPayload else { return .damaged("record length \(len) is over the limit") }
        guard buf.count - offset - headerSize >= len else { return .damaged("partial record (\(len) bytes announced)") }
        let payload = UnsafeRawBufferPointer(start: p + headerSize, count: len)
        if checksum && !checksumMatches(payload) { return .damaged(checksumMismatch) }
        return .record(type, payload, offset + headerSize + len)
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

/// Where the last two groups of a segment end, found by walking its records by their headers alone (no checksum,
/// no hashing): how a writer finds the group it builds on without reading the whole log.
struct GroupEnds {
    /// A record's offset in the segment and where its payload lies.
    struct Record {
        var offset: Int
        var payload: Range<Int>
    }

    /// The end of a group: its last entry, state and checkpoint records, the entries up to it, and the offset after it.
    struct End {
        var entries: UInt64
        var lastEntry: Record?
        var state: Record?
        var checkpoint: Record
        var offset: Int
    }

    /// The seq after the last entry walked.
    var entries: UInt64
    var last: End?
    var previous: End?

    /// Walks `bytes` from after the magic to `end`; nil when the magic is missing or a header does not parse.
    init?(_ bytes: [UInt8], upTo end: Int, firstSeq: UInt64) {
        guard end <= bytes.count, end >= SegmentFormat.magic.count,
            Array(bytes.prefix(SegmentFormat.magic.count)) == SegmentFormat.magic
        else { return nil }
        var entries = firstSeq
        var last: End?
        var previous: End?
        let whole: Bool = bytes.withUnsafeBytes { raw in
            let buf = UnsafeRawBufferPointer(rebasing: raw[0..<end])
            var offset = SegmentFormat.magic.count
            var lastEntry: Record?
            var state: Record?
            while true {
                switch SegmentFormat.record(in: buf, at: offset, checksum: false) {
                case .end: return true
                case .damaged: return false
                case .record(let type, let payload, let next):
                    let start = payload.baseAddress! - buf.baseAddress!
                    let r = Record(offset: offset, payload: start..<(start + payload.count))
                    switch type {
                    case .entry:
                        entries += 1
                        lastEntry = r
                    case .state:
                        state = r
                    case .checkpoint:
                        previous = last
                        last = End(entries: entries, lastEntry: lastEntry, state: state, checkpoint: r, offset: next)
                        state = nil
                    }
                    offset = next
                }
            }
        }
        guard whole else { return nil }
        self.entries = entries
        self.last = last
        self.previous = previous
    }
}

/// The writer state stored after each group commit.
package struct WriterState: Sendable, Equatable {
    package var frontier: MerkleFrontier
    package var lastLeaf: SHA256Digest
    package var hlc: HLC
    /// Highest seq of each other log that this log has cited in `deps`.
    package var cited: [String: UInt64]

    package static let initial = WriterState(
        frontier: MerkleFrontier(), lastLeaf: .zero, hlc: HLC(wall: 0, counter: 0), cited: [:])

    package var encoded: [UInt8] {
        var w = CBORWriter(reservingCapacity: 256)
        w.writeMapHeader(5)
        w.writeKey("hlc")
        w.writeArrayHeader(2)
        w.writeUnsigned(hlc.wall)
        w.writeUnsigned(hlc.counter)
        w.writeKey("last")
        lastLeaf.withUnsafeBytes { w.writeBytes($0) }
        w.writeKey("size")
        w.writeUnsigned(frontier.size)
        w.writeKey("cited")
        let orgs = cited.keys.sorted()
        w.writeArrayHeader(orgs.count)
        for o in orgs {
            w.writeArrayHeader(2)
            w.writeText(o)
            w.writeUnsigned(cited[o]!)
        }
        w.writeKey("frontier")
        w.writeArrayHeader(frontier.hashes.count)
        for h in frontier.hashes { h.withUnsafeBytes { w.writeBytes($0) } }
        return w.bytes
    }

    package init(frontier: MerkleFrontier, lastLeaf: SHA256Digest, hlc: HLC, cited: [String: UInt64]) {
        self.frontier = frontier
        self.lastLeaf = lastLeaf
        self.hlc = hlc
        self.cited = cited
    }

    package init(decoding raw: UnsafeRawBufferPointer) throws {
        var r = CBORReader(raw, maxDepth: 4)
        func digest(_ name: String) throws -> SHA256Digest {
            let b = try r.readBytes()
            guard b.count == 32 else { throw LedgerError(.invalidEntry, "\(name): must be 32 bytes, got \(b.count)") }
            return SHA256Digest(copying: b.baseAddress!)
        }
        guard try r.readMapHeader() == 5, try r.readText() == "hlc", try r.readArrayHeader() == 2 else {
            throw LedgerError(.invalidEntry, "state record: malformed")
        }
        hlc = HLC(wall: try r.readUnsigned(), counter: try r.readUnsigned())
        guard try r.readText() == "last" else { throw LedgerError(.invalidEntry, "state record: malformed") }
        lastLeaf = try digest("state.last")
        guard try r.readText() == "size" else { throw LedgerError(.invalidEntry, "state record: malformed") }
        let size = try r.readUnsigned()
        guard try r.readText() == "cited" else { throw LedgerError(.invalidEntry, "state record: malformed") }
        cited = [:]
        for _ in 0..<(try r.readArrayHeader()) {
            guard try r.readArrayHeader() == 2 else { throw LedgerError(.invalidEntry, "state record: malformed") }
            let o = try r.readText()
            cited[o] = try r.readUnsigned()
        }
        guard try r.readText() == "frontier" else { throw LedgerError(.invalidEntry, "state record: malformed") }
        let n = try r.readArrayHeader()
        guard n == size.nonzeroBitCount else {
            throw LedgerError(.invalidEntry, "state record: frontier has \(n) hashes for size \(size)")
        }
        var hashes: [SHA256Digest] = []
        for _ in 0..<n { hashes.append(try digest("state.frontier")) }
        try r.expectEnd()
        frontier = MerkleFrontier(size: size, hashes: hashes)
    }
}

extension MerkleFrontier {
    package init(size: UInt64, hashes: [SHA256Digest]) {
        self.init()
        self.restore(size: size, hashes: hashes)
    }
}
