import Foundation
import ProvLedger

/// `prov demo`: the main job, the three-node journey of JourneyDemo.swift, on the companies of the committed example
/// consortium (`Nodes/members.json`). Each run makes a fresh consortium under `Nodes/<consortium>/` (git-ignored),
/// starts three `provd` processes on loopback and stops them cleanly at the end (unless `--keep-running`).
enum Demo {
    static let command = Command(
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
        ], run: run)

    static func run(_ args: Arguments) throws -> Int32 {
        let nodes = try Checkout.nodes(try args.optional("nodes"))
        let (name, names) = try loadMembers(nodes + "/members.json")
        let stamp = Timestamp.format(UInt64(Date().timeIntervalSince1970 * 1000)).replacingOccurrences(
            of: ":", with: ""
        )
        .replacingOccurrences(of: ".", with: "-")
        let dir = "\(nodes)/\(name)/run-\(stamp)"
        return try JourneyDemo.main(
            .init(
                directory: dir, keepRunning: args.flag("keep-running"),
                customers: try args.integer("customers", default: 3000), consortium: name, names: names,
                provd: try args.optional("provd") ?? NodeProcess.provdPath))
    }

    /// The committed example consortium: its name and its members' display names. The journey is written for
    /// the three companies it names: `brand`, `retail` and `care`.
    static func loadMembers(_ path: String) throws -> (String, [String: String]) {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw LedgerError(.config, "cannot read \(path) (the example consortium's members)")
        }
        let v: JSONValue
        do { v = try JSON.parse(Array(d)) } catch { throw LedgerError(.config, "\(path): \(error)") }
        guard let name = v["consortium"]?.stringValue, Vocabulary.isConsortiumName(name),
            let list = v["members"]?.arrayValue
        else {
            throw LedgerError(.config, "\(path): needs a consortium name and a members list")
        }
        var names: [String: String] = [:]
        for m in list {
            guard let org = m["org"]?.stringValue, let n = m["name"]?.stringValue else {
                throw LedgerError(.config, "\(path): each member needs org and name")
            }
            names[org] = n
        }
        guard Set(names.keys) == Set(JourneyDemo.orgs) else {
            throw LedgerError(
                .config, "\(path): the demo's journey is written for the members brand, retail and care")
        }
        return (name, names)
    }
}
