import Foundation
import ProvCrypto
import ProvLedger
import TestSupport
import Testing

@testable import ProvNode

/// Where a node keeps equivocation evidence: in its data directory's `evidence` folder (Specs/format.md §10.12),
/// which `prov verify` reads too; it is not configurable, and `evidence` is no member's org id.
@Suite(.leavesNoFiles) struct NodeConfigTests {
    static func fields(data: String) -> [JSONMember] {
        [
            JSONMember("org", .string("brand")), JSONMember("consortium", .string("consortium.json")),
            JSONMember("key", .string("brand.key")), JSONMember("linkKey", .string("link.key")),
            JSONMember("data", .string(data)), JSONMember("peer", .string("127.0.0.1:0")),
            JSONMember("api", .string("127.0.0.1:0")), JSONMember("token", .string("t0123456789abcdef")),
            JSONMember("auditorToken", .string("a0123456789abcdef")),
        ]
    }

    @Test func evidenceIsKeptInTheDataDirectory() throws {
        let c = try NodeConfig(json: .object(Self.fields(data: "data")), path: "/srv/brand/node.json")
        #expect(c.evidenceDirectory == "/srv/brand/data/evidence")
        // The folder is not a setting: a node.json that names one is refused with the fields it may have.
        #expect {
            _ = try NodeConfig(
                json: .object(Self.fields(data: "data") + [JSONMember("evidence", .string("/var/evidence"))]),
                path: "/srv/brand/node.json")
        } throws: { error in
            "\(error)".contains("field 'evidence' is not known")
        }
    }

    @Test(arguments: [
        ("evidence", "a data directory keeps equivocation evidence in a folder of that name"),
        ("quarantine", "a data directory keeps damaged copies set aside in a folder of that name"),
    ])
    func folderNamesOfTheDataDirectoryAreNoMembersOrgID(org: String, why: String) throws {
        let key = try NoteSigner(name: "acme/\(org)", privateKey: .generate()).verifierKey
        #expect {
            _ = try Consortium(
                name: "acme",
                members: [
                    Consortium.Member(org: org, name: "Folder", origin: "acme/\(org)", key: key, peer: nil, api: nil)
                ])
        } throws: { error in
            "\(error)".contains("org id '\(org)' is reserved: \(why)")
        }
    }
}
