import Foundation
import ProvCrypto

@testable import ProvLedger

/// A consortium of three members with in-memory keys and a linking key, for ledger tests.
struct TestConsortium {
    let consortium: Consortium
    let signers: [String: NoteSigner]
    let linkKey: LinkKey

    init(name: String = "acme", orgs: [String] = ["brand", "retail", "bank"]) throws {
        (consortium, signers, linkKey) = try Consortium.withFreshKeys(name: name, orgs: orgs)
    }

    func parser(_ org: String = "brand") -> EventParser {
        EventParser(consortium: consortium, org: org, linkKey: linkKey)
    }

    func body(_ json: String, org: String = "brand") throws -> EntryBody {
        try parser(org).parse(try JSON.parse(json))
    }
}

enum Events {
    static func consent(_ i: Int, event: String = "give") -> String {
        #"{"type":"consent","subject":"email:user\#(i)@example.com","event":"\#(event)","purposes":["dpv:DirectMarketing"],"controllers":["brand"],"recipients":["retail"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z","expiresAt":"2027-11-24T10:00:00Z"}"#
    }

    static func interaction(_ i: Int) -> String {
        #"{"type":"interaction","subject":"phone:+4416329600\#(String(format: "%02d", i % 100))","channel":"voice","interaction":"support-call","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"agent-42","kind":"person","onBehalfOf":"brand"},"occurredAt":"2026-11-24T10:00:00Z"}"#
    }

    static func lines(_ n: Int, from start: Int = 0) -> String {
        (start..<(start + n)).map { $0 % 2 == 0 ? consent($0) : interaction($0) }.joined(separator: "\n") + "\n"
    }
}
