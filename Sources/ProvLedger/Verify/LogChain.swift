import ProvCrypto

/// The in-order part of a log's audit (Specs/format.md §12.1 steps 3.3.3–3.3.5): each decoded entry continues the
/// chain (seq, `prev`, clock, citations, references into the log), each state record describes the entries before
/// it, and each checkpoint record signs their root and closes the group.
struct LogChain {
    let member: Consortium.Member
    let consortium: Consortium
    /// Entries followed so far (the next entry's seq), and the leaf hash, clock and citations they leave.
    private(set) var seq: UInt64
    private var prev: SHA256Digest
    private var hlc: HLC?
    private var frontier: MerkleFrontier
    private var cited: [String: UInt64]
    /// The state record of the group being closed, between it and its checkpoint.
    private var pendingState: WriterState?
    /// Entries covered by the last checkpoint.
    private(set) var committed: UInt64
    /// The seq of `audit.leaves[0]`.
    private let base: UInt64

    /// From the start of the log, or from `start`: a range continues from the clock and citations the entries
    /// before it left.
    init(member: Consortium.Member, consortium: Consortium, start: WriterState?) {
        self.member = member
        self.consortium = consortium
        seq = start?.frontier.size ?? 0
        prev = start?.lastLeaf ?? SHA256Digest.zero
        hlc = seq > 0 ? start?.hlc : nil
        frontier = start?.frontier ?? MerkleFrontier()
        cited = start?.cited ?? [:]
        committed = seq
        base = seq
    }

    func fail(_ seq: UInt64?, _ what: String) -> LedgerError { Self.failure(member.org, seq, what) }

    /// A failure of the audit of `org`'s log, at the entry `seq` when the check concerns one (§12.2).
    static func failure(_ org: String, _ seq: UInt64?, _ what: String) -> LedgerError {
        LedgerError(.verificationFailed, "\(org)" + (seq.map { " seq \($0)" } ?? "") + ": " + what)
    }

    /// The in-order checks of one decoded entry (§12.1 step 3.3.3): seq, chain, clock, citations, references into
    /// this log, the index record, the Merkle frontier. Fields are read in place: the slot's arrays are neither
    /// copied nor retained.
    mutating func follow(
        _ d: UnsafePointer<LogScan.Decoded>, recordOffset: Int, _ index: inout IndexCheck, _ audit: inout LogAudit
    ) throws {
        // A group is its entries, then one state record, then its checkpoint: nothing in between.
        if pendingState != nil {
            throw fail(seq, "entry between a group's state record and its checkpoint: the segment was modified")
        }
        let entrySeq = d.pointee.entry.seq
        if entrySeq != seq {
            throw fail(
                seq,
                entrySeq > seq
                    ? "found seq \(entrySeq) where seq \(seq) belongs: "
                        + Phrase.entries(seq, through: entrySeq - 1, are: "missing or out of order")
                    : "found seq \(entrySeq) again where seq \(seq) belongs: entries reordered or duplicated"
            )
        }
        if d.pointee.entry.prev != prev {
            throw fail(
                seq,
                "prev is not the leaf hash of seq \(seq - 1): the chain is broken (an entry before it was changed, removed or reordered)"
            )
        }
        let entryHLC = d.pointee.entry.hlc
        if let h = hlc, entryHLC <= h { throw fail(seq, "hlc \(entryHLC) does not advance past \(h)") }
        if !d.pointee.entry.deps.isEmpty {
            for dep in d.pointee.entry.deps {
                guard consortium.member(dep.org) != nil else {
                    throw fail(seq, "deps cites unknown org '\(dep.org)'")
                }
                if let c = cited[dep.org], dep.seq <= c {
                    throw fail(seq, "deps cites \(dep.org)/\(dep.seq), not past \(dep.org)/\(c) cited before")
                }
                cited[dep.org] = dep.seq
                audit.foreignRefs.append((seq, entryHLC, "deps", dep))
            }
        }
        // References into this log name earlier entries by their leaf hash; others are checked at the end.
        if !d.pointee.entry.refs.isEmpty {
            for (field, ref) in d.pointee.entry.refs {
                guard ref.org == member.org else {
                    audit.foreignRefs.append((seq, entryHLC, field, ref))
                    continue
                }
                guard ref.seq < seq else {
                    throw fail(seq, "\(field) cites \(ref.org)/\(ref.seq), which is not an earlier entry of this log")
                }
                guard ref.seq >= base else { continue }
                let k = Int(ref.seq - base)
                if let why = Verifier.referenceFailure(
                    field, ref, citingHLC: entryHLC, leaf: audit.leaves[k], kind: audit.kinds[k], hlc: audit.hlcs[k],
                    sameLog: true)
                {
                    throw fail(seq, why)
                }
                audit.referencesChecked += 1
            }
        }
        let leaf = d.pointee.leaf
        audit.leaves.append(leaf)
        audit.hlcs.append(entryHLC)
        audit.kinds.append(d.pointee.entry.kind)
        if let why = index.check(seq, leaf, offset: recordOffset) { audit.warnings.append(why) }
        frontier.append(leaf)
        prev = leaf
        hlc = entryHLC
        seq += 1
    }

