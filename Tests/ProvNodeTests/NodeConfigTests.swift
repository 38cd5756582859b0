import Foundation
import ProvLedger
import TestSupport
import Testing

@testable import ProvNode

/// `node.json` keeps the evidence folder and the data directory apart (Specs/protocol.md §2.2): `prov verify`
/// audits every folder of a data directory as a log, and a node reads every file of its evidence folder as
/// evidence.
@Suite(.leavesNoFiles) struct NodeConfigTests {
    /// The configuration of `node.json` in `dir`, with `data` and `evidence` (absent when nil) as given.
    static func load(_ dir: String, data: String, evidence: String?) throws(LedgerError) -> NodeConfig {
        var fields = [
            JSONMember("org", .string("brand")), JSONMember("consortium", .string("consortium.json")),
            JSONMember("key", .string("brand.key")), JSONMember("linkKey", .string("link.key")),
            JSONMember("data", .string(data)), JSONMember("peer", .string("127.0.0.1:0")),
            JSONMember("api", .string("127.0.0.1:0")), JSONMember("token", .string("t0123456789abcdef")),
            JSONMember("auditorToken", .string("a0123456789abcdef")),
        ]
        if let evidence { fields.append(JSONMember("evidence", .string(evidence))) }
        return try NodeConfig(json: .object(fields), path: dir + "/node.json")
    }

    @Test func anEvidenceFolderInsideTheDataDirectoryOrHoldingItIsRefused() throws {
        let dir = try TemporaryFiles.directory("node-config").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/node.json"
        let data = dir + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: data)

        // Beside the data directory: the default, another folder, a name that only starts like it.
        #expect(try Self.load(dir, data: "data", evidence: nil).evidenceDirectory == dir + "/evidence")
        #expect(try Self.load(dir, data: "data", evidence: "/var/evidence").evidenceDirectory == "/var/evidence")
        #expect(try Self.load(dir, data: "data", evidence: "data-evidence").evidenceDirectory == data + "-evidence")

        func inside(_ evidence: String, default isDefault: Bool = false, data: String = data) -> LedgerError {
            LedgerError(
                .config,
                "node configuration \(config): evidence folder \(evidence)\(isDefault ? " (the default)" : "") is "
                    + "the data directory \(data) or inside it, where prov verify would audit it as a log: set "
                    + "evidence to a folder outside it")
        }
        #expect(throws: inside(data + "/evidence")) { try Self.load(dir, data: "data", evidence: "data/evidence") }
        #expect(throws: inside(data)) { try Self.load(dir, data: "data", evidence: "data") }
        #expect(throws: inside(dir + "/./data/../data/e")) {
            try Self.load(dir, data: "data", evidence: "./data/../data/e")
        }
        // Through a link to the data directory.
        #expect(throws: inside(dir + "/link/evidence")) { try Self.load(dir, data: "data", evidence: "link/evidence") }
        // The data directory is node.json's own folder, so the default evidence folder lies inside it.
        #expect(throws: inside(dir + "/evidence", default: true, data: dir + "/.")) {
            try Self.load(dir, data: ".", evidence: nil)
        }
        // The evidence folder holds the data directory (and node.json, and the keys).
        #expect(
            throws: LedgerError(
                .config,
                "node configuration \(config): evidence folder \(dir)/. holds the data directory \(data), and every "
                    + "file of it is read as evidence: set evidence to a folder of its own")
        ) { try Self.load(dir, data: "data", evidence: ".") }
    }
}
