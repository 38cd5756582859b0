import Dispatch
import Foundation
import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// What a replica knows of an entry of another log, for the checks of references into it.
public struct KnownEntry: Sendable {
    public var leaf: SHA256Digest
    public var kind: UInt8
    public var hlc: HLC

    public init(leaf: SHA256Digest, kind: UInt8, hlc: HLC) {
        self.leaf = leaf
        self.kind = kind
        self.hlc = hlc
    }
}

/// Extends a copy of another company's log with entries received from a peer. Every entry is checked as
/// `prov verify` checks it (canonical encoding, entry and body rules, membership, seq, chain, clock, citations,
/// references into this log and, where the cited log is held here, into others) before it joins the pending
/// group; the group is written only when a checkpoint validly signed by the log's owner signs exactly its end.
/// Nothing unverified is stored, and nothing is acknowledged before its fsync.
public final class ReplicaWriter {
    public let store: LogStore
    public let member: Consortium.Member
    let consortium: Consortium
    let context: AuditContext
    private var group: PendingGroup
    /// Kinds and clocks of the pending entries, for reference checks into the group.
    private var pendingInfo: [(kind: UInt8, hlc: HLC)] = []
    /// The last group written and not yet acknowledged (its fsync may run while the next group is checked):
    /// where it starts, its leaves, kinds and clocks.
    private var written: (start: UInt64, leaves: [SHA256Digest], info: [(kind: UInt8, hlc: HLC)])?

    public init(store: LogStore, consortium: Consortium) throws(LedgerError) {
        guard let member = consortium.member(store.org) else {
            throw LedgerError(.config, "log \(store.org) is not a member of consortium \(consortium.name)")
        }
        self.store = store
        self.member = member
        self.consortium = consortium
        self.context = AuditContext(consortium: consortium, org: member.org)
        self.group = store.beginGroup(now: 0)
    }

    /// Entries checked and waiting for a checkpoint.
    public var pending: Int { group.count }
    /// The pending entries, as they will be written.
    public var pendingGroup: PendingGroup { group }

    /// The bytes of the pending entries' records.
    public var pendingBytes: Int { group.byteCount }

    /// The size the copy reaches once the pending entries are committed.
    public var pendingSize: UInt64 { group.size }

    /// Drops the pending entries (a peer served something wrong, or the pull was given up).
    public func reset() {
        group = store.beginGroup(now: 0)
        pendingInfo.removeAll()
    }

    /// Forgets everything not acknowledged, the group in its fsync too: the store was reopened after a failure.
    public func reopened() {
        written = nil
        reset()
    }

    func fail(_ seq: UInt64, _ what: String) -> LedgerError {
        LedgerError(.verificationFailed, "\(member.org) seq \(seq): \(what)")
    }

    /// What checking an entry on its own gives (canonical encoding, entry and body rules, membership): the facts
    /// the chain checks need, and its leaf hash. Depends on nothing but the bytes, so entries are audited on every
    /// core at once.
    public struct Audited: Sendable {
        let entry: AuditedEntry?
        let failure: String?
        let leaf: SHA256Digest
    }

    /// What the copy's store holds of its committed entry `seq`: for `known` when nothing else reads the store
    /// meanwhile (tools and tests; a node answers under its log's lock).
    public func committedEntry(_ seq: UInt64) -> KnownEntry? { store.knownEntry(seq) }

    /// Audits one entry (any thread).
    public func audit(_ raw: UnsafeRawBufferPointer) -> Audited { Self.audit(raw, context, consortium) }

    static func audit(_ raw: UnsafeRawBufferPointer, _ context: AuditContext, _ consortium: Consortium) -> Audited {
        guard raw.count <= Entry.maxSize else {
            return Audited(entry: nil, failure: "entry of \(raw.count) bytes, over \(Entry.maxSize)", leaf: .zero)
        }
        do {
            return Audited(entry: try Entry.audit(raw, context), failure: nil, leaf: Merkle.leafHash(raw))
        } catch {
            return Audited(entry: nil, failure: LogScan.explain(raw, context, consortium, audit: error), leaf: .zero)
        }
    }

    /// Checks entry `raw` as the next entry of the copy and adds it to the pending group. `known` answers for
    /// committed entries of the logs held here (nil when not held or not that far), this copy's own included, so
    /// that the store is read the way its owner guards reads: references into other logs are checked by leaf
    /// hash, kind and clock, the way `prov verify` checks references between the logs of a directory.
    public func add(_ raw: UnsafeRawBufferPointer, known: (String, UInt64) -> KnownEntry?) throws(LedgerError) {
        try append(raw, audit(raw), known: known)
    }

    /// Adds the entries of a bundle in order: audited on every core first, then checked against the chain one by
    /// one. The first that fails stops the bundle (the entries before it stay pending).
    public func add(bundle: [UnsafeRawBufferPointer], known: (String, UInt64) -> KnownEntry?) throws(LedgerError) {
        try add(bundle, audited: auditor.audit(bundle), known: known)
    }

