import Foundation
import ProvCrypto
import ProvLedger

#if canImport(Glibc)
    import Glibc
#endif

/// Routing of every request the node answers (Specs/protocol.md §3–§6).
extension Node {
    /// Answers `req` through `respond`, now or later (an `add-checkpoint` or an append waits for a commit).
    public func handle(_ req: NodeRequest, respond: @escaping @Sendable (NodeResponse) -> Void) {
        if let refusal = admit(req, contentLength: req.body.count) { return respond(refusal) }
        // HEAD is GET without the body (the transport leaves the body out).
        var req = req
        if req.method == "HEAD" { req.method = "GET" }
        let parts = Array(req.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst())
        if parts.first == "logs" { return respond(readLog(req, Array(parts.dropFirst()))) }
        switch (req.listener, req.path) {
        case (.api, "/healthz"): return respond(.text(200, "ok"))
        case (.api, "/v1/events"): return appendEvents(req.body, respond: respond)
        case (.api, "/v1/status"): return respond(.json(200, status()))
        case (.api, "/metrics"):
            return respond(
                NodeResponse(
                    status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                    body: Array(exposition().utf8)))
        case (.peer(let caller), "/add-checkpoint"): return addCheckpoint(req.body, from: caller, respond: respond)
        case (.peer(let caller), "/evidence"): return respond(receiveEvidence(req.body, from: caller))
        case (.api, "/v1/evidence"): return respond(.json(200, evidenceList()))
        case (.api, "/v1/consortium"): return consortiumRoute(req, from: nil, respond: respond)
        case (.peer(let caller), "/consortium"): return consortiumRoute(req, from: caller, respond: respond)
        default: break
        }
        if case .api = req.listener, req.path.hasPrefix("/v1/evidence/") {
            return respond(evidenceFile(String(req.path.dropFirst("/v1/evidence/".count))))
        }
        respond(viewRoute(req) ?? notFound(req))
    }

    /// What a route takes (Specs/protocol.md §3): its methods, who may call it, and its largest body.
    struct RouteRule {
        var methods: [String]
        /// Only the company's app token (the API's writing route).
        var appOnly = false
        /// Methods of the route that only the app token may use.
        var appOnlyMethods: [String] = []
        var maxBody = 0
    }

    /// The rule of `path` on `listener`; nil for no route.
    static func rule(_ listener: NodeRequest.Listener, _ path: String) -> RouteRule? {
        let read = RouteRule(methods: ["GET", "HEAD"])
        if path.hasPrefix("/logs/") { return read }
        switch listener {
        case .peer:
            switch path {
            case "/add-checkpoint": return RouteRule(methods: ["POST"], maxBody: AddCheckpoint.maxBodySize)
            case "/evidence": return RouteRule(methods: ["POST"], maxBody: Evidence.maxSize)
            case "/consortium":
                return RouteRule(methods: ["GET", "HEAD", "POST"], maxBody: ConsortiumChain.maxFileSize)
            default: return nil
            }
        case .api:
            switch path {
            case "/healthz", "/v1/status", "/metrics", "/v1/permit", "/v1/compliance", "/v1/evidence": return read
            case "/v1/events": return RouteRule(methods: ["POST"], appOnly: true, maxBody: Self.maxEventsBody)
            case "/v1/consortium":
                return RouteRule(
                    methods: ["GET", "HEAD", "POST"], appOnlyMethods: ["POST"], maxBody: ConsortiumChain.maxFileSize)
            default:
                let parts = path.split(separator: "/", omittingEmptySubsequences: false)
                if parts.count == 5 && parts[1] == "v1" && parts[2] == "subjects"
                    && ["view", "timeline", "report"].contains(parts[4])
                {
                    return read
                }
                if parts.count == 4 && parts[1] == "v1" && parts[2] == "evidence" { return read }
                if parts.count == 6 && parts[1] == "v1" && parts[2] == "entries" && parts[5] == "receipt.html" {
                    return read
                }
                return parts.count == 5 && parts[1] == "v1" && parts[2] == "entries" ? read : nil
            }
        }
    }

    /// The largest body of `POST /v1/events`.
    static let maxEventsBody = 16 << 20

