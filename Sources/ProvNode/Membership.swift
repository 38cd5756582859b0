import Dispatch
import Foundation
import ProvCrypto
import ProvLedger
import ProvView

/// What a node holds because of the descriptor: the chain of versions, every log (a copy per member, removed ones
/// frozen), and a worker per peer. Replaced as a whole under `Node.members`.
struct Membership {
    var chain: ConsortiumChain
    var logs: [String: HeldLog]
    var workers: [String: PeerWorker]
}

/// A new version of the consortium descriptor, taken live (Specs/protocol.md §8): from the operator
/// (`POST /v1/consortium`, app token) or from any peer (`POST /consortium`), each node checking the whole chain and
/// every quorum itself. The node keeps every version in its data directory, serves them (`GET /v1/consortium`,
/// `GET /consortium`), passes them on to its peers, and acts on the change without a restart: a new member's copy is
/// made and pulled, a removed member's copy freezes where it is and its node is refused from the next handshake, and
/// keys follow the descriptor's key history.
extension Node {
    /// What became of a chain offered to this node.
    enum Offer: Equatable {
        /// The node holds this chain already, or a newer one (`held` is its newest version).
        case known(held: Int)
        /// The node took it: `version` is the newest now.
        case taken(version: Int)
        /// Refused: the HTTP status and why.
        case refused(status: Int, reason: String)
    }

    /// The descriptor chain as a file, what `GET /v1/consortium` serves.
    var chainBytes: [UInt8] { Array((chain.json.prettySerialized + "\n").utf8) }

    /// Takes `offered` (checked from its first version already: a `ConsortiumChain` exists only so) when it extends
    /// the chain held here; `source` is the peer it came from, if any. One offer at a time.
    func offer(_ offered: ConsortiumChain, from source: String?) -> Offer {
        adopting.lock()
        defer { adopting.unlock() }
        let held = chain
        switch held.relation(to: offered) {
        case .same, .older: return .known(held: held.current.version)
        case .diverges(let v): return .refused(status: 409, reason: Self.divergedReason(v))
        case .newer: break
        }
        // Kept before anything is acted on: a node that restarts uses it (Specs/format.md §10.14).
        do { try ConsortiumFolder.store(offered, dataDirectory: config.dataDirectory) } catch {
            log.error("cannot keep a new version of the consortium descriptor", ["error": error.message])
            return .refused(status: 503, reason: "this node cannot keep the new version now; retry later")
        }
        take(offered, after: held.current)
        let c = offered.current
        log.info(
            "a new version of the consortium descriptor was taken",
            [
                "version": "\(c.version)", "from": source ?? "the operator",
                "changes": offered.versions.dropFirst(held.versions.count).compactMap(\.consortium.change?.summary)
                    .joined(separator: "; "),
            ])
        for (org, w) in workers where org != source { w.wantConsortium() }
        return .taken(version: c.version)
    }

    /// Acts on the versions after `old` (Specs/protocol.md §8.3).
    private func take(_ offered: ConsortiumChain, after old: Consortium) {
        let c = offered.current
        // A copy for each new member, opened before the chain is swapped in (opening reads its folder).
        var opened: [String: HeldLog] = [:]
        for m in c.members where logs[m.org] == nil {
            do throws(LedgerError) {
                opened[m.org] = try Self.openLog(m, consortium: c, config: config, log: log).0
            } catch {
                log.error("cannot open the copy of a new member's log", ["log": m.org, "error": error.message])
            }
        }
        members.withLock { state in
            state.chain = offered
            for (org, held) in opened { state.logs[org] = held }
        }
        // A removed member's copy is frozen and its worker stopped (its links interrupted) first: a pull of its log
        // under way ends at once instead of holding the copy's sync lock, which `adopt` below waits for.
        for m in c.members where m.org != config.org && old.member(m.org)?.removedIn == nil {
            guard let v = m.removedIn else { continue }
            logs[m.org]?.freeze(Self.removedReason(m.org, v))
            retireWorker(m.org)
            log.warn("a member was removed: its copy stays as verified", ["log": m.org, "version": "\(v)"])
            tellRemoved(m.org)
        }
        var rekeyed = false
        for m in c.members {
            guard let held = logs[m.org] else { continue }
            let before = old.member(m.org)
            do { try held.adopt(m, consortium: c) } catch {
                // A log that cannot follow the new key history would check what it takes against the old one.
                let why = "it cannot follow version \(c.version) of the descriptor (\(error.message))"
                if held.isOwn { stopWriting("the own log: \(why)") } else { held.freeze(why) }
                log.error("a log cannot follow the new version", ["log": m.org, "error": error.message])
            }
            if let v = m.removedIn, before?.removedIn == nil, m.org == config.org {
                stopWriting("this node's company was removed from consortium \(c.name) in version \(v)")
            }
            guard let b = before, b.key != m.key else { continue }
            rekeyed = true
            // What is held must still verify under the new key history: a checkpoint past the size a rotation
            // names, signed by the old key only, does not.
            if let cp = held.head.checkpoint, let why = m.signatureFailure(cp) {
                if held.isOwn {
                    stopWriting(
                        "version \(c.version) of the descriptor changes this node's key, and the own log's latest "
                            + "checkpoint does not verify under it (\(why)): appending is stopped until an operator "
                            + "acts (Nodes/README.md)")
                } else {
                    held.freeze("the copy's latest checkpoint does not verify under version \(c.version): \(why)")
                    log.error(
                        "a copy does not verify under the new version of the descriptor; it is frozen",
                        ["log": m.org, "reason": why])
                }
            }
        }
        startNewWorkers()
        writer.wake()
        if !opened.isEmpty || rekeyed { rebuildViewLater() }
    }