    /// Adds entries audited already (by `auditor`, on any thread), in order, each checked against the chain. The
    /// first that fails stops (the entries before it stay pending).
    public func add(
        _ entries: [UnsafeRawBufferPointer], audited: [Audited], known: (String, UInt64) -> KnownEntry?
    ) throws(LedgerError) {
        precondition(entries.count == audited.count, "one audit per entry")
        for (raw, a) in zip(entries, audited) { try append(raw, a, known: known) }
    }

    /// What audits the entries of this copy, on any thread: the checks of an entry on its own, which depend on
    /// nothing but its bytes (`audit(_:)`), so that a fetcher can audit a bundle as it receives it.
    public var auditor: Auditor { Auditor(context: context, consortium: consortium) }

    public struct Auditor: Sendable {
        let context: AuditContext
        let consortium: Consortium

        /// Audits `entries` on every core at once; one result per entry, in order.
        public func audit(_ entries: [UnsafeRawBufferPointer]) -> [Audited] {
            let chunk = 32
            let chunks = (entries.count + chunk - 1) / chunk
            let (ctx, cons) = (context, consortium)
            return [Audited](unsafeUninitializedCapacity: entries.count) { out, count in
                // Safe: each iteration initializes only its own slots, all of them before concurrentPerform
                // returns; the entries' bytes are only read, and outlive the call.
                nonisolated(unsafe) let slots = out
                nonisolated(unsafe) let raw = entries
                DispatchQueue.concurrentPerform(iterations: chunks) { c in
                    for i in (c * chunk)..<min(raw.count, (c + 1) * chunk) {
                        (slots.baseAddress! + i).initialize(to: ReplicaWriter.audit(raw[i], ctx, cons))
                    }
                }
                count = entries.count
            }
        }
    }

    /// The chain checks of an audited entry, then the entry joins the pending group.
    func append(_ raw: UnsafeRawBufferPointer, _ a: Audited, known: (String, UInt64) -> KnownEntry?)
        throws(LedgerError)
    {
        let seq = group.size
        guard let e = a.entry else { throw fail(seq, a.failure ?? "entry rejected") }
        guard e.seq == seq else {
            throw fail(
                seq,
                e.seq > seq
                    ? "found seq \(e.seq) where seq \(seq) belongs: "
                        + Phrase.entries(seq, through: e.seq - 1, are: "missing or out of order")
                    : "found seq \(e.seq) again where seq \(seq) belongs: entries reordered or duplicated")
        }
        guard e.prev == group.lastLeaf else {
            throw fail(seq, "prev is not the leaf hash of seq \(Int64(seq) - 1): the chain is broken")
        }
        if seq > 0, e.hlc <= group.lastHLC {
            throw fail(seq, "hlc \(e.hlc) does not advance past \(group.lastHLC)")
        }
        for dep in e.deps {
            if let c = group.cited(dep.org), dep.seq <= c {
                throw fail(seq, "deps cites \(dep.org)/\(dep.seq), not past \(dep.org)/\(c) cited before")
            }
            if let k = known(dep.org, dep.seq),
                let why = Verifier.referenceFailure(
                    "deps", dep, citingHLC: e.hlc, leaf: k.leaf, kind: k.kind, hlc: k.hlc, sameLog: false)
            {
                throw fail(seq, why)
            }
        }
        for (field, ref) in e.refs {
            if ref.org == member.org {
                guard ref.seq < seq else {
                    throw fail(seq, "\(field) cites \(ref.org)/\(ref.seq), which is not an earlier entry of this log")
                }
                let k = try ownEntry(ref.seq, known)
                if let why = Verifier.referenceFailure(
                    field, ref, citingHLC: e.hlc, leaf: k.leaf, kind: k.kind, hlc: k.hlc, sameLog: true)
                {
                    throw fail(seq, why)
                }
            } else if let k = known(ref.org, ref.seq),
                let why = Verifier.referenceFailure(
                    field, ref, citingHLC: e.hlc, leaf: k.leaf, kind: k.kind, hlc: k.hlc, sameLog: false)
            {
                throw fail(seq, why)
            }
        }
        group.addVerified(raw, leaf: a.leaf, hlc: e.hlc, deps: e.deps)
        pendingInfo.append((e.kind, e.hlc))
    }

    /// An earlier entry of this log: committed (through `known`), written and not yet acknowledged, or pending.
    private func ownEntry(_ seq: UInt64, _ known: (String, UInt64) -> KnownEntry?) throws(LedgerError) -> KnownEntry {
        if seq < (written?.start ?? group.startSize) {
            guard let k = known(member.org, seq) else {
                throw LedgerError(.io, "\(member.org) seq \(seq): the copy's committed entry cannot be read")
            }
            return k
        }
        if let w = written, seq >= w.start, seq < w.start + UInt64(w.leaves.count) {
            let i = Int(seq - w.start)
            return KnownEntry(leaf: w.leaves[i], kind: w.info[i].kind, hlc: w.info[i].hlc)
        }
        let i = Int(seq - group.startSize)
        return KnownEntry(leaf: group.results[i].leaf, kind: pendingInfo[i].kind, hlc: pendingInfo[i].hlc)
    }

