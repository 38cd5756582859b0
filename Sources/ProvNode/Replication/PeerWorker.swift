import Dispatch
import Foundation
import ProvCrypto
import ProvLedger

/// Replication with one peer (Specs/protocol.md §5). Two threads, each with its own connection:
///
/// - the **pusher** sends `add-checkpoint` for every log that moved here (own commits, and copies that moved:
///   relay), and keeps the cosignatures of the own log;
/// - the **puller** catches copies up from the peer (asked by an `add-checkpoint`, or when the periodic sync
///   finds the peer ahead), verifying every entry and committing only under the owner's signed checkpoints.
///
/// The two never wait for each other, so two nodes pushing to each other at once cannot deadlock: a push waits
/// for the other node's puller, which only reads.
///
/// `@unchecked Sendable`: every mutable field is guarded by `cond`; each link is used by its own thread only.
final class PeerWorker: @unchecked Sendable {
    unowned let node: Node
    let org: String
    private let cond = NSCondition()
    private var address: String
    private var pushWanted = Set<String>()
    /// Evidence (by name) to pass on to this peer.
    private var evidenceWanted = Set<String>()
    /// The descriptor chain is to be sent to this peer (Specs/protocol.md §8.2).
    private var consortiumWanted = false
    private var pullWanted: [String: SignedCheckpoint?] = [:]
    private var seen: [String: UInt64] = [:]
    private var knownSize: [String: UInt64] = [:]
    private var connected = false
    private var lastFailure: String?
    private var lastSeen: UInt64?
    private var stopping = false
    private var running = 0
    private var nextSync = DispatchTime.now()
    /// After a peer served something wrong, pulls from it wait until then.
    private var distrustUntil = DispatchTime(uptimeNanoseconds: 0)
    /// Logs the peer keeps frozen after equivocation: not pushed there again until its address changes.
    private var frozenThere = Set<String>()
    private var pushLink: PeerLink?
    private var pullLink: PeerLink?
    private var addressGeneration = 0

    init(node: Node, org: String, address: String) {
        self.node = node
        self.org = org
        self.address = address
    }

    struct Snapshot {
        var connected: Bool
        var lastSeen: UInt64?
        var address: String
    }

    var snapshot: Snapshot {
        cond.lock()
        defer { cond.unlock() }
        return Snapshot(connected: connected, lastSeen: lastSeen, address: address)
    }

    func seenSize(_ log: String) -> UInt64 {
        cond.lock()
        defer { cond.unlock() }
        return seen[log] ?? 0
    }

    func start() {
        for name in ["push", "pull"] {
            cond.lock()
            running += 1
            cond.unlock()
            let t = Thread { [self] in
                if name == "push" { pushLoop() } else { pullLoop() }
                cond.lock()
                running -= 1
                cond.broadcast()
                cond.unlock()
            }
            t.name = "provd-\(name)-\(org)"
            t.start()
        }
        wantSync()
    }

    /// Tells the threads to end and wakes one blocked in a call to the peer; `waitStopped` waits for them. A
    /// node tells every worker before waiting for any, so no worker waits out another's catch-up.
    func beginStop() {
        cond.lock()
        stopping = true
        let links = [pushLink, pullLink]
        cond.broadcast()
        cond.unlock()
        for l in links { l?.interrupt() }
    }

    func waitStopped() {
        cond.lock()
        while running > 0 { cond.wait() }
        cond.unlock()
    }

    func setAddress(_ a: String) {
        cond.lock()
        if a != address {
            address = a
            addressGeneration += 1
            frozenThere.removeAll()
            nextSync = .now()
            cond.broadcast()
        }
        cond.unlock()
    }

    /// Pass evidence `name` on to this peer (Specs/protocol.md §4.4).
    func wantEvidence(_ name: String) {
        cond.lock()
        evidenceWanted.insert(name)
        cond.broadcast()
        cond.unlock()
    }

    /// Send the descriptor chain held here to this peer.
    func wantConsortium() {
        cond.lock()
        consortiumWanted = true
        cond.broadcast()
        cond.unlock()
    }

