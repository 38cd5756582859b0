import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// Specs/vectors is what `prov vectors` generates, byte for byte, and checks out with the verifier.
@Suite(.leavesNoFiles) struct VectorTests {
    static let specs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Specs/vectors").path

    static func files(_ root: String) -> [String] {
        (FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String } ?? []).filter {
            var dir: ObjCBool = false
            return FileManager.default.fileExists(atPath: root + "/" + $0, isDirectory: &dir) && !dir.boolValue
                && !$0.hasSuffix("LOCK")
        }.sorted()
    }

    @Test func regeneratedVectorsAreIdentical() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try prov(["vectors", "--out", dir.path])
        #expect(r.status == 0, "\(r.stderr)")
        let committed = Self.files(Self.specs)
        #expect(committed.count >= 6, "Specs/vectors is missing files: \(committed)")
        #expect(Self.files(dir.path) == committed)
        for f in committed {
            let a = FileManager.default.contents(atPath: Self.specs + "/" + f)
            let b = FileManager.default.contents(atPath: dir.path + "/" + f)
            #expect(a == b, "\(f) differs from what prov vectors generates")
        }
    }

    @Test func entryVectorsDecodeAndHash() throws {
        let doc = try JSON.parse(Array(FileManager.default.contents(atPath: Self.specs + "/entries.json")!))
        let entries = try #require(doc["entries"]?.arrayValue)
        #expect(entries.count == 8)
        for v in entries {
            let bytes = try #require(Hex.decode(v["canonicalHex"]!.stringValue!))
            let e = try Entry.decode(bytes)
            #expect(e.encoded == bytes)
            #expect(Merkle.leafHash(bytes).hex == v["leafHash"]?.stringValue)
            #expect(e.seq == UInt64(v["seq"]!.int64Value!))
        }
    }

    @Test func vectorLogAndReceiptVerify() throws {
        let v = try prov(["verify", "--consortium", Self.specs + "/consortium.json", Self.specs + "/log"])
        #expect(v.status == 0, "\(v.stderr)")
        #expect(v.stdout.contains("brand: OK: 8 entries"))
        let r = try prov([
            "verify-receipt", "--consortium", Self.specs + "/consortium.json",
            Self.specs + "/receipt-brand-2.tlog-proof",
        ])
        #expect(r.status == 0, "\(r.stderr)")
    }
}
