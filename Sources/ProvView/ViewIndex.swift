import Foundation
import ProvCrypto
import ProvLedger
import Synchronization

/// Where the view reads entry bytes on demand (for reports and `GET /v1/entries`): the index keeps compact facts
/// and leaf hashes, not the entries. Implementations must be safe to call from any thread.
public protocol EntrySource: Sendable {
    /// The canonical bytes of entry `seq` of `org`'s log.
    func entryBytes(org: String, seq: UInt64) throws -> [UInt8]
}

/// The shared customer view over the logs of a consortium (Specs/view.md), built incrementally.
///
/// Feed it every verified entry of every log with `ingest`, each log in seq order (logs may interleave in any
/// order), and call `commit` when a log's verified prefix moves to a signed checkpoint. Queries see the committed
/// entries only, so every answer belongs to one frontier (size and root of every log). Queries and ingestion may
/// run on any threads: each takes the index's lock for the few microseconds it needs (a view of a typical person
/// well under a millisecond); a compliance query over a large range lets ingestion in between every 64
/// interactions. The same entries give the same view in whatever order the logs were fed.
public final class ViewIndex: Sendable {
    public let consortium: Consortium
    let resolver: SubjectResolver
    let state: Mutex<IndexState>

    /// `linkKey` lets queries take raw identifiers (pseudonymised at once, never kept); without it only `ref:`
    /// subjects are accepted.
    public init(consortium: Consortium, linkKey: LinkKey?) {
        self.consortium = consortium
        resolver = SubjectResolver(consortium: consortium, linkKey: linkKey)
        state = Mutex(IndexState(consortium: consortium))
    }

    // MARK: Feeding

    func orgIndex(_ org: String, parameter: String = "org") throws(ViewError) -> Int {
        guard let o = consortium.members.firstIndex(where: { $0.org == org }) else {
            throw ViewError.parameter(parameter, "\(LedgerError.shown(org)) is not a consortium member")
        }
        return o
    }

    /// Adds entry `seq` of `org`'s log, whose leaf hash the caller has verified. Entries of one log must come in
    /// seq order; an entry given again with the same leaf hash is ignored. Invisible to queries until committed.
    public func ingest(org: String, seq: UInt64, leaf: SHA256Digest, entryBytes: UnsafeRawBufferPointer)
        throws(ViewError)
    {
        let o = try orgIndex(org)
        guard let base = entryBytes.baseAddress else {
            throw ViewError(.invalidEntry, "\(org) seq \(seq): entry is empty")
        }
        // Decoded outside the lock: only inserting takes it.
        let e: DecodedEntry
        do throws(ViewError) { e = try DecodedEntry(reading: entryBytes, base: base) } catch {
            throw ViewError(.invalidEntry, "\(org) seq \(seq): \(error.message)")
        }
        try state.withLock { s throws(ViewError) in try s.insert(org: o, seq: seq, leaf: leaf, e, base: base) }
    }

    public func ingest(org: String, seq: UInt64, leaf: SHA256Digest, entryBytes: [UInt8]) throws(ViewError) {
        try withRawBytes(entryBytes) { raw throws(ViewError) in
            try ingest(org: org, seq: seq, leaf: leaf, entryBytes: raw)
        }
    }

    /// A batch decoded elsewhere (the offline builder's workers), inserted under one lock. Its Merkle subtree, if
    /// it has one, is kept for the commit.
    func insert(org o: Int, batch: DecodedBatch) throws(ViewError) {
        try state.withLock { s throws(ViewError) in
            for i in batch.entries.indices {
                try s.insert(
                    org: o, seq: batch.firstSeq + UInt64(i), leaf: batch.leaves[i], batch.entries[i], base: batch.base)
            }
            if let t = batch.subtree { s.logs[o].subtrees[batch.firstSeq] = t }
        }
    }

