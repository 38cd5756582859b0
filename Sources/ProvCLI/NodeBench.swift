import Foundation
import ProvCrypto
import ProvLedger
import ProvNet
import ProvNode
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Node benchmarks (issue 7), each against real `provd` processes on 127.0.0.1:
/// - `replicate`: a fresh node catches up one log of N entries from a peer over mutual TLS;
/// - `propagate`: steady posts to node A; time from A's acknowledgement to the entry stored at node B;
/// - `api`: `POST /v1/events` in batches of 1,000 over keep-alive, and one event per request.
enum NodeBench {
    static let commands: [Command] = {
        let runs = Option.value("runs", "R", "runs; the medians are printed (default 1)")
        let dir = Option.value("dir", "DIR", "where the nodes' throwaway folders go (default: the temporary folder)")
        func bench(_ name: String, _ purpose: String, _ options: [Option], _ example: String) -> Command {
            Command(
                "bench \(name)", purpose: purpose, options: options + [runs, dir], examples: [example]
            ) { args in try run(name, args) }
        }
        return [
            bench(
                "replicate", "Measure how fast a fresh provd node copies one log of N entries from a peer over TLS.",
                [
                    .value("entries", "N", "entries in the log copied (default 100000)"),
                    .flag(
                        "no-view",
                        "the copying node keeps no customer view (node.json \"view\": false), as an auditor's mirror: "
                            + "replication and verification alone"),
                ],
                "prov bench replicate --entries 1000000"),
            bench(
                "fetch",
                "Measure a remote audit: prov fetch copies and verifies one log of N entries from a provd's API over "
                    + "HTTP; printed beside the same run's prov verify of the copy, and the fetch's peak memory.",
                [.value("entries", "N", "entries in the log fetched (default 100000)")],
                "prov bench fetch --entries 1000000"),
            bench(
                "propagate",
                "Measure the time from one node's acknowledgement of an entry to its storage at a peer, under "
                    + "steady load.",
                [
                    .value("rate", "R", "entries per second posted (default 10000)"),
                    .value("seconds", "S", "how long to post (default 10)"),
                ], "prov bench propagate --rate 10000 --seconds 10"),
            bench(
                "api",
                "Measure provd's POST /v1/events: batches of 1,000 events, and one event per request beside the same "
                    + "run's GET /v1/permit from as many connections.",
                [
                    .value("seconds", "S", "how long each half runs (default 5)"),
                    .value(
                        "connections", "C",
                        "clients sending one event per request at once, then asking for permits (default 64)"),
                    .value(
                        "batch-connections", "B",
                        "kept-alive connections sending batches at once, as a client pool would (default 2)"),
                ], "prov bench api --seconds 5"),
        ]
    }()

    static func run(_ which: String, _ args: Arguments) throws -> Int32 {
        let runs = max(1, try args.integer("runs", default: 1))
        let base = try args.optional("dir") ?? FileManager.default.temporaryDirectory.path
        let progress = Progress(enabled: isatty(2) != 0)
        var results: [[String: Double]] = []
        for r in 0..<runs {
            let dir = "\(base)/prov-bench-\(which)-\(getpid())-\(r)"
            try? FileManager.default.removeItem(atPath: dir)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            switch which {
            case "replicate":
                results.append(
                    try replicate(
                        dir, n: try args.integer("entries", default: 100_000), view: !args.flag("no-view"),
                        progress: progress))
            case "fetch":
                results.append(try fetch(dir, n: try args.integer("entries", default: 100_000), progress: progress))
            case "propagate":
                results.append(
                    try propagate(
                        dir, rate: try args.integer("rate", default: 10_000),
                        seconds: try args.integer("seconds", default: 10), progress: progress))
            default:
                results.append(
                    try api(
                        dir, seconds: try args.integer("seconds", default: 5),
                        connections: try args.integer("connections", default: 64),
                        batchConnections: max(1, try args.integer("batch-connections", default: 2)), progress: progress)
                )
            }
            progress.clear()
        }
        // Medians per field, and the runs of the headline figure.
        let headline = [
            "replicate": "entries_per_second", "fetch": "entries_per_second", "propagate": "p99_ms",
            "api": "batch_entries_per_second",
        ][which]!
        var fields = [JSONMember("bench", .string(which)), JSONMember("runs", .number(String(runs)))]
        for key in results[0].keys.sorted() {
            let xs = results.map { $0[key]! }.sorted()
            let m = xs[xs.count / 2]
            fields.append(JSONMember(key, .number(m == m.rounded() ? String(Int(m)) : String(format: "%.3f", m))))
        }
        fields.append(
            JSONMember(
                "\(headline)_each_run", .array(results.map { .number(String(format: "%.3f", $0[headline]!)) })))
        Prov.out(JSONValue.object(fields).serialized)
        return 0
    }

