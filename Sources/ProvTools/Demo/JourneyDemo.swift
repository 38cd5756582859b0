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

/// `prov demo`: the whole mission on this machine. Three companies (a sports brand, a retailer, a contact centre
/// serving both) in a fresh consortium, three real `provd` processes on loopback, background traffic from a few
/// thousand customers, and one customer's journey across them; then the customer's view from every node (one
/// digest), the compliance findings, the customer's self-verifying access report, a receipt checked offline, and
/// `prov verify` on every node's data.
package enum JourneyDemo {
    static let orgs = ["brand", "retail", "care"]
    static let names = ["brand": "Stride Sports", "retail": "Northwind Retail", "care": "Helpline Contact Centre"]

    package struct Options: Sendable {
        package var directory: String
        package var keepRunning: Bool
        package var customers: Int
        /// Where the steps are told, and the progress of the long ones shown.
        package var console: Console
        package var consortium: String
        /// Display names by org.
        package var names: [String: String]
        /// The provd binary the nodes run.
        package var provd: String

        package init(
            directory: String, keepRunning: Bool = false, customers: Int = 3000, console: Console = .silent,
            consortium: String = "demo", names: [String: String] = JourneyDemo.names,
            provd: String = NodeProcess.provdPath
        ) {
            self.provd = provd
            self.directory = directory
            self.keepRunning = keepRunning
            self.customers = customers
            self.console = console
            self.consortium = consortium
            self.names = names
        }
    }

    /// What the run found: what a test checks and the command reports.
    package struct Outcome: Sendable {
        /// The customer's view digest from each node.
        package var digests: [String: String] = [:]
        /// Per company, the classifications of its compliance findings.
        package var findings: [String: [String]] = [:]
        package var reportOK = false
        package var receiptCosigners: [String] = []
        /// Whether the fork shown to one node reached every node and was proven offline.
        package var fork = false
        /// Per node, whether `prov verify` passed on its data directory.
        package var verified: [String: Bool] = [:]
        /// The journey's entries by name (`withdrawal`, `web-consent`, …) as `org/seq`.
        package var entries: [String: String] = [:]
        /// The nodes, when they keep running: org → (the process, its auditor token). Whoever holds it stops them.
        package var running: [String: (node: NodeProcess, token: String)] = [:]

        /// Every check held: `prov demo` exits 0.
        package var ok: Bool {
            Set(digests.values).count == 1 && reportOK && receiptCosigners.count == 2 && fork
                && findings.values.flatMap { $0 }.sorted() == ["propagation-lag", "violation"]
                && (verified.isEmpty || verified.values.allSatisfy { $0 })
        }
    }

    /// Runs the demo. A run that cannot finish (a node that does not start, a step that fails) stops its nodes and
    /// leaves nothing behind: its folder is removed, and the consortium's folder too when that leaves it empty.
    package static func run(_ o: Options) throws -> Outcome {
        let fm = FileManager.default
        let existed = fm.fileExists(atPath: o.directory)
        guard (try? fm.contentsOfDirectory(atPath: o.directory))?.isEmpty ?? true else {
            throw LedgerError(.io, "\(o.directory) is not empty: each run makes a fresh consortium")
        }
        do { return try steps(o) } catch {
            if existed {
                for name in (try? fm.contentsOfDirectory(atPath: o.directory)) ?? [] {
                    try? fm.removeItem(atPath: o.directory + "/" + name)
                }
            } else {
                try? fm.removeItem(atPath: o.directory)
                let parent = URL(fileURLWithPath: o.directory).deletingLastPathComponent().path
                if (try? fm.contentsOfDirectory(atPath: parent))?.isEmpty == true { try? fm.removeItem(atPath: parent) }
            }
            throw error
        }
    }

    private static func steps(_ o: Options) throws -> Outcome {
        let start = Date()
        let out = Output(o.console)
        var outcome = Outcome()
        try FileManager.default.createDirectory(atPath: o.directory, withIntermediateDirectories: true)
        out.step("A consortium of three companies in \(o.directory)")
        let names = o.names
        let setup = try ConsortiumSetup.initialize(
            directory: o.directory + "/consortium", orgs: orgs, consortium: o.consortium, basePort: 7400, names: names)
        for org in orgs {
            try NodeFile.update(setup.nodeConfigs[org]!) { c in
                c["peer"] = .string("127.0.0.1:0")
                c["api"] = .string("127.0.0.1:0")
                c["headsIntervalMs"] = .number("250")
                c["syncIntervalMs"] = .number("250")
            }
        }
        for org in orgs { out.line("  \(names[org]!) (\(org)): \(setup.nodeConfigs[org]!)") }

        out.step("Three provd nodes on 127.0.0.1, replicating over mutual TLS")
        var nodes: [String: NodeProcess] = [:]
        var stopped = false
        defer { if !stopped { for n in nodes.values { n.stop() } } }
        for org in orgs {
            // Nodes that outlive the demo log to files of the run: a pipe would end with the demo.
            nodes[org] = try NodeProcess(
                org: org, config: setup.nodeConfigs[org]!, provd: o.provd,
                logFile: o.keepRunning ? o.directory + "/\(org).log" : nil)
        }
        try connect(nodes, setup, except: nil)
        var api: [String: NodeAPI] = [:]
        var auditor: [String: NodeAPI] = [:]
        for org in orgs {
            let c = try NodeFile.read(setup.nodeConfigs[org]!)
            api[org] = try NodeAPI(address: nodes[org]!.api, token: c["token"]!.stringValue!)
            auditor[org] = try NodeAPI(address: nodes[org]!.api, token: c["auditorToken"]!.stringValue!)
            out.line("  \(org): peer \(nodes[org]!.peer), API http://\(nodes[org]!.api)")
        }
        try waitUntil("every node sees its peers", out) {
            try orgs.allSatisfy { org in
                let s = try JSON.parse(try auditor[org]!.get("/v1/status").body)
                return (s["peers"]?.arrayValue ?? []).allSatisfy { $0["connected"] == .bool(true) }
            }
        }

        out.step("Background traffic: \(o.customers) customers of the three companies")
        try background(api, customers: o.customers, out: out)

        out.step("One customer's journey across the three companies")
        let journey = try Journey(api: api, auditor: auditor, nodes: nodes, setup: setup, out: out)
        try journey.run()

        out.step("Every node holds every log, verified")
        let sizes = try converge(auditor, out)
        for org in orgs { out.line("  \(org)'s log: \(sizes[org]!) entries, the same root on all three nodes") }

        out.step("The customer's view, asked of each node")
        let subject = Journey.email
        let path = "/v1/subjects/" + NodeAPI.percentEncoded(subject)
        var digests: [String: String] = [:]
        var shown = false
        for org in orgs {
            let r = try auditor[org]!.get(path + "/view")
            guard r.status == 200 else { throw LedgerError(.io, "\(org) answered \(r.status) for the view") }
            let v = try JSON.parse(r.body)
            digests[org] = v["digest"]?.stringValue ?? "?"
            if !shown {
                shown = true
                out.line("  consent (controller, purpose → state):")
                for c in v["consents"]?.arrayValue ?? [] {
                    out.line(
                        "    \(c["controller"]?.stringValue ?? "?") \(c["purpose"]?.stringValue ?? "?") → "
                            + "\(c["state"]?.stringValue ?? "?")")
                }
                out.line("  timeline, newest first (when it happened, the company, the channel, what):")
                for t in (v["timeline"]?.arrayValue ?? []).prefix(14) {
                    let kind = t["kind"]?.stringValue ?? "?"
                    var what = t["interaction"]?.stringValue ?? t["event"]?.stringValue ?? kind
                    if kind == "consent" { what = "consent " + what }
                    if kind == "share" { what = "shared with " + (t["recipient"]?.stringValue ?? "?") }
                    var who = ""
                    if let a = t["agent"] {
                        who = " by \(a["kind"]?.stringValue ?? "") \(a["id"]?.stringValue ?? "")"
                        if let b = a["onBehalfOf"]?.stringValue { who += " for \(b)" }
                    }
                    // "2026-11-24T10:00:00.000Z" → "2026-11-24 10:00:00"
                    let time = (t["occurredAt"]?.stringValue ?? "").prefix(19).replacingOccurrences(
                        of: "T", with: " ")
                    out.line(
                        "    \(time)  \((t["org"]?.stringValue ?? "?").padding(toLength: 7, withPad: " ", startingAt: 0))"
                            + "\((t["channel"]?.stringValue ?? "-").padding(toLength: 7, withPad: " ", startingAt: 0))"
                            + "\(what)\(who)" + (t["legalBasis"]?.stringValue.map { " [\($0)]" } ?? ""))
                }
            }
        }
        for org in orgs { out.line("  view digest from \(org): \(digests[org]!)") }
        outcome.digests = digests
        let identical = Set(digests.values).count == 1
        out.line(identical ? "  identical on all three nodes" : "  DIGESTS DIFFER")

        out.step("Compliance: interactions that relied on consent")
        var findings: [(String, String)] = []
        for org in orgs {
            let r = try auditor[org]!.get("/v1/compliance?org=\(org)")
            let c = try JSON.parse(r.body)
            let n = { (field: String) in c[field]?.int64Value ?? 0 }
            out.line(
                "  \(names[org]!): \(Phrase.count(n("interactions"), "interaction")) in all; "
                    + "\(n("checked")) relied on consent: \(n("lawful")) lawful, "
                    + "\(Phrase.count(n("violations"), "violation")), "
                    + "\(Phrase.count(n("propagationLags"), "propagation lag"))")
            for f in c["findings"]?.arrayValue ?? [] {
                let cls = f["classification"]?.stringValue ?? "?"
                findings.append((org, cls))
                outcome.findings[org, default: []].append(cls)
                out.line("    \(cls): \(f["reason"]?.stringValue ?? "")")
            }
        }

        out.step("The customer's access report (GDPR Art. 15), self-verifying")
        let html = try auditor["retail"]!.getAccepting(path + "/report", accept: "text/html")
        let json = try auditor["retail"]!.get(path + "/report")
        guard html.status == 200, json.status == 200 else { throw LedgerError(.io, "the report could not be made") }
        let htmlPath = o.directory + "/access-report.html"
        let jsonPath = o.directory + "/access-report.json"
        try Data(html.body).write(to: URL(fileURLWithPath: htmlPath))
        try Data(json.body).write(to: URL(fileURLWithPath: jsonPath))
        let consortium = try Consortium.load(setup.descriptor)
        let check = try SubjectReport.verify(json: json.body, consortium: consortium)
        outcome.reportOK = check.ok
        out.line("  \(htmlPath): open it in a browser; it checks every fact itself, offline")
        out.line("  \(jsonPath): checked here offline: \(check.table.split(separator: "\n").first ?? "")")

        out.step("A receipt, checked offline against the consortium's keys alone")
        // The brand's node answers with its newest checkpoint that the other two cosigned (they cosign what they
        // hold and verified, moments after each push).
        var receiptText = ""
        var checked: Receipt.Verified?
        try waitUntil("the brand's checkpoint is cosigned by both other companies", out) {
            let e = try auditor["brand"]!.get("/v1/entries/brand/\(journey.withdrawal)")
            receiptText = (try JSON.parse(e.body))["receipt"]?.stringValue ?? ""
            checked = try Receipt(parsing: receiptText).verify(consortium: consortium)
            return checked!.cosigners.count == 2
        }
        let receiptPath = o.directory + "/withdrawal.tlog-proof"
        try Data(receiptText.utf8).write(to: URL(fileURLWithPath: receiptPath))
        let verified = checked!
        outcome.receiptCosigners = verified.cosigners
        outcome.entries = journey.entries
        out.line(
            "  \(receiptPath): \(verified.entry.org) seq \(verified.entry.seq) (the SMS withdrawal) is in the log "
                + "signed by \(verified.entry.org)"
                + (verified.cosigners.isEmpty ? "" : ", cosigned by \(verified.cosigners.joined(separator: ", "))"))

        outcome.fork = try showFork(auditor: auditor, nodes: nodes, setup: setup, consortium: consortium, o, out)

        if o.keepRunning {
            out.step("The nodes keep running")
            for org in orgs {
                // node.json says where the node listens (it asked for port 0): a restart binds the same addresses.
                try NodeFile.update(setup.nodeConfigs[org]!) { c in
                    c["peer"] = .string(nodes[org]!.peer)
                    c["api"] = .string(nodes[org]!.api)
                }
                let c = try NodeFile.read(setup.nodeConfigs[org]!)
                out.line(
                    "  \(org): \(setup.nodeConfigs[org]!) (API http://\(nodes[org]!.api)), log \(o.directory)/\(org).log"
                )
                out.line(
                    "    curl -H 'Authorization: Bearer \(c["auditorToken"]!.stringValue!)' "
                        + "http://\(nodes[org]!.api)/v1/subjects/\(NodeAPI.percentEncoded(subject))/view")
            }
            out.line("  stop them with: kill \(orgs.map { String(nodes[$0]!.pid) }.joined(separator: " "))")
            for org in orgs {
                let c = try NodeFile.read(setup.nodeConfigs[org]!)
                outcome.running[org] = (nodes[org]!, c["auditorToken"]!.stringValue!)
            }
            stopped = true
        } else {
            out.step("The nodes stop cleanly; prov verify audits each node's data directory")
            for org in orgs {
                let status = nodes[org]!.stop()
                if status != 0 { throw LedgerError(.io, "\(org)'s node exited with \(status)") }
            }
            stopped = true
            for org in orgs {
                let audits = try Verifier(consortium: consortium).verify(
                    dataDirectory: o.directory + "/consortium/\(org)/data")
                // care's log must fail on the evidence of its fork, and only on that.
                let bad = audits.filter {
                    $0.failure != nil && !($0.org == Self.forker && $0.failure!.hasPrefix("equivocation"))
                }
                let caught = audits.first { $0.org == Self.forker }?.failure?.hasPrefix("equivocation") == true
                let good = audits.filter { $0.failure == nil }
                let total = good.reduce(UInt64(0)) { $0 + $1.entries }
                out.line(
                    "  \(org)'s node: "
                        + (bad.isEmpty
                            ? "\(good.map(\.org).joined(separator: " and ")) verified (\(total) entries)"
                                + (caught
                                    ? "; \(Self.forker)'s log FAILED on the evidence of its fork, as it must" : "")
                            : "FAILED: \(bad.map { $0.failure! }.joined(separator: "; "))"))
                outcome.verified[org] = bad.isEmpty && caught
            }
        }
        let violations = findings.filter { $0.1 == "violation" }.count
        let lags = findings.filter { $0.1 == "propagation-lag" }.count
        out.line("")
        out.line(
            "Done in \(String(format: "%.1f", Date().timeIntervalSince(start))) s: one view digest on three nodes: "
                + "\(identical ? "yes" : "NO"); \(Phrase.count(violations, "violation")) and "
                + "\(Phrase.count(lags, "propagation lag")) found; "
                + "report and receipt verified offline: \(check.ok ? "yes" : "NO"); a fork caught and proven: "
                + "\(outcome.fork ? "yes" : "NO").")
        return outcome
    }

    /// The company whose fork the demo shows.
    static let forker = "care"

    /// A company shows two histories of its log: a checkpoint signed with its key that conflicts with what the
    /// others hold is shown to one node only (as by a stolen key). That node makes evidence from what it holds; the
    /// evidence travels to every node, each checks it, freezes its copy, and the company's own node stops appending.
    /// Anyone checks the evidence offline. Returns whether all of it happened.
    static func showFork(
        auditor: [String: NodeAPI], nodes: [String: NodeProcess], setup: ConsortiumSetup.Result,
        consortium: Consortium, _ o: Options, _ out: Output
    ) throws -> Bool {
        out.step("The contact centre's key signs a second history: the fork is caught, travels and is proven")
        let forger = try SigningKeyFile.read(try NodeConfig.load(setup.nodeConfigs[forker]!).keyPath)
        let held = try SignedCheckpoint(
            parsing: String(decoding: try auditor["brand"]!.get("/logs/\(forker)/checkpoint").body, as: UTF8.self))
        let fork = try SignedCheckpoint.sign(
            Checkpoint(origin: forger.name, size: held.checkpoint.size, root: SHA256.hash("another history")),
            with: forger)
        // Shown to the brand's node only, by the retailer's node over the peer listener (mutual TLS).
        let retailKey = try SigningKeyFile.read(try NodeConfig.load(setup.nodeConfigs["retail"]!).keyPath)
        var tls = HTTPClientConfiguration(
            tls: TLSClientConfiguration(
                identity: try TLSIdentity(key: retailKey.privateKey, commonName: retailKey.name),
                serverKeys: .only(consortium.member("brand")!.key.publicKey)))
        tls.readTimeout = .seconds(20)
        let answer = try HTTPClient(address: nodes["brand"]!.peer, configuration: tls).post(
            "/add-checkpoint", body: AddCheckpoint(old: held.checkpoint.size, proof: [], checkpoint: fork).serialized,
            headers: ["Content-Type": "text/plain"])
        out.line(
            "  a checkpoint of \(forker)'s log for size \(held.checkpoint.size) with another root, shown to brand: \(answer.status)"
        )
        try waitUntil("every node holds the evidence", out) {
            try orgs.allSatisfy { org in
                let s = try JSON.parse(try auditor[org]!.get("/v1/status").body)
                let frozen = s["logs"]?[forker]?["frozen"] != nil
                return org == forker ? s["writingStopped"]?.stringValue != nil : frozen
            }
        }
        out.line(
            "  brand and retail hold the evidence and froze their copy of \(forker)'s log; \(forker)'s node stopped appending"
        )
        let list = try JSON.parse(try auditor["retail"]!.get("/v1/evidence").body)
        guard let name = list["evidence"]?.arrayValue?.first?["name"]?.stringValue else { return false }
        let bytes = try auditor["retail"]!.get("/v1/evidence/\(name)").body
        let path = o.directory + "/\(forker)-equivocation.json"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let proven = try Evidence(parsing: bytes).verify(consortium: consortium)
        switch proven {
        case .success(let p):
            out.line("  \(path): checked offline against the descriptor alone: PROVEN: \(p.description)")
        case .failure(let e): out.line("  \(path): NOT PROVEN: \(e.message)")
        }
        if case .success = proven { return true }
        return false
    }

    // MARK: Steps

    /// Tells every node where the others listen (they bound port 0), except `except`'s peers for `except`.
    static func connect(_ nodes: [String: NodeProcess], _ setup: ConsortiumSetup.Result, except: String?) throws {
        for (org, node) in nodes {
            let before = node.stderrLines.filter { $0.contains("peer addresses re-read") }.count
            try NodeFile.update(setup.nodeConfigs[org]!) { c in
                c["peerAddresses"] = .object(
                    nodes.keys.sorted().filter { $0 != org }.map {
                        // An isolated node is given addresses where nothing listens.
                        JSONMember($0, .string(org == except ? "127.0.0.1:1" : nodes[$0]!.peer))
                    })
            }
            node.signal(SIGHUP)
            guard node.waitForLog("peer addresses re-read", after: before) else {
                throw LedgerError(.io, "the node of \(org) did not re-read its peer addresses")
            }
        }
    }

    static func background(_ api: [String: NodeAPI], customers: Int, out: Output) throws {
        let group = DispatchGroup()
        let failures = Mutex<[String]>([])
        let done = Atomic<Int>(0)
        for (k, org) in orgs.enumerated() {
            group.enter()
            let client = api[org]!
            Thread.detachNewThread {
                defer { group.leave() }
                var i = k
                var batch: [String] = []
                while i < customers * 3 {
                    batch.append(Traffic.event(org: org, customer: i % customers, n: i))
                    if batch.count == 500 || i + 3 >= customers * 3 {
                        do {
                            let r = try client.post(
                                "/v1/events", Array(("[" + batch.joined(separator: ",") + "]").utf8))
                            guard r.status == 200 else {
                                failures.withLock {
                                    $0.append(
                                        "\(org): \(r.status) \(String(decoding: r.body.prefix(200), as: UTF8.self))")
                                }
                                return
                            }
                            done.add(batch.count, ordering: .relaxed)
                        } catch {
                            failures.withLock { $0.append("\(org): \(error)") }
                            return
                        }
                        batch.removeAll()
                    }
                    i += 3
                }
            }
        }
        while group.wait(timeout: .now() + 0.2) == .timedOut {
            out.progress("  \(done.load(ordering: .relaxed)) events acknowledged")
        }
        out.progress(nil)
        if let f = failures.withLock({ $0.first }) { throw LedgerError(.io, "background traffic: \(f)") }
        out.line(
            "  \(done.load(ordering: .relaxed)) events acknowledged by the three nodes (consents, calls, chats, purchases)"
        )
    }

    /// Waits until every node holds every log at one size and root, and nothing moved for a moment (the heads
    /// entries a node writes after the others moved have been written and copied too).
    static func converge(_ auditor: [String: NodeAPI], _ out: Output) throws -> [String: UInt64] {
        var last: [String: [String: (UInt64, String)]] = [:]
        var stableSince: Date?
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            var now: [String: [String: (UInt64, String)]] = [:]
            for org in orgs {
                let s = try JSON.parse(try auditor[org]!.get("/v1/status").body)
                var logs: [String: (UInt64, String)] = [:]
                for m in s["logs"]?.objectValue ?? [] {
                    logs[m.key] = (UInt64(m.value["size"]?.int64Value ?? 0), m.value["root"]?.stringValue ?? "")
                }
                now[org] = logs
            }
            let agree = orgs.allSatisfy { log in Set(now.values.map { "\($0[log]!.0) \($0[log]!.1)" }).count == 1 }
            let same = agree && orgs.allSatisfy { n in orgs.allSatisfy { l in last[n]?[l]?.1 == now[n]![l]!.1 } }
            if same {
                if let s = stableSince, Date().timeIntervalSince(s) > 1.0 {
                    out.progress(nil)
                    return now["brand"]!.mapValues(\.0)
                }
                stableSince = stableSince ?? Date()
            } else {
                stableSince = nil
            }
            last = now
            out.progress("  " + orgs.map { "\($0) \(now["brand"]![$0]!.0)" }.joined(separator: ", "))
            usleep(100_000)  // sampling the nodes' status, not synchronising with them
        }
        throw LedgerError(.io, "the nodes did not converge within 60 s")
    }

    static func waitUntil(_ what: String, _ out: Output, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if try condition() { return }
            usleep(50_000)  // sampling, as above
        }
        throw LedgerError(.io, "timed out waiting until \(what)")
    }

    /// Numbered steps and their lines on the console, progress on its status line.
    final class Output: @unchecked Sendable {
        // Used from the demo's thread only.
        var n = 0
        let console: Console
        init(_ console: Console) { self.console = console }
        func step(_ s: String) {
            n += 1
            console.line("\n[\(n)] \(s)")
        }
        func line(_ s: String) { console.line(s) }
        func progress(_ s: String?) { console.status?(s.map { "\r\u{1B}[K" + $0 } ?? "\r\u{1B}[K") }
    }
}
