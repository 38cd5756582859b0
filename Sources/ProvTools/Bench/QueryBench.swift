import Foundation
import ProvCrypto
import ProvLedger
import ProvNet
import ProvNode
import ProvView
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `prov bench query`: the view layer in process. One log of N entries about S customers (consents with expiry and
/// recipients, withdrawals, renewals, interactions relying on consent and on other bases, shares, links), then per
/// run: the offline index build from the data directory (and `prov verify` of the same directory, for the rate it
/// must match), the index's memory, and the latency of `permit` and `view` for random customers by raw identifier.
package enum QueryBench {
    /// Writes one log of `n` entries about `subjects` customers in a folder under `base` (removed at the end), then
    /// measures `runs` times with `queries` permit queries (and a tenth as many views) each, then once over HTTP.
    package static func run(
        entries n: Int, subjects: Int, runs: Int, queries: Int, heavy: Int = 100_000, directory base: String,
        progress: ProgressLine
    ) throws -> JSONValue {
        let dir = "\(base)/prov-bench-query-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A consortium on disk, so that a real provd can serve the same log over HTTP afterwards.
        let setup = try ConsortiumSetup.initialize(
            directory: dir + "/consortium", orgs: ["brand", "retail", "bank"], consortium: "bench", basePort: 7400)
        let nodeConfig = setup.nodeConfigs["brand"]!
        try NodeFile.update(nodeConfig) { c in
            c["peer"] = .string("127.0.0.1:0")
            c["api"] = .string("127.0.0.1:0")
            c["peers"] = .array([])
            c["headsIntervalMs"] = .number("3600000")
        }
        let fixture = Bench.Fixture(
            dir: dir + "/consortium/brand/data", consortium: try Consortium.load(setup.descriptor),
            signer: try SigningKeyFile.read(dir + "/consortium/brand/brand.key"),
            linkKey: try LinkKey.load(dir + "/consortium/link.key"))
        try build(fixture, n: n, subjects: subjects, heavy: heavy, progress: progress)
        progress.clear()

        var results: [Run] = []
        for r in 0..<runs {
            progress.update("query bench run \(r + 1)/\(runs)")
            results.append(try measure(fixture, n: n + heavy + 1, subjects: subjects, queries: queries))
            progress.clear()
        }
        progress.update("query bench: provd serving the same log over HTTP")
        let http = try measureHTTP(config: nodeConfig, subjects: subjects, queries: queries, progress: progress)
        let heavyHTTP = try measureHistory(config: nodeConfig, progress: progress)
        progress.clear()
        func median(_ f: (Run) -> Double) -> Double { results.map(f).sorted()[results.count / 2] }
        func each(_ f: (Run) -> Double) -> JSONValue { .array(results.map { .number(Bench.fmt(f($0))) }) }
        let fields: [JSONMember] = [
            JSONMember("bench", .string("query")), JSONMember("entries", .number(String(n + heavy + 1))),
            JSONMember("subjects", .number(String(subjects))), JSONMember("runs", .number(String(runs))),
            JSONMember("index_build_entries_per_second", .number(String(Int(median(\.buildRate))))),
            JSONMember(
                "index_build_entries_per_second_each_run", .array(results.map { .number(String(Int($0.buildRate))) })),
            JSONMember("index_build_hashing_entries_per_second", .number(String(Int(median(\.hashingRate))))),
            JSONMember(
                "index_build_hashing_entries_per_second_each_run",
                .array(results.map { .number(String(Int($0.hashingRate))) })),
            JSONMember("verify_entries_per_second", .number(String(Int(median(\.verifyRate))))),
            JSONMember(
                "verify_entries_per_second_each_run", .array(results.map { .number(String(Int($0.verifyRate))) })),
            JSONMember("index_build_cpu_ns_per_entry", .number(Bench.fmt(median(\.buildCPU)))),
            JSONMember("index_build_hashing_cpu_ns_per_entry", .number(Bench.fmt(median(\.hashingCPU)))),
            JSONMember("verify_cpu_ns_per_entry", .number(Bench.fmt(median(\.verifyCPU)))),
            JSONMember("index_bytes_per_entry", .number(Bench.fmt(median(\.indexBytes)))),
            // Growth of resident memory while the first index was built: later runs reuse what earlier ones freed.
            JSONMember("index_rss_bytes_per_entry_first_run", .number(Bench.fmt(results[0].rssBytes))),
            JSONMember("permit_queries", .number(String(queries))),
            JSONMember("permit_p50_us", .number(Bench.fmt(median(\.permitP50)))),
            JSONMember("permit_p99_us", .number(Bench.fmt(median(\.permitP99)))),
            JSONMember("permit_p99_us_each_run", each(\.permitP99)),
            JSONMember("view_queries", .number(String(max(100, queries / 10)))),
            JSONMember("view_p50_us", .number(Bench.fmt(median(\.viewP50)))),
            JSONMember("view_p99_us", .number(Bench.fmt(median(\.viewP99)))),
            JSONMember("view_p99_us_each_run", each(\.viewP99)),
            JSONMember("view_timeline_items_mean", .number(Bench.fmt(median(\.viewItems)))),
            JSONMember("permits_allowed_fraction", .number(Bench.fmt(median(\.allowed)))),
            // One customer holding `heavy` entries against one holding a single consent (Specs/view.md §10.1).
            JSONMember("history_customer_entries", .number(String(heavy))),
            JSONMember("permit_one_entry_per_second", .number(String(Int(median(\.oneEntryRate))))),
            JSONMember("permit_history_per_second", .number(String(Int(median(\.historyRate))))),
            JSONMember("permit_history_ratio", .number(Bench.fmt(median { $0.historyRate / $0.oneEntryRate }))),
            JSONMember(
                "http_permit_one_entry_requests_per_second", .number(String(Int(heavyHTTP.oneEntryRate)))),
            JSONMember("http_permit_history_requests_per_second", .number(String(Int(heavyHTTP.historyRate)))),
            JSONMember(
                "http_permit_history_ratio", .number(Bench.fmt(heavyHTTP.historyRate / heavyHTTP.oneEntryRate))),
            JSONMember("http_node_start_seconds", .number(Bench.fmt(http.startSeconds))),
            JSONMember("http_permit_p50_us", .number(Bench.fmt(http.permitP50))),
            JSONMember("http_permit_p99_us", .number(Bench.fmt(http.permitP99))),
            JSONMember("http_view_p50_us", .number(Bench.fmt(http.viewP50))),
            JSONMember("http_view_p99_us", .number(Bench.fmt(http.viewP99))),
            JSONMember("http_permit_requests_per_second", .number(String(Int(http.requestsPerSecond)))),
            JSONMember("http_connections", .number(String(http.connections))),
            JSONMember("http_node_max_rss_bytes", .number(String(http.nodeRSS))),
            JSONMember("max_rss_bytes", .number(String(Bench.maxRSS()))),
        ]
        return .object(fields)
    }

    struct Run {
        var buildRate: Double
        var verifyRate: Double
        /// The build that hashes every entry instead of taking the index file's leaf hashes.
        var hashingRate: Double
        /// CPU time (all threads) per entry, ns: steadier than wall time on a shared machine.
        var buildCPU: Double
        var hashingCPU: Double
        var verifyCPU: Double
        var indexBytes: Double
        var rssBytes: Double
        var permitP50: Double
        var permitP99: Double
        var viewP50: Double
        var viewP99: Double
        var viewItems: Double
        var allowed: Double
        /// In-process permits per second for the customer with one consent and for the one with a long history.
        var oneEntryRate: Double
        var historyRate: Double
    }

    struct HTTPRun {
        var startSeconds: Double
        var permitP50: Double
        var permitP99: Double
        var viewP50: Double
        var viewP99: Double
        var requestsPerSecond: Double
        var connections: Int
        var nodeRSS: Int
    }

    /// The same queries over HTTP against a real provd that holds the log (it builds its view when it opens): the
    /// latency of `permit` and `view` one request at a time over keep-alive, then `permit` requests per second
    /// from several kept-alive connections at once.
    static func measureHTTP(config: String, subjects: Int, queries: Int, progress: ProgressLine) throws -> HTTPRun {
        let t0 = Bench.clock()
        let node = try NodeProcess(org: "brand", config: config)
        defer { node.stop() }
        let startSeconds = Bench.clock() - t0
        let token = try NodeFile.read(config)["auditorToken"]!.stringValue!
        let headers: HTTPHeaders = ["Authorization": "Bearer \(token)"]
        func permitPath(_ s: Int) -> String {
            "/v1/permit?subject=\(NodeAPI.percentEncoded(identifier(s)))&org=retail&purpose=dpv:DirectMarketing&channel=email"
        }
        let client = try HTTPClient(address: node.api)
        var rng = SystemRandomNumberGenerator()
        let count = min(queries, 20_000)
        var permit: [Double] = []
        for _ in 0..<count {
            let path = permitPath(Int.random(in: 0..<subjects, using: &rng))
            let t = Bench.clock()
            let r = try client.get(path, headers: headers)
            permit.append((Bench.clock() - t) * 1e6)
            guard r.status == 200 else { throw LedgerError(.io, "bench: permit answered \(r.status)") }
        }
        var view: [Double] = []
        for _ in 0..<max(100, count / 10) {
            let path =
                "/v1/subjects/\(NodeAPI.percentEncoded(identifier(Int.random(in: 0..<subjects, using: &rng))))/view"
            let t = Bench.clock()
            let r = try client.get(path, headers: headers)
            view.append((Bench.clock() - t) * 1e6)
            guard r.status == 200 else { throw LedgerError(.io, "bench: view answered \(r.status)") }
        }
        // Throughput: several connections, each one request at a time, for a fixed time.
        let connections = 8
        let paths = (0..<4096).map { _ in permitPath(Int.random(in: 0..<subjects)) }
        let rate = try requestRate(node: node, headers: headers, paths: paths, connections: connections) {
            progress.update("query bench: \($0) permit requests over HTTP")
        }
        return HTTPRun(
            startSeconds: startSeconds, permitP50: Bench.percentile(permit, 0.5),
            permitP99: Bench.percentile(permit, 0.99), viewP50: Bench.percentile(view, 0.5),
            viewP99: Bench.percentile(view, 0.99), requestsPerSecond: rate, connections: connections,
            nodeRSS: node.maxRSS)
    }

    /// Requests per second that `connections` kept-alive connections get, each one request at a time over `paths`
    /// in turn, for three seconds; every request must be answered 200.
    static func requestRate(
        node: NodeProcess, headers: HTTPHeaders, paths: [String], connections: Int, progress: (Int) -> Void
    ) throws -> Double {
        let done = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let group = DispatchGroup()
        for c in 0..<connections {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                guard let client = try? HTTPClient(address: node.api) else { return }
                var i = c
                while !stop.load(ordering: .relaxed) {
                    if let r = try? client.get(paths[i % paths.count], headers: headers), r.status == 200 {
                        done.add(1, ordering: .relaxed)
                    } else {
                        failed.add(1, ordering: .relaxed)
                    }
                    i += connections
                }
            }
        }
        let t1 = Bench.clock()
        while Bench.clock() - t1 < 3 {
            usleep(100_000)
            progress(done.load(ordering: .relaxed))
        }
        stop.store(true, ordering: .relaxed)
        group.wait()
        let secs = Bench.clock() - t1
        guard failed.load(ordering: .relaxed) == 0 else {
            throw LedgerError(.io, "bench: \(failed.load(ordering: .relaxed)) requests failed")
        }
        return Double(done.load(ordering: .relaxed)) / secs
    }

    /// Permits per second over HTTP (8 connections) for the customer with one consent, then for the one with a
    /// long history, from one node serving the log.
    static func measureHistory(config: String, progress: ProgressLine) throws -> (
        oneEntryRate: Double, historyRate: Double
    ) {
        let node = try NodeProcess(org: "brand", config: config)
        defer { node.stop() }
        let token = try NodeFile.read(config)["auditorToken"]!.stringValue!
        let headers: HTTPHeaders = ["Authorization": "Bearer \(token)"]
        func path(_ subject: String) -> [String] {
            [
                "/v1/permit?subject=\(NodeAPI.percentEncoded(subject))&org=retail&purpose=dpv:DirectMarketing&channel=email"
            ]
        }
        let one = try requestRate(node: node, headers: headers, paths: path(oneEntryCustomer), connections: 8) {
            progress.update("query bench: \($0) permits over HTTP for a customer with one consent")
        }
        let history = try requestRate(node: node, headers: headers, paths: path(historyCustomer), connections: 8) {
            progress.update("query bench: \($0) permits over HTTP for a customer with a long history")
        }
        progress.clear()
        return (one, history)
    }

    static let oneEntryCustomer = "cust:brand:one"
    static let historyCustomer = "cust:brand:history"

    /// In-process permits per second for `subject`, over half a second.
    static func permitRate(_ index: ViewIndex, _ subject: String, at: UInt64) throws -> Double {
        _ = try index.permit(subject: subject, org: "retail", purpose: "dpv:DirectMarketing", at: at)
        var n = 0
        let t0 = Bench.clock()
        while Bench.clock() - t0 < 0.5 {
            for _ in 0..<64 {
                _ = try index.permit(subject: subject, org: "retail", purpose: "dpv:DirectMarketing", at: at)
            }
            n += 64
        }
        return Double(n) / (Bench.clock() - t0)
    }

    /// Current resident memory, from /proc/self/statm.
    static func rss() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let pages = s.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0
        return pages * Double(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func identifier(_ s: Int) -> String { "cust:brand:c\(s)" }

    /// The fixture log: entry k is about customer k mod S, its kind set by the round k / S (ten kinds, repeating).
    /// After the N entries, `heavy` entries about one customer (consents given, withdrawn, given again and renewed,
    /// between interactions) and one consent of another customer, its only entry.
    static func build(_ f: Bench.Fixture, n: Int, subjects: Int, heavy: Int, progress: ProgressLine) throws {
        // Templates are parsed without references (nothing to resolve them against yet); the interactions that
        // rely on consent get it, and their consentRef, when each entry is made.
        let parser = EventParser(consortium: f.consortium, org: "brand", linkKey: f.linkKey)
        func body(_ json: String) throws -> EntryBody { try parser.parse(try JSON.parse(json)) }
        let s0 = "cust:brand:c0"
        let t = "2026-11-24T10:00:00Z"
        let templates: [EntryBody] = try [
            #"{"type":"consent","subject":"\#(s0)","event":"give","purposes":["dpv:DirectMarketing","dpv:Personalisation"],"recipients":["retail"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"\#(t)","expiresAt":"2027-11-24T10:00:00Z"}"#,
            #"{"type":"interaction","subject":"\#(s0)","channel":"email","interaction":"newsletter","purposes":["dpv:DirectMarketing"],"legalBasis":"dpv:Contract","agent":{"id":"mailer","kind":"software"},"occurredAt":"\#(t)"}"#,
            #"{"type":"interaction","subject":"\#(s0)","channel":"voice","interaction":"support-call","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"agent-42","kind":"person","onBehalfOf":"brand"},"occurredAt":"\#(t)"}"#,
            #"{"type":"share","subject":"\#(s0)","recipient":"retail","purposes":["dpv:DirectMarketing"],"dataCategories":["dpv:Contact","dpv:EmailAddress"],"occurredAt":"\#(t)"}"#,
            #"{"type":"interaction","subject":"\#(s0)","channel":"chat","interaction":"bot-session","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:LegitimateInterest","agent":{"id":"chatbot","kind":"software","onBehalfOf":"brand"},"occurredAt":"\#(t)"}"#,
            #"{"type":"consent","subject":"\#(s0)","event":"withdraw","purposes":["dpv:DirectMarketing"],"channel":"sms","method":"sms-keyword","legalBasis":"dpv:Consent","occurredAt":"\#(t)"}"#,
            #"{"type":"interaction","subject":"\#(s0)","channel":"app","interaction":"product-recommendation","purposes":["dpv:Personalisation"],"legalBasis":"dpv:Contract","agent":{"id":"recommender","kind":"software"},"occurredAt":"\#(t)"}"#,
            #"{"type":"link","subjects":["\#(s0)","cust:brand:x"],"evidence":"\#(String(repeating: "ab", count: 32))","occurredAt":"\#(t)"}"#,
            #"{"type":"consent","subject":"\#(s0)","event":"renew","purposes":["dpv:DirectMarketing","dpv:Personalisation"],"recipients":["retail"],"channel":"app","method":"app-toggle","legalBasis":"dpv:Consent","occurredAt":"\#(t)","expiresAt":"2028-11-24T10:00:00Z"}"#,
            #"{"type":"interaction","subject":"\#(s0)","channel":"iot","interaction":"activity-sync","purposes":["dpv:ServicePersonalisation"],"legalBasis":"dpv:Contract","agent":{"id":"wearable","kind":"device"},"occurredAt":"\#(t)"}"#,
        ].map(body)
        let refs = (0..<subjects).map { f.linkKey.ref(for: identifier($0)) }
        var leaves = [SHA256Digest]()
        leaves.reserveCapacity(n)
        let store = try LogStore(dataDirectory: f.dir, consortium: "bench", org: "brand", writable: true)
        let committer = PipelinedCommitter(store: store, signer: f.signer) { _ in }
        var now = Ingestor.now() - UInt64(n)
        var k = 0
        while k < n {
            var g = store.beginGroup(now: now)
            now += 1
            let end = min(n, k + 1000)
            g.reserve(end - k)
            for e in k..<end {
                let s = e % subjects
                let round = e / subjects
                // The customer's give in round 0 (seq s): what its interactions rely on and its share derives from.
                let give = EntryRef(org: "brand", seq: UInt64(s), leaf: s < leaves.count ? leaves[s] : .zero)
                // Every tenth customer is linked to the next one (a person of two refs); the others take a call.
                // A quarter of the customers withdraw direct marketing; the others chat with the bot instead.
                let kind = round % 10
                var b = templates[kind == 7 && s % 10 != 0 ? 2 : kind == 5 && s % 4 != 0 ? 4 : kind]
                switch b {
                case .consent(var c):
                    c.subject = refs[s]
                    b = .consent(c)
                case .interaction(var i):
                    i.subject = refs[s]
                    if kind == 1 || kind == 6 {
                        i.legalBasis = "dpv:Consent"
                        i.consentRef = give
                    }
                    b = .interaction(i)
                case .share(var sh):
                    sh.subject = refs[s]
                    sh.derivedFrom = [give]
                    b = .share(sh)
                case .link(var l), .unlink(var l):
                    l.subjects = [refs[s], refs[(s + 1) % subjects]].sorted()
                    if l.subjects[0] == l.subjects[1] { l.subjects[1] = SHA256.hash("other") }
                    b = .link(l)
                case .heads:
                    break
                }
                leaves.append(g.add(b).leaf)
            }
            try committer.submit(g)
            k = end
            progress.update("query bench: writing \(k)/\(n)")
        }
        // The customer with a long history: kinds in a cycle of ten, four of them consents.
        let historyRef = f.linkKey.ref(for: historyCustomer)
        let cycle = [0, 9, 5, 9, 0, 2, 8, 9, 4, 9]
        k = 0
        while k < heavy {
            var g = store.beginGroup(now: now)
            now += 1
            let end = min(heavy, k + 1000)
            for e in k..<end {
                var b = templates[cycle[e % cycle.count]]
                switch b {
                case .consent(var c):
                    c.subject = historyRef
                    b = .consent(c)
                case .interaction(var i):
                    i.subject = historyRef
                    b = .interaction(i)
                default: break
                }
                g.add(b)
            }
            try committer.submit(g)
            k = end
            progress.update("query bench: writing \(n + k)/\(n + heavy + 1)")
        }
        if case .consent(var c) = templates[0] {
            c.subject = f.linkKey.ref(for: oneEntryCustomer)
            var g = store.beginGroup(now: now)
            g.add(.consent(c))
            try committer.submit(g)
        }
        try committer.flush()
        store.close()
    }

    static func measure(_ f: Bench.Fixture, n: Int, subjects: Int, queries: Int) throws -> Run {
        let before = rss()
        var start = Bench.clock()
        var cpu0 = Bench.cpu()
        let built = try ViewIndex.build(dataDirectory: f.dir, consortium: f.consortium, linkKey: f.linkKey)
        let buildSecs = Bench.clock() - start
        let buildCPU = Bench.cpu() - cpu0
        guard built.excluded.isEmpty, built.index.statistics.committedEntries == UInt64(n) else {
            throw LedgerError(.verificationFailed, "bench: the index left out \(built.excluded)")
        }
        let rssDelta = rss() - before
        let stats = built.index.statistics

        start = Bench.clock()
        cpu0 = Bench.cpu()
        let hashing = try ViewIndex.build(
            dataDirectory: f.dir, consortium: f.consortium, linkKey: f.linkKey, hashEntries: true)
        let hashingSecs = Bench.clock() - start
        let hashingCPU = Bench.cpu() - cpu0
        guard hashing.index.frontier == built.index.frontier else {
            throw LedgerError(.verificationFailed, "bench: the two builds disagree")
        }

        start = Bench.clock()
        cpu0 = Bench.cpu()
        let audits = try Verifier(consortium: f.consortium).verify(dataDirectory: f.dir)
        let verifySecs = Bench.clock() - start
        let verifyCPU = Bench.cpu() - cpu0
        guard audits.allSatisfy(\.ok) else { throw LedgerError(.verificationFailed, "bench log did not verify") }

        let index = built.index
        var rng = SystemRandomNumberGenerator()
        let at = Ingestor.now()
        var permit: [Double] = []
        permit.reserveCapacity(queries)
        var allowed = 0
        for _ in 0..<queries {
            let subject = identifier(Int.random(in: 0..<subjects, using: &rng))
            let t0 = Bench.clock()
            let p = try index.permit(
                subject: subject, org: "retail", purpose: "dpv:DirectMarketing", channel: "email", at: at)
            permit.append((Bench.clock() - t0) * 1e6)
            if p.allowed { allowed += 1 }
        }
        let viewCount = max(100, queries / 10)
        var view: [Double] = []
        var items = 0
        for _ in 0..<viewCount {
            let subject = identifier(Int.random(in: 0..<subjects, using: &rng))
            let t0 = Bench.clock()
            let v = try index.view(subject: subject, at: at)
            view.append((Bench.clock() - t0) * 1e6)
            items += v.timeline.count
        }
        let oneEntryRate = try permitRate(index, oneEntryCustomer, at: at)
        let historyRate = try permitRate(index, historyCustomer, at: at)
        return Run(
            buildRate: Double(n) / buildSecs, verifyRate: Double(n) / verifySecs,
            hashingRate: Double(n) / hashingSecs, buildCPU: buildCPU / Double(n) * 1e9,
            hashingCPU: hashingCPU / Double(n) * 1e9, verifyCPU: verifyCPU / Double(n) * 1e9,
            indexBytes: Double(stats.reservedBytes) / Double(n), rssBytes: rssDelta / Double(n),
            permitP50: Bench.percentile(permit, 0.5), permitP99: Bench.percentile(permit, 0.99),
            viewP50: Bench.percentile(view, 0.5), viewP99: Bench.percentile(view, 0.99),
            viewItems: Double(items) / Double(viewCount), allowed: Double(allowed) / Double(queries),
            oneEntryRate: oneEntryRate, historyRate: historyRate)
    }
}