    /// A consortium of `orgs` in `dir`, every node on port 0, with extra node.json settings.
    static func consortium(_ dir: String, _ orgs: [String], _ extra: [String: JSONValue]) throws
        -> ConsortiumSetup.Result
    {
        let setup = try ConsortiumSetup.initialize(directory: dir, orgs: orgs, consortium: "bench", basePort: 7400)
        for org in orgs {
            try NodeFile.update(setup.nodeConfigs[org]!) { c in
                c["peer"] = .string("127.0.0.1:0")
                c["api"] = .string("127.0.0.1:0")
                c["headsIntervalMs"] = .number("3600000")
                for (k, v) in extra { c[k] = v }
            }
        }
        return setup
    }

    static func token(_ config: String) throws -> String { try NodeFile.read(config)["token"]!.stringValue! }

    // MARK: replicate

    static func replicate(_ dir: String, n: Int, view: Bool, progress: Progress) throws -> [String: Double] {
        let setup = try consortium(dir, ["brand", "retail"], ["syncIntervalMs": .number("50")])
        try sourceLog(dir, setup, n: n, progress: progress)
        let brand = try NodeProcess(org: "brand", config: setup.nodeConfigs["brand"]!)
        defer { brand.stop() }
        try NodeFile.update(setup.nodeConfigs["retail"]!) { c in
            c["peers"] = .array([.string("brand")])
            c["peerAddresses"] = .object([JSONMember("brand", .string(brand.peer))])
            c["view"] = .bool(view)
        }
        // The same run's verify of the source log, in this process: wall time and CPU time of all its threads.
        let verifyStart = Bench.clock()
        let verifyCPU = QueryBench.cpu()
        progress.update("replicate: verifying the source log for comparison")
        let audits = try Verifier(consortium: try Consortium.load(setup.descriptor)).verify(
            dataDirectory: dir + "/brand/data")
        guard audits.allSatisfy(\.ok) else { throw LedgerError(.verificationFailed, "bench: the source log failed") }
        let verifySecs = Bench.clock() - verifyStart
        let verifyCPUSecs = QueryBench.cpu() - verifyCPU
        let servingCPU = brand.cpuSeconds
        let start = Bench.clock()
        let retail = try NodeProcess(org: "retail", config: setup.nodeConfigs["retail"]!)
        defer { retail.stop() }
        let api = try NodeAPI(address: retail.api, token: try token(setup.nodeConfigs["retail"]!))
        var size: UInt64 = 0
        let deadline = Date().addingTimeInterval(600)
        while size < UInt64(n) {
            size = try api.sizes()["brand"] ?? 0
            progress.update("replicate: retail holds \(size)/\(n) of brand's log")
            guard Date() < deadline else {
                throw LedgerError(.io, "bench: retail holds \(size) of \(n) entries after 10 minutes")
            }
            if size < UInt64(n) { usleep(20_000) }  // a benchmark's sampling interval, not a synchronisation
        }
        let secs = Bench.clock() - start
        let million = 1e6 / Double(n)
        let copying = retail.cpuSeconds * million
        let serving = (brand.cpuSeconds - servingCPU) * million
        let verifying = verifyCPUSecs * million
        return [
            "entries": Double(n), "seconds": secs, "entries_per_second": Double(n) / secs,
            "max_rss_bytes": Double(retail.maxRSS), "view": view ? 1 : 0,
            "verify_entries_per_second": Double(n) / verifySecs, "to_verify_ratio": verifySecs / secs,
            "copying_cpu_seconds_per_million": copying, "serving_cpu_seconds_per_million": serving,
            "verify_cpu_seconds_per_million": verifying, "copying_cpu_to_verify": copying / verifying,
            "serving_cpu_to_verify": serving / verifying,
        ]
    }

