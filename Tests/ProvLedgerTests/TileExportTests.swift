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

    /// brand's log of ten entries in `dir`, written and closed.
    func writeLog(_ dir: URL) throws {
        let ing = try Ingestor(
            dataDirectory: dir.path, consortium: t.consortium, signer: t.signers["brand"]!, linkKey: t.linkKey,
            log: { _ in })
        _ = try ing.append(Array(Events.lines(10).utf8))
    }

    /// `body` with a temporary folder holding brand's log of ten entries, the log opened read-only, and brand.
    func withLog(_ body: (URL, LogStore, Consortium.Member) throws -> Void) throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeLog(dir)
        let store = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: false)
        defer { store.close() }
        try body(dir, store, try #require(t.consortium.member("brand")))
    }

    @Test func chunkEndsCarryTheOwnersLineOnlyAndABadCheckpointIsNotPublished() throws {
        try withLog { dir, store, member in
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
            // A re-run keeps what is right and writes again a bundle that is not what the log holds (same length).
            let bundle = out + "/tile/entries/000.p/10"
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: bundle)))
            bytes[bytes.count - 1] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: bundle))
            let again = try TileExport(store: store, member: member, folder: out).run(checkpoint: cosigned)
            #expect(try Data(contentsOf: URL(fileURLWithPath: bundle)) == Data(try store.entryBundle(0..<10)))
            #expect(again.kept > 0 && again.written >= 1)

            // A checkpoint of brand's log signed by retail's key: refused, nothing written.
            let forged = try SignedCheckpoint.sign(cosigned.checkpoint, with: t.signers["retail"]!)
            let elsewhere = dir.path + "/out2/brand"
            #expect {
                try TileExport(store: store, member: member, folder: elsewhere).run(checkpoint: forged)
            } throws: { ($0 as? LedgerError)?.code == .verificationFailed }
            #expect(!FileManager.default.fileExists(atPath: elsewhere))
        }
    }

    /// The output may be a web root others write to: a link planted below `--out` (the log's folder, or one of
    /// its tile folders) makes the export fail with a message naming it, and nothing is written where it points.
    @Test func aLinkPlantedInTheOutputIsNotFollowed() throws {
        try withLog { dir, store, member in
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

    /// The index is a cache on disk: a record whose offset points past its segment (or back before the record
    /// before it) makes serving that bundle an error that says where, not a crash or an allocation it would size.
    @Test func aDamagedIndexRecordIsAnErrorWhenABundleIsServed() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeLog(dir)
        let files = try FileManager.default.subpathsOfDirectory(atPath: dir.path)
        let index = dir.path + "/" + (try #require(files.first { $0.hasSuffix("/index") || $0 == "index" }))
        for offset in [UInt64(0xFFFF_FFFF_FFFF_FFF0), 0] {
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: index)))
            // Record 5 (of 40 bytes: leaf hash, then the offset, little-endian).
            withUnsafeBytes(of: offset.littleEndian) { bytes.replaceSubrange((5 * 40 + 32)..<(6 * 40), with: $0) }
            try Data(bytes).write(to: URL(fileURLWithPath: index))
            let store = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: false)
            defer { store.close() }
            #expect {
                try store.entryBundle(0..<10)
            } throws: { e in
                let error = e as? LedgerError
                return error?.code == .invalidEntry && error?.message.contains("seq 5") == true
            }
            // The other readers of an offset: an error, or for the checkpoint search an answer, never a crash.
            #expect(throws: LedgerError.self) { try store.entryBytes(5) }
            _ = try? store.checkpoint(atLeast: 6)
            _ = store.knownEntry(5)
        }
    }
}
