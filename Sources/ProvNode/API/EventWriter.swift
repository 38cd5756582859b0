import Dispatch
import Foundation
import ProvCrypto
import ProvLedger

/// The own log's writer: requests from every API connection are queued, and whatever is waiting when the
/// writer is free becomes one group commit (one checkpoint, one fdatasync). A request is all or nothing: its
/// events are validated in order against the group being built, and a bad one drops the request's events from
/// the group (the others stay). The group's fsync overlaps building the next group; answers go out only after
/// the fsync, in order.
///
/// `@unchecked Sendable`: the queue and flags are guarded by `cond`; the group being built and `recent` belong to
/// the writer thread; the fsync queue touches only what each closure captured.
final class EventWriter: @unchecked Sendable {
    enum Outcome: Sendable {
        case appended([(seq: UInt64, leaf: SHA256Digest)])
        /// Item `index` of the request is bad: nothing of the request was appended.
        case rejected(index: Int, message: String)
        /// The log could not be written: nothing of the request is acknowledged.
        case failed(String)
    }

    /// A request's events: parsed already (on the API thread, against committed entries), or raw, to be parsed
    /// here against the group being built (when they refer to entries not yet committed).
    enum Events: Sendable {
        case parsed([EntryBody])
        case raw([JSONValue])

        var count: Int {
            switch self {
            case .parsed(let b): b.count
            case .raw(let r): r.count
            }
        }
    }

    struct Submission: Sendable {
        var items: Events
        var respond: @Sendable (Outcome) -> Void
        var queued: DispatchTime
    }

    weak var node: Node?
    private let cond = NSCondition()
    private var queue: [Submission] = []
    private var stopping = false
    private var finished = false
    /// Whether the writer thread was started (the thread itself is not kept: it holds this writer while it runs,
    /// and keeping it too would be a cycle that outlives the node).
    private var started = false
    private let fsync = DispatchQueue(label: "provd.own-log.fsync")
    /// Groups written but not yet acknowledged: references into them resolve from here.
    private let unacknowledged = UnacknowledgedEntries()
    /// When the own log last cited the other logs' heads (for heads-only entries).
    private var lastCited = DispatchTime.now()
    /// Groups written whose fsync has not finished (guarded by `cond`). The writer takes the next batch only when
    /// at most one is in flight: requests that arrive during a group's fsync then make the next group together
    /// (one fsync for all of them) instead of one small group each.
    private var inFlight = 0

    /// Most events taken into one group.
    static let maxGroup = 4096
    /// How long a request waits for the own log to open (its peers asked, Specs/protocol.md §5.6) before it is
    /// answered 503, in nanoseconds.
    static let gateWait: UInt64 = 10_000_000_000

    /// Wakes the writer (the own log opened for writes).
    func wake() {
        cond.lock()
        cond.broadcast()
        cond.unlock()
    }

    func start() {
        let t = Thread { [self] in run() }
        t.name = "provd-writer"
        cond.lock()
        started = true
        cond.unlock()
        t.start()
    }

    func submit(_ items: Events, respond: @escaping @Sendable (Outcome) -> Void) {
        cond.lock()
        if stopping {
            cond.unlock()
            respond(.failed("the node is stopping"))
            return
        }
        // Refused at once when appending stopped; held (below, in `run`) while the own log is not open yet.
        if let why = node?.writingStopped {
            cond.unlock()
            respond(.failed(why))
            return
        }
        queue.append(Submission(items: items, respond: respond, queued: .now()))
        cond.signal()
        cond.unlock()
    }

    /// Finishes what was queued (those groups are committed and answered), then returns.
    func stop() {
        cond.lock()
        stopping = true
        cond.broadcast()
        while !finished && started { cond.wait() }
        cond.unlock()
        fsync.sync {}
    }

    /// Work on the own log that must not run beside a group commit (restoring entries from a peer, reopening
    /// the store after a write failed), run on the writer's thread between groups.
    private var jobs: [@Sendable () -> Void] = []

    /// Runs `job` on the writer's thread once every group written before is synced and answered, and returns when
    /// it has run (at once when the writer has stopped).
    func perform(_ job: @escaping @Sendable () -> Void) {
        let done = DispatchSemaphore(value: 0)
        cond.lock()
        guard !finished, started else {
            cond.unlock()
            if !finished { job() }  // no writer thread (never started): nothing runs beside the job
            return
        }
        jobs.append {
            job()
            done.signal()
        }
        cond.signal()
        cond.unlock()
        done.wait()
    }