    /// Decides on a request from its head alone, before its body is read (Specs/protocol.md §3.4): who calls
    /// (token, or the member's key on the peer listener), which route and method, and the body's size. The response
    /// that refuses it, or nil to read its body and handle it.
    public func admit(_ req: NodeRequest, contentLength: Int) -> NodeResponse? {
        var role = Role.app
        if case .api = req.listener, req.path != "/healthz" {
            switch authenticate(req.authorization) {
            case .success(let r): role = r
            case .failure(let refusal):
                metrics.reject("unauthorized")
                return refusal.response
            }
        }
        guard let rule = Self.rule(req.listener, req.path) else { return notFound(req) }
        guard rule.methods.contains(req.method) else {
            metrics.reject("method-not-allowed")
            return .error(405, "\(Self.shownPath(req.path)) takes \(rule.methods.joined(separator: " or "))")
                .with(header: ("Allow", rule.methods.joined(separator: ", ")))
        }
        if (rule.appOnly || rule.appOnlyMethods.contains(req.method)) && role != .app {
            metrics.reject("forbidden")
            return .error(403, "the auditor token is read-only")
        }
        let limit = ["GET", "HEAD"].contains(req.method) ? 0 : rule.maxBody
        guard contentLength <= limit else {
            metrics.reject("too-large")
            return .error(
                413,
                limit == 0
                    ? "\(req.method) \(Self.shownPath(req.path)) takes no request body"
                    : "the body is larger than the \(limit) bytes this route takes")
        }
        return nil
    }

    enum Role { case app, auditor }

    /// Why a request was not authenticated: no bearer token, or one this node does not know.
    enum Refusal: Error {
        case missing, unknown

        var response: NodeResponse {
            switch self {
            case .missing:
                .error(401, "a bearer token is required (Authorization: Bearer <token>)")
                    .with(header: ("WWW-Authenticate", "Bearer"))
            case .unknown:
                .error(
                    401, "the bearer token is not one of this node's tokens (token or auditorToken of its node.json)"
                )
                .with(header: ("WWW-Authenticate", "Bearer error=\"invalid_token\""))
            }
        }
    }

    /// The role of the request's bearer token (RFC 6750 §2.1; the scheme is case-insensitive, RFC 9110 §11.1).
    /// Tokens are compared in constant time.
    func authenticate(_ authorization: String?) -> Result<Role, Refusal> {
        guard let a = authorization, String(decoding: a.utf8.prefix(7), as: UTF8.self).lowercased() == "bearer " else {
            return .failure(.missing)
        }
        let given = Array(a.utf8.dropFirst(7).drop { $0 == 0x20 })
        guard !given.isEmpty else { return .failure(.missing) }
        // Compared as SHA-256 digests, both tokens every time: neither a token's length nor which one matched
        // shows in the time taken.
        let g = SHA256.hash(given).bytes
        let isApp = constantTimeEqual(g, tokenDigests.app)
        let isAuditor = constantTimeEqual(g, tokenDigests.auditor)
        if isApp { return .success(.app) }
        if isAuditor { return .success(.auditor) }
        return .failure(.unknown)
    }

    func notFound(_ req: NodeRequest) -> NodeResponse {
        metrics.reject("not-found")
        return .error(404, "no route for \(req.method) \(Self.shownPath(req.path))")
    }

