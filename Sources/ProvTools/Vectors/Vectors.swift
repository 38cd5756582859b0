import Foundation
import ProvCrypto
import ProvLedger

/// `prov vectors --out DIR`: regenerates Specs/vectors deterministically (fixed keys derived from public seeds,
/// a fixed clock), so an independent implementation can check its bytes against ours.
package enum Vectors {
    /// Test-only keys: seed = SHA-256("provenance-ledger test vector key " + org). Public by design.
    package static func signer(_ org: String) throws -> NoteSigner {
        try NoteSigner(
            name: "vectors/\(org)",
            privateKey: Ed25519PrivateKey(seed: SHA256.hash("provenance-ledger test vector key \(org)").bytes))
    }

    /// Test-only linking key: SHA-256("provenance-ledger test vector linking key").
    package static let linkKeyBytes = SHA256.hash("provenance-ledger test vector linking key").bytes
    /// 2026-11-24T12:00:00Z.
    package static let now: UInt64 = 1_795_521_600_000

    package static let events: [(name: String, line: String)] = [
        (
            "consent-give",
            #"{"type":"consent","subject":"email:Alice@Example.com","event":"give","purposes":["dpv:DirectMarketing"],"controllers":["brand"],"recipients":["retail"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","notice":{"id":"privacy","version":"7","sha256":"0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"},"occurredAt":"2026-11-24T10:00:00Z","expiresAt":"2027-11-24T10:00:00Z","evidence":"a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"}"#
        ),
        (
            "interaction-voice-contract",
            #"{"type":"interaction","subject":"phone:+44 1632 960001","channel":"voice","interaction":"support-call","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"E-4711","kind":"person","onBehalfOf":"brand"},"occurredAt":"2026-11-24T10:05:00Z","detail":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}"#
        ),
        (
            "interaction-email-consent",
            #"{"type":"interaction","subject":"email:alice@example.com","channel":"email","interaction":"newsletter","purposes":["dpv:DirectMarketing"],"legalBasis":"dpv:Consent","agent":{"id":"mailer","kind":"software","onBehalfOf":"brand"},"occurredAt":"2026-11-24T11:00:00Z","consentRef":{"org":"brand","seq":0}}"#
        ),
        (
            "share",
            #"{"type":"share","subject":"email:alice@example.com","recipient":"retail","purposes":["dpv:DirectMarketing"],"dataCategories":["dpv:Contact"],"occurredAt":"2026-11-24T11:10:00Z","derivedFrom":[{"org":"brand","seq":0}]}"#
        ),
        (
            "link",
            #"{"type":"link","subjects":["email:alice@example.com","phone:+441632960001"],"evidence":"ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100","occurredAt":"2026-11-24T11:20:00Z"}"#
        ),
        (
            "consent-withdraw",
            #"{"type":"consent","subject":"cust:brand:C-1001","event":"withdraw","purposes":["dpv:Personalisation","dpv:DirectMarketing"],"channel":"app","method":"app-toggle","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T11:30:00.250Z"}"#
        ),
        (
            "unlink",
            #"{"type":"unlink","subjects":["email:alice@example.com","phone:+441632960001"],"occurredAt":"2026-11-24T11:40:00Z"}"#
        ),
        (
            "interaction-iot-device",
            #"{"type":"interaction","subject":"device:Thermostat-77","channel":"iot","interaction":"telemetry-upload","purposes":["dpv:ServiceProvision"],"legalBasis":"dpv:Contract","agent":{"id":"thermostat","kind":"device"},"occurredAt":"2026-11-24T11:50:00Z","derivedFrom":[{"org":"brand","seq":1},{"org":"brand","seq":4}]}"#
        ),
    ]

    package static func consortium() throws -> Consortium {
        try Consortium(
            name: "vectors",
            members: ["brand", "retail"].map { org in
                Consortium.Member(
                    org: org, name: org.capitalized, origin: "vectors/\(org)", key: try signer(org).verifierKey,
                    peer: nil,
                    api: nil)
            }, linkKeyFingerprint: try LinkKey(bytes: linkKeyBytes).fingerprint)
    }

    /// Writes consortium.json, entries.json (input line, canonical hex, leaf hash), a signed log of the same
    /// entries under log/, and a receipt for seq 2.
    package static func generate(into out: String) throws {
        let fm = FileManager.default
        try? fm.removeItem(atPath: out + "/log")
        try fm.createDirectory(atPath: out + "/log", withIntermediateDirectories: true)
        let c = try consortium()
        try c.write(to: out + "/consortium.json")
        let ingestor = try Ingestor(
            dataDirectory: out + "/log", consortium: c, signer: try signer("brand"),
            linkKey: try LinkKey(bytes: linkKeyBytes),
            log: { _ in })
        let input = Array(events.map { $0.line + "\n" }.joined().utf8)
        let results = try ingestor.append(input, now: now)
        ingestor.store.close()
        var list: [JSONValue] = []
        for (i, ev) in events.enumerated() {
            let bytes = try ingestor.store.entryBytes(UInt64(i))
            list.append(
                .object([
                    JSONMember("name", .string(ev.name)), JSONMember("input", try JSON.parse(ev.line)),
                    JSONMember("seq", .number(String(i))), JSONMember("canonicalHex", .string(Hex.encode(bytes))),
                    JSONMember("leafHash", .string(results[i].leaf.hex)),
                    JSONMember("entry", try Entry.decode(bytes).json),
                ]))
        }
        let doc = JSONValue.object([
            JSONMember(
                "about",
                .string(
                    "Generated by `prov vectors --out Specs/vectors`. Signing key seed of org X: SHA-256(\"provenance-ledger test vector key X\"); linking key: SHA-256(\"provenance-ledger test vector linking key\"); clock: \(now) ms. All entries are in one group commit of log vectors/brand."
                )),
            JSONMember("linkKeyHex", .string(Hex.encode(linkKeyBytes))),
            JSONMember("entries", .array(list)),
            JSONMember("checkpoint", .string(ingestor.store.latest!.serialized)),
        ])
        try Data((doc.prettySerialized + "\n").utf8).write(to: URL(fileURLWithPath: out + "/entries.json"))
        try Data(try ingestor.store.receipt(2).serialized.utf8).write(
            to: URL(fileURLWithPath: out + "/receipt-brand-2.tlog-proof"))
        try? fm.removeItem(atPath: out + "/log/brand/LOCK")
    }
}