    func wantPush(_ log: String) {
        cond.lock()
        pushWanted.insert(log)
        cond.broadcast()
        cond.unlock()
    }

    /// Pull `log` from this peer up to `target` (nil: up to whatever checkpoint the peer serves).
    func wantPull(_ log: String, _ target: SignedCheckpoint?) {
        cond.lock()
        if let t = target, let existing = pullWanted[log] ?? nil, existing.checkpoint.size >= t.checkpoint.size {
        } else {
            pullWanted[log] = target
        }
        // A peer that served something wrong is not pulled from before its pause ends, even when it pushes again.
        cond.broadcast()
        cond.unlock()
    }

    func wantSync() {
        cond.lock()
        nextSync = .now()
        cond.broadcast()
        cond.unlock()
    }

    /// The link for one thread, made anew when the address changed.
    private func link(_ which: ReferenceWritableKeyPath<PeerWorker, PeerLink?>, generation: inout Int) -> PeerLink {
        cond.lock()
        defer { cond.unlock() }
        let a = address
        let g = addressGeneration
        if let l = self[keyPath: which], g == generation { return l }
        self[keyPath: which]?.close()
        let l = node.makeLink(org, a)
        self[keyPath: which] = l
        generation = g
        if stopping { l.interrupt() }
        return l
    }

    /// Records whether the last exchange worked; says so when that changes, and why it failed (refused, timed
    /// out, the peer's key not the one pinned, …) whenever the reason changes.
    private func mark(connected ok: Bool, failure: (any Error)? = nil) {
        cond.lock()
        if ok {
            if !connected { node.log.info("peer connected", ["peer": org, "address": address]) }
            lastSeen = UInt64(Date().timeIntervalSince1970 * 1000)
            lastFailure = nil
        } else {
            let why = failure.map { "\($0)" } ?? "unknown"
            if connected || why != lastFailure {
                node.log.warn("peer unreachable", ["peer": org, "address": address, "reason": why])
            }
            lastFailure = why
        }
        connected = ok
        cond.unlock()
    }

    // MARK: Push

    private func pushLoop() {
        var generation = -1
        while true {
            cond.lock()
            while pushWanted.isEmpty && evidenceWanted.isEmpty && !consortiumWanted && !stopping { cond.wait() }
            if stopping {
                cond.unlock()
                return
            }
            let logs = pushWanted
            pushWanted.removeAll()
            let evidence = evidenceWanted
            evidenceWanted.removeAll()
            let descriptor = consortiumWanted
            consortiumWanted = false
            cond.unlock()
            var unsent: [String] = []
            if descriptor {
                let l = link(\.pushLink, generation: &generation)
                do { try node.pushConsortium(to: org, over: l) } catch {
                    mark(connected: false, failure: error)
                    l.close()
                    cond.lock()
                    consortiumWanted = true
                    cond.unlock()
                }
            }
            for name in evidence.sorted() {
                guard let bytes = node.evidenceBytes(name) else { continue }
                let l = link(\.pushLink, generation: &generation)
                do {
                    let r = try l.request("POST", "/evidence", body: bytes, contentType: "application/json")
                    mark(connected: true)
                    if r.status != 200 {
                        node.log.warn(
                            "peer did not take evidence",
                            ["peer": org, "status": "\(r.status)", "reason": Self.reason(r.body)])
                    }
                } catch {
                    mark(connected: false, failure: error)
                    l.close()
                    unsent.append(name)
                }
            }
            var retry: [String] = []
            for log in logs.sorted() {
                let l = link(\.pushLink, generation: &generation)
                do {
                    if try !push(log, over: l) { retry.append(log) }
                    mark(connected: true)
                } catch {
                    mark(connected: false, failure: error)
                    l.close()
                    retry.append(log)
                }
            }
            if !retry.isEmpty || !unsent.isEmpty || (descriptor && isConsortiumWanted) {
                // Try those again later (the peer is down or busy): a pause, unless stopping.
                cond.lock()
                for log in retry { pushWanted.insert(log) }
                for name in unsent { evidenceWanted.insert(name) }
                _ = cond.wait(until: Date().addingTimeInterval(0.5))
                cond.unlock()
            }
        }
    }

