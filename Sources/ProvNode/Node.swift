import Foundation
import ProvCrypto
import ProvLedger
import ProvView
import Synchronization

/// One company's node (`provd`): its own log, a copy of every other member's log, the group-commit writer for
/// the API, the tlog-tiles read API, the tlog-witness `add-checkpoint` endpoint, and replication with its peers
/// (Specs/protocol.md). Transport-neutral: listeners hand requests to `handle`, and peers are reached through
/// `PeerLink`s, so the same node runs behind real sockets and in tests.
///
/// `@unchecked Sendable`: the immutable configuration is shared freely; logs guard themselves (`HeldLog`), and
/// the few mutable fields here are behind `state`.
public final class Node: @unchecked Sendable {
    public let config: NodeConfig
    /// SHA-256 of node.json's `token` and `auditorToken`, made once: what each request's bearer token is compared
    /// with (`authenticate`).
    let tokenDigests: (app: [UInt8], auditor: [UInt8])
    /// The descriptor chain and what the node holds because of it (every log, a worker per peer): replaced as a
    /// whole when the node takes a new version (Membership.swift), read from any thread.
    let members: Mutex<Membership>
    /// The newest version of the consortium descriptor this node took.
    public var consortium: Consortium { members.withLock { $0.chain.current } }
    /// Every version of the descriptor, from the first.
    public var chain: ConsortiumChain { members.withLock { $0.chain } }
    /// The node's signing keys: node.json's `key`, and its `nextKey` while a rotation is prepared (NodeKeys.swift).
    let keys: Mutex<NodeKeys>
    let linkKey: LinkKey
    let log: NodeLog
    let metrics = Metrics()
    /// Every member's log, by org: the own log and a copy of each other (removed members' copies too, frozen).
    var logs: [String: HeldLog] { members.withLock { $0.logs } }
    let ownLog: HeldLog
    var own: HeldLog { ownLog }
    /// Copies found damaged on open and set aside in `quarantine/` by this start (fetched again from the peers).
    let setAside: [SetAside]

    struct SetAside: Sendable {
        var org: String
        var folder: String
        var reason: String
    }
    let writer: EventWriter
    /// The shared customer view over every log held here (Specs/view.md); nil when node.json sets `"view": false`.
    /// Built again when a new version of the descriptor adds a member or changes a key.
    public var view: ViewIndex? { viewIndex.withLock { $0 } }
    let viewIndex: Mutex<ViewIndex?>
    /// Feeds the view the groups of copies, off the catch-up's thread.
    let viewQueue = DispatchQueue(label: "provd.view-feed")
    /// One worker per peer: the current members this node talks to.
    var workers: [String: PeerWorker] { members.withLock { $0.workers } }
    let makeLink: PeerLinkFactory
    /// Called after any log held here moved (org, new size): tests and the view follow commits through it.
    public var onLogMoved: (@Sendable (String, UInt64) -> Void)?
    /// Counters the transport adds to `/metrics` (connections refused and so on).
    public var transportCounters: @Sendable () -> [String: UInt64] {
        get { counters.withLock { $0 } }
        set { counters.withLock { $0 = newValue } }
    }
    private let counters = Mutex<@Sendable () -> [String: UInt64]>({ [:] })
    let stopping = Atomic<Bool>(false)
    /// Set once `start` ran: workers made later start at once.
    let running = Atomic<Bool>(false)
    /// One new version of the descriptor is taken at a time (Membership.swift).
    let adopting = NSLock()
    /// Consortium chains being checked now (`consortiumRoute`).
    let offersInFlight = Atomic<Int>(0)
    /// Every piece of evidence held, by file name (Specs/protocol.md §4.3): checked when it came or when read back.
    let keptEvidence = Mutex<[String: KeptEvidence]>([:])
    /// Why the own log takes no more entries, when it must not: this node's key signed a history this node does
    /// not hold (Specs/protocol.md §5.5). Nothing is appended, and no heads entry either, until an operator acts.
    private let stoppedWriting = Mutex<String?>(nil)

    /// Nil while the own log takes entries; otherwise why it does not.
    public var writingStopped: String? { stoppedWriting.withLock { $0 } }

    /// Until the own log opens (Specs/protocol.md §5.6): the peers that have said whether they hold a longer history
    /// of it, and how many must have, with this node, to make a majority of the members. Nil once it is open.
    private let openingCheck = Mutex<(answered: Set<String>, needed: Int, peers: Set<String>)?>(nil)