    private func run() {
        while true {
            cond.lock()
            if !jobs.isEmpty {
                let pending = jobs
                jobs.removeAll()
                cond.unlock()
                fsync.sync {}
                unacknowledged.begin(at: node?.own.head.size ?? 0, acknowledged: node?.own.head.size ?? 0)
                for j in pending { j() }
                continue
            }
            while queue.isEmpty && jobs.isEmpty && !stopping {
                // Nothing to write: a heads-only entry once the interval since the last citation has passed and
                // some other log moved (checked on waking; the wait is the interval).
                let interval = Double(node?.config.headsIntervalMs ?? 1000) / 1000
                let due = Double(lastCited.uptimeNanoseconds) / 1e9 + interval
                let now = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
                if now >= due {
                    cond.unlock()
                    writeHeads()
                    cond.lock()
                    if queue.isEmpty && !stopping {
                        _ = cond.wait(until: Date().addingTimeInterval(interval))
                    }
                    continue
                }
                _ = cond.wait(until: Date().addingTimeInterval(due - now))
            }
            if !jobs.isEmpty {
                cond.unlock()
                continue
            }
            if queue.isEmpty && stopping {
                finished = true
                let left = jobs
                jobs.removeAll()
                cond.broadcast()
                cond.unlock()
                for j in left { j() }
                return
            }
            // Until every peer has said whether it holds a longer history of the own log, requests wait (and are
            // answered 503 after `gateWait`): the node never builds on a log that may be behind what it signed.
            if let why = node?.writeHold, !stopping {
                let now = DispatchTime.now()
                let expired = queue.filter { now.uptimeNanoseconds - $0.queued.uptimeNanoseconds > Self.gateWait }
                queue.removeAll { now.uptimeNanoseconds - $0.queued.uptimeNanoseconds > Self.gateWait }
                cond.unlock()
                for s in expired { s.respond(.failed(why)) }
                cond.lock()
                if jobs.isEmpty && !stopping { _ = cond.wait(until: Date().addingTimeInterval(0.2)) }
                cond.unlock()
                continue
            }
            // One group syncing and the next one written: wait for the first, and let requests gather meanwhile.
            while inFlight > 1 && !stopping && jobs.isEmpty { cond.wait() }
            if !jobs.isEmpty {
                cond.unlock()
                continue
            }
            var batch: [Submission] = []
            var n = 0
            while let s = queue.first, batch.isEmpty || n + s.items.count <= Self.maxGroup {
                batch.append(queue.removeFirst())
                n += s.items.count
            }
            cond.unlock()
            if let why = node?.writeRefusal ?? reopenIfFailed() {
                for s in batch { s.respond(.failed(why)) }
                continue
            }
            commit(batch)
        }
    }

    /// What a request hears while the own log cannot be written: the details (a path, the system's error) are in
    /// the node's log, not in answers to clients.
    static let cannotWrite =
        "the own log cannot be written just now (a write or fsync on the node's disk failed; its operator sees why "
        + "in the node's log); nothing of this request was appended; the node retries by itself: try again later"

    /// After a write or fsync of the own log failed (a full disk): reopens it before the next group, once every
    /// group in flight has finished (`LogStore.reopen` cuts what was not acknowledged and checks the files
    /// again). Returns why requests are refused while it stays failed, or nil when the log takes groups. The next
    /// group is the test of whether writes succeed again; the failure and the recovery are each logged once.
    private func reopenIfFailed() -> String? {
        guard let node else { return nil }
        let own = node.own
        guard own.needsReopen else { return nil }
        fsync.sync {}
        do throws(LedgerError) { try own.reopen() } catch {
            own.fail(error)
            return Self.cannotWrite
        }
        let size = own.head.size
        unacknowledged.begin(at: size, acknowledged: size)
        return nil
    }

    /// A heads-only entry when other logs moved past what the own log cited (Specs/protocol.md §5.4).
    private func writeHeads() {
        guard let node, node.writeRefusal == nil, reopenIfFailed() == nil else { return }
        let own = node.own
        var group = own.beginGroup(now: Ingestor.now())
        let (deps, citedHLC) = node.heads { group.cited($0) }
        lastCited = .now()
        // Heads that only moved by other heads-only entries are not worth an entry: two idle nodes would
        // otherwise cite each other's heads entries for ever.
        guard !deps.isEmpty, node.anyMovedBySubstance(deps) else { return }
        group.add(.heads(HeadsBody(occurredAt: Ingestor.now())), deps: deps, citedHLC: citedHLC)
        let written: LogStore.WrittenGroup
        do throws(LedgerError) { written = try node.writeOwnGroup(group) } catch {
            if own.needsReopen {
                own.fail(error)
            } else {
                node.log.error("cannot write a heads entry to the own log", ["error": error.message])
            }
            return
        }
        unacknowledged.keep(start: group.startSize, leaves: group.results.map(\.leaf), bodies: group.bodies)
        let committedGroup = group.entries
        groupWritten()
        fsync.async { [self] in
            defer { groupSynced() }
            do throws(LedgerError) { try LogStore.sync(written) } catch {
                own.fail(error)
                return
            }
            do throws(LedgerError) { _ = try own.acknowledge(written) } catch {
                // Not acknowledged (an earlier group failed): it does not count, whatever its fsync said.
                own.fail(error)
                return
            }
            if let cp = written.signedCheckpoint { node.feedView(node.config.org, committedGroup, cp) }
            node.metrics.appends.add(1, ordering: .relaxed)
            node.metrics.groupCommits.add(1, ordering: .relaxed)
            node.logMoved(node.config.org)
        }
    }

