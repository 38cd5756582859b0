import Foundation
import ProvCrypto
import ProvLedger

#if canImport(Glibc)
    import Glibc
#endif

/// `prov bench append|ingest|verify|parts`: throughput and memory of the log layer, the ingest path and the audit,
/// as one JSON object (medians over the runs); the node benchmarks are in NodeBench.swift, the view's in
/// QueryBench.swift.
package enum Bench {
    /// What `prov bench append`, `ingest` and `verify` measure.
    package enum Log: String, Sendable {
        /// Group commits to one log.
        case append
        /// JSON Lines to durable entries: parsing, validation, pseudonymisation, group commit.
        case ingest
        /// The audit of one log of N entries, written first.
        case verify
    }

    /// Runs `which` `runs` times on a log of `n` entries in groups of `group`, each run in a folder of its own under
    /// `base` (removed after the run unless `keep`); the result has the medians and each run's rate.
    package static func run(
        _ which: Log, entries n: Int, runs: Int, group: Int, directory base: String, keep: Bool, progress: ProgressLine
    ) throws -> JSONValue {
        var results: [Result] = []
        for r in 0..<runs {
            let dir = "\(base)/prov-bench-\(which.rawValue)-\(getpid())-\(r)"
            try? FileManager.default.removeItem(atPath: dir)
            defer { if !keep { try? FileManager.default.removeItem(atPath: dir) } }
            let fixture = try Fixture(dir: dir)
            switch which {
            case .append: results.append(try appendRun(fixture, n: n, group: group, progress: progress))
            case .ingest: results.append(try ingestRun(fixture, n: n, group: group, progress: progress))
            case .verify: results.append(try verifyRun(fixture, n: n, group: group, progress: progress))
            }
            progress.clear()
        }
        let median = results.sorted { $0.seconds < $1.seconds }[results.count / 2]
        var fields: [JSONMember] = [
            JSONMember("bench", .string(which.rawValue)), JSONMember("entries", .number(String(n))),
            JSONMember("runs", .number(String(runs))),
            JSONMember("seconds", .number(fmt(median.seconds))),
            JSONMember("entries_per_second", .number(String(Int(Double(n) / median.seconds)))),
            JSONMember("bytes_per_entry", .number(fmt(median.bytesPerEntry))),
            JSONMember("max_rss_bytes", .number(String(maxRSS()))),
        ]
        if which == .verify {
            let perMillion = median.cpuSeconds / Double(n) * 1e6
            fields.append(JSONMember("cpu_seconds_per_million", .number(fmt(perMillion))))
            fields.append(JSONMember("cores_busy", .number(fmt(median.cpuSeconds / median.seconds))))
        } else {
            fields.append(JSONMember("group_size", .number(String(group))))
            fields.append(JSONMember("p50_commit_ms", .number(fmt(median.p50))))
            fields.append(JSONMember("p99_commit_ms", .number(fmt(median.p99))))
        }
        fields.append(
            JSONMember(
                "entries_per_second_each_run",
                .array(results.map { .number(String(Int(Double(n) / $0.seconds))) })))
        return .object(fields)
    }

    struct Result {
        var seconds: Double
        var bytesPerEntry: Double
        var p50 = 0.0
        var p99 = 0.0
        /// CPU seconds of every thread during the measured part (verify: how many cores the audit kept busy).
        var cpuSeconds = 0.0
    }

    static func fmt(_ d: Double) -> String { String(format: "%.3f", d) }

    /// CPU seconds this process has used, all threads.
    static func cpu() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
    }

    static func maxRSS() -> Int {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return u.ru_maxrss * 1024
    }

    /// Resets this process's resident-memory high-water mark (Linux: writing 5 to /proc/self/clear_refs), so that
    /// `peakRSS` measures what follows.
    static func resetPeakRSS() {
        let fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = write(fd, "5", 1)
        close(fd)
    }

    /// The resident-memory high-water mark since the last reset (VmHWM), in bytes.
    static func peakRSS() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return maxRSS() }
        return (Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0) * 1024
    }

    static func clock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func percentile(_ xs: [Double], _ p: Double) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? 0 : s[min(s.count - 1, Int(Double(s.count) * p))]
    }

    /// A throwaway consortium of three members with keys in memory.
    struct Fixture {
        let dir: String
        let consortium: Consortium
        let signer: NoteSigner
        let linkKey: LinkKey

        /// A fixture over a consortium made elsewhere (keys on disk, so a node can run on it).
        init(dir: String, consortium: Consortium, signer: NoteSigner, linkKey: LinkKey) {
            self.dir = dir
            self.consortium = consortium
            self.signer = signer
            self.linkKey = linkKey
        }

        init(dir: String) throws {
            self.dir = dir
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let made = try Consortium.withFreshKeys(name: "bench", orgs: ["brand", "retail", "bank"])
            (consortium, signer, linkKey) = (made.consortium, made.signers["brand"]!, made.linkKey)
        }
    }

    /// JSON event lines like a contact centre and web back end send: consents and interactions.
    static func eventLine(_ i: Int) -> String {
        let t = "2026-11-24T10:\(String(format: "%02d", i / 60 % 60)):\(String(format: "%02d", i % 60))Z"
        switch i % 4 {
        case 0:
            return
                #"{"type":"consent","subject":"email:customer\#(i)@example.com","event":"give","purposes":["dpv:DirectMarketing"],"controllers":["brand"],"recipients":["retail"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"\#(t)","expiresAt":"2027-11-24T10:00:00Z"}"#
        case 1:
            return
                #"{"type":"interaction","subject":"phone:+4416329\#(String(format: "%05d", i % 100_000))","channel":"voice","interaction":"support-call","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"agent-\#(i % 97)","kind":"person","onBehalfOf":"brand"},"occurredAt":"\#(t)"}"#
        case 2:
            return
                #"{"type":"consent","subject":"cust:brand:c\#(i)","event":"withdraw","purposes":["dpv:DirectMarketing","dpv:Personalisation"],"channel":"app","method":"app-toggle","legalBasis":"dpv:Consent","occurredAt":"\#(t)"}"#
        default:
            return
                #"{"type":"interaction","subject":"email:customer\#(i)@example.com","channel":"chat","interaction":"bot-session","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:LegitimateInterest","agent":{"id":"chatbot","kind":"software","onBehalfOf":"brand"},"occurredAt":"\#(t)"}"#
        }
    }

    /// A pool of distinct bodies, cycled so that the input itself takes no memory per entry.
    static func bodyPool(_ f: Fixture) throws -> [EntryBody] {
        let parser = EventParser(consortium: f.consortium, org: "brand", linkKey: f.linkKey)
        return try (0..<1000).map { i in try parser.parse(try JSON.parse(eventLine(i))) }
    }

    static func appendRun(_ f: Fixture, n: Int, group: Int, progress: ProgressLine) throws -> Result {
        let pool = try bodyPool(f)
        let store = try LogStore(dataDirectory: f.dir, consortium: "bench", org: "brand", writable: true)
        var latencies: [Double] = []
        var started: [Double] = []
        let start = clock()
        var done = 0
        var acked = 0
        let now = Ingestor.now()
        func record(_ acks: [(seq: UInt64, leaf: SHA256Digest)]) {
            latencies.append((clock() - started[latencies.count]) * 1000)
            acked += acks.count
        }
        let committer = PipelinedCommitter(store: store, signer: f.signer, acknowledged: record)
        while done < n {
            let k = min(group, n - done)
            started.append(clock())
            var g = store.beginGroup(now: now)
            g.reserve(k)
            for i in 0..<k { g.add(pool[(done + i) % pool.count]) }
            try committer.submit(g)
            done += k
            progress.update("append: \(acked)/\(n)")
        }
        try committer.flush()
        let secs = clock() - start
        guard acked == n else { throw LedgerError(.io, "bench: \(acked) of \(n) entries acknowledged") }
        store.close()
        return Result(
            seconds: secs, bytesPerEntry: Double(try segmentBytes(f.dir + "/brand")) / Double(n),
            p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99))
    }

    static func ingestRun(_ f: Fixture, n: Int, group: Int, progress: ProgressLine) throws -> Result {
        // Input chunks of `group` lines, as `prov append --follow` receives them; prepared before the clock starts.
        var chunks: [[UInt8]] = []
        for c in 0..<min(64, (n + group - 1) / group) {
            var s = ""
            for i in 0..<group { s += eventLine(c * group + i) + "\n" }
            chunks.append(Array(s.utf8))
        }
        let ingestor = try Ingestor(
            dataDirectory: f.dir, consortium: f.consortium, signer: f.signer, linkKey: f.linkKey)
        var latencies: [Double] = []
        var started: [Double] = []
        var acked = 0
        func record(_ acks: [(seq: UInt64, leaf: SHA256Digest)]) {
            latencies.append((clock() - started[latencies.count]) * 1000)
            acked += acks.count
        }
        let committer = PipelinedCommitter(store: ingestor.store, signer: f.signer, acknowledged: record)
        let start = clock()
        var done = 0
        var c = 0
        while done < n {
            started.append(clock())
            let chunk = chunks[c % chunks.count]
            let k = min(group, n - done)
            let input =
                k == group ? chunk : Array(chunk.split(separator: UInt8(ascii: "\n")).prefix(k).joined(separator: [10]))
            let g = try input.withUnsafeBytes { try ingestor.prepare($0, now: Ingestor.now()) }
            try committer.submit(g)
            done += k
            c += 1
            progress.update("ingest: \(acked)/\(n)")
        }
        try committer.flush()
        guard acked == n else { throw LedgerError(.io, "bench: \(acked) of \(n) events acknowledged") }
        let secs = clock() - start
        ingestor.store.close()
        return Result(
            seconds: secs, bytesPerEntry: Double(try segmentBytes(f.dir + "/brand")) / Double(n),
            p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99))
    }

    static func verifyRun(_ f: Fixture, n: Int, group: Int, progress: ProgressLine) throws -> Result {
        _ = try appendRun(f, n: n, group: group, progress: progress)
        var verifier = Verifier(consortium: f.consortium)
        verifier.progress = { org, k in progress.update("verify \(org): \(k)/\(n)") }
        let start = clock()
        let cpuStart = Bench.cpu()
        let audits = try verifier.verify(dataDirectory: f.dir)
        let secs = clock() - start
        let cpu = Bench.cpu() - cpuStart
        guard let a = audits.first, a.ok, a.entries == UInt64(n) else {
            throw LedgerError(.verificationFailed, "bench log did not verify: \(audits.first?.failure ?? "no log")")
        }
        return Result(
            seconds: secs, bytesPerEntry: Double(try segmentBytes(f.dir + "/brand")) / Double(n), cpuSeconds: cpu)
    }

    /// Nanoseconds per operation of the steps the three benchmarks are made of, on one core: `n` operations each.
    package static func parts(operations n: Int) throws -> JSONValue {
        let dir = FileManager.default.temporaryDirectory.path + "/prov-bench-parts-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = try Fixture(dir: dir)
        let pool = try bodyPool(f)
        let lines = (0..<1000).map { Array(eventLine($0).utf8) }
        let entries = pool.enumerated().map { i, b in
            Entry(
                log: "bench/brand", seq: UInt64(i + 1), prev: SHA256.hash("p"), hlc: HLC(wall: 1, counter: 0), body: b)
        }
        let encoded = entries.map(\.encoded)
        var results: [JSONMember] = []
        func time(_ name: String, _ body: (Int) throws -> Void) rethrows {
            let t0 = clock()
            for i in 0..<n { try body(i) }
            results.append(JSONMember(name + "_ns", .number(String(format: "%.0f", (clock() - t0) / Double(n) * 1e9))))
        }
        var sink = 0
        var w = CBORWriter(reservingCapacity: 512)
        time("entry_encode") { i in
            w.removeAll()
            entries[i % 1000].encode(into: &w)
            sink &+= w.count
        }
        time("leaf_hash") { i in sink &+= Int(Merkle.leafHash(encoded[i % 1000]).bytes[0]) }
        var frame = [UInt8]()
        frame.reserveCapacity(1024)
        time("record_frame_crc") { i in
            frame.removeAll(keepingCapacity: true)
            encoded[i % 1000].withUnsafeBytes { SegmentFormat.frame(.entry, $0, into: &frame) }
        }
        var frontier = MerkleFrontier()
        let leaf = SHA256.hash("leaf")
        time("merkle_append") { _ in frontier.append(leaf) }
        try time("entry_decode") { i in sink &+= Int(try Entry.decode(encoded[i % 1000]).seq) }
        let ctx = AuditContext(consortium: f.consortium, org: "brand")
        try time("entry_audit") { i in
            sink &+= Int(try encoded[i % 1000].withUnsafeBytes { try Entry.audit($0, ctx) }.seq)
        }
        try time("cbor_skip") { i in
            try encoded[i % 1000].withUnsafeBytes { raw in
                var r = CBORReader(raw)
                try r.skipValue()
                sink &+= r.offset
            }
        }
        try time("json_parse") { i in
            let v = try JSON.parse(lines[i % 1000])
            if case .object(let m) = v { sink &+= m.count }
        }
        let parser = EventParser(consortium: f.consortium, org: "brand", linkKey: f.linkKey)
        let values = try lines.map { try JSON.parse($0) }
        try time("event_validate_pseudonymise") { i in sink &+= try parser.parse(values[i % 1000]).subjects.count }
        time("hmac_subject") { i in sink &+= Int(f.linkKey.ref(for: "email:customer\(i % 1000)@example.com").bytes[0]) }
        results.insert(JSONMember("bench", .string("parts")), at: 0)
        results.append(JSONMember("sink", .number(String(sink & 1))))
        return .object(results)
    }

    static func segmentBytes(_ logDir: String) throws -> Int {
        let segs = (try? FileManager.default.contentsOfDirectory(atPath: logDir + "/segments")) ?? []
        return segs.reduce(0) { sum, name in
            sum
                + ((try? FileManager.default.attributesOfItem(atPath: "\(logDir)/segments/\(name)")[.size] as? Int) ?? 0)
        }
    }
}
