import Foundation
import ProvLedger
import ProvNode

extension Prov {
    static let nodesInitCommand = Command(
        "nodes init",
        purpose: "Set up a consortium of provd nodes on this machine: keys, descriptor, linking key and a node.json "
            + "per org.",
        options: [
            .value("dir", "DIR", "the folder to make it in: DIR/<org>/node.json, DIR/consortium.json", required: true),
            .value("orgs", "ORG1,ORG2,...", "the members' org ids, comma-separated", required: true),
            .value(
                "consortium", "NAME",
                "the consortium's name, the first part of every log's origin (default: DIR's folder name, as acme "
                    + "for /tmp/acme)"),
            .value(
                "base-port", "PORT",
                "ports from here: member i listens for peers on PORT+1+i and for its API on PORT+101+i (default "
                    + "7400)"),
        ],
        examples: ["prov nodes init --dir /tmp/acme --orgs brand,retail,care"],
        notes: ["Then start each node with provd --config DIR/<org>/node.json (Specs/protocol.md §2.1)."],
        run: nodes)

    static func nodes(_ args: Arguments) throws -> Int32 {
        let dir = try args.required("dir")
        let orgs = try args.required("orgs").split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let folder = URL(fileURLWithPath: dir).lastPathComponent
        guard let name = try args.optional("consortium") ?? (Vocabulary.isConsortiumName(folder) ? folder : nil) else {
            throw UsageError(
                "the folder name '\(folder.prefix(40))' is not a consortium name (a-z 0-9 . -, starting with a letter or digit): give --consortium NAME"
            )
        }
        let base = try args.integer("base-port", default: 7400)
        let r = try ConsortiumSetup.initialize(directory: dir, orgs: orgs, consortium: name, basePort: base)
        out("wrote \(r.descriptor): consortium \(name) with \(Phrase.count(orgs.count, "member"))")
        for org in orgs { out("  \(org): provd --config \(r.nodeConfigs[org]!)") }
        return 0
    }
}
