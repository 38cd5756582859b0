import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger
@testable import ProvView

/// The view digest of Specs/view.md §6, against the test vector in Specs/view-vector.json, and against the
/// ledger's generic deterministic CBOR encoder (RFC 8949 §4.2.1), which sorts map keys itself.
@Suite(.leavesNoFiles) struct ViewVectorTests {
    static let specs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Specs")

    func vectorView() throws -> (SubjectView, [String: Any]) {
        let vector =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: Self.specs.appendingPathComponent("view-vector.json")))
            as! [String: Any]
        let consortium = try Consortium.load(
            Self.specs.appendingPathComponent(vector["consortium"] as! String).path)
        let entries =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: Self.specs.appendingPathComponent("vectors/entries.json"))) as! [String: Any]
        let key = try LinkKey(bytes: try #require(Hex.decode(entries["linkKeyHex"] as! String)))
        let built = try ViewIndex.build(
            dataDirectory: Self.specs.appendingPathComponent(vector["dataDirectory"] as! String).path,
            consortium: consortium, linkKey: key)
        let at = try #require(Timestamp.parse(vector["at"] as! String))
        return (try built.index.view(subject: vector["subject"] as! String, at: at), vector)
    }

    @Test func theVectorsDigest() throws {
        let (view, vector) = try vectorView()
        #expect(Hex.encode(ViewDigest.encoding(view)) == vector["encodingHex"] as? String)
        #expect(view.digest.hex == vector["digest"] as? String)
        #expect(SHA256.hash(ViewDigest.encoding(view)) == view.digest)
    }

    /// The same structure through the generic encoder: the hand-ordered keys are the deterministic order.
    @Test func theEncodingIsDeterministicCBOR() throws {
        let (v, _) = try vectorView()
        func ref(_ r: EntryRef) -> CBOR { .array([.text(r.org), .unsigned(r.seq), .bytes(r.leaf.bytes)]) }
        func key(_ h: HLC, _ org: String, _ seq: UInt64) -> (UInt64, UInt64, [UInt8], UInt64) {
            (h.wall, h.counter, Array(org.utf8), seq)
        }
        let entries = v.timeline.map(\.facts).sorted {
            let a = key($0.hlc, $0.org, $0.ref.seq)
            let b = key($1.hlc, $1.org, $1.ref.seq)
            return (a.0, a.1) != (b.0, b.1)
                ? (a.0, a.1) < (b.0, b.1) : a.2 != b.2 ? a.2.lexicographicallyPrecedes(b.2) : a.3 < b.3
        }
        let map: CBOR = .map([
            .init(
                .text("compliance"),
                .array(
                    v.compliance.map { c in
                        .array([
                            ref(c.interaction.ref), .text(c.classification.rawValue),
                            c.purpose.map { .text($0) } ?? .null,
                            c.lagMs.map { .unsigned($0) } ?? .null, .array(c.deciding.map { ref($0.ref) }),
                            .array(c.flags.map { .text($0.code) }),
                        ])
                    })),
            .init(
                .text("frontier"),
                .array(v.frontier.logs.map { .array([.text($0.org), .unsigned($0.size), .bytes($0.root.bytes)]) })),
            .init(
                .text("consents"),
                .array(
                    v.consents.map { c in
                        .array([
                            .text(c.controller), .text(c.purpose), .text(c.state.rawValue), ref(c.decidedBy.ref),
                            c.grant.map(ref) ?? .null, c.expiresAt.map { .unsigned($0) } ?? .null,
                        ])
                    })),
            .init(.text("entries"), .array(entries.map { ref($0.ref) })),
            .init(
                .text("links"),
                .array(
                    v.links.map { l in
                        .array([
                            .bytes(l.refs[0].bytes), .bytes(l.refs[1].bytes), .bool(l.linked), ref(l.decidedBy.ref),
                        ])
                    })),
            .init(.text("refs"), .array(v.refs.map { .bytes($0.bytes) })),
            .init(.text("at"), .unsigned(v.at)),
            .init(.text("v"), .unsigned(1)),
        ])
        #expect(map.encoded == ViewDigest.encoding(v))
        #expect(try CBOR.decode(ViewDigest.encoding(v)) == CBOR.decode(map.encoded))
    }
}