    /// Writes the pending group closed by `checkpoint`, which must be validly signed by the log's owner and
    /// sign exactly the pending entries' end; fsyncs; returns the new size. On a mismatch nothing is written
    /// and the pending entries are dropped.
    @discardableResult
    public func commit(_ checkpoint: SignedCheckpoint) throws(LedgerError) -> UInt64 {
        let w = try write(checkpoint)
        do throws(LedgerError) { try LogStore.sync(w) } catch {
            store.fail(error)
            throw error
        }
        return try acknowledge(w)
    }

    /// The first half of `commit`: the checks, then the pending group is written (not yet synced) and a new
    /// group begins after it, so the next entries can be checked while this group's fsync runs (`LogStore.sync`
    /// from any thread, then `acknowledge` here, in order). On a mismatch nothing is written and the pending
    /// entries are dropped.
    /// With `deferringData`, the group's bytes too are written by `LogStore.sync`.
    public func write(_ checkpoint: SignedCheckpoint, deferringData: Bool = false) throws(LedgerError)
        -> LogStore.WrittenGroup
    {
        defer { reset() }
        guard checkpoint.checkpoint.origin == member.origin else {
            throw LedgerError(
                .verificationFailed,
                "checkpoint origin '\(checkpoint.checkpoint.origin)' is not the log '\(member.origin)'")
        }
        if let why = member.signatureFailure(checkpoint) {
            throw LedgerError(
                .verificationFailed, "\(member.org): checkpoint at size \(checkpoint.checkpoint.size): \(why)")
        }
        guard group.count > 0 else { return try store.write(group, checkpoint: checkpoint) }
        guard checkpoint.checkpoint.size == group.size else {
            throw LedgerError(
                .verificationFailed,
                "\(member.org): checkpoint is signed for size \(checkpoint.checkpoint.size) but the entries end at \(group.size)"
            )
        }
        guard checkpoint.checkpoint.root == group.root else {
            throw LedgerError(
                .verificationFailed,
                "\(member.org): checkpoint at size \(group.size) has root \(checkpoint.checkpoint.root.base64) but the entries give \(group.root.base64)"
            )
        }
        let w = try store.write(group, checkpoint: checkpoint, deferringData: deferringData)
        written = (group.startSize, group.results.map(\.leaf), pendingInfo)
        return w
    }

    /// The last part, after the group's fsync: the copy's size and latest checkpoint move forward. Groups are
    /// acknowledged in the order they were written. Returns the new size.
    @discardableResult
    public func acknowledge(_ w: LogStore.WrittenGroup) throws(LedgerError) -> UInt64 {
        _ = try store.acknowledge(w)
        if let done = written, done.start == w.start { written = nil }
        return store.size
    }
}

extension LogStore {
    /// What a reference check needs of committed entry `seq` (leaf hash, kind, clock); nil past the log's size
    /// or when it cannot be read.
    public func knownEntry(_ seq: UInt64) -> KnownEntry? {
        guard seq < size, let e = try? entry(seq), let leaf = try? leafHash(seq) else { return nil }
        return KnownEntry(leaf: leaf, kind: e.body.kind.code, hlc: e.hlc)
    }

    /// The stored checkpoint with the smallest size at least `n` (n ≥ 1): the end of the group that holds entry
    /// n−1, found by reading forward from that entry's record. A group too long to read quickly answers with the
    /// latest checkpoint instead. Nil when `n` is past the log's size.
    public func checkpoint(atLeast n: UInt64) throws(LedgerError) -> SignedCheckpoint? {
        guard n <= size, let latest else { return nil }
        if n == size || n == 0 { return latest }
        let seq = n - 1
        guard let si = segmentIndex(for: seq) else { return latest }
        // The records after that entry, walked by their headers up to the first checkpoint record, whose checksum
        // is checked.
        let offset = Int(try indexRecord(seq).1)
        let walk = try SegmentWalk(
            try reader(si), segment: segments[si].name, from: offset, to: offset + (64 << 20), window: 1 << 20,
            checksums: .none)
        while let window = try walk.next() {
            guard let r = window.records.first(where: { $0.type == .checkpoint }) else { continue }
            guard SegmentFormat.checksumMatches(window.payload(r)) else {
                throw LedgerError(
                    .invalidEntry, "log \(org): damaged checkpoint record at byte \(r.offset) of \(segments[si].path)")
            }
            let cp = try SignedCheckpoint(parsing: String(decoding: window.payload(r), as: UTF8.self))
            // The group's checkpoint ends past the entry it was looked up for; one that does not is an index offset
            // gone wrong (pointing at an earlier record), said as damage rather than served as an answer.
            guard cp.checkpoint.size >= n else {
                throw LedgerError(
                    .invalidEntry,
                    "log \(org): the checkpoint found after entry \(seq) is for size \(cp.checkpoint.size) in "
                        + "\(segments[si].path): the index is damaged; run prov verify")
            }
            return cp
        }
        return latest
    }
}
