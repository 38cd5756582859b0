import Foundation
import ProvCrypto
import ProvLedger

/// One log this node holds: its own company's (written from the API) or a copy of another member's (written by
/// replication). Every node reads and serves both kinds the same way.
///
/// `@unchecked Sendable`: the store and every mutable field are touched only while `lock` is held; a catch-up
/// additionally holds `syncLock`, so at most one pull extends a copy at a time.
final class HeldLog: @unchecked Sendable {
    /// The member as the newest version of the descriptor has it (its keys above all).
    var member: Consortium.Member {
        lock.lock()
        defer { lock.unlock() }
        return currentMember
    }
    private var currentMember: Consortium.Member
    let isOwn: Bool
    private let lock = NSLock()
    private let store: LogStore
    /// Extends the copy (nil for the node's own log); used only while `syncLock` is held.
    private(set) var replica: ReplicaWriter?
    let syncLock = NSLock()
    /// Set when two validly signed checkpoints of this log disagree: the copy then takes nothing more.
    private var frozenReason: String?
    /// The newest own checkpoint with the cosignatures collected for it.
    private var cosigned: SignedCheckpoint?
    /// Waiters for the log to reach a size (a deferred add-checkpoint answer).
    private var waiters: [(size: UInt64, call: @Sendable (Bool) -> Void)] = []
    /// Why the log could not be written, since when (Unix ms): set by the first failed write or fsync, cleared
    /// when a group is acknowledged again.
    private var writeFailure: (message: String, since: UInt64)?
    /// Where a failure and the recovery from it are said (once each).
    let log: NodeLog

    /// The org whose log this is (fixed: only the member's keys and addresses change with a new version).
    let org: String

    init(
        member: Consortium.Member, store: LogStore, consortium: Consortium, isOwn: Bool, log: NodeLog = .silent
    ) throws(LedgerError) {
        self.log = log
        self.currentMember = member
        self.org = member.org
        self.store = store
        self.isOwn = isOwn
        replica = isOwn ? nil : try ReplicaWriter(store: store, consortium: consortium)
        // Read as every file of a data directory is (no link, no FIFO, a regular file of at most a note's size).
        cosigned =
            (try? FileHandleFD.readIfPresent(store.directory + "/cosigned", maxSize: SignedNote.maxSize))
            .flatMap { $0 }.flatMap { try? SignedCheckpoint(parsing: String(decoding: $0, as: UTF8.self)) }
        if let c = cosigned, c.checkpoint.origin != member.origin || c.checkpoint.size > store.size {
            cosigned = nil
        }
    }

    var cosignedPath: String { store.directory + "/cosigned" }

    /// A new version of the descriptor (Specs/protocol.md §8.3): the member as it says, and for a copy a replica writer
    /// that checks entries against it (its members, keys and vocabulary). Waits for a catch-up in progress.
    func adopt(_ member: Consortium.Member, consortium: Consortium) throws(LedgerError) {
        syncLock.lock()
        defer { syncLock.unlock() }
        lock.lock()
        defer { lock.unlock() }
        currentMember = member
        if !isOwn { replica = try ReplicaWriter(store: store, consortium: consortium) }
    }