    /// Why writes wait for now: the own log is not open yet, or the node lacks the key a new version of the
    /// descriptor made its own (NodeKeys.swift).
    var writeHold: String? { openingHold ?? keyHold }

    private var openingHold: String? {
        openingCheck.withLock { check in
            check.map {
                "not appended yet: this node is asking its peers whether they hold a longer history of its log "
                    + "(\($0.answered.count) of the \($0.needed) needed have answered; waiting for "
                    + "\($0.peers.subtracting($0.answered).sorted().joined(separator: ", "))); retry shortly"
            }
        }
    }

    /// Why a write is refused or held, if it is: appending stopped, or the own log not open yet.
    var writeRefusal: String? { writingStopped ?? writeHold }

    /// A peer holds a longer history of the own log, signed with this node's key: restores the missing entries from it,
    /// verified as a copy's are, on the writer's thread (writes wait meanwhile and then build on them). When that
    /// history does not extend the one held here, the node's key signed two histories: appending stops. Throws what
    /// reaching the peer threw (the restore is tried again at the next exchange).
    func restoreOwnLog(to goal: SignedCheckpoint, over link: PeerLink, from peer: String) throws {
        let held = own.head.size
        log.warn(
            "a peer holds a longer history of this node's own log, signed with its key: it is restored from there "
                + "before anything more is appended",
            ["peer": peer, "held": "\(held)", "size": "\(goal.checkpoint.size)"])
        let outcome = Mutex<Result<UInt64, any Error>>(.failure(LedgerError(.io, "the node is stopping")))
        writer.perform { [self] in
            outcome.withLock { $0 = Result { try own.restore(to: goal, over: link, node: self) } }
        }
        switch outcome.withLock({ $0 }) {
        case .success(let size):
            log.warn(
                "the own log was restored from a peer's verified copy; appending goes on from there",
                ["peer": peer, "from": "\(held)", "size": "\(size)"])
        case .failure(let e as CatchUp.SourceMisbehaved):
            stopWriting(
                "the history of this node's log that \(peer) holds, signed with this node's key, does not extend the "
                    + "one held here (\(e.reason)): this node's key signed two histories; appending is stopped until "
                    + "an operator acts (Nodes/README.md)")
        case .failure(let e):
            throw e
        }
    }

    /// Peer `org` has said what it holds of the own log (and any longer history was restored from it).
    func peerAnswered(_ org: String) {
        let opened = openingCheck.withLock { check -> Set<String>? in
            guard check != nil else { return nil }
            check!.answered.insert(org)
            guard check!.answered.count >= check!.needed else { return nil }
            defer { check = nil }
            return check!.answered
        }
        if let opened {
            log.info(
                "the own log takes entries: a majority of the members agree on what it holds",
                ["size": "\(own.head.size)", "peers": opened.sorted().joined(separator: ",")])
            writer.wake()
        }
    }

    /// Stops appending to the own log, for `reason` (the first reason stays).
    func stopWriting(_ reason: String) {
        let first = stoppedWriting.withLock { current -> Bool in
            guard current == nil else { return false }
            current = reason
            return true
        }
        if first { log.error("the own log takes no more entries", ["reason": reason]) }
    }