    /// brand's log of `n` entries in groups of 1,000, written before any clock starts.
    static func sourceLog(_ dir: String, _ setup: ConsortiumSetup.Result, n: Int, progress: Progress) throws {
        let consortium = try Consortium.load(setup.descriptor)
        let signer = try SigningKeyFile.read(dir + "/brand/brand.key")
        let linkKey = try LinkKey.load(dir + "/link.key")
        let parser = EventParser(consortium: consortium, org: "brand", linkKey: linkKey)
        let pool = try (0..<1000).map { try parser.parse(try JSON.parse(Bench.eventLine($0))) }
        let store = try LogStore(dataDirectory: dir + "/brand/data", consortium: "bench", org: "brand", writable: true)
        let committer = PipelinedCommitter(store: store, signer: signer) { _ in }
        var done = 0
        while done < n {
            var g = store.beginGroup(now: Ingestor.now())
            let k = min(1000, n - done)
            for i in 0..<k { g.add(pool[(done + i) % pool.count]) }
            try committer.submit(g)
            done += k
            progress.update("writing the source log \(done)/\(n)")
        }
        try committer.flush()
        store.close()
    }

    // MARK: fetch

    static func fetch(_ dir: String, n: Int, progress: Progress) throws -> [String: Double] {
        let setup = try consortium(dir, ["brand", "retail"], [:])
        try sourceLog(dir, setup, n: n, progress: progress)
        let brand = try NodeProcess(org: "brand", config: setup.nodeConfigs["brand"]!)
        defer { brand.stop() }
        let consortium = try Consortium.load(setup.descriptor)
        let auditor = try NodeFile.read(setup.nodeConfigs["brand"]!)["auditorToken"]!.stringValue!
        var copy = RemoteCopy(
            consortium: consortium, dataDirectory: dir + "/audit", source: .node(address: brand.api, token: auditor))
        copy.progress = { _, size in progress.update("fetch: \(size)/\(n) verified and stored") }
        // The fetch's own peak memory: the high-water mark is reset first (Linux: /proc/self/clear_refs).
        Bench.resetPeakRSS()
        let start = Bench.clock()
        let results = try copy.run()
        let secs = Bench.clock() - start
        let peak = Bench.peakRSS()
        guard results.first(where: { $0.org == "brand" })?.size == UInt64(n), !results.contains(where: \.failed) else {
            throw LedgerError(.io, "bench: the fetch did not verify all \(n) entries: \(results)")
        }
        // The same run's audit of the copy, offline: what the fetch is measured against.
        let vStart = Bench.clock()
        let audits = try Verifier(consortium: consortium).verify(dataDirectory: dir + "/audit")
        let vSecs = Bench.clock() - vStart
        guard audits.allSatisfy(\.ok) else { throw LedgerError(.io, "bench: the fetched copy does not verify") }
        return [
            "entries": Double(n), "seconds": secs, "entries_per_second": Double(n) / secs,
            "verify_entries_per_second": Double(n) / vSecs, "fetch_to_verify": vSecs / secs,
            "peak_rss_bytes": Double(peak),
        ]
    }

    // MARK: propagate