    private func groupWritten() {
        cond.lock()
        inFlight += 1
        cond.unlock()
    }

    private func groupSynced() {
        cond.lock()
        inFlight -= 1
        cond.broadcast()
        cond.unlock()
    }

    /// Builds one group from `batch`, writes it, and hands its fsync to the fsync queue, which answers.
    private func commit(_ batch: [Submission]) {
        guard let node else { return }
        let own = node.own
        let now = Ingestor.now()
        var group = own.beginGroup(now: now)
        let storeSize = own.head.size
        let unacknowledged = self.unacknowledged
        unacknowledged.begin(at: group.startSize, acknowledged: storeSize)
        let ownOrg = node.config.org
        let resolve: (String, UInt64) -> ReferencedEntry? = { org, seq in
            guard org == ownOrg, seq >= storeSize else { return node.referenced(org, seq) }
            return unacknowledged.entry(seq)
        }
        let parser = EventParser(consortium: node.consortium, org: ownOrg, linkKey: node.linkKey, resolve: resolve)
        let (deps, citedHLC) = node.heads { group.cited($0) }
        var accepted: [(Submission, Range<Int>)] = []
        var rejected: [(Submission, Outcome)] = []
        for s in batch {
            let mark = group.mark
            let first = group.count
            var failure: Outcome?
            for i in 0..<s.items.count {
                do throws(LedgerError) {
                    let body: EntryBody
                    switch s.items {
                    case .parsed(let bodies): body = bodies[i]
                    case .raw(let items): body = try parser.parse(items[i])
                    }
                    let isFirst = group.count == 0
                    let r = group.add(body, deps: isFirst ? deps : [], citedHLC: isFirst ? citedHLC : nil)
                    unacknowledged.add(leaf: r.leaf, body: body)
                } catch {
                    failure = .rejected(index: i, message: error.message)
                    break
                }
            }
            if let failure {
                group.rollback(to: mark)
                unacknowledged.drop(from: first)
                rejected.append((s, failure))
                node.metrics.reject("invalid-event")
            } else {
                accepted.append((s, first..<group.count))
            }
        }
        for (s, outcome) in rejected { s.respond(outcome) }
        guard group.count > 0 else { return }
        if !deps.isEmpty { lastCited = .now() }
        let written: LogStore.WrittenGroup
        do throws(LedgerError) { written = try node.writeOwnGroup(group) } catch {
            if own.needsReopen {
                own.fail(error)
                for (s, _) in accepted { s.respond(.failed(Self.cannotWrite)) }
            } else {
                node.log.error("cannot write the own log", ["error": error.message])
                for (s, _) in accepted { s.respond(.failed(error.message)) }
            }
            return
        }
        unacknowledged.keepBuiltGroup()
        let committedGroup = group.entries
        let metrics = node.metrics
        let results = group.results
        let answers = accepted
        groupWritten()
        fsync.async { [self] in
            defer { groupSynced() }
            do throws(LedgerError) {
                try LogStore.sync(written)
                // Cache files that cannot be updated are warnings inside; what throws here is a group that does
                // not count (an earlier group's write or fsync failed), so its writers hear that it failed.
                _ = try own.acknowledge(written)
            } catch {
                own.fail(error)
                for (s, _) in answers { s.respond(.failed(Self.cannotWrite)) }
                return
            }
            // The view shows the entries before their writers hear back: a client reads what it wrote.
            if let cp = written.signedCheckpoint { node.feedView(ownOrg, committedGroup, cp) }
            metrics.appends.add(UInt64(results.count), ordering: .relaxed)
            metrics.groupCommits.add(1, ordering: .relaxed)
            if let first = answers.first {
                metrics.observeCommit(
                    seconds: Double(DispatchTime.now().uptimeNanoseconds - first.0.queued.uptimeNanoseconds) / 1e9)
            }
            node.logMoved(node.config.org)
            // Answers are built and sent off this queue, so the next group's fsync does not wait for them.
            DispatchQueue.global().async {
                for (s, range) in answers { s.respond(.appended(Array(results[range]))) }
            }
        }
    }
}