    static func divergedReason(_ v: Int) -> String {
        "version \(v) offered is not the version \(v) held here: the consortium's history split, or it is another "
            + "consortium's; nothing was taken"
    }

    static func removedReason(_ org: String, _ version: Int) -> String {
        "\(org) was removed from the consortium in version \(version): its copy stays at what was verified"
    }

    /// Workers for the current members this node talks to that have none yet (a member added, an address learnt),
    /// started when the node runs.
    func startNewWorkers() {
        let wanted = peerOrgs().map { ($0, peerAddress($0) ?? "") }
        // Made, and started when the node runs, under the lock `start` and `stop` take their workers under: a
        // worker is started once, and never after `stop` took the workers it stops.
        let started: [PeerWorker] = members.withLock { state in
            guard !stopping.load(ordering: .acquiring) else { return [] }
            var made: [PeerWorker] = []
            for (org, address) in wanted where state.workers[org] == nil {
                let w = PeerWorker(node: self, org: org, address: address)
                state.workers[org] = w
                made.append(w)
            }
            guard running.load(ordering: .acquiring) else { return [] }
            for w in made { w.start() }
            return made
        }
        for w in started {
            w.wantConsortium()
            for (org, held) in logs where held.head.size > 0 && org != w.org { w.wantPush(org) }
        }
    }

    /// Tells a member just removed, once and off the caller's thread, by posting the chain to its node, which would
    /// otherwise learn it only from its operator: that node checks the chain as any (Specs/protocol.md §8.1) and
    /// stops appending (§8.3). Its worker here is gone; this is the one request this node still makes to it.
    func tellRemoved(_ org: String) {
        guard let address = peerAddress(org), !stopping.load(ordering: .acquiring) else { return }
        let bytes = chainBytes
        let t = Thread { [self] in
            let link = makeLink(org, address)
            defer { link.close() }
            do {
                let r = try link.request("POST", "/consortium", body: bytes, contentType: "application/json")
                log.info("a removed member was told of its removal", ["peer": org, "status": "\(r.status)"])
            } catch {
                log.warn("a removed member could not be told of its removal", ["peer": org, "error": "\(error)"])
            }
        }
        t.name = "provd-tell-\(org)"
        t.start()
    }

    /// Ends the worker of a member that is no longer one, off the caller's thread.
    func retireWorker(_ org: String) {
        guard let w = members.withLock({ $0.workers.removeValue(forKey: org) }) else { return }
        let t = Thread {
            w.beginStop()
            w.waitStopped()
        }
        t.name = "provd-retire-\(org)"
        t.start()
    }

    /// Builds the view again from the data directory (a member joined, a key changed), between groups of the own
    /// log and of the copies: copies' groups that arrive meanwhile are fed to the new view after it.
    func rebuildViewLater() {
        guard config.view else { return }
        let t = Thread { [self] in
            writer.perform { [self] in
                viewQueue.sync {
                    do throws(ViewError) {
                        let built = try ViewIndex.build(
                            dataDirectory: config.dataDirectory, consortium: consortium, linkKey: linkKey)
                        for (org, reason) in built.excluded {
                            log.error("a log is left out of the view", ["log": org, "reason": reason])
                        }
                        viewIndex.withLock { $0 = built.index }
                    } catch {
                        log.error("the view could not be built again for the new descriptor", ["error": error.message])
                    }
                }
            }
        }
        t.name = "provd-view-rebuild"
        t.start()
    }

    // MARK: Routes

