import Foundation
import ProvCrypto
import ProvTools
import TestSupport
import Testing

@testable import ProvLedger

/// `prov verify` checks entries with `Entry.audit`, which builds nothing; `Entry.decode` builds them. Both must
/// accept exactly the same bytes: here on every test-vector entry and many thousands of damaged variants (the
/// fuzz target checks the same on arbitrary input).
@Suite struct AuditAgreementTests {
    static func vectorEntries() throws -> [[UInt8]] {
        let path = VectorTests.specs + "/entries.json"
        let doc = try JSON.parse(Array(FileManager.default.contents(atPath: path)!))
        return doc["entries"]!.arrayValue!.map { Hex.decode($0["canonicalHex"]!.stringValue!)! }
    }

    func verdicts(_ bytes: [UInt8], _ c: Consortium, _ ctx: AuditContext) -> (Bool, Bool) {
        let audited = bytes.withUnsafeBytes { (try? Entry.audit($0, ctx)) != nil }
        let decoded =
            (try? Entry.decode(bytes)).map {
                $0.log == "vectors/brand" && $0.consortiumFailure(c) == nil
            } ?? false
        return (audited, decoded)
    }

    @Test func agreeOnVectorsAndDamagedVariants() throws {
        let c = try Vectors.consortium()
        let ctx = AuditContext(consortium: c, org: "brand")
        var rng = SplitMix64(seed: 42)
        var accepted = 0
        var rejected = 0
        for entry in try Self.vectorEntries() {
            let (a, d) = verdicts(entry, c, ctx)
            #expect(a && d)
            for _ in 0..<3000 {
                var m = entry
                switch rng.next() % 4 {
                case 0: m[Int(rng.next() % UInt64(m.count))] ^= UInt8(1 << (rng.next() % 8))
                case 1: m[Int(rng.next() % UInt64(m.count))] = UInt8(truncatingIfNeeded: rng.next())
                case 2: m.removeLast(Int(rng.next() % UInt64(m.count)))
                default: m.insert(UInt8(truncatingIfNeeded: rng.next()), at: Int(rng.next() % UInt64(m.count)))
                }
                let (a, d) = verdicts(m, c, ctx)
                #expect(a == d, "audit \(a), decode \(d) on \(Hex.encode(m))")
                if d { accepted += 1 } else { rejected += 1 }
            }
        }
        // Some mutations keep an entry valid (a changed hash byte, a different code): both paths saw both kinds.
        #expect(accepted > 100 && rejected > 1000)
    }
}
