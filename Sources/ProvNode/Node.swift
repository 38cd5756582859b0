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
    public let consortium: Consortium
    let signer: NoteSigner
    let linkKey: LinkKey
    let log: NodeLog
    let metrics = Metrics()
    /// Every member's log, by org: the own log and a copy of each other.
    let logs: [String: HeldLog]
    var own: HeldLog { logs[config.org]! }
    let writer: EventWriter
    /// The shared customer view over every log held here (Specs/view.md); nil when node.json sets `"view": false`.
    public let view: ViewIndex?
    /// Feeds the view the groups of copies, off the catch-up's thread.
    let viewQueue = DispatchQueue(label: "provd.view-feed")
    /// One worker per peer, made as the node opens (never changed after: listeners read it from any thread).
    private(set) var workers: [String: PeerWorker] = [:]
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

    /// Opens every log (creating the copies' folders), ready to `start`. Fails with a clear message on a bad
    /// descriptor, key, linking key, or a data directory another process holds.
    public init(config: NodeConfig, log: NodeLog, makeLink: @escaping PeerLinkFactory) throws(LedgerError) {
        self.config = config
        self.log = log
        self.makeLink = makeLink
        do {
            consortium = try Consortium.load(config.consortiumPath)
            signer = try SigningKeyFile.read(config.keyPath)
            linkKey = try LinkKey.load(config.linkKeyPath)
        } catch let e as LedgerError { throw e } catch let e as CryptoError {
            throw LedgerError(.config, e.reason)
        } catch { throw LedgerError(.config, "\(error)") }
        if let why = consortium.linkKeyMismatch(linkKey) { throw LedgerError(.config, "\(config.linkKeyPath): \(why)") }
        guard let me = consortium.member(config.org) else {
            throw LedgerError(
                .config, "org '\(config.org)' of \(config.path) is not a member of consortium \(consortium.name)")
        }
        guard signer.name == me.origin, signer.verifierKey.publicKey == me.key.publicKey else {
            throw LedgerError(
                .config, "the signing key \(config.keyPath) is not the key of \(me.org) in the consortium descriptor")
        }
        var logs: [String: HeldLog] = [:]
        for m in consortium.members {
            // Every log held is checked on open as a writer checks its own: nothing is added on top of damage.
            let store = try LogStore(
                dataDirectory: config.dataDirectory, consortium: consortium.name, org: m.org, writable: true,
                verifyingWith: consortium, log: { log.warn($0) })
            logs[m.org] = try HeldLog(member: m, store: store, consortium: consortium, isOwn: m.org == config.org)
        }
        self.logs = logs
        view =
            config.view
            ? try Self.buildView(
                dataDirectory: config.dataDirectory, consortium: consortium, linkKey: linkKey, logs: logs, log: log)
            : nil
        writer = EventWriter()
        writer.node = self
        // Evidence kept earlier counts only as what it proves, checked again against the descriptor; the org comes
        // from its verified checkpoints, never from a file name.
        let kept = EvidenceStore.load(directory: config.evidenceDirectory, consortium: consortium)
        for (org, path) in kept.verified {
            guard let held = logs[org] else { continue }
            if held.isOwn {
                log.error(
                    "evidence kept here shows this node's own key signed a history it does not hold", ["evidence": path]
                )
            } else {
                held.freeze(path)
                log.error("log frozen by equivocation evidence kept earlier", ["log": org, "evidence": path])
            }
        }
        for (path, reason) in kept.ignored {
            log.warn("a file in the evidence folder is not evidence; ignored", ["file": path, "reason": reason])
        }
        for org in peerOrgs() { workers[org] = PeerWorker(node: self, org: org, address: peerAddress(org) ?? "") }
    }

    /// Starts the writer and one worker per peer.
    public func start() {
        writer.start()
        for w in workers.values { w.start() }
        log.info(
            "node started",
            ["org": config.org, "logs": "\(logs.count)", "peers": workers.keys.sorted().joined(separator: ",")])
    }

    /// The members this node talks to: `peers` of the configuration, or every other member with an address.
    func peerOrgs() -> [String] {
        let wanted = config.peers ?? consortium.members.map(\.org)
        return wanted.filter { $0 != config.org && consortium.member($0) != nil && peerAddress($0) != nil }.sorted()
    }

    func peerAddress(_ org: String) -> String? { config.peerAddresses[org] ?? consortium.member(org)?.peer }

    /// New peer addresses (SIGHUP re-reads them from node.json): workers reconnect to the new place.
    public func updatePeerAddresses(_ addresses: [String: String]) {
        for (org, w) in workers {
            if let a = addresses[org] ?? consortium.member(org)?.peer { w.setAddress(a) }
        }
    }

    /// Stops cleanly: the group commit in flight finishes and is answered, workers end, files are closed.
    public func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        writer.stop()
        for w in workers.values { w.beginStop() }
        for w in workers.values { w.waitStopped() }
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
