import ProvCrypto
import ProvLedger

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
/// keyed per process (`KeyedHash`), so a log cannot be written to make lookups collide.
struct Interner {
    private var arena: [UInt8] = []
    private var ends: [Int] = []
    /// Slot → id + 1; 0 is empty.
    private var table = [UInt32](repeating: 0, count: 64)
    private var strings: [String] = []

    var count: Int { ends.count }

    static func hash(_ b: UnsafeRawBufferPointer) -> UInt32 { KeyedHash.hash(b) }

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

    func lookup(_ b: UnsafeRawBufferPointer) -> UInt32? { lookup(b, hash: Self.hash(b)) }

    func lookup(_ b: UnsafeRawBufferPointer, hash: UInt32) -> UInt32? {
        let mask = table.count - 1
        var i = Int(hash) & mask
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

    mutating func intern(_ b: UnsafeRawBufferPointer) -> UInt32 { intern(b, hash: Self.hash(b)) }

    /// Interns `b`, whose `hash(_:)` the caller computed.
    @inline(__always)
    mutating func intern(_ b: UnsafeRawBufferPointer, hash: UInt32) -> UInt32 {
        let mask = table.count - 1
        var i = Int(hash) & mask
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
                var i = Int(Self.hash(UnsafeRawBufferPointer(rebasing: a[r]))) & mask
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

/// Interned lists of interned strings (purposes, controllers, recipients, data categories), keyed by the list's
/// CBOR encoding, so a list seen before costs one probe. Few distinct lists occur, so an entry holds one 32-bit id
/// per list. Members keep entry order (entries store them sorted).
struct ListInterner {
    private var interner = Interner()
    private var members: [[UInt32]] = []

    /// The id of the list encoded as `raw` (hashed by the caller), if it was seen before.
    func lookup(raw: UnsafeRawBufferPointer, hash: UInt32) -> UInt32? { interner.lookup(raw, hash: hash) }

    /// Adds a new list with its members.
    mutating func add(raw: UnsafeRawBufferPointer, hash: UInt32, members m: [UInt32]) -> UInt32 {
        let id = interner.intern(raw, hash: hash)
        if Int(id) == members.count { members.append(m) }
        return id
    }

    @inline(__always)
    func list(_ id: UInt32) -> [UInt32] { members[Int(id)] }

    @inline(__always)
    func contains(_ id: UInt32, _ member: UInt32) -> Bool { members[Int(id)].contains(member) }

    var reservedBytes: Int { interner.reservedBytes + members.reduce(0) { $0 + 32 + $1.capacity * 4 } }
}

/// Subject refs as dense ids: refs in one array, an open-addressing table of ids over them. The hash is keyed per
/// process, like the interner's.
struct SubjectTable {
    private(set) var digests: [SHA256Digest] = []
    /// Slot → id + 1; 0 is empty.
    private var slots = [UInt32](repeating: 0, count: 1024)

    static func hash(_ d: SHA256Digest) -> UInt32 { d.withUnsafeBytes { KeyedHash.hash($0) } }

    var count: Int { digests.count }

    func find(_ d: SHA256Digest, hash: UInt32) -> UInt32? {
        let mask = slots.count - 1
        var i = Int(hash) & mask
        while slots[i] != 0 {
            let id = slots[i] - 1
            if digests[Int(id)] == d { return id }
            i = (i + 1) & mask
        }
        return nil
    }

    func find(_ d: SHA256Digest) -> UInt32? { find(d, hash: Self.hash(d)) }

    /// The id of `d`, and whether it is new.
    mutating func insert(_ d: SHA256Digest, hash: UInt32) -> (id: UInt32, new: Bool) {
        let mask = slots.count - 1
        var i = Int(hash) & mask
        while slots[i] != 0 {
            let id = slots[i] - 1
            if digests[Int(id)] == d { return (id, false) }
            i = (i + 1) & mask
        }
        let id = UInt32(digests.count)
        digests.append(d)
        slots[i] = id + 1
        if digests.count * 2 > slots.count {
            var t = [UInt32](repeating: 0, count: slots.count * 2)
            let m = t.count - 1
            for (k, x) in digests.enumerated() {
                var j = Int(Self.hash(x)) & m
                while t[j] != 0 { j = (j + 1) & m }
                t[j] = UInt32(k + 1)
            }
            slots = t
        }
        return (id, true)
    }

    subscript(id: UInt32) -> SHA256Digest { digests[Int(id)] }

    var reservedBytes: Int { digests.capacity * 32 + slots.capacity * 4 }
}

/// Hashes of the complete subtrees of a log's committed leaves, from height `minHeight` up, and the right edge.
/// An inclusion proof (RFC 9162 §2.1.3.1, built by ProvLedger's `Merkle.inclusionProof(index:size:in:)` over
/// `source(leaf:)`) then hashes at most 2^minHeight − 1 nodes from leaves per subtree and looks the rest up,
/// instead of re-hashing the whole log. Memory: 32/2^(minHeight−1) bytes per leaf.
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

        /// Appends a perfect subtree of 2^`subtree.height` leaves whose hashes were computed elsewhere (on another
        /// core): the same as appending its leaves one by one. The log's size must be a multiple of its width.
        mutating func append(_ subtree: Subtree) {
            precondition(size & ((1 << UInt64(subtree.height)) - 1) == 0, "subtree not aligned")
            for (i, level) in subtree.levels.enumerated() {
                for h in level { completed.append((MerkleCache.minHeight + i, h)) }
            }
            var h = subtree.root
            var height = subtree.height
            if height >= MerkleCache.minHeight { completed.append((height, h)) }
            while let last = edge.last, last.height == height {
                h = SHA256.node(last.hash, h)
                height += 1
                edge.removeLast()
                if height >= MerkleCache.minHeight { completed.append((height, h)) }
            }
            edge.append((height, h))
            size += 1 << UInt64(subtree.height)
        }

        var root: SHA256Digest {
            guard var r = edge.last?.hash else { return SHA256.hash([UInt8]()) }
            for e in edge.dropLast().reversed() { r = SHA256.node(e.hash, r) }
            return r
        }
    }

    func stage() -> Staged { Staged(size: size, edge: edge) }

    /// The hashes of a perfect subtree: its root and, for each height from `minHeight` below its own, the roots of
    /// its subtrees of that height, left to right.
    struct Subtree: Sendable {
        var height: Int
        var root: SHA256Digest
        var levels: [[SHA256Digest]]

        /// Hashes `leaves` (a power of two of them) into their subtree.
        init(leaves: [SHA256Digest]) {
            precondition(leaves.count > 0 && leaves.count & (leaves.count - 1) == 0, "not a perfect subtree")
            var level = leaves
            var height = 0
            var levels: [[SHA256Digest]] = []
            while level.count > 1 {
                var up: [SHA256Digest] = []
                up.reserveCapacity(level.count / 2)
                for i in stride(from: 0, to: level.count, by: 2) { up.append(SHA256.node(level[i], level[i + 1])) }
                level = up
                height += 1
                if height >= MerkleCache.minHeight && level.count > 1 { levels.append(level) }
            }
            self.height = height
            self.root = level[0]
            self.levels = levels
        }
    }

    mutating func apply(_ s: Staged) {
        for (h, hash) in s.completed {
            while levels.count <= h - Self.minHeight { levels.append([]) }
            levels[h - Self.minHeight].append(hash)
        }
        edge = s.edge
        size = s.size
    }

    /// The cached root of the perfect subtree `range` (2^h leaves from a multiple of 2^h), if h ≥ `minHeight`
    /// and the subtree is complete among the committed leaves.
    func cachedRoot(_ range: Range<UInt64>) -> SHA256Digest? {
        let h = UInt64(range.count).trailingZeroBitCount
        guard h >= Self.minHeight, h - Self.minHeight < levels.count else { return nil }
        let level = levels[h - Self.minHeight]
        let i = Int(range.lowerBound >> UInt64(h))
        return i < level.count ? level[i] : nil
    }

    /// The committed tree as a subtree hash source for ProvLedger's RFC 9162 proofs: subtrees of 2^`minHeight`
    /// leaves and more from the cache, single leaves from `leaf`, the few nodes between computed by the walk.
    struct Source: SubtreeHashSource {
        typealias Failure = Never
        let cache: MerkleCache
        let leaf: (UInt64) -> SHA256Digest

        func hash(ofPerfectSubtree range: Range<UInt64>) -> SHA256Digest? {
            range.count == 1 ? leaf(range.lowerBound) : cache.cachedRoot(range)
        }
    }

    /// This cache, with the committed leaves' hashes from `leaf`, as a source of RFC 9162 proofs.
    func source(leaf: @escaping (UInt64) -> SHA256Digest) -> Source { Source(cache: self, leaf: leaf) }

    var reservedBytes: Int { levels.reduce(0) { $0 + $1.capacity * 32 } + edge.capacity * 40 }
}

extension ChunkedArray: Sendable where Element: Sendable {}

/// The index tables' hash: a folded 64×64→128-bit multiply per 8 bytes (the construction of wyhash and foldhash),
/// keyed with random words drawn once per process. Several times cheaper than `Hasher` on the short keys the index
/// interns, and a log's author cannot predict the key to make entries collide.
enum KeyedHash {
    static let key: (UInt64, UInt64, UInt64) = {
        var g = SystemRandomNumberGenerator()
        return (g.next() | 1, g.next() | 1, g.next() | 1)
    }()

    @inline(__always)
    static func fold(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (hi, lo) = a.multipliedFullWidth(by: b)
        return hi ^ lo
    }

    @inline(__always)
    static func hash(_ b: UnsafeRawBufferPointer) -> UInt32 {
        let k = key
        var h = k.0 ^ UInt64(b.count)
        var i = 0
        while i + 8 <= b.count {
            h = fold(h ^ b.loadUnaligned(fromByteOffset: i, as: UInt64.self), k.1)
            i += 8
        }
        if i < b.count {
            var last: UInt64 = 0
            for j in i..<b.count { last |= UInt64(b[j]) << UInt64(8 * (j - i)) }
            h = fold(h ^ last, k.2)
        }
        return UInt32(truncatingIfNeeded: fold(h, k.1 ^ k.2))
    }
}