    /// `GET|POST /v1/consortium` on the API, `GET|POST /consortium` on the peer listener (`caller` the peer).
    func consortiumRoute(_ req: NodeRequest, from caller: String?, respond: @escaping @Sendable (NodeResponse) -> Void)
    {
        guard req.method == "POST" else {
            return respond(
                NodeResponse(
                    status: 200, contentType: "application/json", headers: [("Cache-Control", "no-store")],
                    body: chainBytes))
        }
        // Checking a chain and taking it (files synced, logs opened) is not for a listener's thread; a few at a
        // time, so that nobody can keep the cores checking signatures by posting chains.
        guard offersInFlight.add(1, ordering: .acquiringAndReleasing).newValue <= Self.maxOffersInFlight else {
            offersInFlight.subtract(1, ordering: .acquiringAndReleasing)
            metrics.reject("busy")
            return respond(
                .error(503, "this node is checking other descriptors; retry later").with(header: ("Retry-After", "1")))
        }
        DispatchQueue.global().async { [self] in
            defer { offersInFlight.subtract(1, ordering: .acquiringAndReleasing) }
            respond(receiveChain(req.body, from: caller))
        }
    }

    /// Chains checked at once; more are answered 503 with `Retry-After` (Specs/protocol.md §8.1).
    static let maxOffersInFlight = 2

    /// A chain posted by the operator or a peer: parsed, checked from its first version, and offered.
    func receiveChain(_ body: [UInt8], from caller: String?) -> NodeResponse {
        let versions: [JSONValue]
        do { versions = try ConsortiumChain.versions(parsing: body, source: "the body") } catch {
            metrics.reject("bad-request")
            return .error(400, error.message)
        }
        // The versions held here are compared by hash; only newer ones are checked (ConsortiumChain.offer).
        let offered: ConsortiumChain
        do throws(LedgerError) {
            switch try chain.offer(versions) {
            case (.newer, let next?):
                if let why = next.fileSizeFailure { throw LedgerError(.config, why) }
                offered = next
            case (.diverges(let v), _):
                metrics.reject("bad-descriptor")
                let reason = Self.divergedReason(v)
                log.warn("a consortium descriptor was refused", ["from": caller ?? "the operator", "reason": reason])
                return .error(409, reason)
            default:
                let v = chain.current.version
                return .json(
                    200, .object([JSONMember("version", .number(String(v))), JSONMember("new", .bool(false))]))
            }
        } catch {
            metrics.reject("bad-descriptor")
            log.warn(
                "a consortium descriptor that does not verify was refused",
                ["from": caller ?? "the operator", "reason": error.message])
            return .error(422, "the descriptor does not verify: \(error.message); nothing was taken")
        }
        switch offer(offered, from: caller) {
        case .known(let v):
            return .json(200, .object([JSONMember("version", .number(String(v))), JSONMember("new", .bool(false))]))
        case .taken(let v):
            return .json(200, .object([JSONMember("version", .number(String(v))), JSONMember("new", .bool(true))]))
        case .refused(let status, let reason):
            metrics.reject("bad-descriptor")
            log.warn("a consortium descriptor was refused", ["from": caller ?? "the operator", "reason": reason])
            return .error(status, reason)
        }
    }

    /// Sends the chain held here to peer `org` (Specs/protocol.md §8.2); when the peer holds a newer one, fetches it
    /// and offers it here. Throws what reaching the peer threw.
    func pushConsortium(to org: String, over link: PeerLink) throws {
        let mine = chain.current.version
        let r = try link.request("POST", "/consortium", body: chainBytes, contentType: "application/json")
        guard r.status == 200 else {
            log.warn(
                "peer did not take this node's consortium descriptor",
                ["peer": org, "status": "\(r.status)", "reason": PeerWorker.reason(r.body)])
            return
        }
        guard let theirs = (try? JSON.parse(r.body))?["version"]?.canonicalIntegerValue, theirs > UInt64(mine) else {
            return
        }
        let g = try link.request("GET", "/consortium", body: nil, contentType: nil)
        guard g.status == 200 else { return }
        let offered: ConsortiumChain
        do {
            offered = try ConsortiumChain(versions: try ConsortiumChain.versions(parsing: g.body, source: org))
        } catch {
            log.warn(
                "a peer serves a consortium descriptor that does not verify", ["peer": org, "reason": error.message])
            return
        }
        if case .refused(_, let reason) = offer(offered, from: org) {
            log.warn("a peer's consortium descriptor was refused", ["peer": org, "reason": reason])
        }
    }

    /// The org of a current member one of whose trusted keys is `key` (Specs/protocol.md §3.1, §8.3): who may open
    /// the peer listener. Revoked keys and removed members are refused from the next handshake.
    public func peerOrg(presenting key: Ed25519PublicKey) -> String? {
        consortium.currentMembers.first { m in m.trustedKeys.contains { $0.publicKey == key } }?.org
    }

    /// Whether `key` is one `org`'s node may present when this node connects to it: one of its trusted keys, also
    /// for a member removed (which this node connects to only to tell it so, `tellRemoved`).
    public func peer(_ org: String, mayPresent key: Ed25519PublicKey) -> Bool {
        consortium.member(org)?.trustedKeys.contains { $0.publicKey == key } ?? false
    }
}
