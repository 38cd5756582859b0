import Foundation
import ProvLedger
import ProvNode

extension Prov {
    /// `prov nodes init --dir DIR --orgs A,B,C [--consortium NAME] [--base-port PORT]` (Specs/protocol.md §2.1).
    static func nodes(_ a: [String]) throws -> Int32 {
        guard a.first == "init" else { throw UsageError("usage: prov nodes init --dir DIR --orgs ORG1,ORG2,... ") }
        let args = try Arguments(Array(a.dropFirst()), options: ["dir", "orgs", "consortium", "base-port"])
        let dir = try args.required("dir")
        let orgs = try args.required("orgs").split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let name = try args.optional("consortium") ?? "local"
        let base = try args.integer("base-port", default: 7400)
        let r = try ConsortiumSetup.initialize(directory: dir, orgs: orgs, consortium: name, basePort: base)
        out("wrote \(r.descriptor): consortium \(name) with \(orgs.count) members")
        for org in orgs { out("  \(org): provd --config \(r.nodeConfigs[org]!)") }
        return 0
    }
}

extension Prov {
    /// `prov demo` (the three-node journey): `--dir DIR`, `--keep-running`, `--customers N`.
    static func journey(_ a: [String]) throws -> Int32 {
        let args = try Arguments(a, options: ["dir", "customers"], flags: ["keep-running"])
        let stamp = Timestamp.format(UInt64(Date().timeIntervalSince1970 * 1000)).replacingOccurrences(
            of: ":", with: "")
        let dir = try args.optional("dir") ?? FileManager.default.temporaryDirectory.path + "/prov-demo-\(stamp)"
        return try JourneyDemo.main(
            .init(
                directory: dir, keepRunning: args.flags.contains("keep-running"),
                customers: try args.integer("customers", default: 3000)))
    }
}