    /// A state record (§12.1 step 3.3.4) must describe the entries before it, byte for byte as the writer makes it.
    mutating func state(_ payload: [UInt8], at recordOffset: Int, of name: String) throws {
        guard pendingState == nil else {
            throw fail(nil, "two state records at byte \(recordOffset) of \(name): the segment was modified")
        }
        guard seq > committed else {
            throw fail(nil, "state record at byte \(recordOffset) of \(name) closes a group without entries")
        }
        // Decoding includes canonical form: the one byte string the writer makes for these values (so `cited`
        // sorted by org, each once), as for entries.
        let st: WriterState
        do { st = try payload.withUnsafeBytes { try WriterState(decoding: $0) } } catch {
            throw fail(nil, "state record at byte \(recordOffset) of \(name) is malformed")
        }
        guard st.encoded == payload else {
            throw fail(nil, "state record at byte \(recordOffset) of \(name) is malformed (not in canonical form)")
        }
        // Every value is what the entries give, `hlc` and `cited` too: recovery restores them from here.
        guard st.frontier.size == seq, st.frontier.root == frontier.root, st.lastLeaf == prev, st.hlc == hlc,
            st.cited == cited
        else {
            throw fail(
                seq == 0 ? nil : seq - 1,
                "state record after it disagrees with the entries (size \(st.frontier.size)): the segment was modified"
            )
        }
        pendingState = st
    }

    /// A checkpoint record (§12.1 step 3.3.5) must be signed by the member, cover the entries before it and sign
    /// their root, after a state record; it closes the group.
    mutating func checkpoint(_ payload: [UInt8], at recordOffset: Int, of name: String, _ audit: inout LogAudit) throws
    {
        let cp: SignedCheckpoint
        do { cp = try SignedCheckpoint(parsing: String(decoding: payload, as: UTF8.self)) } catch {
            throw fail(nil, "checkpoint record at byte \(recordOffset) of \(name): \(error.message)")
        }
        if let why = member.signatureFailure(cp) {
            throw fail(nil, "checkpoint at size \(cp.checkpoint.size): \(why)")
        }
        guard cp.checkpoint.size == seq else {
            throw fail(
                nil,
                "checkpoint covers \(Phrase.count(cp.checkpoint.size, "entry", "entries")) but "
                    + "\(Phrase.count(seq, "entry", "entries")) precede it")
        }
        let root = frontier.root
        guard cp.checkpoint.root == root else {
            throw fail(
                nil,
                "checkpoint at size \(seq) has root \(cp.checkpoint.root.base64) but the entries give \(root.base64)")
        }
        guard pendingState != nil else { throw fail(nil, "checkpoint at size \(seq) has no state record before it") }
        pendingState = nil
        audit.checkpoints += 1
        audit.roots[seq] = root
        audit.latest = cp.checkpoint
        committed = seq
    }
}
