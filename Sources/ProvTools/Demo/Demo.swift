import Foundation
import ProvLedger

/// `prov demo`: the main job, the three-node journey of JourneyDemo.swift, on the companies of the committed example
/// consortium (`Nodes/members.json`). Each run makes a fresh consortium under `Nodes/<consortium>/` (git-ignored),
/// starts three `provd` processes on loopback and stops them cleanly at the end (unless `--keep-running`).
package enum Demo {
    /// Runs the journey in a fresh run folder `<nodes>/<consortium>/run-<time>` of the Nodes folder `nodes`; the
    /// other settings are those of `JourneyDemo.Options`.
    package static func run(
        nodes: String, keepRunning: Bool, customers: Int, provd: String, console: Console
    ) throws -> JourneyDemo.Outcome {
        let (name, names) = try loadMembers(nodes + "/members.json")
        let stamp = Timestamp.format(UInt64(Date().timeIntervalSince1970 * 1000)).replacingOccurrences(
            of: ":", with: ""
        )
        .replacingOccurrences(of: ".", with: "-")
        let dir = "\(nodes)/\(name)/run-\(stamp)"
        return try JourneyDemo.run(
            .init(
                directory: dir, keepRunning: keepRunning, customers: customers, console: console, consortium: name,
                names: names, provd: provd))
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