    /// Opens every log (creating the copies' folders), ready to `start`. Fails with a clear message on a bad
    /// descriptor, key, linking key, or a data directory another process holds. The descriptor is the newest version
    /// of node.json's `consortium` and of the data directory's `consortium` folder that follows from it
    /// (Specs/protocol.md §8).
    public init(config: NodeConfig, log: NodeLog, makeLink: @escaping PeerLinkFactory) throws(LedgerError) {
        self.config = config
        tokenDigests = (SHA256.hash(Array(config.token.utf8)).bytes, SHA256.hash(Array(config.auditorToken.utf8)).bytes)
        self.log = log
        self.makeLink = makeLink
        let chain: ConsortiumChain
        let nodeKeys: NodeKeys
        do {
            let (c, warnings) = try ConsortiumFolder.reconcile(
                try ConsortiumChain.load(config.consortiumPath), dataDirectory: config.dataDirectory)
            for w in warnings { log.warn("a stored version of the consortium descriptor is left out", ["reason": w]) }
            chain = c
            nodeKeys = try NodeKeys(config: config)
            linkKey = try LinkKey.load(config.linkKeyPath)
        } catch let e as LedgerError { throw e } catch let e as CryptoError {
            throw LedgerError(.config, e.reason)
        } catch { throw LedgerError(.config, "\(error)") }
        let consortium = chain.current
        if let why = consortium.linkKeyMismatch(linkKey) { throw LedgerError(.config, "\(config.linkKeyPath): \(why)") }
        guard let me = consortium.member(config.org) else {
            throw LedgerError(
                .config, "org '\(config.org)' of \(config.path) is not a member of consortium \(consortium.name)")
        }
        try nodeKeys.check(me, version: consortium.version, config: config)
        keys = Mutex(nodeKeys)
        var logs: [String: HeldLog] = [:]
        var quarantined: [SetAside] = []
        for m in consortium.members {
            let (held, aside) = try Self.openLog(m, consortium: consortium, config: config, log: log)
            logs[m.org] = held
            if let aside { quarantined.append(aside) }
            if let v = m.removedIn, m.org != config.org { held.freeze(Self.removedReason(m.org, v)) }
        }
        ownLog = logs[config.org]!
        setAside = quarantined
        // Every version this node uses is kept in its data directory (made by opening the own log), where prov
        // verify finds it too.
        try ConsortiumFolder.store(chain, dataDirectory: config.dataDirectory)
        members = Mutex(Membership(chain: chain, logs: logs, workers: [:]))
        viewIndex = Mutex(
            config.view
                ? try Self.buildView(
                    dataDirectory: config.dataDirectory, consortium: consortium, linkKey: linkKey, logs: logs, log: log)
                : nil)
        writer = EventWriter()
        writer.node = self
        if let v = me.removedIn {
            stopWriting("this node's company was removed from consortium \(consortium.name) in version \(v)")
        }
        // Evidence kept earlier counts only as what it proves, checked again against the descriptor; the org comes
        // from its verified checkpoints, never from a file name.
        let kept = EvidenceFolder.read(dataDirectory: config.dataDirectory, consortium: consortium)
        for piece in kept.proven {
            let k = KeptEvidence(org: piece.proven.org, proven: piece.proven, evidence: piece.evidence)
            let path = piece.path
            let org = k.org
            guard let held = logs[org] else { continue }
            keptEvidence.withLock { $0[k.evidence.fileName(org: org)] = k }
            if held.isOwn {
                stopWriting(
                    "evidence kept here (\(path)) shows this node's key signed another history of its log: appending "
                        + "is stopped until an operator acts (Nodes/README.md, 'When a node's key signed another "
                        + "history')")
            } else {
                held.freeze(path)
                log.error("log frozen by equivocation evidence kept earlier", ["log": org, "evidence": path])
            }
        }
        for (path, reason) in kept.ignored {
            log.warn("a file in the evidence folder is not evidence; ignored", ["file": path, "reason": reason])
        }
        peerAddressOverrides.withLock { $0 = config.peerAddresses }
        var workers: [String: PeerWorker] = [:]
        for org in peerOrgs() { workers[org] = PeerWorker(node: self, org: org, address: peerAddress(org) ?? "") }
        members.withLock { $0.workers = workers }
        // A majority of the members, this node among them, must have said what they hold of the own log.
        let peers = Set(workers.keys)
        let needed = min(peers.count, consortium.currentMembers.count / 2)
        openingCheck.withLock { $0 = needed == 0 ? nil : (answered: [], needed: needed, peers: peers) }
    }

    /// Opens the log of member `m`, checked as a writer checks its own: nothing is added on top of damage. A damaged
    /// copy is set aside in `quarantine/` (format.md §10.13) and opened empty, to be fetched again from the peers;
    /// damage to the own log stops the node.
    static func openLog(
        _ m: Consortium.Member, consortium: Consortium, config: NodeConfig, log: NodeLog
    ) throws(LedgerError) -> (HeldLog, SetAside?) {
        let open = { () throws(LedgerError) -> LogStore in
            try LogStore(
                dataDirectory: config.dataDirectory, consortium: consortium.name, org: m.org, writable: true,
                verifyingWith: consortium, log: { log.warn($0) })
        }
        let store: LogStore
        var setAside: SetAside?
        do throws(LedgerError) { store = try open() } catch {
            guard m.org != config.org, Quarantine.applies(to: error) else { throw error }
            let moved = try Quarantine.setAside(org: m.org, dataDirectory: config.dataDirectory)
            log.error(
                "a damaged copy was set aside; it is fetched again from the peers",
                ["log": m.org, "folder": moved, "reason": error.message])
            setAside = SetAside(org: m.org, folder: moved, reason: error.message)
            store = try open()
        }
        let held = try HeldLog(member: m, store: store, consortium: consortium, isOwn: m.org == config.org, log: log)
        return (held, setAside)
    }

