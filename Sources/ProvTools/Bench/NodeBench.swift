import Foundation
import ProvCrypto
import ProvLedger
import ProvNet
import ProvNode
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Node benchmarks, each against real `provd` processes on 127.0.0.1:
/// - `replicate`: a fresh node catches up one log of N entries from a peer over mutual TLS;
/// - `fetch`: `prov fetch` copies and verifies one log of N entries from a node's API;
/// - `propagate`: steady posts to node A; time from A's acknowledgement to the entry stored at node B;
/// - `api`: `POST /v1/events` in batches of 1,000 over keep-alive, and one event per request.
package enum NodeBench {
    /// One node benchmark and its parameters.
    package enum Load: Sendable {
        /// A node without the log copies `entries` from a peer; `view`: the copying node keeps a customer view.
        case replicate(entries: Int, view: Bool)
        /// `prov fetch` of a log of `entries` from a node's API.
        case fetch(entries: Int)
        /// `rate` entries a second posted for `seconds`.
        case propagate(rate: Int, seconds: Int)
        /// Each half for `seconds`: batches over `batchConnections`, single events over `connections`.
        case api(seconds: Int, connections: Int, batchConnections: Int)

        /// Its name: `prov bench <name>`.
        package var name: String {
            switch self {
            case .replicate: "replicate"
            case .fetch: "fetch"
            case .propagate: "propagate"
            case .api: "api"
            }
        }
    }

    /// Runs `load` `runs` times, each in a folder of its own under `base` (removed after the run); the result has
    /// the median of every figure and each run's headline figure.
    package static func run(_ load: Load, runs: Int, directory base: String, progress: ProgressLine) throws -> JSONValue
    {
        let which = load.name
        var results: [[String: Double]] = []
        for r in 0..<runs {
            let dir = "\(base)/prov-bench-\(which)-\(getpid())-\(r)"
            try? FileManager.default.removeItem(atPath: dir)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            switch load {
            case .replicate(let n, let view):
                results.append(try replicate(dir, n: n, view: view, progress: progress))
            case .fetch(let n):
                results.append(try fetch(dir, n: n, progress: progress))
            case .propagate(let rate, let seconds):
                results.append(try propagate(dir, rate: rate, seconds: seconds, progress: progress))
            case .api(let seconds, let connections, let batchConnections):
                results.append(
                    try api(
                        dir, seconds: seconds, connections: connections, batchConnections: batchConnections,
                        progress: progress))
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
        return .object(fields)
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

    static func replicate(_ dir: String, n: Int, view: Bool, progress: ProgressLine) throws -> [String: Double] {
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
        let verifyCPU = Bench.cpu()
        progress.update("replicate: verifying the source log for comparison")
        let audits = try Verifier(consortium: try Consortium.load(setup.descriptor)).verify(
            dataDirectory: dir + "/brand/data")
        guard audits.allSatisfy(\.ok) else { throw LedgerError(.verificationFailed, "bench: the source log failed") }
        let verifySecs = Bench.clock() - verifyStart
        let verifyCPUSecs = Bench.cpu() - verifyCPU
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
    static func sourceLog(_ dir: String, _ setup: ConsortiumSetup.Result, n: Int, progress: ProgressLine) throws {
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

    static func fetch(_ dir: String, n: Int, progress: ProgressLine) throws -> [String: Double] {
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
        let servingCPU = brand.cpuSeconds
        let fetchCPU = Bench.cpu()
        let start = Bench.clock()
        let results = try copy.run()
        let secs = Bench.clock() - start
        let fetchCPUSecs = Bench.cpu() - fetchCPU
        let servingCPUSecs = brand.cpuSeconds - servingCPU
        let peak = Bench.peakRSS()
        guard results.first(where: { $0.org == "brand" })?.size == UInt64(n), !results.contains(where: \.failed) else {
            throw LedgerError(.io, "bench: the fetch did not verify all \(n) entries: \(results)")
        }
        // The same run's audit of the copy, offline: what the fetch is measured against.
        let vStart = Bench.clock()
        let vCPU = Bench.cpu()
        let audits = try Verifier(consortium: consortium).verify(dataDirectory: dir + "/audit")
        let vSecs = Bench.clock() - vStart
        let vCPUSecs = Bench.cpu() - vCPU
        guard audits.allSatisfy(\.ok) else { throw LedgerError(.io, "bench: the fetched copy does not verify") }
        // What this machine takes to store the bytes the fetch stored, with nothing else to do: the floor of any
        // fetch, which verify (reading what is cached) does not pay.
        let bytes = try folderBytes(dir + "/audit")
        // In as many chunks as prov fetch writes (32,768 entries each).
        let floor = try writeFloor(dir + "/write-floor", bytes: bytes, chunks: max(1, n / 32_768))
        // CPU seconds per million entries of the fetching process, of the serving node, and of the verify.
        let million = 1e6 / Double(n)
        return [
            "entries": Double(n), "seconds": secs, "entries_per_second": Double(n) / secs,
            "verify_entries_per_second": Double(n) / vSecs, "fetch_to_verify": vSecs / secs,
            "peak_rss_bytes": Double(peak), "fetch_cpu_seconds_per_million": fetchCPUSecs * million,
            "serving_cpu_seconds_per_million": servingCPUSecs * million,
            "verify_cpu_seconds_per_million": vCPUSecs * million, "stored_bytes": Double(bytes),
            "write_floor_seconds": floor.seconds, "write_floor_cpu_seconds": floor.cpu,
        ]
    }

    /// The bytes of the regular files under `folder`.
    static func folderBytes(_ folder: String) throws -> Int {
        guard let walk = FileManager.default.enumerator(atPath: folder) else { return 0 }
        var total = 0
        while let name = walk.nextObject() as? String {
            let a = try FileManager.default.attributesOfItem(atPath: folder + "/" + name)
            if a[.type] as? FileAttributeType == .typeRegular { total += (a[.size] as? Int) ?? 0 }
        }
        return total
    }

    /// Writes `bytes` to a new file in `chunks` writes, each followed by `fdatasync` (as a fetch writes and syncs
    /// a chunk), and removes it: the wall and CPU seconds of that alone.
    static func writeFloor(_ path: String, bytes: Int, chunks: Int) throws -> (seconds: Double, cpu: Double) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw LedgerError(.io, "bench: cannot create \(path)") }
        defer {
            close(fd)
            unlink(path)
        }
        let size = (bytes + chunks - 1) / chunks
        let buffer = [UInt8](repeating: 0x5A, count: size)
        let start = Bench.clock()
        let cpu = Bench.cpu()
        var at = 0
        while at < bytes {
            let k = min(size, bytes - at)
            let wrote = buffer.withUnsafeBytes { pwrite(fd, $0.baseAddress, k, off_t(at)) }
            guard wrote == k, fdatasync(fd) == 0 else { throw LedgerError(.io, "bench: cannot write \(path)") }
            at += k
        }
        return (Bench.clock() - start, Bench.cpu() - cpu)
    }

    // MARK: propagate

    static func propagate(_ dir: String, rate: Int, seconds: Int, progress: ProgressLine) throws -> [String: Double] {
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

    static func api(_ dir: String, seconds: Int, connections: Int, batchConnections: Int, progress: ProgressLine) throws
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
            "/v1/permit?subject=\(NodeAPI.percentEncoded("email:customer\(i * 4)@example.com"))&org=retail"
                + "&purpose=dpv:DirectMarketing"
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
        _ node: NodeProcess, _ token: String, connections: Int, seconds: Int, progress: ProgressLine, _ what: String,
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
