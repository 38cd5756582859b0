import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// `prov tiles export` publishes only what a reader would accept (Specs/protocol.md §7.1): `checkpoint` with the
/// cosignatures beside the owner's line, `checkpoints/<S>` with the owner's line only, and nothing at all for a
/// checkpoint that does not verify against the member's keys.
@Suite(.leavesNoFiles) struct TileExportTests {
    let t: TestConsortium
    init() throws { t = try TestConsortium() }

    @Test func chunkEndsCarryTheOwnersLineOnlyAndABadCheckpointIsNotPublished() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let ing = try Ingestor(
                dataDirectory: dir.path, consortium: t.consortium, signer: t.signers["brand"]!, linkKey: t.linkKey,
                log: { _ in })
            _ = try ing.append(Array(Events.lines(10).utf8))
        }
        let store = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: false)
        defer { store.close() }
        let member = try #require(t.consortium.member("brand"))
        var cosigned = try #require(store.latest)
        cosigned.note.signatures.append(
            try t.signers["retail"]!.cosign(checkpointText: cosigned.checkpoint.text, time: 1_800_000_000))
        let out = dir.path + "/out/brand"
        let counts = try TileExport(store: store, member: member, folder: out).run(checkpoint: cosigned)
        #expect(counts.size == 10)
        func signatureLines(_ file: String) throws -> Int {
            try String(contentsOfFile: out + "/" + file, encoding: .utf8).split(separator: "\n")
                .filter { $0.hasPrefix("\u{2014} ") }.count
        }
        #expect(try signatureLines("checkpoint") == 2)
        #expect(try signatureLines("checkpoints/10") == 1)

        // A checkpoint of brand's log signed by retail's key: refused, nothing written.
        let forged = try SignedCheckpoint.sign(cosigned.checkpoint, with: t.signers["retail"]!)
        let elsewhere = dir.path + "/out2/brand"
        #expect {
            try TileExport(store: store, member: member, folder: elsewhere).run(checkpoint: forged)
        } throws: { ($0 as? LedgerError)?.code == .verificationFailed }
        #expect(!FileManager.default.fileExists(atPath: elsewhere))
    }

    /// The output may be a web root others write to: a link planted below `--out` (the log's folder, or one of
    /// its tile folders) makes the export fail with a message naming it, and nothing is written where it points.
    @Test func aLinkPlantedInTheOutputIsNotFollowed() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let ing = try Ingestor(
                dataDirectory: dir.path, consortium: t.consortium, signer: t.signers["brand"]!, linkKey: t.linkKey,
                log: { _ in })
            _ = try ing.append(Array(Events.lines(10).utf8))
        }
        let store = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: false)
        defer { store.close() }
        let member = try #require(t.consortium.member("brand"))
        let latest = try #require(store.latest)
        let victim = dir.path + "/victim"
        try FileManager.default.createDirectory(atPath: victim, withIntermediateDirectories: true)
        for planted in ["brand", "brand/tile"] {
            let out = dir.path + "/out-\(planted.count)"
            let link = out + "/" + planted
            try FileManager.default.createDirectory(
                atPath: FileHandleFD.parent(of: link), withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: victim)
            #expect {
                try TileExport(store: store, member: member, folder: out + "/brand").run(checkpoint: latest)
            } throws: { ($0 as? LedgerError)?.message.contains("\(link) is a symbolic link") == true }
            #expect(try FileManager.default.contentsOfDirectory(atPath: victim).isEmpty)
        }
    }
}