    /// A request path as an error may show it: each segment that is not plainly a route word, an org id or a number
    /// (one that could carry a customer identifier, as `/v1/subjects/<subject>/…` does) is shown as `{…}`, so no
    /// error echoes what may be personal (Specs/api.yaml, errors).
    static func shownPath(_ path: String) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).prefix(12)
        return segments.map { $0.isEmpty || LedgerError.isShowable($0) ? String($0) : "{…}" }.joined(separator: "/")
    }

    // MARK: tlog-tiles read API

    /// `GET /logs/<org>/checkpoint`, `…/checkpoints/<N>`, `…/tile/<L>/<N>[.p/<W>]`, `…/tile/entries/<N>[.p/<W>]`.
    func readLog(_ req: NodeRequest, _ parts: [Substring]) -> NodeResponse {
        guard let org = parts.first, let held = logs[String(org)] else {
            metrics.reject("not-found")
            return .error(404, "this node holds no log by that name")
        }
        let rest = parts.dropFirst().joined(separator: "/")
        if rest == "checkpoint" {
            guard let cp = servedCheckpoint(held) else { return .error(404, "log \(held.org) has no checkpoint yet") }
            return NodeResponse(
                status: 200, contentType: "text/plain; charset=utf-8", headers: [("Cache-Control", "no-store")],
                body: Array(cp.serialized.utf8))
        }
        if rest.hasPrefix("checkpoints/") {
            guard let n = TileAddress.decimal(rest.dropFirst("checkpoints/".count)), n > 0 else {
                return .error(400, "checkpoints/<N> takes a size N ≥ 1 in canonical decimal")
            }
            do {
                guard let cp = try held.read({ store throws(LedgerError) in try store.checkpoint(atLeast: n) }) else {
                    return .error(404, "log \(held.org) has no checkpoint of size \(n) or more here")
                }
                return NodeResponse(
                    status: 200, contentType: "text/plain; charset=utf-8", headers: [("Cache-Control", "no-store")],
                    body: Array(cp.serialized.utf8))
            } catch {
                log.error("cannot read a stored checkpoint", ["log": held.org, "error": error.message])
                return .error(500, "log \(held.org): stored data cannot be read")
            }
        }
        guard let t = TileAddress(path: rest) else {
            metrics.reject("bad-request")
            return .error(400, "not a tlog-tiles path: tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")
        }
        let size = held.head.size
        guard t.exists(inTreeOf: size) else {
            return .error(404, "log \(held.org) has no \(t) (size \(size))")
        }
        do {
            let bytes = try held.read { store throws(LedgerError) in try store.tile(t) }
            return .bytes(bytes, immutable: true)
        } catch {
            log.error("cannot serve a tile", ["log": held.org, "tile": t.description, "error": error.message])
            return .error(500, "log \(held.org): stored data cannot be read")
        }
    }

    /// The checkpoint served for a log: the owner's signed checkpoint at the size held here, with this node's
    /// cosignature (the tlog-mirror statement that it holds and verified that history) and, for the own log,
    /// the cosignatures collected from peers.
    func servedCheckpoint(_ held: HeldLog) -> SignedCheckpoint? {
        guard var cp = held.head.checkpoint else { return nil }
        if held.isOwn {
            if let c = held.latestCosigned, c.checkpoint == cp.checkpoint { cp = c }
            return cp
        }
        if let sig = try? signer.cosign(checkpointText: cp.checkpoint.text, time: UInt64(Date().timeIntervalSince1970))
        {
            cp.note.signatures.append(sig)
        }
        return cp
    }

    // MARK: Append

    /// `POST /v1/events`: one event object or an array of them; answered after the fsync.
    func appendEvents(_ body: [UInt8], respond: @escaping @Sendable (NodeResponse) -> Void) {
        let value: JSONValue
        do { value = try JSON.parse(body, maxDepth: 10, maxSize: 16 << 20) } catch {
            metrics.reject("bad-request")
            if Self.looksLikeJSONLines(body) {
                return respond(
                    .error(
                        400,
                        "the body holds several JSON values, one per line (JSON Lines): send one event object, or a "
                            + "JSON array of events [{…}, {…}]"))
            }
            return respond(.error(400, "the body is not valid JSON: \(error)"))
        }
        let items: [JSONValue]
        switch value {
        case .array(let a): items = a
        case .object: items = [value]
        default:
            metrics.reject("bad-request")
            return respond(.error(400, "the body must be one event object or an array of events"))
        }
        guard items.count <= 100_000 else {
            metrics.reject("too-large")
            return respond(.error(413, "at most 100000 events per request"))
        }
        guard !items.isEmpty else { return respond(.json(200, .array([]))) }
        // Events are validated and pseudonymised here, on this request's thread, against committed entries; only
        // a request that refers to own entries not yet committed is parsed by the writer, against its group.
        let events: EventWriter.Events
        switch parseCommitted(items) {
        case .parsed(let bodies): events = .parsed(bodies)
        case .needsWriter: events = .raw(items)
        case .rejected(let index, let message):
            metrics.reject("invalid-event")
            return respond(
                .error(
                    400, "event \(index): \(message); nothing of this request was appended",
                    [JSONMember("index", .number(String(index)))]))
        }
        let org = config.org
        writer.submit(events) { outcome in
            switch outcome {
            case .appended(let r):
                // Written directly: a batch of thousands is answered on the fsync path, so this must be cheap.
                var text = "["
                text.reserveCapacity(r.count * (org.utf8.count + 110))
                for (i, a) in r.enumerated() {
                    if i > 0 { text += "," }
                    text += "{\"org\":\"\(org)\",\"seq\":\(a.seq),\"leafHash\":\"\(a.leaf.hex)\"}"
                }
                text += "]\n"
                respond(NodeResponse(status: 200, contentType: "application/json", body: Array(text.utf8)))
            case .rejected(let index, let message):
                respond(
                    .error(
                        400, "event \(index): \(message); nothing of this request was appended",
                        [JSONMember("index", .number(String(index)))]))
            case .failed(let message):
                respond(.error(503, "not appended: \(message)"))
            }
        }
    }

    /// Whether `body` is JSON Lines (what `prov append` reads): a first line that is a JSON object by itself,
    /// followed by more.
    static func looksLikeJSONLines(_ body: [UInt8]) -> Bool {
        guard let nl = body.firstIndex(of: 0x0A), body[(nl + 1)...].contains(where: { $0 > 0x20 }),
            case .object? = try? JSON.parse(Array(body[..<nl]), maxDepth: 10)
        else { return false }
        return true
    }

    enum Parsed {
        case parsed([EntryBody])
        case needsWriter
        case rejected(index: Int, message: String)
    }

    /// Parses `items` against the entries committed so far.
    func parseCommitted(_ items: [JSONValue]) -> Parsed {
        let ownOrg = config.org
        let committed = own.head.size
        final class Flag: @unchecked Sendable {
            // Touched only by the parser's resolve calls on this thread.
            var pendingReference = false
        }
        let flag = Flag()
        let parser = EventParser(consortium: consortium, org: ownOrg, linkKey: linkKey) { [self] org, seq in
            if org == ownOrg && seq >= committed {
                flag.pendingReference = true
                return nil
            }
            return referenced(org, seq)
        }
        var bodies: [EntryBody] = []
        bodies.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            do throws(LedgerError) { bodies.append(try parser.parse(item)) } catch {
                return flag.pendingReference ? .needsWriter : .rejected(index: i, message: error.message)
            }
        }
        return .parsed(bodies)
    }

    // MARK: Status and metrics

    func status() -> JSONValue {
        let logs = self.logs
        var logMembers: [JSONMember] = []
        for org in logs.keys.sorted() {
            let held = logs[org]!
            let h = held.head
            var fields = [
                JSONMember("size", .number(String(h.size))),
                JSONMember("root", .string((h.checkpoint?.checkpoint.root ?? Merkle.emptyRoot).base64)),
                JSONMember("checkpoint", h.checkpoint.map { .string($0.serialized) } ?? .null),
            ]
            if let f = held.frozen { fields.append(JSONMember("frozen", .string(f))) }
            if let f = held.failure {
                fields.append(
                    JSONMember(
                        "writeFailure",
                        .object([
                            JSONMember("error", .string(f.message)),
                            JSONMember("since", .string(Timestamp.format(f.since))),
                        ])))
            }
            logMembers.append(JSONMember(org, .object(fields)))
        }
        let workers = self.workers
        let peers: [JSONValue] = workers.keys.sorted().map { org in
            let s = workers[org]!.snapshot
            return .object([
                JSONMember("org", .string(org)), JSONMember("connected", .bool(s.connected)),
                JSONMember("lastSeen", s.lastSeen.map { .string(Timestamp.format($0)) } ?? .null),
                JSONMember("address", .string(s.address)),
            ])
        }
        return .object([
            JSONMember("org", .string(config.org)), JSONMember("consortium", .string(consortium.name)),
            JSONMember("logs", .object(logMembers)), JSONMember("peers", .array(peers)),
            JSONMember("evidence", evidenceList()["evidence"] ?? .array([])),
            JSONMember("writingStopped", writingStopped.map { .string($0) } ?? .null),
            JSONMember("quarantined", .array(quarantinedList())),
            JSONMember("consortiumVersion", .number(String(consortium.version))), JSONMember("keys", keysJSON),
        ])
    }

    /// The copies set aside in the data directory: those of this start with the reason, older ones by folder.
    func quarantinedList() -> [JSONValue] {
        Quarantine.list(dataDirectory: config.dataDirectory).map { folder in
            var fields = [JSONMember("folder", .string(folder))]
            if let s = setAside.first(where: { $0.folder == folder }) {
                fields.insert(JSONMember("log", .string(s.org)), at: 0)
                fields.append(JSONMember("reason", .string(s.reason)))
            }
            return .object(fields)
        }
    }

    func exposition() -> String {
        let workers = self.workers
        let l = logs.keys.sorted().map { org -> (org: String, size: UInt64, seen: UInt64) in
            let size = logs[org]!.head.size
            let seen = workers.values.map { $0.seenSize(org) }.max() ?? 0
            return (org, size, max(seen, size))
        }
        let p = workers.keys.sorted().map { ($0, workers[$0]!.snapshot.connected) }
        var evidence: [String: UInt64] = [:]
        for k in keptEvidence.withLock({ Array($0.values) }) { evidence[k.org, default: 0] += 1 }
        return metrics.exposition(
            org: config.org, logs: l, peers: p, transport: transportCounters(), suppressedLogLines: log.suppressed,
            evidence: evidence, writing: writingStopped == nil,
            failing: Set(logs.values.filter { $0.failure != nil }.map(\.org)))
    }
}

extension NodeResponse {
    func with(header: (String, String)) -> NodeResponse {
        var r = self
        r.headers.append(header)
        return r
    }
}

/// Compares two byte strings without stopping at the first difference (bearer tokens).
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var d: UInt8 = 0
    for i in 0..<a.count { d |= a[i] ^ b[i] }
    return d == 0
}
