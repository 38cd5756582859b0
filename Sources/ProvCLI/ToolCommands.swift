import Foundation
import ProvLedger
import ProvTools

#if canImport(Glibc)
    import Glibc
#endif

/// The commands whose work is done in ProvTools: the benchmarks, the demo and the test-vector generator. Here only
/// their declarations, the reading of their arguments and the printing of what they return.
extension Prov {
    // MARK: bench

    /// `prov bench <name>`: one declaration each.
    static let benchCommands: [Command] = {
        let entries = Option.value("entries", "N", "entries to write (default 100000)")
        let dir = Option.value("dir", "DIR", "where the throwaway data goes (default: the temporary folder)")
        let runs = Option.value("runs", "R", "runs; the medians are printed (default 1)")
        let group = Option.value("group", "G", "entries per group commit (default 1000)")
        let keep = Option.flag("keep", "keep the data directory of each run")
        func logBench(_ which: Bench.Log, _ purpose: String) -> Command {
            Command(
                "bench \(which.rawValue)", purpose: purpose, options: [entries, dir, runs, group, keep],
                examples: ["prov bench \(which.rawValue) --entries 1000000 --runs 3"]
            ) { args in try runLogBench(which, args) }
        }
        return [
            logBench(
                .append,
                "Measure group commits to one log: entries per second, commit latency, bytes per entry, memory."),
            logBench(
                .ingest,
                "Measure the whole input path, JSON Lines to durable entries: parsing, validation, "
                    + "pseudonymisation, group commit."),
            logBench(.verify, "Measure prov verify's audit of one log of N entries, written first."),
            Command(
                "bench parts",
                purpose:
                    "Measure the steps the other benchmarks are made of, in nanoseconds per operation on one core.",
                options: [.value("entries", "N", "operations per step (default 200000)")],
                examples: ["prov bench parts"]
            ) { args in
                out(try Bench.parts(operations: try args.integer("entries", default: 200_000)).serialized)
                return 0
            },
            Command(
                "bench query",
                purpose:
                    "Measure the shared customer view: index build rate and memory, permit and view latency in "
                    + "process and over HTTP from a real provd, HTTP requests per second, and permits for a customer "
                    + "with a long history against one with a single consent.",
                options: [
                    .value("entries", "N", "entries of the log (default 1000000)"),
                    .value("subjects", "S", "customers they are about (default N / 10)"),
                    .value("runs", "R", "runs; the medians are printed (default 1)"),
                    .value("queries", "Q", "permit queries per run (default 100000; views: Q / 10)"),
                    .value(
                        "heavy-entries", "H",
                        "entries about the one customer with a long history, after the N (default 100000)"),
                    .value("dir", "DIR", "where the throwaway data goes (default: the temporary folder)"),
                ],
                examples: ["prov bench query --entries 1000000 --subjects 100000 --runs 3"],
                run: queryBench),
        ] + nodeBenchCommands + [
            Command(
                "bench http",
                purpose:
                    "Measure the HTTP/1.1 server and client alone over loopback: kept-alive GET requests per second "
                    + "to a handler that answers at once, plain or over mutual TLS 1.3.",
                options: [
                    .value("requests", "N", "requests per run (default 40000)"),
                    .value("connections", "C", "kept-alive connections sending at once (default 4)"),
                    .flag("tls", "mutual TLS 1.3 with pinned Ed25519 keys, as between nodes"),
                    runs,
                ],
                examples: ["prov bench http --connections 4 --runs 3", "prov bench http --tls"], run: httpBench)
        ]
    }()

    static func httpBench(_ args: Arguments) throws -> Int32 {
        let requests = try args.integer("requests", default: 40_000)
        let connections = try args.integer("connections", default: 4)
        let runs = max(1, try args.integer("runs", default: 1))
        guard requests > 0, connections > 0 else { throw UsageError("--requests and --connections must be positive") }
        let result = try HTTPBench.run(
            requests: requests, connections: connections, tls: args.flag("tls"), runs: runs,
            progress: ProgressLine(enabled: isatty(2) != 0))
        out(result.serialized)
        return 0
    }

    static func runLogBench(_ which: Bench.Log, _ args: Arguments) throws -> Int32 {
        let n = try args.integer("entries", default: 100_000)
        let runs = max(1, try args.integer("runs", default: 1))
        let group = max(1, try args.integer("group", default: 1000))
        guard n > 0 else { throw UsageError("--entries must be positive") }
        let base = try args.optional("dir") ?? FileManager.default.temporaryDirectory.path
        let result = try Bench.run(
            which, entries: n, runs: runs, group: group, directory: base, keep: args.flag("keep"),
            progress: ProgressLine(enabled: isatty(2) != 0))
        out(result.serialized)
        return 0
    }

    static func queryBench(_ args: Arguments) throws -> Int32 {
        let n = try args.integer("entries", default: 1_000_000)
        let subjects = try args.integer("subjects", default: max(1, n / 10))
        let runs = max(1, try args.integer("runs", default: 1))
        let queries = max(100, try args.integer("queries", default: 100_000))
        let heavy = try args.integer("heavy-entries", default: 100_000)
        guard n > 0, subjects > 0, subjects <= n else { throw UsageError("need 0 < --subjects <= --entries") }
        guard heavy >= 10 else { throw UsageError("--heavy-entries must be at least 10") }
        let base = try args.optional("dir") ?? FileManager.default.temporaryDirectory.path
        let result = try QueryBench.run(
            entries: n, subjects: subjects, runs: runs, queries: queries, heavy: heavy, directory: base,
            progress: ProgressLine(enabled: isatty(2) != 0))
        out(result.serialized)
        return 0
    }

