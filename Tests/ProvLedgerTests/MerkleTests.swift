import ProvCrypto
import Testing

@testable import ProvLedger

@Suite struct MerkleTests {
    static func vectors() throws -> (leaves: [SHA256Digest], roots: [String]) {
        let v = try loadVectors("rfc6962-merkle.json") as! [String: Any]
        let leaves = (v["leaves"] as! [String]).map { Merkle.leafHash(Hex.decode($0)!) }
        return (leaves, v["roots"] as! [String])
    }

    @Test(arguments: 0...8)
    func rfc6962Roots(size: Int) throws {
        let (leaves, roots) = try Self.vectors()
        #expect(Merkle.root(leaves[..<size]).hex == roots[size])
        var f = MerkleFrontier()
        for l in leaves[..<size] { f.append(l) }
        #expect(f.root.hex == roots[size])
        #expect(f.size == UInt64(size))
    }

    /// The audit paths (RFC 9162 §2.1.3.1) and consistency proofs (§2.1.4.1) of the certificate-transparency
    /// vectors, built by the one walk over leaf hashes in memory, and each verifying against the vector roots.
    @Test func rfc6962Proofs() throws {
        let v = try loadVectors("rfc6962-merkle.json") as! [String: Any]
        let (leaves, roots) = try Self.vectors()
        let inclusion = v["inclusion"] as! [[String: Any]]
        let consistency = v["consistency"] as! [[String: Any]]
        #expect(inclusion.count == 5 && consistency.count == 4)
        for t in inclusion {
            let index = t["index"] as! Int
            let size = t["size"] as! Int
            let proof = Merkle.inclusionProof(index: index, leaves: leaves[..<size])
            #expect(proof.map(\.hex) == t["path"] as! [String], "leaf \(index) of \(size)")
            let root = try #require(SHA256Digest(hex: roots[size]))
            #expect(
                Merkle.inclusionFailure(
                    leaf: leaves[index], index: UInt64(index), size: UInt64(size), proof: proof, root: root) == nil)
        }
        for t in consistency {
            let old = t["old"] as! Int
            let new = t["new"] as! Int
            let proof = Merkle.consistencyProof(oldSize: old, leaves: leaves[..<new])
            #expect(proof.map(\.hex) == t["proof"] as! [String], "\(old) to \(new)")
            #expect(
                Merkle.consistencyFailure(
                    oldSize: UInt64(old), newSize: UInt64(new), oldRoot: try #require(SHA256Digest(hex: roots[old])),
                    newRoot: try #require(SHA256Digest(hex: roots[new])), proof: proof) == nil)
        }
    }

    /// The reference definition of RFC 9162 §2.1.1, written recursively, to check the iterative code against.
    static func referenceRoot(_ l: ArraySlice<SHA256Digest>) -> SHA256Digest {
        if l.isEmpty { return Merkle.emptyRoot }
        if l.count == 1 { return l.first! }
        let k = Int(Merkle.split(UInt64(l.count)))
        return SHA256.node(referenceRoot(l.prefix(k)), referenceRoot(l.dropFirst(k)))
    }

    static func leaves(_ n: Int) -> [SHA256Digest] {
        (0..<n).map { Merkle.leafHash(Array("leaf \($0)".utf8)) }
    }

    @Test func everyInclusionProofUpTo40Leaves() {
        let all = Self.leaves(40)
        for n in 1...40 {
            let tree = all[..<n]
            let root = Self.referenceRoot(tree)
            #expect(Merkle.root(tree) == root)
            for i in 0..<n {
                let proof = Merkle.inclusionProof(index: i, leaves: tree)
                #expect(
                    Merkle.inclusionFailure(
                        leaf: all[i], index: UInt64(i), size: UInt64(n), proof: proof, root: root) == nil)
                // Wrong leaf, wrong index, wrong size, a changed or missing hash: all fail.
                #expect(
                    Merkle.inclusionFailure(
                        leaf: all[(i + 1) % 40], index: UInt64(i), size: UInt64(n), proof: proof, root: root) != nil)
                if n > 1 {
                    #expect(
                        Merkle.inclusionFailure(
                            leaf: all[i], index: UInt64((i + 1) % n), size: UInt64(n), proof: proof, root: root)
                            != nil)
                    var bad = proof
                    bad[bad.count / 2] = SHA256.hash("x")
                    #expect(
                        Merkle.inclusionFailure(leaf: all[i], index: UInt64(i), size: UInt64(n), proof: bad, root: root)
                            != nil)
                    #expect(
                        Merkle.inclusionFailure(
                            leaf: all[i], index: UInt64(i), size: UInt64(n), proof: proof.dropLast(), root: root)
                            != nil)
                }
                #expect(
                    Merkle.inclusionFailure(
                        leaf: all[i], index: UInt64(i), size: UInt64(n), proof: proof + [root], root: root) != nil)
            }
        }
    }

    @Test func everyConsistencyProofUpTo40Leaves() {
        let all = Self.leaves(40)
        for n in 1...40 {
            let newRoot = Self.referenceRoot(all[..<n])
            for m in 1...n {
                let oldRoot = Self.referenceRoot(all[..<m])
                let proof = Merkle.consistencyProof(oldSize: m, leaves: all[..<n])
                #expect(
                    Merkle.consistencyFailure(
                        oldSize: UInt64(m), newSize: UInt64(n), oldRoot: oldRoot, newRoot: newRoot, proof: proof)
                        == nil, "m=\(m) n=\(n)")
                if m < n {
                    // A fork: a different old tree of the same size is not consistent.
                    let forkRoot = Self.referenceRoot(Self.leaves(m).map { SHA256.node($0, $0) }[...])
                    #expect(
                        Merkle.consistencyFailure(
                            oldSize: UInt64(m), newSize: UInt64(n), oldRoot: forkRoot, newRoot: newRoot, proof: proof)
                            != nil)
                    var bad = proof
                    bad[0] = SHA256.hash("x")
                    #expect(
                        Merkle.consistencyFailure(
                            oldSize: UInt64(m), newSize: UInt64(n), oldRoot: oldRoot, newRoot: newRoot, proof: bad)
                            != nil)
                }
            }
        }
    }

    @Test func consistencyFromTheEmptyTreeNeedsTheEmptyRoot() {
        let all = Self.leaves(5)
        let newRoot = Self.referenceRoot(all[...])
        #expect(
            Merkle.consistencyFailure(oldSize: 0, newSize: 5, oldRoot: Merkle.emptyRoot, newRoot: newRoot, proof: [])
                == nil)
        #expect(
            Merkle.consistencyFailure(oldSize: 0, newSize: 5, oldRoot: SHA256.hash("x"), newRoot: newRoot, proof: [])
                == "the old root is not the root of an empty tree")
    }
}