    static func propagate(_ dir: String, rate: Int, seconds: Int, progress: Progress) throws -> [String: Double] {
        let setup = try consortium(dir, ["brand", "retail"], ["syncIntervalMs": .number("1000")])
        let brand = try NodeProcess(org: "brand", config: setup.nodeConfigs["brand"]!)
        defer { brand.stop() }
        try NodeFile.update(setup.nodeConfigs["retail"]!) { c in
            c["peerAddresses"] = .object([JSONMember("brand", .string(brand.peer))])
        }
        // retail reports each stored chunk with its new size: that line's time is when the entries were stored.
        let stored = Mutex<[(size: UInt64, at: Double)]>([])
        let storedMoved = NSCondition()
        let retail = try NodeProcess(org: "retail", config: setup.nodeConfigs["retail"]!) { line in
            guard line.contains("copy verified and stored"), let v = try? JSON.parse(line),
                let s = v["size"]?.stringValue.flatMap({ UInt64($0) })
            else { return }
            let t = Date().timeIntervalSince1970
            stored.withLock { $0.append((s, t)) }
            storedMoved.lock()
            storedMoved.broadcast()
            storedMoved.unlock()
        }
        defer { retail.stop() }
        try NodeFile.update(setup.nodeConfigs["brand"]!) { c in
            c["peerAddresses"] = .object([JSONMember("retail", .string(retail.peer))])
        }
        // brand learns where retail listens, and reaches it, before the clock starts.
        let reread = brand.stderrLines.filter { $0.contains("peer addresses re-read") }.count
        brand.signal(SIGHUP)
        guard brand.waitForLog("peer addresses re-read", after: reread), brand.waitForLog("peer connected") else {
            throw LedgerError(.io, "bench: brand did not reach retail")
        }
        let api = try NodeAPI(address: brand.api, token: try token(setup.nodeConfigs["brand"]!))
        // Steady load: every 10 ms a request of rate/100 events; each acknowledgement's time is recorded.
        var acks: [(seq: UInt64, at: Double)] = []
        let perTick = max(1, rate / 100)
        let start = Bench.clock()
        var tick = 0
        var i = 0
        while Bench.clock() - start < Double(seconds) {
            let due = start + Double(tick) * 0.01
            let wait = due - Bench.clock()
            if wait > 0 { usleep(UInt32(wait * 1e6)) }
            let body =
                "["
                + (0..<perTick).map { _ in
                    defer { i += 1 }; return Bench.eventLine(i)
                }.joined(separator: ",") + "]"
            let r = try api.post("/v1/events", Array(body.utf8))
            let t = Date().timeIntervalSince1970
            guard r.status == 200 else { throw LedgerError(.io, "bench: brand answered \(r.status)") }
            for e in try JSON.parse(r.body).arrayValue ?? [] { acks.append((UInt64(e["seq"]!.int64Value!), t)) }
            tick += 1
            progress.update("propagate: \(acks.count) entries acknowledged by brand")
        }
        guard let last = acks.last.map({ $0.seq + 1 }) else { throw LedgerError(.io, "bench: nothing was posted") }
        let deadline = Date().addingTimeInterval(30)
        storedMoved.lock()
        while (stored.withLock { $0.last?.size ?? 0 }) < last && storedMoved.wait(until: deadline) {}
        storedMoved.unlock()
        let marks = stored.withLock { $0 }
        var latencies: [Double] = []
        var m = 0
        for a in acks {
            while m < marks.count && marks[m].size <= a.seq { m += 1 }
            guard m < marks.count else { break }
            latencies.append(max(0, marks[m].at - a.at) * 1000)
        }
        guard latencies.count == acks.count else {
            throw LedgerError(.io, "bench: \(acks.count - latencies.count) entries never reached retail")
        }
        return [
            "entries": Double(acks.count), "rate": Double(acks.count) / Double(seconds),
            "p50_ms": Bench.percentile(latencies, 0.5), "p99_ms": Bench.percentile(latencies, 0.99),
            "max_ms": latencies.max() ?? 0,
        ]
    }

    // MARK: api

