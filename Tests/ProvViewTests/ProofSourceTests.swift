import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger
@testable import ProvView

/// RFC 9162 proofs are built by one walk (ProvLedger's `Merkle`) over three subtree hash sources: leaf hashes in
/// memory, a log's index and tile files, and the view's subtree cache. The three give the same bytes.
@Suite(.leavesNoFiles) struct ProofSourceTests {
    /// A log of `n` entries written through the store in groups of `group`, and its leaf hashes.
    static func log(_ ledger: Ledger, entries n: Int, group: Int = 1000) throws -> (LogStore, [SHA256Digest]) {
        let store = ledger.stores["brand"]!
        let parser = EventParser(consortium: ledger.consortium, org: "brand", linkKey: ledger.linkKey)
        let body = try parser.parse(try JSON.parse(Event.consent("email:p@example.com", "give")))
        var leaves: [SHA256Digest] = []
        while leaves.count < n {
            let k = min(group, n - leaves.count)
            leaves += try store.append(
                Array(repeating: body, count: k), signer: ledger.signers["brand"]!, now: t0 + UInt64(leaves.count)
            ).map(\.leaf)
        }
        return (store, leaves)
    }

    /// The view's cache over `leaves`, committed in uneven steps as checkpoints arrive; aligned blocks of 1,024 (and
    /// every other block of 64) come whole, hashed elsewhere, as the offline build hands them over.
    static func cache(_ leaves: [SHA256Digest], steps: [Int] = [1, 5, 37, 200, 1500, 64]) -> MerkleCache {
        var cache = MerkleCache()
        var at = 0
        var step = 0
        while at < leaves.count {
            let end = min(leaves.count, at + steps[step % steps.count])
            step += 1
            var staged = cache.stage()
            var i = at
            while i < end {
                let block = i % 1024 == 0 && i + 1024 <= end ? 1024 : i % 128 == 64 && i + 64 <= end ? 64 : 1
                if block > 1 {
                    staged.append(MerkleCache.Subtree(leaves: Array(leaves[i..<(i + block)])))
                } else {
                    staged.append(leaves[i])
                }
                i += block
            }
            #expect(staged.root == Merkle.root(leaves[..<end]))
            cache.apply(staged)
            at = end
        }
        return cache
    }

    /// The three sources over the same leaves; `differences` names every proof on which they disagree.
    struct Sources {
        let store: LogStore
        let leaves: [SHA256Digest]
        let cache: MerkleCache.Source
        var differences: [String] = []

        init(store: LogStore, leaves: [SHA256Digest]) {
            self.store = store
            self.leaves = leaves
            let all = leaves
            cache = ProofSourceTests.cache(leaves).source { all[Int($0)] }
        }

        mutating func compareInclusion(index: Int, size: Int) throws {
            let memory = Merkle.inclusionProof(index: index, leaves: leaves[..<size])
            let stored = try store.inclusionProof(index: UInt64(index), size: UInt64(size))
            let cached = Merkle.inclusionProof(index: UInt64(index), size: UInt64(size), in: cache)
            if memory != stored || memory != cached { differences.append("inclusion of \(index) in \(size)") }
        }

        mutating func compareConsistency(old: Int, new: Int) throws {
            let memory = Merkle.consistencyProof(oldSize: old, leaves: leaves[..<new])
            let stored = try store.consistencyProof(old: UInt64(old), new: UInt64(new))
            let cached = Merkle.consistencyProof(old: UInt64(old), new: UInt64(new), in: cache)
            if memory != stored || memory != cached { differences.append("consistency of \(old) with \(new)") }
        }

        mutating func compareRoot(_ range: Range<Int>) throws {
            let memory = Merkle.root(leaves[range])
            let r = UInt64(range.lowerBound)..<UInt64(range.upperBound)
            if memory != (try store.subtreeRoot(r)) || memory != Merkle.root(of: r, in: cache) {
                differences.append("root of \(range)")
            }
        }
    }

    /// Every tree of 1 to 300 leaves: its root, the inclusion proof of every leaf, the consistency proof from every
    /// smaller tree. The sizes come in four parts of about equal work, so that the parts run side by side.
    @Test(arguments: [1...189, 190...238, 239...272, 273...300])
    func everyProofOfEveryTreeUpTo300Leaves(sizes: ClosedRange<Int>) throws {
        let ledger = try Ledger(orgs: ["brand"])
        defer { ledger.remove() }
        let (store, leaves) = try Self.log(ledger, entries: sizes.upperBound, group: 7)
        var s = Sources(store: store, leaves: leaves)
        for size in sizes {
            try s.compareRoot(0..<size)
            for index in 0..<size { try s.compareInclusion(index: index, size: size) }
            for old in 0...size { try s.compareConsistency(old: old, new: size) }
        }
        // Ranges that are not a tree's prefix, aligned or not.
        for range in [1..<2, 3..<7, 64..<128, 65..<129, 100..<189, 128..<189] { try s.compareRoot(range) }
        #expect(s.differences.isEmpty, "\(s.differences.prefix(10))")
    }

    /// Past one level-2 tile hash (65,536 leaves): subtrees come from tile levels 1 and 2, folded. A reader whose tile
    /// store is gone computes the same proofs from the index.
    @Test func proofsOfLargerTrees() throws {
        let ledger = try Ledger(orgs: ["brand"])
        defer { ledger.remove() }
        let n = 65_537
        let (store, leaves) = try Self.log(ledger, entries: n)
        var s = Sources(store: store, leaves: leaves)
        var picks: [(index: Int, size: Int)] = []
        for size in [257, 4_097, 65_536, 65_537] {
            try s.compareRoot(0..<size)
            let edges = [0, 1, 255, 256, 257, 4_095, 4_096, 65_279, 65_280, 65_535, 65_536]
            for index in Set(edges + [size / 3, size - 2, size - 1]) where index >= 0 && index < size {
                picks.append((index, size))
            }
        }
        for p in picks {
            try s.compareInclusion(index: p.index, size: p.size)
            try s.compareConsistency(old: p.index, new: p.size)
            try s.compareConsistency(old: p.index + 1, new: p.size)
        }
        #expect(s.differences.isEmpty, "\(s.differences.prefix(10))")

        try FileManager.default.removeItem(at: ledger.dir.appendingPathComponent("brand/tiles"))
        let reader = try LogStore(
            dataDirectory: ledger.dir.path, consortium: "acme", org: "brand", writable: false, log: { _ in })
        defer { reader.close() }
        for p in picks where p.size == n {
            let (i, size) = (UInt64(p.index), UInt64(n))
            #expect(try reader.inclusionProof(index: i, size: size) == store.inclusionProof(index: i, size: size))
            #expect(try reader.consistencyProof(old: i, new: size) == store.consistencyProof(old: i, new: size))
        }
    }
}