    /// Moves `org`'s committed prefix to `size`, the size of `checkpoint`: the checkpoint must be signed by the
    /// org's key in the descriptor, and the leaf hashes ingested for entries 0..<size must give its root. Then
    /// queries see those entries, and receipts prove them against this checkpoint.
    public func commit(org: String, size: UInt64, checkpoint: SignedCheckpoint) throws(ViewError) {
        let o = try orgIndex(org)
        let member = consortium.members[o]
        let cp = checkpoint.checkpoint
        guard cp.origin == member.origin, cp.size == size else {
            throw ViewError(.feed, "\(org): checkpoint of \(cp.origin) at size \(cp.size) given for size \(size)")
        }
        if let why = member.signatureFailure(checkpoint) { throw ViewError(.feed, "\(org): \(why)") }
        // The leaves are hashed outside the lock; ingestion goes on meanwhile.
        let (staged, leaves, subtrees, from) = try state.withLock { s throws(ViewError) in
            let log = s.logs[o]
            guard size >= log.committed else {
                throw ViewError(.feed, "\(org): commit to size \(size) goes back from \(log.committed)")
            }
            guard size <= log.ingested else {
                throw ViewError(.feed, "\(org): commit to size \(size), but only \(log.ingested) entries were ingested")
            }
            let leaves = (log.committed..<size).map { s.facts[Int(log.facts[Int($0)])].leaf }
            return (log.merkle.stage(), leaves, log.subtrees, log.committed)
        }
        var st = staged
        var i = 0
        while i < leaves.count {
            // A block hashed by the offline builder's workers is appended whole.
            if let t = subtrees[from + UInt64(i)], i + (1 << t.height) <= leaves.count {
                st.append(t)
                i += 1 << t.height
            } else {
                st.append(leaves[i])
                i += 1
            }
        }
        guard st.root == cp.root else {
            throw ViewError(
                .feed,
                "\(org): the \(size) leaf hashes ingested give root \(st.root.base64), the checkpoint says \(cp.root.base64)"
            )
        }
        try state.withLock { s throws(ViewError) in
            guard s.logs[o].committed == from else {
                throw ViewError(.feed, "\(org): another commit moved the log meanwhile")
            }
            s.logs[o].merkle.apply(st)
            s.logs[o].committed = size
            s.logs[o].subtrees = s.logs[o].subtrees.filter { $0.key >= size }
            s.logs[o].checkpoint = checkpoint
        }
    }

    /// Size and root of every log with a committed checkpoint.
    public var frontier: Frontier { state.withLock { $0.frontier } }

    public var statistics: IndexStatistics {
        state.withLock { s in
            IndexStatistics(
                entries: s.facts.count, committedEntries: s.logs.reduce(0) { $0 + $1.committed },
                subjects: s.subjects.count, reservedBytes: s.reservedBytes)
        }
    }

    // MARK: Queries

    /// Wall-clock milliseconds since the epoch.
    public static func now() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    /// `permit(subject, org, purpose, channel, at)` (Specs/view.md §5). `subject` is a `ref:` or a raw identifier;
    /// `at` defaults to now.
    public func permit(subject: String, org: String, purpose: String, channel: String? = nil, at: UInt64? = nil)
        throws(ViewError) -> PermitAnswer
    {
        let ref = try resolver.ref(subject)
        let o = try orgIndex(org)
        guard Vocabulary.purposes.contains(purpose) else {
            throw ViewError.parameter("purpose", "\(LedgerError.shown(purpose)) is not a known DPV purpose")
        }
        if let channel, !Vocabulary.channels.contains(channel) {
            throw ViewError.parameter("channel", "\(LedgerError.shown(channel)) is not a known channel")
        }
        let t = at ?? Self.now()
        return state.withLock { s in
            s.permit(subject: ref, org: org, orgIndex: o, purpose: purpose, channel: channel, at: t)
        }
    }

    /// The person's whole view (Specs/view.md §6). With `at` the consent states are evaluated at that time and
    /// `at` is part of the digest; without it they are shown at `now` but the digest holds the recorded states.
    public func view(subject: String, at: UInt64? = nil) throws(ViewError) -> SubjectView {
        let ref = try resolver.ref(subject)
        let t = at ?? Self.now()
        return state.withLock { $0.view(subject: ref, at: t, atGiven: at != nil) }
    }

    /// The person's timeline, newest first, `limit` items (1–1,000) older than `before`.
    public func timeline(subject: String, limit: Int = 100, before: String? = nil) throws(ViewError) -> TimelinePage {
        let ref = try resolver.ref(subject)
        guard (1...1000).contains(limit) else { throw ViewError.parameter("limit", "must be 1-1000") }
        var cursor: TimelineCursor?
        if let before {
            guard let c = TimelineCursor(before) else {
                throw ViewError.parameter(
                    "before", "must be a cursor <wall>.<counter>.<org>.<seq> or an RFC 3339 time")
            }
            cursor = c
        }
        return state.withLock { $0.timeline(subject: ref, limit: limit, before: cursor) }
    }

