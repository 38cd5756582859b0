import Foundation
import ProvCrypto
import ProvLedger
import Synchronization
import TestSupport
import Testing

@testable import ProvNode

/// Nodes of one consortium in this process, linked by calls instead of sockets: replication logic is tested
/// here quickly and deterministically; the same nodes run behind real sockets in provd (ProvdTests).
final class InMemoryConsortium: Sendable {
    let dir: URL
    let nodes: Mutex<[String: Node]> = Mutex([:])
    /// Orgs whose node is down: requests to them fail like a refused connection.
    let down: Mutex<Set<String>> = Mutex([])
    /// Rewrites a peer's answers on the way (a lying peer): (serving org, path, response) -> response.
    let tamper: Mutex<(@Sendable (String, String, PeerResponse) -> PeerResponse)?> = Mutex(nil)
    let moved = NSCondition()
    let orgs: [String]
    let configs: [String: NodeConfig]

    struct Unreachable: Error {}

    init(
        orgs: [String] = ["brand", "retail", "care"], peers: [String: [String]] = [:], headsIntervalMs: Int = 3_600_000
    )
        throws
    {
        dir = URL(fileURLWithPath: TemporaryFiles.path("prov-node"))
        let setup = try ConsortiumSetup.initialize(directory: dir.path, orgs: orgs, consortium: "acme", basePort: 7400)
        var configs: [String: NodeConfig] = [:]
        for org in orgs {
            var c = try NodeConfig.load(setup.nodeConfigs[org]!)
            c.syncIntervalMs = 100
            c.headsIntervalMs = headsIntervalMs
            c.peers = peers[org]
            configs[org] = c
        }
        self.orgs = orgs
        self.configs = configs
    }

    /// Starts (or restarts) the node of `org`.
    @discardableResult
    func start(_ org: String) throws -> Node {
        let node = try Node(
            config: configs[org]!, log: .silent,
            makeLink: { [unowned self] target, _ in Link(self, from: org, to: target) })
        node.onLogMoved = { [moved] _, _ in
            moved.lock()
            moved.broadcast()
            moved.unlock()
        }
        nodes.withLock { $0[org] = node }
        down.withLock { _ = $0.remove(org) }
        node.start()
        return node
    }

    func startAll() throws { for o in orgs { try start(o) } }

    /// Stops the node of `org` as a crash would look from outside: it answers nothing more.
    func kill(_ org: String) {
        down.withLock { _ = $0.insert(org) }
        let n = nodes.withLock { $0.removeValue(forKey: org) }
        n?.close()
    }

    func node(_ org: String) -> Node { nodes.withLock { $0[org]! } }

    func stopNodes() {
        for o in orgs { kill(o) }
    }

    /// Stops every node and removes the consortium's folder.
    func stopAll() {
        stopNodes()
        try? FileManager.default.removeItem(at: dir)
    }

    /// Calls the node synchronously and returns its answer.
    static func call(_ node: Node, _ req: NodeRequest, timeout: Double = 15) -> NodeResponse? {
        let box = Mutex<NodeResponse?>(nil)
        let done = DispatchSemaphore(value: 0)
        node.handle(req) { r in
            box.withLock { $0 = r }
            done.signal()
        }
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        return box.withLock { $0 }
    }

    /// POST /v1/events with the app token.
    func post(_ org: String, _ events: [String]) -> NodeResponse? {
        let n = node(org)
        return Self.call(
            n,
            NodeRequest(
                listener: .api, method: "POST", path: "/v1/events", authorization: "Bearer \(n.config.token)",
                body: Array(("[" + events.joined(separator: ",") + "]").utf8)))
    }

    /// (size, root) of every log on every running node.
    func heads() -> [String: [String: (UInt64, SHA256Digest?)]] {
        nodes.withLock { nodes in
            nodes.mapValues { n in n.logs.mapValues { l in (l.head.size, l.head.checkpoint?.checkpoint.root) } }
        }
    }

    /// Waits (on commit notifications, bounded) until `condition` holds.
    func wait(timeout: Double = 20, until condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        moved.lock()
        defer { moved.unlock() }
        while !condition() {
            if Date() > deadline { return false }
            _ = moved.wait(until: min(deadline, Date().addingTimeInterval(0.2)))
        }
        return true
    }

    /// True when every running node holds every log at the same size and root, with `sizes` entries each.
    func converged(_ sizes: [String: UInt64]) -> Bool {
        let h = heads()
        for (_, logs) in h {
            for (org, want) in sizes where logs[org]?.0 != want { return false }
        }
        for org in sizes.keys {
            let roots = Set(h.values.compactMap { $0[org]?.1 })
            if roots.count != 1 { return false }
        }
        return true
    }

    final class Link: PeerLink, @unchecked Sendable {
        unowned let net: InMemoryConsortium
        let from: String
        let to: String
        init(_ net: InMemoryConsortium, from: String, to: String) {
            self.net = net
            self.from = from
            self.to = to
        }

        func request(_ method: String, _ path: String, body: [UInt8]?, contentType: String?) throws -> PeerResponse {
            guard !net.down.withLock({ $0.contains(to) || $0.contains(from) }),
                let target = net.nodes.withLock({ $0[to] })
            else { throw Unreachable() }
            let q = path.firstIndex(of: "?")
            let req = NodeRequest(
                listener: .peer(org: from), method: method, path: q.map { String(path[..<$0]) } ?? path,
                query: q.map { String(path[path.index(after: $0)...]) }, body: body ?? [])
            guard let r = InMemoryConsortium.call(target, req) else { throw Unreachable() }
            var answer = PeerResponse(status: r.status, contentType: r.contentType, body: r.body)
            if let t = net.tamper.withLock({ $0 }) { answer = t(to, path, answer) }
            return answer
        }

        func close() {}
        func interrupt() {}
    }
}

/// Test events in the input format of Specs/events.md.
enum Ev {
    static func consent(_ i: Int, org: String) -> String {
        #"{"type":"consent","subject":"email:user\#(i)@example.com","event":"give","purposes":["dpv:DirectMarketing"],"controllers":["\#(org)"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#
    }

    static func batch(_ n: Int, org: String, from: Int = 0) -> [String] {
        (from..<(from + n)).map { consent($0, org: org) }
    }
}
