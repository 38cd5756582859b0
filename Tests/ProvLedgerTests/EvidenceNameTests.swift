import ProvCrypto
import Testing

@testable import ProvLedger

/// One conflict, one piece of evidence (Specs/format.md §10.12): a fork passed on with other signature lines in its
/// notes, or with its two checkpoints in the other order, is the evidence a node holds already, so nobody can fill
/// the nodes' disks with one fork under ever new names.
@Suite struct EvidenceNameTests {
    @Test func oneForkPassedOnWithOtherSignatureLinesOrInTheOtherOrderHasOneName() throws {
        let t = try TestConsortium()
        let brand = t.signers["brand"]!
        let origin = try #require(t.consortium.member("brand")).origin
        func signed(_ root: String) throws -> SignedCheckpoint {
            try SignedCheckpoint.sign(Checkpoint(origin: origin, size: 5, root: SHA256.hash(root)), with: brand)
        }
        let (a, b) = (try signed("one"), try signed("two"))
        let evidence = Evidence(a, b)
        #expect(try evidence.verify(consortium: t.consortium).get().org == "brand")
        // Another member's line added to a note: still proven, other bytes, the same name.
        var padded = b
        padded.note.signatures.append(try t.signers["retail"]!.sign(text: b.checkpoint.text))
        let again = Evidence(a, padded)
        #expect(try again.verify(consortium: t.consortium).get().org == "brand")
        #expect(again.serialized != evidence.serialized)
        #expect(again.fileName(org: "brand") == evidence.fileName(org: "brand"))
        #expect(Evidence(b, a).fileName(org: "brand") == evidence.fileName(org: "brand"))
        // Another conflict has another name.
        #expect(Evidence(a, try signed("three")).fileName(org: "brand") != evidence.fileName(org: "brand"))
    }
}
