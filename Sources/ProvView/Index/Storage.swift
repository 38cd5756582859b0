import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// An append-only array in fixed chunks: growing never copies what is there (a plain array doubles and copies,
/// holding twice the memory for a moment), and the slack is at most one chunk.
struct ChunkedArray<Element> {
    static var shift: Int { 14 }
    static var chunkSize: Int { 1 << shift }
    private var chunks: [[Element]] = []
    private(set) var count = 0

    @inline(__always)
    mutating func append(_ x: Element) {
        if count & (Self.chunkSize - 1) == 0 {
            var c: [Element] = []
            c.reserveCapacity(Self.chunkSize)
            chunks.append(c)
        }
        chunks[chunks.count - 1].append(x)
        count += 1
    }

    @inline(__always)
    subscript(i: Int) -> Element {
        get { chunks[i >> Self.shift][i & (Self.chunkSize - 1)] }
        set { chunks[i >> Self.shift][i & (Self.chunkSize - 1)] = newValue }
    }

    /// Bytes reserved for elements.
    var reservedBytes: Int { chunks.count * Self.chunkSize * MemoryLayout<Element>.stride }
}

/// Interns byte strings (codes, agent ids, interaction types; also lists of ids packed as bytes) as dense ids:
/// an open-addressing table over one byte arena, looked up by raw bytes without building a `String`. Hashes are
/// seeded per process (`Hasher`), so a log cannot be written to make lookups collide.
struct Interner {
    private var arena: [UInt8] = []
    private var ends: [Int] = []
    /// Slot → id + 1; 0 is empty.
    private var table = [UInt32](repeating: 0, count: 64)
    private var strings: [String] = []

    var count: Int { ends.count }

    private static func hash(_ b: UnsafeRawBufferPointer) -> Int {
        var h = Hasher()
        h.combine(bytes: b)
        return h.finalize()
    }

    private func bytes(_ id: Int) -> Range<Int> {
        (id == 0 ? 0 : ends[id - 1])..<ends[id]
    }

    private func equal(_ id: Int, _ b: UnsafeRawBufferPointer) -> Bool {
        let r = bytes(id)
        guard r.count == b.count else { return false }
        return arena.withUnsafeBytes { a in
            b.count == 0 || memcmp(a.baseAddress! + r.lowerBound, b.baseAddress!, b.count) == 0
        }
    }

    func lookup(_ b: UnsafeRawBufferPointer) -> UInt32? {
        let mask = table.count - 1
        var i = Self.hash(b) & mask
        while table[i] != 0 {
            let id = Int(table[i] - 1)
            if equal(id, b) { return UInt32(id) }
            i = (i + 1) & mask
        }
        return nil
    }