    /// Runs `body` with the store while holding the lock.
    func read<T>(_ body: (LogStore) throws(LedgerError) -> T) throws(LedgerError) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(store)
    }

    /// The log's head: size, latest checkpoint, last leaf and clock, all of what is acknowledged (a group written
    /// and still in its fsync is not part of it).
    var head: Head {
        lock.lock()
        defer { lock.unlock() }
        let st = store.committedState
        return Head(size: store.size, checkpoint: store.latest, lastLeaf: st.lastLeaf, hlc: st.hlc)
    }

    struct Head: Sendable {
        var size: UInt64
        var checkpoint: SignedCheckpoint?
        var lastLeaf: SHA256Digest
        var hlc: HLC
    }

    var frozen: String? {
        lock.lock()
        defer { lock.unlock() }
        return frozenReason
    }

    func freeze(_ reason: String) {
        lock.lock()
        if frozenReason == nil { frozenReason = reason }
        lock.unlock()
    }

    /// A group of the own log: signed and placed under the lock; its bytes are written and synced without it
    /// (`LogStore.sync`, on the writer's fsync queue); acknowledged under the lock again.
    func write(_ group: PendingGroup, signer: NoteSigner) throws(LedgerError) -> LogStore.WrittenGroup {
        lock.lock()
        defer { lock.unlock() }
        return try store.write(group, signer: signer, deferringData: true)
    }

    func acknowledge(_ w: LogStore.WrittenGroup) throws(LedgerError) -> [(seq: UInt64, leaf: SHA256Digest)] {
        lock.lock()
        let r: [(seq: UInt64, leaf: SHA256Digest)]
        do throws(LedgerError) { r = try store.acknowledge(w) } catch {
            lock.unlock()
            throw error
        }
        let size = store.size
        let ready = waiters.filter { $0.size <= size }
        waiters.removeAll { $0.size <= size }
        let resumed = takeFailure()
        lock.unlock()
        if let resumed { sayResumed(resumed, size: size) }
        for w in ready { w.call(true) }
        return r
    }

    /// Marks the store failed after a write or fsync failed: it takes no group until `reopen`. The first
    /// failure after a healthy stretch is logged (with what failed); later ones are not, until it recovers.
    func fail(_ e: LedgerError) {
        lock.lock()
        store.fail(e)
        let first = writeFailure == nil
        if first { writeFailure = (e.message, UInt64(Date().timeIntervalSince1970 * 1000)) }
        lock.unlock()
        if first {
            log.error(
                isOwn
                    ? "writing the own log failed: appends are answered 503 until a write succeeds again"
                    : "writing a copy failed: it is pulled again once a write succeeds",
                ["log": org, "error": e.message], kind: "write-failed-\(org)")
        }
    }

    /// Why the log cannot be written and since when (Unix ms), until a group is acknowledged again.
    var failure: (message: String, since: UInt64)? {
        lock.lock()
        defer { lock.unlock() }
        return writeFailure
    }

    /// Whether the store refuses groups until reopened.
    var needsReopen: Bool {
        lock.lock()
        defer { lock.unlock() }
        return store.failure != nil
    }

    /// Reopens the store after a failure (`LogStore.reopen`: cut to what was acknowledged, read and checked again),
    /// and drops the copy's pending entries. The caller has nothing in flight on the store.
    func reopen() throws(LedgerError) {
        lock.lock()
        defer { lock.unlock() }
        try store.reopen()
        replica?.reopened()
    }

    /// Clears the failure (a group was acknowledged); returns it when there was one. Called with `lock` held.
    private func takeFailure() -> (message: String, since: UInt64)? {
        defer { writeFailure = nil }
        return writeFailure
    }

    private func sayResumed(_ failure: (message: String, since: UInt64), size: UInt64) {
        let seconds = (UInt64(Date().timeIntervalSince1970 * 1000) &- failure.since) / 1000
        log.info(
            isOwn ? "the own log is written again" : "a copy is written again",
            ["log": org, "size": "\(size)", "failed for": "\(seconds) s", "error was": failure.message])
    }

    func beginGroup(now: UInt64) -> PendingGroup {
        lock.lock()
        defer { lock.unlock() }
        return store.beginGroup(now: now)
    }

    /// Prepares the write of the replica's pending entries under `checkpoint` (the caller holds `syncLock`):
    /// `ReplicaCommitter` writes and syncs the bytes off the lock and then calls `acknowledgeReplica`. Returns the written group
    /// and its entries.
    func writeReplica(_ checkpoint: SignedCheckpoint) throws(LedgerError) -> (LogStore.WrittenGroup, GroupEntries) {
        guard let replica else { throw LedgerError(.config, "log \(org) is this node's own log") }
        let entries = replica.pendingGroup.entries
        lock.lock()
        defer { lock.unlock() }
        return (try replica.write(checkpoint, deferringData: true), entries)
    }

    /// After its fsync, the written group counts: the size moves, `committed` gets the group before anyone
    /// waiting for the size hears of it. Returns the new size.
    func acknowledgeReplica(_ w: LogStore.WrittenGroup, committed: () -> Void) throws(LedgerError) -> UInt64 {
        guard let replica else { throw LedgerError(.config, "log \(org) is this node's own log") }
        lock.lock()
        let size: UInt64
        do throws(LedgerError) { size = try replica.acknowledge(w) } catch {
            lock.unlock()
            throw error
        }
        committed()
        let ready = waiters.filter { $0.size <= size }
        waiters.removeAll { $0.size <= size }
        let resumed = takeFailure()
        lock.unlock()
        if let resumed { sayResumed(resumed, size: size) }
        for w in ready { w.call(true) }
        return size
    }

    /// Restores the own log up to `goal` (signed with this node's key, larger than the log) from a peer, verified as a
    /// copy is: chunk by chunk under the checkpoints the peer stores, each written, synced and acknowledged, and fed to
    /// the view. Runs on the writer's thread with no group in flight. Returns the size reached.
    func restore(to goal: SignedCheckpoint, over link: PeerLink, node: Node) throws -> UInt64 {
        precondition(isOwn, "only the own log is restored this way")
        let replica = try read { store throws(LedgerError) in
            try ReplicaWriter(store: store, consortium: node.consortium)
        }
        let catchUp = CatchUp(
            log: org, member: member, replica: replica, link: link, known: { o, s in node.known(o, s) },
            stopping: { node.stopping.load(ordering: .relaxed) })
        try catchUp.run(to: goal) { cp throws(LedgerError) in
            let entries = replica.pendingGroup.entries
            let w = try read { _ throws(LedgerError) in try replica.write(cp) }
            try LogStore.sync(w)
            _ = try read { _ throws(LedgerError) in try replica.acknowledge(w) }
            node.feedView(org, entries, cp)
        }
        node.logMoved(org)
        return head.size
    }

    /// Calls `call(true)` once the log holds `size` entries (at once if it does), or `call(false)` on `cancel`.
    func whenSize(_ size: UInt64, _ call: @escaping @Sendable (Bool) -> Void) {
        lock.lock()
        if store.size >= size {
            lock.unlock()
            call(true)
            return
        }
        waiters.append((size, call))
        lock.unlock()
    }

    /// Ends every waiter for a size above what the log holds (a pull failed, or the node stops).
    func cancelWaiters(above size: UInt64? = nil) {
        lock.lock()
        let gone = waiters.filter { size == nil || $0.size > size! }
        waiters.removeAll { size == nil || $0.size > size! }
        lock.unlock()
        for w in gone { w.call(false) }
    }

    /// Cosignatures collected for the newest own checkpoints, by size: peers answer pushes at different moments,
    /// so the cosignatures of one checkpoint arrive one by one.
    private var recentCosigned: [UInt64: SignedCheckpoint] = [:]

    /// Keeps `signatures` (verified cosignatures of peers) for own checkpoint `cp`. The `cosigned` file holds the
    /// checkpoint with the most cosigners (the newer on a tie), replaced atomically when that changes.
    /// The file is written outside `lock` (two fsyncs and a rename must not hold up commits and reads), one
    /// writer at a time, and only while what it writes is still the best.
    func addCosignatures(_ signatures: [NoteSignature], for cp: SignedCheckpoint) {
        lock.lock()
        var note = recentCosigned[cp.checkpoint.size] ?? cp
        guard note.checkpoint == cp.checkpoint else {
            lock.unlock()
            return
        }
        for sig in signatures where !note.note.signatures.contains(sig) { note.note.signatures.append(sig) }
        recentCosigned[cp.checkpoint.size] = note
        if recentCosigned.count > 32, let oldest = recentCosigned.keys.min() { recentCosigned[oldest] = nil }
        let best = recentCosigned.values.max(by: { Self.rank($0) < Self.rank($1) })
        guard let best, cosigned.map({ Self.rank($0) < Self.rank(best) }) ?? true else {
            lock.unlock()
            return
        }
        cosigned = best
        lock.unlock()
        cosignedFileLock.lock()
        defer { cosignedFileLock.unlock() }
        guard latestCosigned == best else { return }  // a newer best was decided meanwhile: its writer writes it
        try? FileHandleFD.replaceAtomically(cosignedPath, Array(best.serialized.utf8))
    }

    private let cosignedFileLock = NSLock()

    private static func rank(_ c: SignedCheckpoint) -> (Int, UInt64) { (c.note.signatures.count, c.checkpoint.size) }

    var latestCosigned: SignedCheckpoint? {
        lock.lock()
        defer { lock.unlock() }
        return cosigned
    }
}
