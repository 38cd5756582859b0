import Foundation
import ProvCrypto
import ProvLedger

/// `prov demo`: the local consortium of Nodes/members.json doing real work. Keys, the descriptor and the linking
/// key are made on first use; every company appends a day's consent events and interactions to its own log
/// (the contact centre acting for the brand, on the brand's consent); then every log is audited and one fact is
/// proved offline with a receipt. Run it again and the logs grow.
enum Demo {
    struct MemberSpec {
        var org: String
        var name: String
        var peer: String?
        var api: String?
    }

    static let command = Command(
        "demo",
        purpose: "Run the local consortium of Nodes/members.json through a day's work: every company appends, every "
            + "log is audited, one fact is proved with a receipt.",
        options: [
            .value(
                "nodes", "DIR",
                "the Nodes folder (default: the Nodes/ beside Package.swift of the checkout this is run in, from "
                    + "any folder inside it)")
        ],
        examples: ["swift run prov demo", "prov demo --nodes ~/ProvenanceLedger/Nodes"],
        notes: [
            "Keys, the descriptor and the linking key are made on first use under Nodes/<consortium>/; every run "
                + "appends more."
        ], run: run)

    static func run(_ args: Arguments) throws -> Int32 {
        let nodes = try Checkout.nodes(try args.optional("nodes"))
        let (name, specs) = try loadMembers(nodes + "/members.json")
        let home = nodes + "/" + name
        let fm = FileManager.default
        try fm.createDirectory(atPath: home + "/keys", withIntermediateDirectories: true)

        // Keys and descriptor, made once.
        var signers: [String: NoteSigner] = [:]
        for s in specs {
            let path = "\(home)/keys/\(s.org).key"
            if fm.fileExists(atPath: path) {
                signers[s.org] = try SigningKeyFile.read(path)
            } else {
                let signer = try NoteSigner(name: "\(name)/\(s.org)", privateKey: .generate())
                try SigningKeyFile.write(signer, to: path)
                signers[s.org] = signer
                Prov.out("made signing key \(path)")
            }
        }
        let linkPath = home + "/keys/link.key"
        if !fm.fileExists(atPath: linkPath) { try LinkKey.create(linkPath) }
        let linkKey = try LinkKey.load(linkPath)
        let consortium = try Consortium(
            name: name,
            members: specs.map {
                Consortium.Member(
                    org: $0.org, name: $0.name, origin: "\(name)/\($0.org)", key: signers[$0.org]!.verifierKey,
                    peer: $0.peer, api: $0.api)
            }, linkKeyFingerprint: linkKey.fingerprint)
        try consortium.write(to: home + "/consortium.json")
        let data = home + "/data"

        // A day of work per company. The brand collects consent first, so the others can rely on it.
        let order = ["brand"] + specs.map(\.org).filter { $0 != "brand" }
        var brandConsent: [Int: UInt64] = [:]
        for org in order where signers[org] != nil {
            let ingestor = try Ingestor(
                dataDirectory: data, consortium: consortium, signer: signers[org]!, linkKey: linkKey,
                log: { Prov.log("warn", $0) })
            let start = ingestor.store.size
            let lines = events(for: org, consortium: consortium, brandConsent: brandConsent)
            let t0 = Date()
            let results = try ingestor.append(Array(lines.utf8))
            if org == "brand" {
                for (i, r) in results.enumerated() where i % 3 == 0 { brandConsent[i / 3] = r.seq }
            }
            ingestor.store.close()
            Prov.out(
                "\(org): appended \(results.count) entries (seq \(start)..\(start + UInt64(results.count) - 1)) in "
                    + String(format: "%.1f ms", Date().timeIntervalSince(t0) * 1000)
                    + "; checkpoint size \(ingestor.store.size)")
        }

        // The auditor's view: every log verified against the descriptor's keys only.
        let audits = try Verifier(consortium: consortium).verify(dataDirectory: data)
        var failed = false
        for a in audits {
            if let f = a.failure {
                failed = true; Prov.out("audit \(a.org): FAILED: \(f)")
            } else {
                Prov.out("audit \(a.org): OK, \(a.entries) entries, \(a.checkpoints) signed checkpoints")
            }
        }
        // One fact proved offline: the contact centre's latest call, relying on the brand's consent.
        let care = try LogStore(dataDirectory: data, consortium: name, org: "care", writable: false)
        let receipt = try care.receipt(care.size - 1)
        let receiptPath = home + "/care-latest.tlog-proof"
        try receipt.serialized.write(toFile: receiptPath, atomically: true, encoding: .utf8)
        let v = try Receipt(parsing: receipt.serialized).verify(consortium: consortium)
        Prov.out("receipt \(receiptPath): verifies offline: \(v.entry.org) seq \(v.entry.seq), \(v.entry.body.kind)")
        Prov.out("")
        Prov.out("try: swift run prov verify --consortium \(home)/consortium.json \(data)")
        Prov.out("     swift run prov verify-receipt --consortium \(home)/consortium.json \(receiptPath)")
        return failed ? 1 : 0
    }