    static func api(_ dir: String, seconds: Int, connections: Int, batchConnections: Int, progress: Progress) throws
        -> [String: Double]
    {
        // retail exists (the events name it) but is not connected: the figures are the API's alone.
        let setup = try consortium(dir, ["brand", "retail"], ["peers": .array([])])
        let node = try NodeProcess(org: "brand", config: setup.nodeConfigs["brand"]!)
        defer { node.stop() }
        let token = try token(setup.nodeConfigs["brand"]!)
        // Batches of 1,000, each connection kept alive and sending its next batch once the last is answered; a
        // few connections, as an application's client pool would, so one batch is parsed while another is synced.
        let batches = (0..<8).map { b in
            Array(("[" + (0..<1000).map { Bench.eventLine(b * 1000 + $0) }.joined(separator: ",") + "]").utf8)
        }
        let entries = Atomic<Int>(0)
        let batchFailure = Mutex<String?>(nil)
        let batchGroup = DispatchGroup()
        let start = Bench.clock()
        for c in 0..<batchConnections {
            batchGroup.enter()
            Thread.detachNewThread {
                defer { batchGroup.leave() }
                guard let api = try? NodeAPI(address: node.api, token: token) else { return }
                var k = c
                while Bench.clock() - start < Double(seconds) {
                    guard let r = try? api.post("/v1/events", batches[k % batches.count]), r.status == 200 else {
                        batchFailure.withLock { $0 = "a batch was not appended" }
                        return
                    }
                    entries.add(1000, ordering: .relaxed)
                    k += batchConnections
                }
            }
        }
        while batchGroup.wait(timeout: .now() + 0.2) == .timedOut {
            progress.update("api: \(entries.load(ordering: .relaxed)) entries in batches")
        }
        if let f = batchFailure.withLock({ $0 }) { throw LedgerError(.io, "bench: \(f)") }
        let batchSecs = Bench.clock() - start
        // One event per request, from `connections` clients at once (their requests share group commits), then the
        // same clients asking for permits: the rate at which the node answers a read is the ceiling to compare with.
        let single = (0..<1000).map { Array(("[" + Bench.eventLine($0) + "]").utf8) }
        let writes = try load(node, token, connections: connections, seconds: seconds, progress: progress, "events") {
            client, j in try client.post("/v1/events", single[j % single.count]).status == 200
        }
        let permits = (0..<1000).map { i in
            "/v1/permit?subject=\(Prov.q("email:customer\(i * 4)@example.com"))&org=retail&purpose=dpv:DirectMarketing"
        }
        let reads = try load(node, token, connections: connections, seconds: seconds, progress: progress, "permits") {
            client, j in try client.get(permits[j % permits.count]).status == 200
        }
        return [
            "batch_entries_per_second": Double(entries.load(ordering: .relaxed)) / batchSecs,
            "batch_connections": Double(batchConnections),
            "single_requests_per_second": writes.rate, "single_p50_ms": writes.p50, "single_p99_ms": writes.p99,
            "permit_requests_per_second": reads.rate, "permit_p50_ms": reads.p50, "permit_p99_ms": reads.p99,
            "single_to_permit_ratio": writes.rate / reads.rate,
            "connections": Double(connections), "max_rss_bytes": Double(node.maxRSS),
        ]
    }

    /// `connections` kept-alive clients, each sending `request` (given its client and a running number) one at a
    /// time for `seconds`: requests per second, and the p50 and p99 latency in ms. Every request must succeed.
    static func load(
        _ node: NodeProcess, _ token: String, connections: Int, seconds: Int, progress: Progress, _ what: String,
        _ request: @escaping @Sendable (NodeAPI, Int) throws -> Bool
    ) throws -> (rate: Double, p50: Double, p99: Double) {
        let count = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let latencies = Mutex<[Double]>([])
        let group = DispatchGroup()
        let start = Bench.clock()
        for c in 0..<connections {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                guard let client = try? NodeAPI(address: node.api, token: token) else {
                    failures.add(1, ordering: .relaxed)
                    return
                }
                var mine: [Double] = []
                var j = c
                while !stop.load(ordering: .relaxed) {
                    let t = Bench.clock()
                    if (try? request(client, j)) == true {
                        mine.append((Bench.clock() - t) * 1000)
                        count.add(1, ordering: .relaxed)
                    } else {
                        failures.add(1, ordering: .relaxed)
                    }
                    j += connections
                }
                latencies.withLock { $0 += mine }
            }
        }
        while Bench.clock() - start < Double(seconds) {
            usleep(100_000)
            progress.update("api: \(count.load(ordering: .relaxed)) \(what), one per request")
        }
        stop.store(true, ordering: .relaxed)
        group.wait()
        let secs = Bench.clock() - start
        guard failures.load(ordering: .relaxed) == 0 else {
            throw LedgerError(.io, "bench: \(failures.load(ordering: .relaxed)) requests for \(what) failed")
        }
        let l = latencies.withLock { $0 }
        return (Double(count.load(ordering: .relaxed)) / secs, Bench.percentile(l, 0.5), Bench.percentile(l, 0.99))
    }
}