    /// Starts the writer and one worker per peer.
    public func start() {
        writer.start()
        let started = members.withLock { state in
            running.store(true, ordering: .releasing)
            return Array(state.workers.values)
        }
        for w in started {
            w.start()
            // The descriptor goes to every peer: one that holds an older version takes this one, and one that holds
            // a newer one says so, and this node fetches it (Specs/protocol.md §8.2).
            w.wantConsortium()
        }
        // Evidence kept earlier goes to every peer again: a peer that missed it (down, new) learns it now.
        for name in keptEvidence.withLock({ Array($0.keys) }) { gossip(name) }
        log.info(
            "node started",
            ["org": config.org, "logs": "\(logs.count)", "peers": workers.keys.sorted().joined(separator: ",")])
    }

    /// The members this node talks to: `peers` of the configuration, or every other current member with an
    /// address.
    func peerOrgs() -> [String] {
        let c = consortium
        let wanted = config.peers ?? c.currentMembers.map(\.org)
        return wanted.filter { $0 != config.org && c.currentMember($0) != nil && peerAddress($0) != nil }.sorted()
    }

    /// `peerAddresses` of node.json as last read (SIGHUP re-reads them).
    let peerAddressOverrides = Mutex<[String: String]>([:])

    func peerAddress(_ org: String) -> String? {
        peerAddressOverrides.withLock { $0[org] } ?? consortium.member(org)?.peer
    }

    /// New peer addresses (SIGHUP re-reads them from node.json): workers reconnect to the new place, and a member
    /// that has an address now gets a worker.
    public func updatePeerAddresses(_ addresses: [String: String]) {
        peerAddressOverrides.withLock { $0 = addresses }
        for (org, w) in workers {
            if let a = peerAddress(org) { w.setAddress(a) }
        }
        startNewWorkers()
    }

    /// Stops cleanly: the group commit in flight finishes and is answered, workers end, files are closed.
    public func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        writer.stop()
        // Taken after `stopping` is set: no worker is made or started after this (`startNewWorkers`).
        let stopped = Array(workers.values)
        for w in stopped { w.beginStop() }
        for w in stopped { w.waitStopped() }
        viewQueue.sync {}
        for l in logs.values { l.cancelWaiters() }
    }

    /// Closes every log (after `stop`, once no request is served any more).
    public func close() {
        stop()
        for l in logs.values { _ = try? l.read { store throws(LedgerError) in store.close() } }
        log.info("node stopped", ["org": config.org])
    }

    // MARK: Heads

    /// The heads of the copies that moved past what the own log cited: `deps` for the next group, and the
    /// largest clock among them.
    func heads(cited: (String) -> UInt64?) -> ([EntryRef], HLC?) {
        var deps: [EntryRef] = []
        var maxHLC: HLC?
        for (org, held) in logs where !held.isOwn {
            let h = held.head
            guard h.size > 0 else { continue }
            if let c = cited(org), c >= h.size - 1 { continue }
            deps.append(EntryRef(org: org, seq: h.size - 1, leaf: h.lastLeaf))
            maxHLC = max(maxHLC ?? h.hlc, h.hlc)
        }
        return (deps.sorted { $0.org < $1.org }, maxHLC)
    }

    /// Whether any cited head is an entry other than a heads-only entry.
    func anyMovedBySubstance(_ deps: [EntryRef]) -> Bool {
        deps.contains { d in
            (try? logs[d.org]?.read { store throws(LedgerError) in try store.entry(d.seq).body.kind })
                != EntryKind.heads
        }
    }

    /// An entry of a log held here, for references: leaf hash, kind, subjects.
    func referenced(_ org: String, _ seq: UInt64) -> ReferencedEntry? {
        guard let held = logs[org] else { return nil }
        return try? held.read { store throws(LedgerError) -> ReferencedEntry? in
            guard seq < store.size else { return nil }
            let e = try store.entry(seq)
            return ReferencedEntry(leaf: try store.leafHash(seq), kind: e.body.kind, subjects: e.body.subjects)
        }
    }

    /// What the copy of `org` knows of its entry `seq`, for the checks of references between logs.
    func known(_ org: String, _ seq: UInt64) -> KnownEntry? {
        try? logs[org]?.read { store throws(LedgerError) in store.knownEntry(seq) }
    }

    /// Called after a log moved (own commit or verified copy): tell the peers.
    func logMoved(_ org: String, except source: String? = nil) {
        if let onLogMoved, let held = logs[org] { onLogMoved(org, held.head.size) }
        for (p, w) in workers where p != org && p != source { w.wantPush(org) }
    }
}
