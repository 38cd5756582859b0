import Foundation
import ProvCrypto
import ProvLedger
import Testing

@testable import ProvNode

/// `prov fetch` reads a source's Merkle tiles to check that a larger history begins with the copy (Specs/protocol.md
/// §7.2): the roots and proofs it computes from them are those of the tree, a partial tile a mirror deleted is read
/// from the full tile that replaced it, and a tile of the wrong length or not served is the source's fault.
@Suite struct SourceTilesTests {
    /// A mirror of a tree of `leaves`, serving its tiles (C2SP tlog-tiles) as `tile/<L>/<N>[.p/<W>]`; partial
    /// tiles only when `partials`, and each answer passed through `alter`.
    final class Mirror: PeerLink, @unchecked Sendable {
        let leaves: [SHA256Digest]
        let partials: Bool
        let alter: (TileAddress, [UInt8]) -> [UInt8]
        private(set) var asked: [String] = []

        init(
            _ leaves: [SHA256Digest], partials: Bool, alter: @escaping (TileAddress, [UInt8]) -> [UInt8] = { $1 }
        ) {
            self.leaves = leaves
            self.partials = partials
            self.alter = alter
        }

        func request(_ method: String, _ path: String, body: [UInt8]?, contentType: String?) throws -> PeerResponse {
            asked.append(path)
            let prefix = "/logs/brand/"
            guard path.hasPrefix(prefix), let t = TileAddress(path: path.dropFirst(prefix.count)), let level = t.level,
                t.exists(inTreeOf: UInt64(leaves.count)), t.width == 256 || partials
            else { return PeerResponse(status: 404, contentType: nil, body: []) }
            // Level L's hashes are the roots of the perfect subtrees of 256^L leaves.
            let span = 1 << (8 * level)
            var bytes: [UInt8] = []
            for i in 0..<t.width {
                let lo = (Int(t.index) * 256 + i) * span
                bytes += Merkle.root(leaves[lo..<(lo + span)]).bytes
            }
            return PeerResponse(status: 200, contentType: nil, body: alter(t, bytes))
        }

        func close() {}
        func interrupt() {}
    }

    static let leaves = (0..<70_000).map { Merkle.leafHash(Array("entry \($0)".utf8)) }

    @Test(arguments: [true, false])
    func rootsAndProofsFromTheTilesAreTheTreesOwn(partials: Bool) throws {
        // The mirror holds 70,000 leaves; the trees asked about are smaller, so without partial tiles every partial
        // tile of theirs is read from a full one (which exists up to level 1 here: level 2 needs 2^24 leaves).
        let mirror = Mirror(Self.leaves, partials: partials)
        let sizes =
            [(1, 2), (300, 1_000), (256, 40_000), (1_000, 65_535), (32_768, 65_535)]
            + (partials ? [(256, 65_536), (65_537, 69_999), (1_000, 66_000)] : [])
        for (old, new) in sizes {
            let tiles = SourceTiles(org: "brand", size: UInt64(new), link: mirror)
            let prefix = try Merkle.root(of: 0..<UInt64(old), in: tiles)
            #expect(prefix == Merkle.root(Self.leaves[0..<old]))
            let proof = try Merkle.consistencyProof(old: UInt64(old), new: UInt64(new), in: tiles)
            #expect(proof == Merkle.consistencyProof(oldSize: old, leaves: Self.leaves[0..<new]))
            #expect(
                Merkle.consistencyFailure(
                    oldSize: UInt64(old), newSize: UInt64(new), oldRoot: prefix,
                    newRoot: Merkle.root(Self.leaves[0..<new]), proof: proof) == nil)
        }
        // A partial tile is asked for first; only when the mirror does not serve it, the full tile after it.
        let asked = mirror.asked
        let fallbacks = asked.indices.dropLast().filter { i in
            guard let p = asked[i].range(of: ".p/") else { return false }
            return asked[i + 1] == String(asked[i][..<p.lowerBound])
        }
        #expect(asked.contains { $0.contains(".p/") })
        #expect(fallbacks.isEmpty == partials, "\(asked)")
    }

    @Test func aTileOfTheWrongLengthOrNotServedIsTheSourcesFault() throws {
        let short = Mirror(Self.leaves, partials: true) { _, bytes in Array(bytes.dropLast()) }
        #expect {
            try Merkle.root(of: 0..<300, in: SourceTiles(org: "brand", size: 1_000, link: short))
        } throws: { ($0 as? CatchUp.SourceMisbehaved)?.reason == "tile/1/000.p/3 holds 95 bytes, not 96" }
        let few = Mirror(Array(Self.leaves[0..<500]), partials: true)
        #expect {
            try Merkle.root(of: 0..<300, in: SourceTiles(org: "brand", size: 1_000, link: few))
        } throws: {
            // Neither tile/1/000.p/3 nor the full tile: a tree of 500 leaves has one hash at level 1.
            ($0 as? CatchUp.SourceMisbehaved)?.reason == "GET tile/1/000 answered 404 though its checkpoint covers it"
        }
    }
}
