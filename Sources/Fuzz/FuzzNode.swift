import Dispatch
import Foundation
import ProvCrypto
import ProvLedger
import ProvNode
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One input as one request to a real in-process `Node` (Specs/fuzzing.md §The node): every route's parsing and
/// handling, from a hostile member on the peer listener, an auditor, the company's app, or a stranger. The node
/// must answer exactly once, within `answerTimeout` seconds, and never without a valid token on the API.
func fuzzNode(_ bytes: [UInt8]) {
    let h = NodeHarness.current()
    var r = FuzzReader(bytes)
    let (req, role) = h.request(&r)
    guard let req = h.guarded(req) else { return }
    let response = h.call(req)
    if NodeHarness.trace {
        let body = String(decoding: response.body.prefix(200), as: UTF8.self).debugDescription
        let line = "\(NodeHarness.describe(req))\n  -> \(response.status) \(response.contentType) \(body)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
    h.check(req, role: role, response)
}

/// Reads the decisions from the front of an input; past its end every read is 0, the natural choice, so a one-byte
/// input (the route) is the ordinary request of that route.
struct FuzzReader {
    let bytes: [UInt8]
    var at = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func byte() -> UInt8 {
        guard at < bytes.count else { return 0 }
        defer { at += 1 }
        return bytes[at]
    }

    mutating func pick(_ n: Int) -> Int { Int(byte()) % n }

    mutating func take(_ n: Int) -> ArraySlice<UInt8> {
        let start = min(at, bytes.count)
        let end = min(bytes.count, start + n)
        at = end
        return bytes[start..<end]
    }

    /// `count` bytes, little-endian.
    mutating func integer(_ count: Int) -> UInt64 { take(count).reversed().reduce(0) { $0 << 8 | UInt64($1) } }

    /// A length byte, then that many bytes (invalid UTF-8 becomes U+FFFD, as the HTTP layer hands it over).
    mutating func string() -> String { String(decoding: take(Int(byte() % 48)), as: UTF8.self) }

    mutating func rest() -> [UInt8] { Array(take(bytes.count)) }

    /// Edge values often: the values of `near` first (sizes around what is held), then powers of two and the
    /// ends of the integer types, where overflows hide.
    mutating func number(near: [UInt64] = []) -> UInt64 {
        switch byte() % 8 {
        case 0...3:
            let all = near + Self.edges
            return all[pick(all.count)]
        case 4: return UInt64(byte())
        case 5: return integer(2)
        default: return integer(8)
        }
    }

    static let edges: [UInt64] = [
        0, 1, 2, 3, 7, 255, 256, 257, 1000, 65535, 65536, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32, 1 << 53,
        (1 << 56) - 2, (1 << 56) - 1, 1 << 56, 1 << 57, 1 << 62, (1 << 63) - 1, 1 << 63, UInt64.max - 255,
        UInt64.max - 1, UInt64.max,
    ]

    /// `n` in decimal, mostly canonical, sometimes in a form a strict parser must refuse (or past 2^64).
    mutating func decimal(_ n: UInt64) -> String {
        switch byte() % 16 {
        case 0..<11: String(n)
        case 11: "0" + String(n)
        case 12: "-" + String(n)
        case 13: String(n) + "0"
        case 14: "+" + String(n)
        default: string()
        }
    }
}

/// A link to a peer that holds nothing and is never reached over a network: it answers that it holds no checkpoint
/// of any log (so the node's own log opens for writes, Specs/protocol.md §5.6, Opening), and fails every other
/// request. Nothing in the harness opens a socket.
final class EmptyPeerLink: PeerLink {
    struct NoNetwork: Error {}
    func request(_ method: String, _ path: String, body: [UInt8]?, contentType: String?) throws -> PeerResponse {
        guard method == "GET", path.hasPrefix("/logs/"), path.hasSuffix("/checkpoint") else { throw NoNetwork() }
        return PeerResponse(status: 404, contentType: "text/plain", body: Array("no such log\n".utf8))
    }
    func close() {}
    func interrupt() {}
}

/// The node under test, its consortium in a temporary folder (tmpfs when there is one, so an fsync costs nothing),
/// and what requests are made of: tokens, signed checkpoints, subject refs.
final class NodeHarness: @unchecked Sendable {
    static let org = "brand"
    static let orgs = ["brand", "retail", "care"]
    static let consortium = "fuzz"
    /// Entries the own log starts with: a full tile and a partial one at level 0, a partial one at level 1.
    static let seeded: UInt64 = 300
    /// The node is made anew once appends grew its own log by this much: the folder stays small, and views and
    /// reports of the subjects that inputs append to most stay quick.
    static let growthLimit: UInt64 = 1000
    static let answerTimeout: Double = 5
    /// `FUZZ_NODE_TRACE=1`: print each request and the answer (for replaying a finding; never while fuzzing).
    static let trace = ProcessInfo.processInfo.environment["FUZZ_NODE_TRACE"] == "1"

    // The harness in use; libFuzzer calls one input at a time, on one thread.
    nonisolated(unsafe) private static var instance: NodeHarness?
    nonisolated(unsafe) private static var folders: [String] = []
    private static let serverErrors = Mutex<Set<String>>([])
    nonisolated(unsafe) private static var tokenNames: [(String, String)] = []

    final class Size: Sendable { let value = Atomic<UInt64>(0) }

    let dir: String
    let node: Node
    let token: String
    let auditorToken: String
    let ownSize: Size
    /// Signed checkpoints of the copies (size 0, as held) and wrongly signed ones; the own log's is fetched fresh.
    let copyCheckpoints: [String]
    /// The refs of the seeded subject `email:user0@example.com`, as its view shows them.
    let refs: [String]

    static func current() -> NodeHarness {
        if let h = instance, h.ownSize.value.load(ordering: .relaxed) <= seeded + growthLimit { return h }
        if let old = instance {
            old.node.close()
            try? FileManager.default.removeItem(atPath: old.dir)
            folders.removeAll { $0 == old.dir }
        } else {
            removeStaleFolders()
            atexit { NodeHarness.atExit() }
        }
        do {
            let h = try NodeHarness()
            instance = h
            return h
        } catch { fatalError("the fuzz harness cannot make its node: \(error)") }
    }

    private static var base: String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: "/dev/shm", isDirectory: &isDir), isDir.boolValue,
            access("/dev/shm", W_OK) == 0
        {
            return "/dev/shm"
        }
        return NSTemporaryDirectory().hasSuffix("/")
            ? String(NSTemporaryDirectory().dropLast()) : NSTemporaryDirectory()
    }

    private static let prefix = "prov-fuzz-node-"

    /// Folders left by a harness process that crashed (libFuzzer stops at a finding without `atexit`).
    private static func removeStaleFolders() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        for name in names where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count).prefix { $0 != "-" }), pid != getpid() else { continue }
            if kill(pid, 0) == -1 && errno == ESRCH { try? FileManager.default.removeItem(atPath: base + "/" + name) }
        }
    }

    private static func atExit() {
        for f in folders { try? FileManager.default.removeItem(atPath: f) }
        let errors = serverErrors.withLock { $0 }
        if !errors.isEmpty {
            FileHandle.standardError.write(
                Data(("fuzz node: answers 500 seen:\n" + errors.sorted().joined(separator: "\n") + "\n").utf8))
        }
    }

    init() throws {
        let dir = Self.base + "/" + Self.prefix + "\(getpid())-\(UInt64(Date().timeIntervalSince1970 * 1e6))"
        Self.folders.append(dir)
        let setup = try ConsortiumSetup.initialize(
            directory: dir, orgs: Self.orgs, consortium: Self.consortium, basePort: 7400)
        var config = try NodeConfig.load(setup.nodeConfigs[Self.org]!)
        // Peers exist (status, metrics and add-checkpoint see workers) but are never reached; no periodic work.
        config.syncIntervalMs = 3_600_000
        config.headsIntervalMs = 3_600_000
        let node = try Node(config: config, log: .silent, makeLink: { _, _ in EmptyPeerLink() })
        let size = Size()
        node.onLogMoved = { org, n in
            if org == NodeHarness.org { size.value.store(n, ordering: .relaxed) }
        }
        node.start()

        // The own log's first entries: every kind of event, then consents up to `seeded`.
        var events = [
            Self.consent("email:user0@example.com", "give"), Self.consent("email:user1@example.com", "give"),
            #"{"type":"link","subjects":["email:user0@example.com","phone:+441632960001"],"evidence":"ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100","occurredAt":"2026-11-24T10:01:00Z"}"#,
            #"{"type":"interaction","subject":"email:user0@example.com","channel":"email","interaction":"newsletter","purposes":["dpv:DirectMarketing"],"legalBasis":"dpv:Consent","agent":{"id":"mailer","kind":"software"},"occurredAt":"2026-11-24T12:00:00Z","consentRef":{"org":"brand","seq":0}}"#,
            #"{"type":"share","subject":"email:user0@example.com","recipient":"retail","purposes":["dpv:DirectMarketing"],"dataCategories":["dpv:Contact"],"occurredAt":"2026-11-24T12:30:00Z","derivedFrom":[{"org":"brand","seq":0}]}"#,
            Self.consent("email:user1@example.com", "withdraw"),
        ]
        while events.count < Int(Self.seeded) {
            events.append(Self.consent("email:user\(events.count)@example.com", "give"))
        }
        let posted = Self.call(
            node,
            NodeRequest(
                listener: .api, method: "POST", path: "/v1/events", authorization: "Bearer \(config.token)",
                body: Array(("[" + events.joined(separator: ",") + "]").utf8)))
        guard posted.status == 200, size.value.load(ordering: .relaxed) == Self.seeded else {
            fatalError("the harness's seed events were refused: \(String(decoding: posted.body, as: UTF8.self))")
        }
        let view = Self.call(
            node,
            NodeRequest(
                listener: .api, method: "GET", path: "/v1/subjects/email:user0%40example.com/view",
                authorization: "Bearer \(config.auditorToken)"))

        func signer(_ org: String) throws -> NoteSigner { try SigningKeyFile.read("\(dir)/\(org)/\(org).key") }
        func signed(_ org: String, _ root: SHA256Digest, by key: NoteSigner) throws -> String {
            try SignedCheckpoint.sign(
                Checkpoint(origin: "\(Self.consortium)/\(org)", size: 0, root: root), with: key
            ).serialized
        }
        let empty = SHA256.hash([UInt8]())
        copyCheckpoints = [
            try signed("retail", empty, by: signer("retail")), try signed("care", empty, by: signer("care")),
            try signed("retail", SHA256.hash("not empty"), by: signer("retail")),
            try signed("retail", empty, by: signer("brand")), try signed("nobody", empty, by: signer("brand")),
        ]
        refs = (try? JSON.parse(view.body))?["refs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        self.dir = dir
        self.node = node
        self.ownSize = size
        token = config.token
        auditorToken = config.auditorToken
        Self.tokenNames = [(token, "<app token>"), (auditorToken, "<auditor token>")]
    }

    static func consent(_ subject: String, _ event: String) -> String {
        #"{"type":"consent","subject":"\#(subject)","event":"\#(event)","purposes":["dpv:DirectMarketing"],"controllers":["brand"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#
    }

    // MARK: Calling the node

    /// The node's one answer, waited for with a bound: none in time, or a second one, is a finding.
    static func call(_ node: Node, _ req: NodeRequest) -> NodeResponse {
        let box = Mutex<(count: Int, response: NodeResponse?)>((0, nil))
        let done = DispatchSemaphore(value: 0)
        node.handle(req) { r in
            let n = box.withLock { b in
                b.count += 1
                if b.count == 1 { b.response = r }
                return b.count
            }
            if n > 1 { fatalError("the node answered twice: \(describe(req))") }
            done.signal()
        }
        guard done.wait(timeout: .now() + answerTimeout) == .success else {
            fatalError("the node did not answer within \(answerTimeout) s: \(describe(req))")
        }
        return box.withLock { $0.response! }
    }

    func call(_ req: NodeRequest) -> NodeResponse { Self.call(node, req) }

    /// The request in one line, the node's tokens named rather than shown.
    static func describe(_ req: NodeRequest) -> String {
        var authorization = req.authorization.map { $0.count > 80 ? "(\($0.count) characters)" : $0.debugDescription }
        for (token, name) in tokenNames { authorization = authorization?.replacingOccurrences(of: token, with: name) }
        return "\(req.listener) \(req.method.debugDescription) \(req.path.debugDescription)"
            + (req.query.map { "?" + $0.debugDescription } ?? "") + ", Authorization " + (authorization ?? "none")
            + ", Accept \(req.accept?.debugDescription ?? "none"), \(req.body.count) body bytes"
    }

    enum Role { case none, app, auditor }

    /// The role the node must grant `authorization` (RFC 6750 bearer tokens, the scheme in any case).
    func role(_ authorization: String?) -> Role {
        guard let a = authorization, String(decoding: a.utf8.prefix(7), as: UTF8.self).lowercased() == "bearer " else {
            return .none
        }
        let given = String(decoding: a.utf8.dropFirst(7).drop { $0 == 0x20 }, as: UTF8.self)
        return given == token ? .app : given == auditorToken ? .auditor : .none
    }

    /// What the node answered must be an answer: a status, a type, no token, no access without one.
    func check(_ req: NodeRequest, role: Role, _ r: NodeResponse) {
        guard (100...599).contains(r.status), !r.contentType.isEmpty else {
            fatalError("answer \(r.status) with content type \(r.contentType.debugDescription): \(Self.describe(req))")
        }
        for secret in [token, auditorToken] where Self.contains(r.body, Array(secret.utf8)) {
            fatalError("the answer quotes a bearer token: \(Self.describe(req))")
        }
        if req.listener == .api, req.path != "/healthz", role == .none, r.status < 400 {
            fatalError("the API answered \(r.status) without a valid token: \(Self.describe(req))")
        }
        if req.listener == .api, role == .auditor, req.method == "POST", r.status < 400 {
            fatalError("the API took a POST with the auditor's read-only token: \(Self.describe(req))")
        }
        // Nothing the fuzzer sends is evidence (it holds no member's key to sign a fork with): no request may
        // freeze a log here or stop the own log.
        if req.path == "/add-checkpoint" || req.path == "/evidence" {
            let s = call(
                NodeRequest(listener: .api, method: "GET", path: "/v1/status", authorization: "Bearer \(token)"))
            let status = try? JSON.parse(s.body)
            let frozen = (status?["logs"]?.objectValue ?? []).filter { $0.value["frozen"] != nil }.map(\.key)
            if !frozen.isEmpty || status?["writingStopped"]?.stringValue != nil {
                fatalError(
                    "a request that is no evidence froze \(frozen) or stopped the own log: \(Self.describe(req))")
            }
        }
        if r.status == 500 {
            let what = "\(req.method) \(req.path.prefix(40)): \(String(decoding: r.body.prefix(160), as: UTF8.self))"
            Self.serverErrors.withLock { if $0.count < 50 { $0.insert(what) } }
        }
    }

    /// Whether `needle` occurs in `haystack` (by hand: Foundation's search costs more than the request).
    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, haystack.count >= needle.count else { return needle.isEmpty }
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }

    /// The request, or nil for one the harness does not send (long legitimate waits).
    func guarded(_ req: NodeRequest) -> NodeRequest? {
        if req.path == "/add-checkpoint", let a = try? AddCheckpoint(parsing: req.body) {
            let c = a.checkpoint.checkpoint
            // Consistent and ahead of a copy: the node would wait up to 10 s for a pull that cannot happen here.
            // (Copies hold nothing; the own log's larger checkpoints are refused at once.)
            if c.origin != "\(Self.consortium)/\(Self.org)" && c.size > 0 { return nil }
        }
        return req
    }

    func ownCheckpoint() -> SignedCheckpoint? {
        let r = call(NodeRequest(listener: .peer(org: "retail"), method: "GET", path: "/logs/\(Self.org)/checkpoint"))
        return try? SignedCheckpoint(parsing: String(decoding: r.body, as: UTF8.self))
    }

    // MARK: Requests from bytes

    enum Route: Int, CaseIterable {
        case checkpoint, checkpoints, tile, entryBundle, otherLogPath, addCheckpoint, events, status, metrics, healthz
        case subjectView, subjectTimeline, subjectReport, permit, compliance, entry, raw
    }

    /// Layout: route, listener, method, Authorization, Accept, then the route's own choices, then the body.
    func request(_ r: inout FuzzReader) -> (NodeRequest, Role) {
        let route = Route(rawValue: r.pick(Route.allCases.count))!
        let listenerChoice = r.pick(10)
        let methodChoice = r.pick(16)
        let authorization = self.authorization(&r)
        let accept = self.accept(&r)
        let (path, query, natural, body) = target(route, &r)
        let listener: NodeRequest.Listener
        switch listenerChoice {
        case 0...3:
            switch route {
            case .addCheckpoint: listener = .peer(org: "retail")
            case .checkpoint, .checkpoints, .tile, .entryBundle, .otherLogPath:
                listener = listenerChoice % 2 == 0 ? .api : .peer(org: "retail")
            default: listener = .api
            }
        case 4: listener = .api
        case 5: listener = .peer(org: "retail")
        case 6: listener = .peer(org: "care")
        case 7: listener = .peer(org: Self.org)
        case 8: listener = .peer(org: "mallory")
        default: listener = .peer(org: r.string())
        }
        let method: String
        switch methodChoice {
        case 0...7: method = natural
        case 8: method = "GET"
        case 9: method = "HEAD"
        case 10: method = "POST"
        case 11: method = "PUT"
        case 12: method = "DELETE"
        case 13: method = "get"
        case 14: method = ""
        default: method = r.string()
        }
        let req = NodeRequest(
            listener: listener, method: method, path: path, query: query, authorization: authorization,
            accept: accept, body: body ?? r.rest())
        return (req, role(authorization))
    }

    func authorization(_ r: inout FuzzReader) -> String? {
        switch r.pick(16) {
        case 0...5: "Bearer \(token)"
        case 6...9: "Bearer \(auditorToken)"
        case 10: nil
        case 11: "bearer \(token)"
        case 12: "BEARER   \(auditorToken)"
        case 13: "Bearer \(token.dropLast())A"
        case 14: "Bearer "
        default: r.string()
        }
    }

    func accept(_ r: inout FuzzReader) -> String? {
        switch r.pick(8) {
        case 0...3: nil
        case 4: "application/json"
        case 5: "text/plain"
        case 6: "text/html, */*"
        default: r.string()
        }
    }

    func org(_ r: inout FuzzReader) -> String {
        switch r.pick(8) {
        case 0...2: Self.org
        case 3: "retail"
        case 4: "care"
        case 5: "nobody"
        case 6: ""
        default: r.string()
        }
    }

    /// Path, query, the route's natural method, and the body when the route builds one.
    func target(_ route: Route, _ r: inout FuzzReader) -> (String, String?, String, [UInt8]?) {
        let own = ownSize.value.load(ordering: .relaxed)
        switch route {
        case .checkpoint:
            return ("/logs/\(org(&r))/checkpoint", extraQuery(&r), "GET", nil)
        case .checkpoints:
            let o = org(&r)
            let held = o == Self.org ? own : 0
            return ("/logs/\(o)/checkpoints/\(r.decimal(r.number(near: [held, held + 1, held &- 1])))", nil, "GET", nil)
        case .tile, .entryBundle:
            let o = org(&r)
            let held = o == Self.org ? own : 0
            return ("/logs/\(o)/" + tilePath(entries: route == .entryBundle, held: held, &r), nil, "GET", nil)
        case .otherLogPath:
            let odd = [
                "", "tile", "tile/", "tile/0", "tile/0/", "tile/entries", "checkpoints", "checkpoints/",
                "tile/0/x000/000", "tile/0/000.p/0", "tile/0/000.p/256", "tile/64/000", "tile/0/0", "tile/0/1000",
                "checkpoint/", "tile/0/000.p/", "tile/entries/000.p/x1",
            ]
            let rest = r.byte() < 128 ? odd[r.pick(odd.count)] : r.string()
            return ("/logs/\(org(&r))/" + rest, nil, "GET", nil)
        case .addCheckpoint:
            return ("/add-checkpoint", nil, "POST", addCheckpointBody(&r))
        case .events:
            return ("/v1/events", nil, "POST", eventsBody(&r))
        case .status:
            return ("/v1/status", extraQuery(&r), "GET", nil)
        case .metrics:
            return ("/metrics", extraQuery(&r), "GET", nil)
        case .healthz:
            return ("/healthz", extraQuery(&r), "GET", nil)
        case .subjectView, .subjectTimeline, .subjectReport:
            let s = encoded(subject(&r), &r)
            var params: [(String, String)] = []
            switch route {
            case .subjectTimeline:
                switch r.pick(4) {
                case 0: params.append(("limit", "100"))
                case 1: params.append(("limit", r.decimal(r.number(near: [1, 1000, 1001]))))
                case 2: params.append(("limit", "-" + String(r.number())))
                default: break
                }
                if r.pick(2) == 1 { params.append(("before", cursor(&r))) }
            default:
                if r.pick(2) == 1 { params.append(("at", time(&r))) }
            }
            let name = route == .subjectView ? "view" : route == .subjectTimeline ? "timeline" : "report"
            return ("/v1/subjects/\(s)/\(name)", query(params, &r), "GET", nil)
        case .permit:
            let purposes = ["dpv:DirectMarketing", "dpv:CustomerCare", "dpv:SellProducts", "dpv:Nothing"]
            let channels = ["web", "sms", "voice", "email", "store", "pigeon"]
            var params: [(String, String)] = []
            if r.pick(8) != 7 { params.append(("subject", subject(&r))) }
            if r.pick(8) != 7 { params.append(("org", org(&r))) }
            if r.pick(8) != 7 { params.append(("purpose", r.byte() < 200 ? purposes[r.pick(4)] : r.string())) }
            if r.pick(2) == 1 { params.append(("channel", r.byte() < 200 ? channels[r.pick(6)] : r.string())) }
            if r.pick(2) == 1 { params.append(("at", time(&r))) }
            return ("/v1/permit", query(params, &r), "GET", nil)
        case .compliance:
            var params: [(String, String)] = []
            if r.pick(8) != 7 { params.append(("org", org(&r))) }
            if r.pick(2) == 1 { params.append(("from", time(&r))) }
            if r.pick(2) == 1 { params.append(("to", time(&r))) }
            return ("/v1/compliance", query(params, &r), "GET", nil)
        case .entry:
            let o = org(&r)
            let held = o == Self.org ? own : 0
            let seq = r.decimal(r.number(near: [0, held &- 1, held, held + 1, 255, 256]))
            // Half the time the consent receipt page of the entry (Specs/view.md §8.6).
            return ("/v1/entries/\(o)/\(seq)" + (r.pick(2) == 1 ? "/receipt.html" : ""), nil, "GET", nil)
        case .raw:
            let odd = [
                "", "/", "//", "/logs", "/logs/", "/v1", "/v1/", "/v1/subjects", "/v1/subjects//view",
                "/v1/subjects/a/view/", "/v1/entries/brand", "/v1/entries/brand/1/2", "/v1/events/",
                "/add-checkpoint/", "/v1/status/", "/healthz/", "/v1/entries//0", "/v1/subjects/%/view",
            ]
            let path = r.byte() < 128 ? odd[r.pick(odd.count)] : "/" + r.string()
            return (path, extraQuery(&r), "GET", nil)
        }
    }

    /// `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`, around what the log holds, sometimes not canonical.
    func tilePath(entries: Bool, held: UInt64, _ r: inout FuzzReader) -> String {
        var level: UInt64 = 0
        var levelText = "entries"
        if !entries {
            switch r.pick(8) {
            case 0: level = 0
            case 1: level = 1
            case 2: level = 2
            case 3: level = 63
            case 4: level = 64
            case 5: level = r.number()
            default: level = UInt64(r.byte() % 70)
            }
            levelText = r.decimal(level)
        }
        let available = level < 64 ? held >> (8 * level) : 0
        let index = r.number(near: [0, available / 256, available / 256 + 1, available / 256 &- 1])
        var width: UInt64?
        switch r.pick(4) {
        case 0:
            let full = index < available / 256 || available % 256 == 0
            width = full ? nil : available % 256
        case 1: width = nil
        case 2: width = UInt64(r.byte())
        default: width = r.number()
        }
        var path = "tile/\(levelText)/" + TileAddress.indexPath(index) + (width.map { ".p/\($0)" } ?? "")
        switch r.pick(16) {
        case 13: path = "tile/\(levelText)/x000/" + TileAddress.indexPath(index)
        case 14: path = path.replacingOccurrences(of: "/x", with: "/")
        case 15: path += r.string()
        default: break
        }
        return path
    }

    /// A subject; `fresh` instead of the seeded one for events, so that no one subject's view grows with appends.
    func subject(_ r: inout FuzzReader, fresh: String? = nil) -> String {
        switch r.pick(8) {
        case 0: fresh ?? "email:user0@example.com"
        case 1: "phone:+441632960001"
        case 2: refs.first ?? "ref:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        case 3: "ref:" + r.string()
        case 4: "email:user\(r.number(near: [1, 299, 300]))@example.com"
        case 5: "cust:brand:C1"
        case 6: ""
        default: r.string()
        }
    }

    /// A time parameter: RFC 3339, milliseconds since 1970, or neither.
    func time(_ r: inout FuzzReader) -> String {
        switch r.pick(8) {
        case 0: return "2026-11-24T10:00:00Z"
        case 1: return r.decimal(r.number(near: [1_795_000_000_000, 253_402_300_799_999]))
        case 2: return "9999-12-31T23:59:59.999Z"
        case 3: return "0000-01-01T00:00:00Z"
        case 4:
            let (y, mo, d, h) = (r.number(), r.byte(), r.byte(), r.byte())
            return "\(y)-\(mo)-\(d)T\(h):00:00.\(r.number())Z"
        case 5: return "2026-11-24T10:00:00" + ["+23:59", "-24:00", "+99:99", "+01", "z", ".Z"][r.pick(6)]
        case 6: return r.string()
        default: return String(r.number())
        }
    }

    /// A timeline cursor `<wall>.<counter>.<org>.<seq>`, a time, or anything.
    func cursor(_ r: inout FuzzReader) -> String {
        switch r.pick(4) {
        case 0: "\(r.decimal(r.number())).\(r.decimal(r.number())).\(org(&r)).\(r.decimal(r.number()))"
        case 1: time(&r)
        default: r.string()
        }
    }

    func query(_ params: [(String, String)], _ r: inout FuzzReader) -> String? {
        var q = params.map { "\($0.0)=\(encoded($0.1, &r))" }.joined(separator: "&")
        switch r.pick(8) {
        case 6: q += "&" + r.string()
        case 7: q = r.string()
        default: break
        }
        return params.isEmpty && q.isEmpty ? nil : q
    }

    /// No query usually; sometimes anything.
    func extraQuery(_ r: inout FuzzReader) -> String? { r.pick(8) == 7 ? r.string() : nil }

    /// Percent-encoded mostly; sometimes raw (spaces, `+`, `%`, `&` and `/` as they come).
    func encoded(_ s: String, _ r: inout FuzzReader) -> String {
        guard r.pick(8) < 6 else { return s }
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"), UInt8(ascii: ":"):
                out.append(b)
            default: out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `POST /add-checkpoint`: the own log's checkpoint as served, or a copy's signed checkpoint, with a fuzzed
    /// `old` and proof lines; or the input's bytes.
    func addCheckpointBody(_ r: inout FuzzReader) -> [UInt8]? {
        let kind = r.pick(4)
        guard kind < 3 else { return nil }
        let note: String
        let size: UInt64
        if kind == 0, let cp = ownCheckpoint() {
            note = cp.serialized
            size = cp.checkpoint.size
        } else {
            note = copyCheckpoints[r.pick(copyCheckpoints.count)]
            size = 0
        }
        var body = "old \(r.decimal(r.number(near: [size, size &- 1, size + 1])))\n"
        for _ in 0..<(r.pick(4) == 3 ? r.pick(66) : 0) {
            body += r.pick(16) == 15 ? r.string() + "\n" : Data(r.take(32)).base64EncodedString() + "\n"
        }
        body += "\n" + note
        // Extra signature lines, or a change to the note's text, or a second blank line.
        switch r.pick(8) {
        case 5: body += "— " + r.string() + "\n"
        case 6: body = body.replacingOccurrences(of: "\n\n", with: "\n\n\n")
        case 7: body += r.string()
        default: break
        }
        return Array(body.utf8)
    }

    /// `POST /v1/events`: events from templates with fuzzed subjects, times and references; or the input's bytes.
    func eventsBody(_ r: inout FuzzReader) -> [UInt8]? {
        guard r.pick(4) == 0 else { return nil }
        let own = ownSize.value.load(ordering: .relaxed)
        var events: [String] = []
        for _ in 0...r.pick(4) {
            let subject = JSONValue.string(self.subject(&r, fresh: "email:new\(own)@example.com")).serialized
            let at = JSONValue.string(time(&r)).serialized
            let o = JSONValue.string(org(&r)).serialized
            let seq = r.decimal(r.number(near: [0, own &- 1, own, own + 1]))
            let hex = r.take(32).map { String(UInt16($0) | 0x100, radix: 16).dropFirst() }.joined()
            switch r.pick(8) {
            case 0:
                events.append(
                    #"{"type":"consent","subject":\#(subject),"event":"give","purposes":["dpv:DirectMarketing"],"controllers":["brand"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":\#(at)}"#
                )
            case 1:
                events.append(
                    #"{"type":"consent","subject":\#(subject),"event":"withdraw","purposes":["dpv:DirectMarketing"],"controllers":[\#(o)],"channel":"sms","method":"sms-keyword","legalBasis":"dpv:Consent","occurredAt":\#(at)}"#
                )
            case 2:
                events.append(
                    #"{"type":"interaction","subject":\#(subject),"channel":"email","interaction":"newsletter","purposes":["dpv:DirectMarketing"],"legalBasis":"dpv:Consent","agent":{"id":"mailer","kind":"software"},"occurredAt":\#(at),"consentRef":{"org":\#(o),"seq":\#(seq)}}"#
                )
            case 3:
                events.append(
                    #"{"type":"share","subject":\#(subject),"recipient":\#(o),"purposes":["dpv:DirectMarketing"],"dataCategories":["dpv:Contact"],"occurredAt":\#(at),"derivedFrom":[{"org":"brand","seq":\#(seq)}]}"#
                )
            case 4:
                events.append(
                    #"{"type":"link","subjects":[\#(subject),"phone:+441632960001"],"evidence":"\#(hex)","occurredAt":\#(at)}"#
                )
            case 5:
                events.append(
                    #"{"type":"unlink","subjects":[\#(subject),"phone:+441632960001"],"occurredAt":\#(at)}"#)
            case 6:
                events.append(
                    #"{"type":"interaction","subject":\#(subject),"channel":"voice","interaction":"support-call","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"E-1","kind":"person","onBehalfOf":\#(o)},"occurredAt":\#(at),"derivedFrom":[{"org":\#(o),"seq":\#(seq),"leaf":"\#(hex)"}],"detail":"\#(hex)"}"#
                )
            default:
                events.append(
                    #"{"type":\#(JSONValue.string(r.string()).serialized),"subject":\#(subject),"occurredAt":\#(at)}"#)
            }
        }
        switch r.pick(4) {
        case 2: return Array(events[0].utf8)
        case 3: return Array(events.joined(separator: "\n").utf8)
        default: return Array(("[" + events.joined(separator: ",") + "]").utf8)
        }
    }
}