    /// Sends the newest checkpoint of `log` held here. Returns false when it should be tried again later.
    private func push(_ log: String, over link: PeerLink) throws -> Bool {
        guard let held = node.logs[log], held.frozen == nil, let cp = held.head.checkpoint else { return true }
        cond.lock()
        var old = knownSize[log] ?? 0
        let frozen = frozenThere.contains(log)
        cond.unlock()
        if frozen { return true }
        for _ in 0..<3 {
            if old > cp.checkpoint.size { break }
            // A peer that holds a copy's checkpoint already needs no push; the own log is pushed all the same,
            // for the peer's cosignature.
            if !held.isOwn, old == cp.checkpoint.size, seenSize(log) == old, old > 0 { return true }
            let proof = try held.read { store throws(LedgerError) in
                try store.consistencyProof(old: old, new: cp.checkpoint.size)
            }
            let body = AddCheckpoint(old: old, proof: proof, checkpoint: cp).serialized
            node.metrics.pushes.add(1, ordering: .relaxed)
            let r = try link.request("POST", "/add-checkpoint", body: body, contentType: "text/plain; charset=utf-8")
            switch r.status {
            case 200:
                setKnown(log, cp.checkpoint.size)
                if held.isOwn, let member = node.consortium.member(org) {
                    let sigs = verifiedCosignatures(r.body, by: member, for: cp.checkpoint)
                    if sigs.isEmpty {
                        node.log.warn("peer answered add-checkpoint without a valid cosignature", ["peer": org])
                    } else {
                        held.addCosignatures(sigs, for: cp)
                    }
                }
                return true
            case 409:
                guard let text = String(validating: r.body, as: UTF8.self),
                    let size = TileAddress.decimal(text.trimmingCharacters(in: .newlines))
                else {
                    node.log.warn("peer answered 409 without its size", ["peer": org, "log": log])
                    return false
                }
                setKnown(log, size)
                if size > cp.checkpoint.size {
                    // The peer holds more than this node: fetch it from there.
                    wantPull(log, nil)
                    return true
                }
                old = size
            case 503:
                return false
            case 422 where (try? JSON.parse(r.body))?["frozen"] == .bool(true):
                cond.lock()
                frozenThere.insert(log)
                cond.unlock()
                node.log.warn(
                    "peer keeps its copy of this log frozen after equivocation: not pushing it there any more",
                    ["peer": org, "log": log, "reason": Self.reason(r.body)])
                return true
            default:
                node.log.warn(
                    "peer refused add-checkpoint",
                    ["peer": org, "log": log, "status": "\(r.status)", "reason": Self.reason(r.body)])
                return true
            }
        }
        return true
    }

    private func setKnown(_ log: String, _ size: UInt64) {
        cond.lock()
        knownSize[log] = size
        seen[log] = max(seen[log] ?? 0, size)
        cond.unlock()
    }

