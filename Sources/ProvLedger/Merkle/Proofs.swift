import ProvCrypto

/// Where the RFC 9162 walk gets the hashes of perfect subtrees: MTH(D[lo:hi]) for a range of 2^h leaves that
/// starts at a multiple of 2^h, in the tree whose leaf 0 is the source's first.
///
/// A source answers what it holds cheaply: a leaf array folds the leaves (`LeafHashArray`), the on-disk log
/// reads the index or the tile level just below the subtree (Specs/format.md §10.10), the view looks up the
/// subtree levels it keeps. It answers nil for a subtree it holds no hash for, and the walk computes that one from
/// its two halves; a single leaf must always be answered. Every other range (a partial subtree at the right edge
/// of a tree, or a range that is not aligned) the walk splits as RFC 9162 §2.1.1 does, so the split exists once:
/// in `Merkle.root(of:in:)`, `Merkle.inclusionProof(index:size:in:)` and `Merkle.consistencyProof(old:new:in:)`.
package protocol SubtreeHashSource {
    associatedtype Failure: Error
    /// MTH(D[range]) of the perfect subtree `range`, or nil to have the walk compute it from its halves.
    func hash(ofPerfectSubtree range: Range<UInt64>) throws(Failure) -> SHA256Digest?
}

extension Merkle {
    /// The largest power of two smaller than n (n > 1).
    @inline(__always)
    static func split(_ n: UInt64) -> UInt64 {
        1 << UInt64(UInt64.bitWidth - 1 - (n - 1).leadingZeroBitCount)
    }

    /// MTH(D[range]) of RFC 9162 §2.1.1: a perfect, aligned range from the source (or from its halves when the
    /// source holds no hash for it), any other range split at the largest power of two below its size.
    package static func root<Source: SubtreeHashSource>(
        of range: Range<UInt64>, in source: Source
    ) throws(Source.Failure) -> SHA256Digest {
        let n = UInt64(range.count)
        guard n > 0 else { return emptyRoot }
        if n & (n - 1) == 0 && range.lowerBound & (n - 1) == 0 {
            if let h = try source.hash(ofPerfectSubtree: range) { return h }
            precondition(n > 1, "a subtree hash source must answer every leaf")
        }
        let mid = range.lowerBound + split(n)
        return SHA256.node(
            try root(of: range.lowerBound..<mid, in: source), try root(of: mid..<range.upperBound, in: source))
    }

    /// PATH(index, D[size]) of RFC 9162 §2.1.3.1: the audit path of leaf `index` in the tree of the source's first
    /// `size` leaves, from the leaf's sibling upwards. Every hash on it is the root of a subtree the walk asks the
    /// source for: perfect ones to the left, at most one partial one at each level to the right.
    package static func inclusionProof<Source: SubtreeHashSource>(
        index: UInt64, size: UInt64, in source: Source
    ) throws(Source.Failure) -> [SHA256Digest] {
        precondition(index < size, "leaf index outside the tree")
        var proof: [SHA256Digest] = []
        var lo: UInt64 = 0
        var hi = size
        // Walk down from the root, keeping the sibling subtree at each level; the proof lists them bottom-up.
        while hi - lo > 1 {
            let k = split(hi - lo)
            if index < lo + k {
                proof.append(try root(of: (lo + k)..<hi, in: source))
                hi = lo + k
            } else {
                proof.append(try root(of: lo..<(lo + k), in: source))
                lo += k
            }
        }
        return proof.reversed()
    }

    /// PROOF(old, D[new]) of RFC 9162 §2.1.4.1: proves that the tree of the source's first `old` leaves is a prefix
    /// of the tree of its first `new`. Empty when `old` is 0 or `new`.
    package static func consistencyProof<Source: SubtreeHashSource>(
        old: UInt64, new: UInt64, in source: Source
    ) throws(Source.Failure) -> [SHA256Digest] {
        precondition(old <= new, "old size above the new size")
        guard old > 0, old < new else { return [] }
        var proof: [SHA256Digest] = []
        var lo: UInt64 = 0
        var hi = new
        var m = old
        // SUBPROOF(m, D[lo:hi], b): `complete` is the flag b, true while the old tree is a whole subtree here.
        var complete = true
        while m != hi - lo {
            let k = split(hi - lo)
            if m <= k {
                proof.append(try root(of: (lo + k)..<hi, in: source))
                hi = lo + k
            } else {
                proof.append(try root(of: lo..<(lo + k), in: source))
                lo += k
                m -= k
                complete = false
            }
        }
        if !complete { proof.append(try root(of: lo..<hi, in: source)) }
        return proof.reversed()
    }

    /// PATH(m, D[n]) of RFC 9162 §2.1.3.1 over leaf hashes in memory: the audit path of leaf `index` in the tree
    /// of `leaves`.
    package static func inclusionProof(index: Int, leaves: ArraySlice<SHA256Digest>) -> [SHA256Digest] {
        precondition(index >= 0 && index < leaves.count, "leaf index outside the tree")
        return inclusionProof(index: UInt64(index), size: UInt64(leaves.count), in: LeafHashArray(leaves))
    }

    /// PROOF(m, D[n]) of RFC 9162 §2.1.4.1 over leaf hashes in memory: proves the tree of the first `oldSize`
    /// leaves is a prefix of the tree of `leaves`.
    package static func consistencyProof(oldSize: Int, leaves: ArraySlice<SHA256Digest>) -> [SHA256Digest] {
        precondition(oldSize >= 0 && oldSize <= leaves.count, "old size outside the tree")
        return consistencyProof(old: UInt64(oldSize), new: UInt64(leaves.count), in: LeafHashArray(leaves))
    }
}

/// Leaf hashes in memory as a subtree hash source (RFC 9162 §2.1.1): a perfect subtree is folded from its leaves.
/// Leaf 0 of the tree is the slice's first element, whatever its index.
package struct LeafHashArray: SubtreeHashSource {
    package typealias Failure = Never
    package let leaves: ArraySlice<SHA256Digest>

    package init(_ leaves: ArraySlice<SHA256Digest>) { self.leaves = leaves }

    package func hash(ofPerfectSubtree range: Range<UInt64>) -> SHA256Digest? {
        let lo = leaves.startIndex + Int(range.lowerBound)
        return Merkle.root(leaves[lo..<(lo + range.count)])
    }
}
