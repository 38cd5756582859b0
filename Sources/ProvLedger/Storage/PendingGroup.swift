import ProvCrypto

/// Entries built for one group commit, not yet written: seqs, chain, clocks and Merkle frontier are final, so
/// later entries of the same group can refer to earlier ones by leaf hash.
public struct PendingGroup {
    let origin: String
    package let startSize: UInt64
    package private(set) var state: WriterState
    let now: UInt64
    /// Framed entry records, and each record's offset in `buffer`.
    var buffer: [UInt8] = []
    var offsets: [Int] = []
    public private(set) var results: [(seq: UInt64, leaf: SHA256Digest)] = []
    /// The bodies added, for references within the group.
    public private(set) var bodies: [EntryBody] = []
    /// Tile hashes the group's leaves complete.
    var tiles: [TileHash] = []
    private var scratch = CBORWriter(reservingCapacity: 512)

    init(origin: String, startSize: UInt64, state: WriterState, now: UInt64) {
        self.origin = origin
        self.startSize = startSize
        self.state = state
        self.now = now
    }

    public var count: Int { results.count }
    /// The bytes of the group's records.
    public var byteCount: Int { buffer.count }

    /// The group's entries (seq, leaf hash, canonical bytes), as a value that can travel to another thread.
    public var entries: GroupEntries { GroupEntries(buffer: buffer, offsets: offsets, results: results) }

    public mutating func reserve(_ n: Int) {
        buffer.reserveCapacity(n * 300 + 4096)
        offsets.reserveCapacity(n)
        results.reserveCapacity(n)
        bodies.reserveCapacity(n)
    }

    /// Adds an entry of another company's log, already verified by the caller (canonical bytes, chain, clock,
    /// citations): the bytes are stored as they are and the writer state follows them.
    public mutating func addVerified(_ raw: UnsafeRawBufferPointer, leaf: SHA256Digest, hlc: HLC, deps: [EntryRef]) {
        offsets.append(buffer.count)
        SegmentFormat.frame(.entry, raw, into: &buffer)
        state.hlc = hlc
        state.frontier.append(leaf, completing: &tiles)
        state.lastLeaf = leaf
        for d in deps { state.cited[d.org] = max(state.cited[d.org] ?? 0, d.seq) }
        results.append((state.frontier.size - 1, leaf))
    }

    /// The writer state after the entries added so far: size, frontier, last leaf, clock and citations.
    public var size: UInt64 { state.frontier.size }
    public var lastLeaf: SHA256Digest { state.lastLeaf }
    public var lastHLC: HLC { state.hlc }
    public var root: SHA256Digest { state.frontier.root }
    public func cited(_ org: String) -> UInt64? { state.cited[org] }

    /// A point in the group to go back to: the entries added after it can be dropped again (a request whose
    /// later event turned out bad, when several requests share one group commit).
    public struct Mark: Sendable {
        fileprivate let buffer: Int
        fileprivate let count: Int
        fileprivate let tiles: Int
        fileprivate let state: WriterState
    }

    public var mark: Mark { Mark(buffer: buffer.count, count: results.count, tiles: tiles.count, state: state) }

    /// Drops every entry added since `mark`.
    public mutating func rollback(to mark: Mark) {
        buffer.removeSubrange(mark.buffer...)
        offsets.removeSubrange(mark.count...)
        results.removeSubrange(mark.count...)
        if bodies.count > mark.count { bodies.removeSubrange(mark.count...) }
        tiles.removeSubrange(mark.tiles...)
        state = mark.state
    }

    /// Builds the next entry from `body`.
    @discardableResult
    public mutating func add(_ body: EntryBody, deps: [EntryRef] = [], citedHLC: HLC? = nil) -> (
        seq: UInt64, leaf: SHA256Digest
    ) {
        state.hlc = state.hlc.tick(now: now, cited: citedHLC)
        let seq = state.frontier.size
        let e = Entry(log: origin, seq: seq, prev: state.lastLeaf, hlc: state.hlc, deps: deps, body: body)
        scratch.removeAll()
        e.encode(into: &scratch)
        offsets.append(buffer.count)
        let leaf = scratch.withUnsafeBytes { raw in
            SegmentFormat.frame(.entry, raw, into: &buffer)
            return Merkle.leafHash(raw)
        }
        state.frontier.append(leaf, completing: &tiles)
        state.lastLeaf = leaf
        for d in deps { state.cited[d.org] = max(state.cited[d.org] ?? 0, d.seq) }
        results.append((seq, leaf))
        bodies.append(body)
        return (seq, leaf)
    }
}

/// The entries of a group: seq, leaf hash and canonical bytes of each (for a view fed after the group's fsync).
public struct GroupEntries: Sendable {
    let buffer: [UInt8]
    let offsets: [Int]
    let results: [(seq: UInt64, leaf: SHA256Digest)]

    public var count: Int { results.count }
    /// The bytes of the group's records.
    public var byteCount: Int { buffer.count }

    /// Each entry in order.
    public func forEach(_ body: (UInt64, SHA256Digest, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try buffer.withUnsafeBytes { b in
            for (i, r) in results.enumerated() {
                let start = offsets[i] + SegmentFormat.headerSize
                let end = i + 1 < offsets.count ? offsets[i + 1] : b.count
                try body(r.seq, r.leaf, UnsafeRawBufferPointer(rebasing: b[start..<end]))
            }
        }
    }
}