    /// Specs/view.md §7.4: the interactions `org` recorded in [from, to) (ms, by `hlc`), across all subjects.
    public func compliance(org: String, from: UInt64? = nil, to: UInt64? = nil) throws(ViewError) -> ComplianceReport {
        let o = try orgIndex(org)
        if let from, let to, to < from { throw ViewError.parameter("to", "is before 'from'") }
        let (sizes, range, frontier) = state.withLock { s in
            (s.committedSizes, s.seqRange(o, from: from, to: to, size: s.logs[o].committed), s.frontier)
        }
        var report = ComplianceReport(
            org: org, from: from, to: to, interactions: 0, checked: 0, lawful: 0, violations: 0, propagationLags: 0,
            findings: [], frontier: frontier)
        var seq = range.lowerBound
        while seq < range.upperBound {
            let end = min(range.upperBound, seq + 64)
            state.withLock { s in
                for q in seq..<end {
                    let id = s.logs[o].facts[Int(q)]
                    guard s.facts[Int(id)].kind == .interaction else { continue }
                    report.interactions += 1
                    guard let f = s.classify(id, sizes: sizes, person: nil) else { continue }
                    report.checked += 1
                    switch f.classification {
                    case .lawful: report.lawful += 1
                    case .violation: report.violations += 1
                    case .propagationLag: report.propagationLags += 1
                    }
                    if f.classification != .lawful || !f.flags.isEmpty { report.findings.append(f) }
                }
            }
            seq = end
        }
        return report
    }

    // MARK: Entries and receipts

    /// Entry `seq` of `org` with its receipt against the committed checkpoint (`GET /v1/entries/{org}/{seq}`).
    public func entry(org: String, seq: UInt64, source: EntrySource) throws(ViewError) -> (
        facts: EntryFacts, entry: Entry, receipt: Receipt
    ) {
        let o = try orgIndex(org)
        let r = try receipts(org: o, seqs: [seq], source: source)
        guard let receipt = r.first else {
            throw ViewError.parameter("seq", "\(org) has no committed entry \(seq)")
        }
        let facts = try EntryFacts(decoding: receipt.entry, leaf: Merkle.leafHash(receipt.entry))
        do { return (facts, try Entry.decode(receipt.entry), receipt) } catch {
            throw ViewError(.source, "\(org) seq \(seq): \(error.message)")
        }
    }

    /// Receipts (C2SP tlog-proof@v1) for entries of log `o` against its committed checkpoint; seqs past it are
    /// left out. The entry bytes come from `source` and must hash to the leaves the index holds.
    func receipts(org o: Int, seqs: [UInt64], source: EntrySource) throws(ViewError) -> [Receipt] {
        let org = consortium.members[o].org
        let proofs: [(UInt64, SHA256Digest, [SHA256Digest])]
        let checkpoint: SignedCheckpoint?
        (proofs, checkpoint) = state.withLock { s in
            (
                seqs.filter { $0 < s.logs[o].committed }.map { q in (q, s.leaf(o, q), s.inclusionProof(o, q)) },
                s.logs[o].checkpoint
            )
        }
        guard let checkpoint else { return [] }
        var out: [Receipt] = []
        for (q, leaf, proof) in proofs {
            let bytes: [UInt8]
            do { bytes = try source.entryBytes(org: org, seq: q) } catch {
                throw ViewError(.source, "\(org) seq \(q): cannot read the entry: \(error)")
            }
            guard Merkle.leafHash(bytes) == leaf else {
                throw ViewError(
                    .source, "\(org) seq \(q): the store's entry does not have the leaf hash the index holds")
            }
            out.append(Receipt(entry: bytes, index: q, proof: proof, checkpoint: checkpoint))
        }
        return out
    }
}

/// Raw identifiers to refs, as `prov append` makes them (Specs/events.md §4).
struct SubjectResolver: Sendable {
    let consortium: Consortium
    let linkKey: LinkKey?

    func ref(_ input: String, parameter: String = "subject") throws(ViewError) -> SHA256Digest {
        if input.hasPrefix("ref:") {
            guard let r = SubjectRef.parse(input) else {
                throw ViewError.parameter(parameter, "'ref:' must be followed by 43 base64url characters")
            }
            return r
        }
        guard let key = linkKey else {
            throw ViewError.parameter(parameter, "a raw identifier needs the consortium's linking key; give a ref:")
        }
        switch SubjectRef.normalise(input, consortium: consortium) {
        case .success(let n): return key.ref(for: n)
        // The message never repeats the identifier.
        case .failure(let e): throw ViewError.parameter(parameter, e.message)
        }
    }
}
