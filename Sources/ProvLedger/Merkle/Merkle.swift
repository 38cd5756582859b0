import ProvCrypto

/// RFC 9162 §2.1 Merkle tree hashing and the verification of inclusion and consistency proofs. Proofs are built in
/// one place, over a `SubtreeHashSource` (Proofs.swift).
package enum Merkle {
    /// MTH({}) = SHA-256() (RFC 9162 §2.1.1).
    package static let emptyRoot = SHA256.hash([UInt8]())

    /// Leaf hash = SHA-256(0x00 ‖ entry bytes) (RFC 9162 §2.1.1).
    @inline(__always)
    package static func leafHash(_ entry: UnsafeRawBufferPointer) -> SHA256Digest {
        SHA256.hash(prefix: 0x00, entry)
    }

    package static func leafHash(_ entry: [UInt8]) -> SHA256Digest {
        entry.withUnsafeBytes { leafHash($0) }
    }

    /// MTH over a run of leaf hashes.
    package static func root(_ leaves: ArraySlice<SHA256Digest>) -> SHA256Digest {
        var f = MerkleFrontier()
        for leaf in leaves { f.append(leaf) }
        return f.root
    }

    package static func root(_ leaves: [SHA256Digest]) -> SHA256Digest { root(leaves[...]) }

    /// RFC 9162 §2.1.3.2: verifies an inclusion proof. Returns nil when valid, else the reason.
    package static func inclusionFailure(
        leaf: SHA256Digest, index: UInt64, size: UInt64, proof: [SHA256Digest], root: SHA256Digest
    ) -> String? {
        guard index < size else { return "leaf index \(index) is not below tree size \(size)" }
        var fn = index
        var sn = size - 1
        var r = leaf
        for p in proof {
            if sn == 0 { return "inclusion proof has \(proof.count) hashes, more than a tree of \(size) needs" }
            if fn & 1 == 1 || fn == sn {
                r = SHA256.node(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = SHA256.node(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { return "inclusion proof has \(proof.count) hashes, fewer than a tree of \(size) needs" }
        guard r == root else { return "inclusion proof does not lead to the checkpoint's root hash" }
        return nil
    }

    /// RFC 9162 §2.1.4.2: verifies a consistency proof. Returns nil when valid, else the reason.
    package static func consistencyFailure(
        oldSize: UInt64, newSize: UInt64, oldRoot: SHA256Digest, newRoot: SHA256Digest, proof: [SHA256Digest]
    ) -> String? {
        guard oldSize <= newSize else { return "old tree size \(oldSize) is larger than new tree size \(newSize)" }
        if oldSize == newSize {
            guard proof.isEmpty else { return "consistency proof between equal sizes must be empty" }
            return oldRoot == newRoot ? nil : "two different root hashes for tree size \(oldSize)"
        }
        if oldSize == 0 {
            guard proof.isEmpty else { return "consistency proof from an empty tree must be empty" }
            return oldRoot == emptyRoot ? nil : "the old root is not the root of an empty tree"
        }
        guard !proof.isEmpty else { return "consistency proof is empty" }
        var path = proof[...]
        // If the old size is a power of two, the old root is the first node of the path.
        if oldSize & (oldSize - 1) == 0 { path.insert(oldRoot, at: path.startIndex) }
        var fn = oldSize - 1
        var sn = newSize - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path.removeFirst()
        var sr = fr
        for c in path {
            if sn == 0 { return "consistency proof has more hashes than the sizes need" }
            if fn & 1 == 1 || fn == sn {
                fr = SHA256.node(c, fr)
                sr = SHA256.node(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = SHA256.node(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { return "consistency proof has fewer hashes than the sizes need" }
        guard fr == oldRoot else { return "consistency proof does not lead to the old root hash" }
        guard sr == newRoot else { return "consistency proof does not lead to the new root hash" }
        return nil
    }
}

/// The right edge of a Merkle tree: the roots of its perfect subtrees, enough to append and to compute the root
/// in O(log n) memory.
package struct MerkleFrontier: Sendable, Equatable {
    package private(set) var size: UInt64 = 0
    /// Perfect subtree roots, largest (leftmost) first; subtree i has 2^(bit) leaves for the set bits of `size`.
    package private(set) var hashes: [SHA256Digest] = []

    package init() {}

    @inline(__always)
    package mutating func append(_ leaf: SHA256Digest) {
        var h = leaf
        var s = size
        // Merge equal-height subtrees: one merge per trailing one-bit of the old size.
        while s & 1 == 1 {
            h = SHA256.node(hashes.removeLast(), h)
            s >>= 1
        }
        hashes.append(h)
        size += 1
    }

    /// Appends a leaf like `append(_:)` and records every tile hash it completes: a perfect subtree of
    /// 256^L leaves (L ≥ 1) is one hash of a level-L tile (C2SP tlog-tiles), and it exists here only for the
    /// moment of the merge. Costs nothing extra for 255 of 256 leaves.
    @inline(__always)
    package mutating func append(_ leaf: SHA256Digest, completing tiles: inout [TileHash]) {
        guard size & 0xFF == 0xFF else {
            append(leaf)
            return
        }
        var h = leaf
        var s = size
        var height = 0
        while s & 1 == 1 {
            h = SHA256.node(hashes.removeLast(), h)
            s >>= 1
            height += 1
            if height & 7 == 0 {
                let level = height >> 3
                tiles.append(TileHash(level: level, index: ((size + 1) >> UInt64(height)) - 1, hash: h))
            }
        }
        hashes.append(h)
        size += 1
    }

    /// Restores a frontier saved earlier (`size` and its `hashes`).
    package mutating func restore(size: UInt64, hashes: [SHA256Digest]) {
        self.size = size
        self.hashes = hashes
    }

    /// MTH of the leaves appended so far.
    package var root: SHA256Digest {
        guard var r = hashes.last else { return Merkle.emptyRoot }
        for h in hashes.dropLast().reversed() { r = SHA256.node(h, r) }
        return r
    }
}

/// One hash of a Merkle tile above level 0: MTH of the `index`-th aligned block of 256^level leaves.
package struct TileHash: Sendable, Equatable {
    package var level: Int
    package var index: UInt64
    package var hash: SHA256Digest
}
