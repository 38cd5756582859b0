import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

#if canImport(Glibc)
    import Glibc
#endif

/// A damaged data directory gives an error that says what and where: never a crash, an allocation a file's numbers
/// size, or a write through a link (Specs/format.md §10.1, §12.1).
@Suite(.leavesNoFiles) struct DamagedFilesTests {
    let t: TestConsortium
    init() throws { t = try TestConsortium() }

    func log(_ dir: URL, entries: Int) throws {
        let ing = try Ingestor(
            dataDirectory: dir.path, consortium: t.consortium, signer: t.signers["brand"]!, linkKey: t.linkKey,
            log: { _ in })
        for g in 0..<(entries / 100) { _ = try ing.append(Array(Events.lines(100, from: g * 100).utf8)) }
    }

    func segment(_ dir: URL) throws -> String {
        let folder = dir.path + "/brand/segments"
        return folder + "/" + (try #require(try FileManager.default.contentsOfDirectory(atPath: folder).sorted().first))
    }

    /// A segment made sparse to 4 TiB (it costs no disk): `prov verify` fails the log on what follows the records,
    /// instead of reserving memory for the entries 4 TiB could hold and being stopped for it.
    @Test func aHugeSparseSegmentIsDamageNotAnAllocation() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try log(dir, entries: 100)
        #expect(truncate(try segment(dir), 1 << 42) == 0)
        let audits = try Verifier(consortium: t.consortium).verify(dataDirectory: dir.path)
        let brand = try #require(audits.first { $0.org == "brand" })
        #expect(!brand.ok)
        #expect(brand.failure?.contains("segment") == true, "\(brand.failure ?? "")")
    }

    /// The tiles folder replaced by a link to a folder elsewhere: a writer refuses it and nothing is written there.
    @Test func aLinkInPlaceOfTheTilesFolderIsRefused() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try log(dir, entries: 600)
        let tiles = dir.path + "/brand/tiles"
        let elsewhere = dir.path + "/elsewhere"
        try FileManager.default.moveItem(atPath: tiles, toPath: elsewhere)
        let before = try Data(contentsOf: URL(fileURLWithPath: elsewhere + "/1"))
        try FileManager.default.createSymbolicLink(atPath: tiles, withDestinationPath: elsewhere)
        #expect {
            let ing = try Ingestor(
                dataDirectory: dir.path, consortium: t.consortium, signer: t.signers["brand"]!, linkKey: t.linkKey,
                log: { _ in })
            _ = try ing.append(Array(Events.lines(300, from: 600).utf8))
            _ = try ing.store.tile(TileAddress(level: 1, index: 0, width: 3))
        } throws: { ($0 as? LedgerError)?.message.contains("\(tiles) is a symbolic link") == true }
        #expect(try Data(contentsOf: URL(fileURLWithPath: elsewhere + "/1")) == before)
    }

    /// An index record pointing back at an earlier record: the search for the checkpoint of the group holding an
    /// entry says the index is damaged, instead of answering with an earlier, smaller checkpoint.
    @Test func anIndexOffsetPointingBackIsDamageForTheCheckpointSearch() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try log(dir, entries: 300)
        let index = dir.path + "/brand/index"
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: index)))
        // Record 250 (in the third group) takes record 10's offset (in the first).
        bytes.replaceSubrange((250 * 40 + 32)..<(251 * 40), with: bytes[(10 * 40 + 32)..<(11 * 40)])
        try Data(bytes).write(to: URL(fileURLWithPath: index))
        let store = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: false)
        defer { store.close() }
        #expect {
            try store.checkpoint(atLeast: 251)
        } throws: { ($0 as? LedgerError)?.message.contains("the index is damaged") == true }
    }
}
