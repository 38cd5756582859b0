import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// One conflict, one piece of evidence (Specs/format.md §10.12): a fork passed on with other signature lines in its
/// notes, or with its two checkpoints in the other order, is the evidence a node holds already, so nobody can fill
/// the nodes' disks with one fork under ever new names.
@Suite(.leavesNoFiles) struct EvidenceNameTests {
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

    /// What sits at a piece's name in the evidence folder is never taken for it: a file with other bytes (junk, or
    /// the conflict with other signature lines) is replaced by the checked piece, a link is refused, and a key file
    /// in the folder is named for what it is, without a byte of it.
    @Test func theEvidenceFolderKeepsTheCheckedPieceAndNeverAnythingElseUnderItsName() throws {
        let t = try TestConsortium()
        let origin = try #require(t.consortium.member("brand")).origin
        func signed(_ root: String) throws -> SignedCheckpoint {
            try SignedCheckpoint.sign(
                Checkpoint(origin: origin, size: 5, root: SHA256.hash(root)), with: t.signers["brand"]!)
        }
        let evidence = Evidence(try signed("one"), try signed("two"))
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let folder = dir.path + "/evidence"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let file = folder + "/" + evidence.fileName(org: "brand")
        try Data("not evidence".utf8).write(to: URL(fileURLWithPath: file))
        #expect(try EvidenceFolder.store(evidence, org: "brand", dataDirectory: dir.path) == file)
        #expect(EvidenceFolder.read(dataDirectory: dir.path, consortium: t.consortium).proven.count == 1)

        try FileManager.default.removeItem(atPath: file)
        try FileManager.default.createSymbolicLink(atPath: file, withDestinationPath: dir.path + "/elsewhere")
        #expect(throws: LedgerError.self) { try EvidenceFolder.store(evidence, org: "brand", dataDirectory: dir.path) }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/elsewhere"))

        let key = [UInt8](repeating: 0xC3, count: 32)
        #expect {
            try Evidence(parsing: key)
        } throws: { e in
            let message = (e as? LedgerError)?.message ?? ""
            return message.contains("binary (32 bytes") && !message.contains("\\x") && !message.contains("\u{C3}")
        }
    }
}