    func lookup(_ s: String) -> UInt32? {
        var s = s
        return s.withUTF8 { lookup(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    mutating func intern(_ b: UnsafeRawBufferPointer) -> UInt32 {
        let mask = table.count - 1
        var i = Self.hash(b) & mask
        while table[i] != 0 {
            let id = Int(table[i] - 1)
            if equal(id, b) { return UInt32(id) }
            i = (i + 1) & mask
        }
        let id = ends.count
        arena.append(contentsOf: b)
        ends.append(arena.count)
        strings.append(String(decoding: b, as: UTF8.self))
        table[i] = UInt32(id + 1)
        if ends.count * 2 > table.count { grow() }
        return UInt32(id)
    }

    mutating func intern(_ s: String) -> UInt32 {
        var s = s
        return s.withUTF8 { intern(UnsafeRawBufferPointer($0)) }
    }

    private mutating func grow() {
        var t = [UInt32](repeating: 0, count: table.count * 2)
        let mask = t.count - 1
        arena.withUnsafeBytes { a in
            for id in 0..<ends.count {
                let r = bytes(id)
                var i = Self.hash(UnsafeRawBufferPointer(rebasing: a[r])) & mask
                while t[i] != 0 { i = (i + 1) & mask }
                t[i] = UInt32(id + 1)
            }
        }
        table = t
    }

    func string(_ id: UInt32) -> String { strings[Int(id)] }

    /// The interned bytes of `id` read as little-endian 32-bit ids (for interned lists).
    func ids(_ id: UInt32) -> [UInt32] {
        let r = bytes(Int(id))
        return arena.withUnsafeBytes { a in
            (0..<(r.count / 4)).map { a.loadUnaligned(fromByteOffset: r.lowerBound + 4 * $0, as: UInt32.self) }
        }
    }

    var reservedBytes: Int {
        arena.capacity + ends.capacity * 8 + table.capacity * 4 + strings.reduce(0) { $0 + 16 + $1.utf8.count }
    }
}

/// Interned lists of interned strings (purposes, controllers, recipients, data categories), kept in entry
/// order (entries store them sorted). Few distinct lists occur, so an entry holds one 32-bit id per list.
struct ListInterner {
    private var interner = Interner()
    private var members: [[UInt32]] = []

    mutating func intern(_ ids: UnsafeBufferPointer<UInt32>) -> UInt32 {
        let before = interner.count
        let id = interner.intern(UnsafeRawBufferPointer(ids))
        if interner.count > before { members.append(Array(ids)) }
        return id
    }

    @inline(__always)
    func list(_ id: UInt32) -> [UInt32] { members[Int(id)] }

    @inline(__always)
    func contains(_ id: UInt32, _ member: UInt32) -> Bool { members[Int(id)].contains(member) }

    var reservedBytes: Int { interner.reservedBytes + members.reduce(0) { $0 + 32 + $1.capacity * 4 } }
}

/// Hashes of the complete subtrees of a log's committed leaves, from height `minHeight` up, and the right edge.
/// An inclusion proof then hashes at most 2^minHeight − 1 nodes from leaves and looks the rest up, instead of
/// re-hashing the whole log (RFC 9162 §2.1.3.1). Memory: 32/2^(minHeight−1) bytes per leaf.
struct MerkleCache {
    static let minHeight = 6
    private(set) var size: UInt64 = 0
    /// The right edge: perfect subtrees, largest (leftmost) first.
    private var edge: [(height: Int, hash: SHA256Digest)] = []
    /// levels[h − minHeight][i] is the root of leaves [i·2^h, (i+1)·2^h).
    private var levels: [[SHA256Digest]] = []

    /// Appending leaves without changing the cache until `apply`: a commit whose root turns out wrong leaves the
    /// cache as it was.
    struct Staged {
        fileprivate var size: UInt64
        fileprivate var edge: [(height: Int, hash: SHA256Digest)]
        fileprivate var completed: [(height: Int, hash: SHA256Digest)] = []

        mutating func append(_ leaf: SHA256Digest) {
            var h = leaf
            var height = 0
            while let last = edge.last, last.height == height {
                h = SHA256.node(last.hash, h)
                height += 1
                edge.removeLast()
                if height >= MerkleCache.minHeight { completed.append((height, h)) }
            }
            edge.append((height, h))
            size += 1
        }

        var root: SHA256Digest {
            guard var r = edge.last?.hash else { return SHA256.hash([UInt8]()) }
            for e in edge.dropLast().reversed() { r = SHA256.node(e.hash, r) }
            return r
        }
    }

    func stage() -> Staged { Staged(size: size, edge: edge) }

    mutating func apply(_ s: Staged) {
        for (h, hash) in s.completed {
            while levels.count <= h - Self.minHeight { levels.append([]) }
            levels[h - Self.minHeight].append(hash)
        }
        edge = s.edge
        size = s.size
    }

    /// MTH(D[lo:hi]) for a range of the committed leaves that is a subtree of the tree of size `size` or of a
    /// proof's path.
    func root(_ lo: UInt64, _ hi: UInt64, leaf: (UInt64) -> SHA256Digest) -> SHA256Digest {
        let n = hi - lo
        if n == 1 { return leaf(lo) }
        if n & (n - 1) == 0 {
            let h = n.trailingZeroBitCount
            if h >= Self.minHeight, h - Self.minHeight < levels.count {
                let i = Int(lo >> UInt64(h))
                if lo & (n - 1) == 0, i < levels[h - Self.minHeight].count { return levels[h - Self.minHeight][i] }
            }
        }
        let k = UInt64(1) << UInt64(UInt64.bitWidth - 1 - (n - 1).leadingZeroBitCount)
        return SHA256.node(root(lo, lo + k, leaf: leaf), root(lo + k, hi, leaf: leaf))
    }

    /// PATH(m, D[0:size]) of RFC 9162 §2.1.3.1, bottom-up.
    func inclusionProof(_ m: UInt64, size n: UInt64, leaf: (UInt64) -> SHA256Digest) -> [SHA256Digest] {
        var proof: [SHA256Digest] = []
        var lo: UInt64 = 0
        var hi = n
        while hi - lo > 1 {
            let k = UInt64(1) << UInt64(UInt64.bitWidth - 1 - (hi - lo - 1).leadingZeroBitCount)
            if m < lo + k {
                proof.append(root(lo + k, hi, leaf: leaf))
                hi = lo + k
            } else {
                proof.append(root(lo, lo + k, leaf: leaf))
                lo += k
            }
        }
        return proof.reversed()
    }

    var reservedBytes: Int { levels.reduce(0) { $0 + $1.capacity * 32 } + edge.capacity * 40 }
}

extension ChunkedArray: Sendable where Element: Sendable {}