    static func loadMembers(_ path: String) throws -> (String, [MemberSpec]) {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw LedgerError(.config, "cannot read \(path) (the list of the local consortium's members)")
        }
        let v: JSONValue
        do { v = try JSON.parse(Array(d)) } catch { throw LedgerError(.config, "\(path): \(error)") }
        guard let name = v["consortium"]?.stringValue, let list = v["members"]?.arrayValue else {
            throw LedgerError(.config, "\(path): needs consortium and members")
        }
        let specs = try list.map { m -> MemberSpec in
            guard let org = m["org"]?.stringValue, let n = m["name"]?.stringValue else {
                throw LedgerError(.config, "\(path): each member needs org and name")
            }
            return MemberSpec(org: org, name: n, peer: m["peer"]?.stringValue, api: m["api"]?.stringValue)
        }
        guard specs.contains(where: { $0.org == "brand" }), specs.contains(where: { $0.org == "care" }) else {
            throw LedgerError(.config, "\(path): the demo needs members 'brand' and 'care'")
        }
        return (name, specs)
    }

    /// Event lines for one company; customer numbers are fixed so the companies share customers.
    static func events(for org: String, consortium: Consortium, brandConsent: [Int: UInt64]) -> String {
        let now = Timestamp.format(UInt64(Date().timeIntervalSince1970) * 1000)
        let others = consortium.members.map(\.org).filter { $0 != org }
        var lines: [String] = []
        for c in 0..<40 {
            let email = "email:customer\(c)@example.com"
            let phone = "phone:+4416329\(String(format: "%05d", 60000 + c))"
            switch org {
            case "brand":
                lines.append(
                    #"{"type":"consent","subject":"\#(email)","event":"give","purposes":["dpv:DirectMarketing","dpv:Personalisation"],"controllers":["brand"],"recipients":\#(jsonList(others)),"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"\#(now)","expiresAt":"2030-01-01T00:00:00Z"}"#
                )
                lines.append(
                    #"{"type":"link","subjects":["\#(email)","\#(phone)"],"evidence":"\#(SHA256.hash("kyc \(c)").hex)","occurredAt":"\#(now)"}"#
                )
                lines.append(
                    #"{"type":"interaction","subject":"\#(email)","channel":"app","interaction":"login","purposes":["dpv:ServiceProvision"],"legalBasis":"dpv:Contract","agent":{"id":"mobile-app","kind":"software","onBehalfOf":"brand"},"occurredAt":"\#(now)"}"#
                )
            case "care":
                let consentRef = brandConsent[c].map { #","consentRef":{"org":"brand","seq":\#($0)}"# } ?? ""
                let basis = consentRef.isEmpty ? "dpv:LegitimateInterest" : "dpv:Consent"
                lines.append(
                    #"{"type":"interaction","subject":"\#(phone)","channel":"voice","interaction":"retention-call","purposes":["dpv:DirectMarketing"],"legalBasis":"\#(basis)","agent":{"id":"E-\#(1001 + c % 7)","kind":"person","onBehalfOf":"brand"},"occurredAt":"\#(now)"\#(consentRef)}"#
                )
                lines.append(
                    #"{"type":"interaction","subject":"\#(email)","channel":"chat","interaction":"bot-session","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"chatbot","kind":"software","onBehalfOf":"brand"},"occurredAt":"\#(now)"}"#
                )
            case "retail":
                lines.append(
                    #"{"type":"interaction","subject":"\#(email)","channel":"store","interaction":"purchase","purposes":["dpv:SellProducts"],"legalBasis":"dpv:Contract","agent":{"id":"store-till","kind":"device","onBehalfOf":"retail"},"occurredAt":"\#(now)"}"#
                )
                if c % 4 == 0 {
                    lines.append(
                        #"{"type":"consent","subject":"\#(email)","event":"withdraw","purposes":["dpv:DirectMarketing"],"controllers":["brand"],"channel":"email","method":"email-link","legalBasis":"dpv:Consent","occurredAt":"\#(now)"}"#
                    )
                }
            case "bank":
                lines.append(
                    #"{"type":"interaction","subject":"cust:bank:C\#(1000 + c)","channel":"app","interaction":"card-payment","purposes":["dpv:PaymentManagement","dpv:FraudPreventionAndDetection"],"legalBasis":"dpv:Contract","agent":{"id":"core-banking","kind":"software","onBehalfOf":"bank"},"occurredAt":"\#(now)"}"#
                )
            default:
                lines.append(
                    #"{"type":"interaction","subject":"\#(phone)","channel":"sms","interaction":"service-notice","purposes":["dpv:ServiceProvision"],"legalBasis":"dpv:Contract","agent":{"id":"sms-gateway","kind":"software","onBehalfOf":"\#(org)"},"occurredAt":"\#(now)"}"#
                )
                if c % 5 == 0 {
                    lines.append(
                        #"{"type":"share","subject":"\#(phone)","recipient":"brand","purposes":["dpv:DirectMarketing"],"dataCategories":["dpv:TelephoneNumber"],"occurredAt":"\#(now)"}"#
                    )
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func jsonList(_ l: [String]) -> String { "[" + l.map { "\"\($0)\"" }.joined(separator: ",") + "]" }
}