    static func reason(_ body: [UInt8]) -> String {
        let s = String(decoding: body.prefix(300), as: UTF8.self)
        if let v = try? JSON.parse(s), let e = v["error"]?.stringValue { return e }
        return s.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: Pull

    private func pullLoop() {
        var generation = -1
        while true {
            cond.lock()
            while !stopping && (pullWanted.isEmpty || DispatchTime.now() < distrustUntil)
                && DispatchTime.now() < nextSync
            {
                let wake = pullWanted.isEmpty ? nextSync : min(nextSync, distrustUntil)
                let seconds = Double(wake.uptimeNanoseconds &- DispatchTime.now().uptimeNanoseconds) / 1e9
                _ = cond.wait(until: Date().addingTimeInterval(max(0.001, min(seconds, 60))))
            }
            if stopping {
                cond.unlock()
                return
            }
            let syncing = DispatchTime.now() >= nextSync
            if syncing {
                nextSync = DispatchTime.now() + .milliseconds(node.config.syncIntervalMs)
            }
            let pulls = DispatchTime.now() >= distrustUntil ? pullWanted : [:]
            for k in pulls.keys { pullWanted.removeValue(forKey: k) }
            cond.unlock()

            let l = link(\.pullLink, generation: &generation)
            do {
                for (log, target) in pulls.sorted(by: { $0.key < $1.key }) { try catchUp(log, target, over: l) }
                if syncing {
                    // A removed member's copy stays where it is (Specs/protocol.md §8.3).
                    for m in node.consortium.currentMembers { try sync(m.org, over: l) }
                }
                mark(connected: true)
            } catch let e as CatchUp.SourceMisbehaved {
                node.metrics.reject("peer-bad-data")
                node.log.error(
                    "peer served data that does not verify; nothing of it was stored; disconnecting",
                    ["peer": org, "log": e.log, "reason": e.reason])
                l.close()
                cond.lock()
                distrustUntil = .now() + .seconds(2)
                cond.unlock()
                node.logs[e.log]?.cancelWaiters(above: node.logs[e.log]?.head.size)
            } catch {
                mark(connected: false, failure: error)
                l.close()
                for log in pulls.keys { node.logs[log]?.cancelWaiters(above: node.logs[log]?.head.size) }
                cond.lock()
                // Unreachable: try the sync again after a short pause rather than a whole interval.
                nextSync = min(nextSync, .now() + .milliseconds(min(500, node.config.syncIntervalMs)))
                cond.unlock()
            }
        }
    }

    /// Compares the peer's copy of `log` with this node's: fetch what it has more, push what it lacks, and keep
    /// evidence when the two disagree.
    private func sync(_ log: String, over link: PeerLink) throws {
        guard let held = node.logs[log] else { return }
        let mine = held.head
        guard let theirs = try fetchCheckpoint(log, "checkpoint", over: link) else {
            if mine.size > 0 && log != org { wantPush(log) }
            if held.isOwn { node.peerAnswered(org) }
            return
        }
        cond.lock()
        seen[log] = max(seen[log] ?? 0, theirs.checkpoint.size)
        knownSize[log] = theirs.checkpoint.size
        cond.unlock()
        if theirs.checkpoint.size <= mine.size {
            try checkAgainstOwnCopy(held, theirs)
            if theirs.checkpoint.size < mine.size && log != org { wantPush(log) }
            if held.isOwn { node.peerAnswered(org) }
            return
        }
        if held.isOwn {
            // A longer history of the own log, signed with its key: lost data, an old backup, a second process.
            // The node never signs a second history: it restores the missing entries first (Specs/protocol.md §5.6).
            try node.restoreOwnLog(to: theirs, over: link, from: org)
            node.peerAnswered(org)
            return
        }
        try catchUp(log, theirs, over: link)
    }

    /// The peer's checkpoint of `log` at `path`, checked against the owner's key; nil when it holds none.
    private func fetchCheckpoint(_ log: String, _ path: String, over link: PeerLink) throws -> SignedCheckpoint? {
        guard let member = node.consortium.member(log) else { return nil }
        return try CatchUp.fetchCheckpoint(path, of: member, over: link)
    }

    /// A signed checkpoint at or below the size held here must have the root of the tree held here at its size;
    /// otherwise this node holds the evidence itself.
    private func checkAgainstOwnCopy(_ held: HeldLog, _ theirs: SignedCheckpoint) throws {
        if let evidence = try node.conflict(held, theirs) { node.equivocation(held, evidence, source: org) }
    }

    /// Brings the copy of `log` up to `target` (or the peer's checkpoint) from this peer, chunk by chunk: each
    /// chunk ends at a checkpoint the peer stores, its entries come from entry bundles, and it is committed only
    /// when every entry verified and the root matches that checkpoint.
    private func catchUp(_ log: String, _ target: SignedCheckpoint?, over link: PeerLink) throws {
        guard let held = node.logs[log], !held.isOwn, held.frozen == nil else { return }
        var goal = target
        if goal == nil { goal = try fetchCheckpoint(log, "checkpoint", over: link) }
        guard let goal else { return }
        held.syncLock.lock()
        defer { held.syncLock.unlock() }
        if held.needsReopen {
            // A write of this copy failed earlier (a full disk): its files are read and checked again first.
            do throws(LedgerError) { try held.reopen() } catch {
                held.fail(error)
                copyNotStored(held)
                return
            }
        }
        // Read under the sync lock: a new version of the descriptor replaces it (HeldLog.adopt).
        guard let replica = held.replica else { return }
        replica.reset()
        if goal.checkpoint.size <= held.head.size {
            try checkAgainstOwnCopy(held, goal)
            return
        }
        // Each chunk's write and fsync run while the next chunk is fetched and checked.
        let committer = ReplicaCommitter(node: node, held: held)
        let node = self.node
        let catchUp = CatchUp(
            log: log, member: held.member, replica: replica, link: link, known: { o, s in node.known(o, s) },
            stopping: { [unowned self] in isStopping })
        do {
            try catchUp.run(to: goal) { cp throws(LedgerError) in try committer.submit(cp) }
            try committer.finish()
        } catch {
            replica.reset()
            try? committer.finish()  // a failed write or fsync is said by `HeldLog.fail`
            if held.needsReopen {
                // This node could not store the copy (a full disk): not the peer's doing, and not a reason to
                // disconnect from it. The chunks committed before the failure count.
                if let e = error as? LedgerError { held.fail(e) }
                if committer.stored > 0 { node.logMoved(log, except: org) }
                copyNotStored(held)
                return
            }
            throw error
        }
        if committer.stored > 0 {
            node.metrics.pulls.add(1, ordering: .relaxed)
            node.log.info(
                "copy verified and stored",
                ["log": log, "peer": org, "entries": "\(committer.stored)", "size": "\(held.head.size)"])
            node.logMoved(log, except: org)
        }
    }

    private var isConsortiumWanted: Bool {
        cond.lock()
        defer { cond.unlock() }
        return consortiumWanted
    }

    /// A copy could not be written here: whoever waits for it to grow hears no, and the sync comes round again
    /// within a second (reopening the copy first).
    private func copyNotStored(_ held: HeldLog) {
        held.cancelWaiters(above: held.head.size)
        cond.lock()
        nextSync = min(nextSync, .now() + .seconds(1))
        cond.unlock()
    }

    private var isStopping: Bool {
        cond.lock()
        defer { cond.unlock() }
        return stopping
    }
}

/// Commits the chunks of one catch-up of a copy (an `FsyncPipeline`): each chunk's bytes are written and fsynced
/// on a queue of their own while the next chunk is fetched and checked; a chunk counts (size, view, waiters,
/// metrics) only after its fsync, in order. Used by one thread.
final class ReplicaCommitter {
    let held: HeldLog
    private let pipeline: FsyncPipeline<GroupEntries>
    private let tally = Tally()
    /// Entries committed so far.
    var stored: UInt64 { tally.entries }

    final class Tally {
        var entries: UInt64 = 0
    }

    init(node: Node, held: HeldLog) {
        self.held = held
        let tally = self.tally
        pipeline = FsyncPipeline(
            acknowledge: { w, entries throws(LedgerError) in
                guard let cp = w.signedCheckpoint else { return }
                let size = try held.acknowledgeReplica(w) { node.feedViewLater(held.org, entries, cp) }
                tally.entries += size - w.start
                node.metrics.entriesReplicated.add(size - w.start, ordering: .relaxed)
            }, fail: { held.fail($0) })
    }

    /// Writes the pending chunk under `checkpoint` (checked first) and starts its fsync, once the chunk before
    /// it counts.
    func submit(_ checkpoint: SignedCheckpoint) throws(LedgerError) {
        try pipeline.submit { () throws(LedgerError) in try held.writeReplica(checkpoint) }
    }

    /// Waits for the last chunk's fsync and makes it count.
    func finish() throws(LedgerError) { try pipeline.flush() }
}
