import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// C2SP tlog-tiles addressing, the tile store, and proofs computed from stored hashes.
@Suite(.leavesNoFiles) struct TileTests {
    @Test(arguments: [
        (TileAddress(level: 0, index: 0), "tile/0/000"),
        (TileAddress(level: 1, index: 1_234_067), "tile/1/x001/x234/067"),
        (TileAddress(level: nil, index: 5, width: 7), "tile/entries/005.p/7"),
        (TileAddress(level: 2, index: 1000, width: 255), "tile/2/x001/000.p/255"),
        (TileAddress(level: 63, index: 999), "tile/63/999"),
    ])
    func pathsRoundTrip(_ t: TileAddress, _ path: String) {
        #expect(t.description == path)
        #expect(TileAddress(path: path) == t)
    }

    @Test(arguments: [
        "tile/0/1", "tile/0/0000", "tile/0/x000/001", "tile/00/000", "tile/64/000", "tile/0/001.p/0",
        "tile/0/001.p/256", "tile/0/001.p/07", "tile/0/001/", "tile/entries/x1/000", "tile/0/abc", "tile/0",
        "tiles/0/000", "tile/0/001.p", "tile/-1/000", "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
    ])
    func malformedPathsAreRefused(_ path: String) {
        #expect(TileAddress(path: path) == nil)
    }

    /// A log of `n` entries written in groups of `group`, with the leaf hashes it acknowledged.
    static func log(_ dir: URL, entries n: Int, group: Int = 1000) throws -> (LogStore, [SHA256Digest]) {
        let t = try TestConsortium()
        let store = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: true)
        let body = try t.body(Events.consent(1))
        var leaves: [SHA256Digest] = []
        var done = 0
        var now: UInt64 = 1_790_000_000_000
        while done < n {
            let k = min(group, n - done)
            leaves += try store.append(Array(repeating: body, count: k), signer: t.signers["brand"]!, now: now)
                .map(\.leaf)
            done += k
            now += 1
        }
        return (store, leaves)
    }

    @Test func tilesProofsAndBundlesMatchTheLeaves() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let n = 66_000  // past one level-2 hash (65,536 leaves)
        let (store, leaves) = try Self.log(dir, entries: n, group: 999)
        // Level 1 hash k is MTH of leaves 256k..<256k+256; level 2 hash 0 is MTH of the first 65,536.
        let level1 = try store.tile(TileAddress(level: 1, index: 0))
        #expect(level1.count == 256 * 32)
        for k in [0, 17, 255] {
            let want = Merkle.root(leaves[(k * 256)..<(k * 256 + 256)])
            #expect(Array(level1[(k * 32)..<(k * 32 + 32)]) == want.bytes)
        }
        let level2 = try store.tile(TileAddress(level: 2, index: 0, width: 1))
        #expect(level2 == Merkle.root(leaves[0..<65_536]).bytes)
        let partial = try store.tile(TileAddress(level: 0, index: UInt64(n / 256), width: n % 256))
        #expect(partial.count == (n % 256) * 32)
        #expect(Array(partial.suffix(32)) == leaves[n - 1].bytes)

        for size in [1, 2, 255, 256, 257, 1000, 65_535, 65_536, 65_537, n] {
            #expect(try store.subtreeRoot(0..<UInt64(size)) == Merkle.root(leaves[0..<size]))
            for index in Set([0, size / 2, size - 1]) {
                #expect(
                    try store.inclusionProof(index: UInt64(index), size: UInt64(size))
                        == Merkle.inclusionProof(index: index, leaves: leaves[0..<size]))
            }
            for old in Set([0, 1, size / 3, size - 1, size]) {
                #expect(
                    try store.consistencyProof(old: UInt64(old), new: UInt64(size))
                        == Merkle.consistencyProof(oldSize: old, leaves: leaves[0..<size]))
            }
        }

        // An entry bundle: uint16 lengths, each entry hashing to its leaf.
        let bundle = try store.entryBundle(256..<512)
        var at = 0
        var i = 256
        while at < bundle.count {
            let len = Int(bundle[at]) << 8 | Int(bundle[at + 1])
            #expect(Merkle.leafHash(Array(bundle[(at + 2)..<(at + 2 + len)])) == leaves[i])
            at += 2 + len
            i += 1
        }
        #expect(i == 512)
        #expect(throws: LedgerError.self) { try store.entryBundle(UInt64(n - 1)..<UInt64(n + 1)) }
    }

    @Test func aMissingOrShortTileStoreIsRebuiltOnOpen() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tileDir = dir.appendingPathComponent("brand/tiles")
        var want: [UInt8] = []
        do {
            let (store, _) = try Self.log(dir, entries: 3000)
            want = try store.tile(TileAddress(level: 1, index: 0, width: 11))
            store.close()
        }
        // Lost entirely, then cut short (a crash between the commit and the tile write).
        try FileManager.default.removeItem(at: tileDir)
        do {
            let store = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: true)
            #expect(try store.tile(TileAddress(level: 1, index: 0, width: 11)) == want)
            store.close()
        }
        #expect(truncate(tileDir.appendingPathComponent("1").path, 5 * 32) == 0)
        let store = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: true)
        #expect(try store.tile(TileAddress(level: 1, index: 0, width: 11)) == want)
        // A reader of a log with no tile store computes the same hashes from the leaves.
        store.close()
        try FileManager.default.removeItem(at: tileDir)
        let reader = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: false)
        #expect(try reader.subtreeRoot(0..<2816) == (try store.subtreeRoot(0..<2816)))
        #expect(
            try reader.receipt(5).proof
                == Merkle.inclusionProof(index: 5, leaves: try reader.leafHashes(count: 3000)[...]))
    }

    /// A tile write that failed (a full disk) leaves its level short; the next group's hashes, further on, are not
    /// written past the gap, so no read ever sees zeros where hashes belong.
    @Test func aLevelIsNeverWrittenPastAGap() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tiles = TileStore(logDirectory: dir.path, writable: true)
        func h(_ i: UInt64) -> TileHash { TileHash(level: 1, index: i, hash: SHA256.hash("tile \(i)")) }
        try tiles.write((0..<4).map(h))
        #expect(try tiles.count(1) == 4)
        // Hashes 4 and 5 were lost; 6 and 7 arrive.
        try tiles.write((6..<8).map(h))
        #expect(try tiles.count(1) == 4)
        #expect(throws: LedgerError.self) { _ = try tiles.hashes(level: 1, 4..<8) }
        // Once the gap is filled, the level goes on.
        try tiles.write((4..<8).map(h))
        #expect(try tiles.hashes(level: 1, 0..<8) == (0..<8).map { h($0).hash })
    }
}
