extension JSONValue {
    /// The largest integer a canonical JSON number may be: 2^53 − 1, the largest every JSON reader holds exactly.
    package static let maxCanonicalInteger: UInt64 = (1 << 53) - 1

    /// The RFC 8785 (JSON Canonicalization Scheme) serialization of this value, for the subset the ledger's JSON
    /// documents use (Specs/format.md §9.5): object members sorted by their names' UTF-16 code units, no white
    /// space, strings escaped as `serialized` escapes them (`\"`, `\\`, `\b`, `\t`, `\n`, `\f`, `\r`, other
    /// controls as `\u00xx`, everything else as UTF-8), and numbers only non-negative integers in canonical decimal
    /// up to 2^53 − 1. Nil when a number is anything else (a fraction, an exponent, a sign, a larger integer): a
    /// document holding one has no canonical form here.
    package var canonicalBytes: [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(1024)
        return writeCanonical(into: &out) ? out : nil
    }

    private func writeCanonical(into out: inout [UInt8]) -> Bool {
        switch self {
        case .null, .bool, .string: write(to: &out, indent: nil, level: 0)
        case .number(let n):
            guard Self.canonicalInteger(n) != nil else { return false }
            out += n.utf8
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (k, v) in items.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                guard v.writeCanonical(into: &out) else { return false }
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            let sorted = members.sorted { $0.key.utf16.lexicographicallyPrecedes($1.key.utf16) }
            for (k, m) in sorted.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                Self.quote(m.key, into: &out)
                out.append(UInt8(ascii: ":"))
                guard m.value.writeCanonical(into: &out) else { return false }
            }
            out.append(UInt8(ascii: "}"))
        }
        return true
    }

    /// The value of a number literal that is a canonical non-negative integer (`0`, or digits without a leading
    /// zero) of at most 2^53 − 1; nil otherwise.
    package static func canonicalInteger(_ literal: String) -> UInt64? {
        let u = Array(literal.utf8)
        guard !u.isEmpty, u.count <= 16, u.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), u == [0x30] || u[0] != 0x30,
            let v = UInt64(literal), v <= maxCanonicalInteger
        else { return nil }
        return v
    }

    /// The value when this is a number that is a canonical non-negative integer (see `canonicalInteger`).
    package var canonicalIntegerValue: UInt64? {
        guard case .number(let n) = self else { return nil }
        return Self.canonicalInteger(n)
    }
}