    /// The benchmarks against real `provd` processes.
    static let nodeBenchCommands: [Command] = {
        let runs = Option.value("runs", "R", "runs; the medians are printed (default 1)")
        let dir = Option.value("dir", "DIR", "where the nodes' throwaway folders go (default: the temporary folder)")
        func bench(
            _ name: String, _ purpose: String, _ options: [Option], _ example: String,
            _ load: @escaping @Sendable (Arguments) throws -> NodeBench.Load
        ) -> Command {
            Command(
                "bench \(name)", purpose: purpose, options: options + [runs, dir], examples: [example]
            ) { args in
                let runs = max(1, try args.integer("runs", default: 1))
                let base = try args.optional("dir") ?? FileManager.default.temporaryDirectory.path
                let result = try NodeBench.run(
                    try load(args), runs: runs, directory: base, progress: ProgressLine(enabled: isatty(2) != 0))
                out(result.serialized)
                return 0
            }
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
                "prov bench replicate --entries 1000000"
            ) { args in .replicate(entries: try args.integer("entries", default: 100_000), view: !args.flag("no-view"))
            },
            bench(
                "fetch",
                "Measure a remote audit: prov fetch copies and verifies one log of N entries from a provd's API over "
                    + "HTTP; printed beside the same run's prov verify of the copy, and the fetch's peak memory.",
                [.value("entries", "N", "entries in the log fetched (default 100000)")],
                "prov bench fetch --entries 1000000"
            ) { args in .fetch(entries: try args.integer("entries", default: 100_000)) },
            bench(
                "propagate",
                "Measure the time from one node's acknowledgement of an entry to its storage at a peer, under "
                    + "steady load.",
                [
                    .value("rate", "R", "entries per second posted (default 10000)"),
                    .value("seconds", "S", "how long to post (default 10)"),
                ], "prov bench propagate --rate 10000 --seconds 10"
            ) { args in
                .propagate(
                    rate: try args.integer("rate", default: 10_000), seconds: try args.integer("seconds", default: 10))
            },
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
                ], "prov bench api --seconds 5"
            ) { args in
                .api(
                    seconds: try args.integer("seconds", default: 5),
                    connections: try args.integer("connections", default: 64),
                    batchConnections: max(1, try args.integer("batch-connections", default: 2)))
            },
        ]
    }()

    // MARK: demo

    static let demoCommand = Command(
        "demo",
        purpose: "Run the main job: three companies' provd nodes on this machine, a customer's journey across them, "
            + "the customer's view from every node, compliance, a self-verifying access report, an offline receipt, "
            + "and prov verify on every node.",
        options: [
            .value(
                "nodes", "DIR",
                "the Nodes folder (default: the Nodes/ beside Package.swift of the checkout this is run in, from "
                    + "any folder inside it)"),
            .value("customers", "N", "background customers (default 3000)"),
            .value("provd", "PATH", "the provd to run (default: the one built beside this prov)"),
            .flag("keep-running", "leave the three nodes running at the end and print how to query them"),
        ],
        exitCodes: [
            ExitCode(0, "every check passed"),
            ExitCode(
                1, "a check failed: the digests differ, a finding is missing or extra, or something did not verify"),
            ExitCode(2, "usage error, no Nodes folder, or a node that could not start"),
        ],
        examples: ["swift run prov demo", "prov demo --keep-running", "prov demo --nodes ~/ProvenanceLedger/Nodes"],
        notes: [
            "Each run makes a fresh consortium (keys, descriptor, node.json per company, data) in "
                + "Nodes/<consortium>/run-<time>/; nothing is shared between runs, and a run that cannot finish "
                + "(exit 2) stops its nodes and removes its folder. With --keep-running the nodes log to "
                + "<org>.log in the run's folder and each node.json names the addresses its node listens on. Exit 0 when every node gives the "
                + "customer the same view digest, the violation and the propagation lag are found and nothing else, "
                + "and the report, the receipt and every node's data verify."
        ], run: demo)

    static func demo(_ args: Arguments) throws -> Int32 {
        let nodes = try Checkout.nodes(try args.optional("nodes"))
        let customers = try args.integer("customers", default: 3000)
        let provd = try args.optional("provd") ?? NodeProcess.provdPath
        // The steps on standard output; the progress of the long ones on a terminal's standard error.
        var console = Console(line: { out($0) }, status: nil)
        if isatty(2) != 0 { console.status = { write(2, $0) } }
        let outcome = try Demo.run(
            nodes: nodes, keepRunning: args.flag("keep-running"), customers: customers, provd: provd,
            console: console)
        return outcome.ok ? 0 : 1
    }

    // MARK: vectors

    static let vectorsCommand = Command(
        "vectors",
        purpose: "Regenerate the test vectors of Specs/vectors deterministically, from public seeds and a fixed clock.",
        options: [.value("out", "DIR", "the folder to write them to (Specs/vectors in a checkout)", required: true)],
        examples: ["prov vectors --out Specs/vectors"],
        notes: [
            "Writes consortium.json, entries.json (each input line, its canonical bytes and leaf hash), the signed "
                + "log under log/ and a receipt, so an independent implementation can compare its bytes with ours."
        ]
    ) { args in
        try Vectors.generate(into: try args.required("out"))
        out("wrote test vectors to \(try args.required("out"))")
        return 0
    }
}
