import ProvCrypto

/// The writer state stored after each group commit.
package struct WriterState: Sendable, Equatable {
    package var frontier: MerkleFrontier
    package var lastLeaf: SHA256Digest
    package var hlc: HLC
    /// Highest seq of each other log that this log has cited in `deps`.
    package var cited: [String: UInt64]

    package static let initial = WriterState(
        frontier: MerkleFrontier(), lastLeaf: .zero, hlc: HLC(wall: 0, counter: 0), cited: [:])

    package var encoded: [UInt8] {
        var w = CBORWriter(reservingCapacity: 256)
        w.writeMapHeader(5)
        w.writeKey("hlc")
        w.writeArrayHeader(2)
        w.writeUnsigned(hlc.wall)
        w.writeUnsigned(hlc.counter)
        w.writeKey("last")
        lastLeaf.withUnsafeBytes { w.writeBytes($0) }
        w.writeKey("size")
        w.writeUnsigned(frontier.size)
        w.writeKey("cited")
        let orgs = cited.keys.sorted()
        w.writeArrayHeader(orgs.count)
        for o in orgs {
            w.writeArrayHeader(2)
            w.writeText(o)
            w.writeUnsigned(cited[o]!)
        }
        w.writeKey("frontier")
        w.writeArrayHeader(frontier.hashes.count)
        for h in frontier.hashes { h.withUnsafeBytes { w.writeBytes($0) } }
        return w.bytes
    }

    package init(frontier: MerkleFrontier, lastLeaf: SHA256Digest, hlc: HLC, cited: [String: UInt64]) {
        self.frontier = frontier
        self.lastLeaf = lastLeaf
        self.hlc = hlc
        self.cited = cited
    }

    package init(decoding raw: UnsafeRawBufferPointer) throws {
        var r = CBORReader(raw, maxDepth: 4)
        func digest(_ name: String) throws -> SHA256Digest {
            let b = try r.readBytes()
            guard b.count == 32 else { throw LedgerError(.invalidEntry, "\(name): must be 32 bytes, got \(b.count)") }
            return SHA256Digest(copying: b.baseAddress!)
        }
        guard try r.readMapHeader() == 5, try r.readText() == "hlc", try r.readArrayHeader() == 2 else {
            throw LedgerError(.invalidEntry, "state record: malformed")
        }
        hlc = HLC(wall: try r.readUnsigned(), counter: try r.readUnsigned())
        guard try r.readText() == "last" else { throw LedgerError(.invalidEntry, "state record: malformed") }
        lastLeaf = try digest("state.last")
        guard try r.readText() == "size" else { throw LedgerError(.invalidEntry, "state record: malformed") }
        let size = try r.readUnsigned()
        guard try r.readText() == "cited" else { throw LedgerError(.invalidEntry, "state record: malformed") }
        cited = [:]
        for _ in 0..<(try r.readArrayHeader()) {
            guard try r.readArrayHeader() == 2 else { throw LedgerError(.invalidEntry, "state record: malformed") }
            let o = try r.readText()
            cited[o] = try r.readUnsigned()
        }
        guard try r.readText() == "frontier" else { throw LedgerError(.invalidEntry, "state record: malformed") }
        let n = try r.readArrayHeader()
        guard n == size.nonzeroBitCount else {
            throw LedgerError(.invalidEntry, "state record: frontier has \(n) hashes for size \(size)")
        }
        var hashes: [SHA256Digest] = []
        for _ in 0..<n { hashes.append(try digest("state.frontier")) }
        try r.expectEnd()
        frontier = MerkleFrontier(size: size, hashes: hashes)
    }
}

extension MerkleFrontier {
    package init(size: UInt64, hashes: [SHA256Digest]) {
        self.init()
        self.restore(size: size, hashes: hashes)
    }
}
