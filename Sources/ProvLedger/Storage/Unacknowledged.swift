import ProvCrypto

/// The own log's entries a writer has prepared that the store does not answer for yet: groups prepared or
/// written and still before their acknowledgement (a pipelined commit builds the next group during the previous
/// one's fsync), and the group being built. A new event's reference into them (`consentRef`, `derivedFrom`)
/// resolves here. Used by one thread at a time.
public final class UnacknowledgedEntries {
    private var groups: [(start: UInt64, leaves: [SHA256Digest], bodies: [EntryBody])] = []
    private var start: UInt64 = 0
    private var leaves: [SHA256Digest] = []
    private var bodies: [EntryBody] = []

    public init() {}

    /// A new group is built from `start`; the store answers for every entry below `acknowledged`. Groups at or
    /// past `start` were never written (given up) and are forgotten with the acknowledged ones.
    public func begin(at start: UInt64, acknowledged: UInt64) {
        groups.removeAll { $0.start >= start || $0.start + UInt64($0.leaves.count) <= acknowledged }
        self.start = start
        leaves.removeAll()
        bodies.removeAll()
    }

    /// An entry added to the group being built.
    public func add(leaf: SHA256Digest, body: EntryBody) {
        leaves.append(leaf)
        bodies.append(body)
    }

    /// Entries of the group being built so far.
    public var count: Int { leaves.count }

    /// Forgets the group's entries from index `i` on (a request rolled back).
    public func drop(from i: Int) {
        leaves.removeSubrange(i...)
        bodies.removeSubrange(i...)
    }

    /// The group being built is handed to the store: its entries stay resolvable until acknowledged.
    public func keepBuiltGroup() {
        if !leaves.isEmpty { groups.append((start, leaves, bodies)) }
    }

    /// A group written outside the one being built (a heads-only entry), kept the same way.
    public func keep(start: UInt64, leaves: [SHA256Digest], bodies: [EntryBody]) {
        if !leaves.isEmpty { groups.append((start, leaves, bodies)) }
    }

    /// What a reference to `seq` of the own log finds here, or nil.
    public func entry(_ seq: UInt64) -> ReferencedEntry? {
        if seq >= start {
            guard seq - start < leaves.count else { return nil }
            let i = Int(seq - start)
            return ReferencedEntry(leaf: leaves[i], kind: bodies[i].kind, subjects: bodies[i].subjects)
        }
        guard let g = groups.first(where: { seq >= $0.start && seq - $0.start < $0.leaves.count }) else { return nil }
        let i = Int(seq - g.start)
        return ReferencedEntry(leaf: g.leaves[i], kind: g.bodies[i].kind, subjects: g.bodies[i].subjects)
    }
}
