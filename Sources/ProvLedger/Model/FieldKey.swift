/// Reads text map keys and checks that they come in deterministic order (RFC 8949 §4.2.1: shorter encodings
/// first, then bytewise), which also rules out duplicates.
struct KeyOrder {
    private var previous: (count: Int, hi: UInt64, lo: UInt64)?

    /// The next key, as one of the keys of format version 1 (a switch over it is a jump table, where a switch
    /// over strings compares them one by one). A key that is known and in order is ASCII, so its UTF-8 is not
    /// checked; any other is checked in the order the strict reader always has: UTF-8, size, order, known.
    @inline(__always)
    mutating func next(_ r: inout CBORReader, in map: String) throws -> FieldKey {
        let (k, start) = try r.readTextBytesUnchecked()
        if k.count < 16 {
            let (hi, lo) = FieldKey.pack(k, readable: r.buffer.count - (r.offset - k.count))
            // Deterministic order: shorter first, then bytewise; the words hold the bytes big-endian.
            if previous.map({ ($0.count, $0.hi, $0.lo) < (k.count, hi, lo) }) ?? true,
                let key = FieldKey.lookup(count: k.count, hi: hi, lo: lo)
            {
                previous = (k.count, hi, lo)
                return key
            }
        }
        try CBORReader.checkUTF8(k, itemAt: start)
        let shown = String(decoding: k, as: UTF8.self)
        guard k.count < 16 else { throw LedgerError(.invalidEntry, "\(map): unknown key '\(shown)'") }
        let (hi, lo) = FieldKey.pack(k)
        if let p = previous, !((p.count, p.hi, p.lo) < (k.count, hi, lo)) {
            throw LedgerError(.invalidEntry, "\(map): key '\(shown)' is out of deterministic order or repeated")
        }
        throw LedgerError(.invalidEntry, "\(map): unknown key '\(shown)'")
    }
}

/// Every map key of format version 1 (Specs/format.md §3–§4), and `type`, the one key an input event adds.
package enum FieldKey: Int, Sendable {
    case v, hlc, log, seq, body, deps, kind, prev
    case subject, event, purposes, controllers, recipients, channel, method, legalBasis, notice, occurredAt
    case expiresAt, evidence, interaction, agent, consentRef, derivedFrom, detail, recipient, dataCategories
    case subjects, id, sha256, version, onBehalfOf, type

    package var name: String { "\(self)" }

    /// Keys are at most 15 bytes: packed big-endian into two words they compare in two instructions, in the
    /// same order as the bytes.
    @inline(__always)
    static func pack(_ raw: UnsafeRawBufferPointer, readable: Int) -> (UInt64, UInt64) {
        // Two loads when 16 bytes can be read from the key's start (a key is followed by its value), then the
        // bytes past the key masked off.
        guard readable >= 16 else { return pack(raw) }
        let n = raw.count
        let hi = UInt64(bigEndian: raw.baseAddress!.loadUnaligned(as: UInt64.self))
        let lo = UInt64(bigEndian: raw.baseAddress!.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        if n >= 8 { return (hi, n == 8 ? 0 : lo & ~(UInt64.max >> (8 * UInt64(n - 8)))) }
        return (n == 0 ? 0 : hi & ~(UInt64.max >> (8 * UInt64(n))), 0)
    }

    @inline(__always)
    static func pack(_ raw: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        var hi: UInt64 = 0
        var lo: UInt64 = 0
        for i in 0..<raw.count {
            if i < 8 {
                hi |= UInt64(raw[i]) << (56 - 8 * UInt64(i))
            } else {
                lo |= UInt64(raw[i]) << (56 - 8 * UInt64(i - 8))
            }
        }
        return (hi, lo)
    }

    /// Generated from the key names (big-endian packing, see `pack`): a switch the compiler turns into a few
    /// compares, with no table in memory.
    @inline(__always)
    static func lookup(count: Int, hi: UInt64, lo: UInt64) -> FieldKey? {
        switch (count, hi, lo) {
        case (1, 0x7600000000000000, 0x0000000000000000): return .v
        case (3, 0x686c630000000000, 0x0000000000000000): return .hlc
        case (3, 0x6c6f670000000000, 0x0000000000000000): return .log
        case (3, 0x7365710000000000, 0x0000000000000000): return .seq
        case (4, 0x626f647900000000, 0x0000000000000000): return .body
        case (4, 0x6465707300000000, 0x0000000000000000): return .deps
        case (4, 0x6b696e6400000000, 0x0000000000000000): return .kind
        case (4, 0x7072657600000000, 0x0000000000000000): return .prev
        case (7, 0x7375626a65637400, 0x0000000000000000): return .subject
        case (5, 0x6576656e74000000, 0x0000000000000000): return .event
        case (8, 0x707572706f736573, 0x0000000000000000): return .purposes
        case (11, 0x636f6e74726f6c6c, 0x6572730000000000): return .controllers
        case (10, 0x726563697069656e, 0x7473000000000000): return .recipients
        case (7, 0x6368616e6e656c00, 0x0000000000000000): return .channel
        case (6, 0x6d6574686f640000, 0x0000000000000000): return .method
        case (10, 0x6c6567616c426173, 0x6973000000000000): return .legalBasis
        case (6, 0x6e6f746963650000, 0x0000000000000000): return .notice
        case (10, 0x6f63637572726564, 0x4174000000000000): return .occurredAt
        case (9, 0x6578706972657341, 0x7400000000000000): return .expiresAt
        case (8, 0x65766964656e6365, 0x0000000000000000): return .evidence
        case (11, 0x696e746572616374, 0x696f6e0000000000): return .interaction
        case (5, 0x6167656e74000000, 0x0000000000000000): return .agent
        case (10, 0x636f6e73656e7452, 0x6566000000000000): return .consentRef
        case (11, 0x6465726976656446, 0x726f6d0000000000): return .derivedFrom
        case (6, 0x64657461696c0000, 0x0000000000000000): return .detail
        case (9, 0x726563697069656e, 0x7400000000000000): return .recipient
        case (14, 0x6461746143617465, 0x676f726965730000): return .dataCategories
        case (8, 0x7375626a65637473, 0x0000000000000000): return .subjects
        case (2, 0x6964000000000000, 0x0000000000000000): return .id
        case (6, 0x7368613235360000, 0x0000000000000000): return .sha256
        case (7, 0x76657273696f6e00, 0x0000000000000000): return .version
        case (10, 0x6f6e426568616c66, 0x4f66000000000000): return .onBehalfOf
        case (4, 0x7479706500000000, 0x0000000000000000): return .type
        default: return nil
        }
    }

    package var bit: UInt64 { 1 << UInt64(rawValue) }

    static func mask(_ keys: [FieldKey]) -> UInt64 { keys.reduce(0) { $0 | $1.bit } }
}
