import Foundation
import ProvLedger
import ProvNode

/// Background customers: consents and interactions in each company's own words.
enum Traffic {
    static func event(org: String, customer c: Int, n: Int) -> String {
        let email = "email:customer\(c)@example.com"
        let t = Timestamp.format(UInt64(Date().timeIntervalSince1970 * 1000) - 60_000)
        switch (org, n % 2) {
        case ("brand", 0):
            return
                #"{"type":"consent","subject":"\#(email)","event":"give","purposes":["dpv:DirectMarketing"],"controllers":["brand"],"recipients":["retail","care"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"\#(t)"}"#
        case ("brand", _):
            return
                #"{"type":"interaction","subject":"\#(email)","channel":"web","interaction":"web-visit","purposes":["dpv:ServiceProvision"],"legalBasis":"dpv:Contract","agent":{"id":"web-shop","kind":"software","onBehalfOf":"brand"},"occurredAt":"\#(t)"}"#
        case ("retail", 0):
            return
                #"{"type":"interaction","subject":"\#(email)","channel":"store","interaction":"purchase","purposes":["dpv:SellProducts"],"legalBasis":"dpv:Contract","agent":{"id":"store-till","kind":"device","onBehalfOf":"retail"},"occurredAt":"\#(t)"}"#
        case ("retail", _):
            return
                #"{"type":"consent","subject":"\#(email)","event":"give","purposes":["dpv:CustomerOrderManagement"],"controllers":["retail"],"channel":"store","method":"in-person","legalBasis":"dpv:Consent","occurredAt":"\#(t)"}"#
        case (_, 0):
            return
                #"{"type":"interaction","subject":"\#(email)","channel":"voice","interaction":"support-call","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"E-\#(1000 + c % 40)","kind":"person","onBehalfOf":"brand"},"occurredAt":"\#(t)"}"#
        default:
            return
                #"{"type":"interaction","subject":"\#(email)","channel":"chat","interaction":"chat-answer","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"chatbot","kind":"software","onBehalfOf":"retail"},"occurredAt":"\#(t)"}"#
        }
    }
}

/// One customer, Alex, across the three companies: the journey README.md tells.
final class Journey {
    static let email = "email:alex.morgan@example.com"
    static let phone = "phone:+44 7700 900123"
    let api: [String: NodeAPI]
    let auditor: [String: NodeAPI]
    let nodes: [String: NodeProcess]
    let setup: ConsortiumSetup.Result
    let out: JourneyDemo.Output
    var withdrawal: UInt64 = 0
    /// The journey's entries by name, as `org/seq`.
    var entries: [String: String] = [:]

    init(
        api: [String: NodeAPI], auditor: [String: NodeAPI], nodes: [String: NodeProcess],
        setup: ConsortiumSetup.Result, out: JourneyDemo.Output
    ) throws {
        self.api = api
        self.auditor = auditor
        self.nodes = nodes
        self.setup = setup
        self.out = out
    }

    static func now(_ offsetMs: Int64 = 0) -> String {
        Timestamp.format(UInt64(Int64(Date().timeIntervalSince1970 * 1000) + offsetMs))
    }

    /// Posts one event to `org`'s node; returns its seq.
    @discardableResult
    func post(_ org: String, _ what: String, _ event: String, name: String? = nil) throws -> UInt64 {
        let r = try api[org]!.post("/v1/events", Array(event.utf8))
        guard r.status == 200, let seq = try JSON.parse(r.body).arrayValue?.first?["seq"]?.int64Value else {
            throw LedgerError(.io, "\(org) refused '\(what)': \(String(decoding: r.body.prefix(300), as: UTF8.self))")
        }
        out.line("  \(org)/\(seq): \(what)")
        if let name { entries[name] = "\(org)/\(seq)" }
        return UInt64(seq)
    }

    /// Waits until `org`'s node holds `log` up to `size` entries.
    func waitHolds(_ org: String, _ log: String, _ size: UInt64) throws {
        try JourneyDemo.waitUntil("\(org) holds \(log) up to \(size)", out) {
            try (auditor[org]!.sizes()[log] ?? 0) >= size
        }
    }

    func run() throws {
        let e = Self.email
        let sha = String(repeating: "3f", count: 32)
        let web = try post(
            "brand",
            "consent given on the brand's web site (direct marketing, to the brand, the retailer and the contact centre)",
            #"{"type":"consent","subject":"\#(e)","event":"give","purposes":["dpv:DirectMarketing"],"controllers":["brand"],"recipients":["care","retail"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","notice":{"id":"marketing-notice","version":"3","sha256":"\#(sha)"},"occurredAt":"\#(Self.now())","expiresAt":"\#(Self.now(365 * 86_400_000))"}"#,
            name: "web-consent")
        let app = try post(
            "brand", "consent given in the brand's app (personalisation from the wearable)",
            #"{"type":"consent","subject":"\#(e)","event":"give","purposes":["dpv:ServicePersonalisation"],"controllers":["brand"],"channel":"app","method":"app-toggle","legalBasis":"dpv:Consent","occurredAt":"\#(Self.now())"}"#,
            name: "app-consent")
        try post(
            "care", "the same customer recognised on the phone, and the two identifiers linked",
            #"{"type":"link","subjects":["\#(e)","\#(Self.phone)"],"evidence":"\#(String(repeating: "a7", count: 32))","occurredAt":"\#(Self.now())"}"#,
            name: "link")
        try post(
            "care", "a support call to the contact centre, for the brand (agent E-2041)",
            #"{"type":"interaction","subject":"\#(Self.phone)","channel":"voice","interaction":"support-call","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"E-2041","kind":"person","onBehalfOf":"brand"},"occurredAt":"\#(Self.now())"}"#,
            name: "support-call")
        try post(
            "care", "an AI assistant's chat answer, attributed to it as a software agent, for the brand",
            #"{"type":"interaction","subject":"\#(e)","channel":"chat","interaction":"chat-answer","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"ai-assistant","kind":"software","onBehalfOf":"brand"},"occurredAt":"\#(Self.now())"}"#,
            name: "chat-answer")
        let sync = try post(
            "brand", "the wearable's activity data used under the app consent",
            #"{"type":"interaction","subject":"\#(e)","channel":"iot","interaction":"activity-sync","purposes":["dpv:ServicePersonalisation"],"legalBasis":"dpv:Consent","consentRef":{"org":"brand","seq":\#(app)},"agent":{"id":"wearable","kind":"device","onBehalfOf":"brand"},"occurredAt":"\#(Self.now())"}"#,
            name: "activity-sync")
        let rec = try post(
            "brand", "a product recommendation derived from it",
            #"{"type":"interaction","subject":"\#(e)","channel":"app","interaction":"product-recommendation","purposes":["dpv:ServicePersonalisation"],"legalBasis":"dpv:Consent","consentRef":{"org":"brand","seq":\#(app)},"derivedFrom":[{"org":"brand","seq":\#(sync)}],"agent":{"id":"recommender","kind":"software","onBehalfOf":"brand"},"occurredAt":"\#(Self.now())"}"#,
            name: "recommendation")
        try post(
            "retail", "a purchase in a store",
            #"{"type":"interaction","subject":"\#(Self.phone)","channel":"store","interaction":"purchase","purposes":["dpv:SellProducts"],"legalBasis":"dpv:Contract","agent":{"id":"store-till","kind":"device","onBehalfOf":"retail"},"occurredAt":"\#(Self.now())"}"#,
            name: "purchase")
        let shared = try post(
            "brand", "the customer's preferences shared with the retailer",
            #"{"type":"share","subject":"\#(e)","recipient":"retail","purposes":["dpv:DirectMarketing"],"dataCategories":["dpv:Preference"],"derivedFrom":[{"org":"brand","seq":\#(rec)}],"occurredAt":"\#(Self.now())"}"#,
            name: "share")
        // The contact centre holds everything so far, then loses its peers for a while.
        try waitHolds("care", "brand", shared + 1)
        try JourneyDemo.connect(nodes, setup, except: "care")
        out.line("  (the contact centre's node is cut off from its peers)")
        withdrawal = try post(
            "brand", "marketing consent withdrawn by SMS",
            #"{"type":"consent","subject":"\#(e)","event":"withdraw","purposes":["dpv:DirectMarketing"],"controllers":["brand"],"channel":"sms","method":"sms-keyword","legalBasis":"dpv:Consent","occurredAt":"\#(Self.now())"}"#,
            name: "withdrawal")
        // The retailer has verified the withdrawal before it mails: a violation. The contact centre has not: a lag.
        try waitHolds("retail", "brand", withdrawal + 1)
        try post(
            "retail", "a marketing email by the retailer, which had already seen the withdrawal",
            #"{"type":"interaction","subject":"\#(e)","channel":"email","interaction":"marketing-email","purposes":["dpv:DirectMarketing"],"legalBasis":"dpv:Consent","consentRef":{"org":"brand","seq":\#(web)},"agent":{"id":"mailer","kind":"software","onBehalfOf":"retail"},"occurredAt":"\#(Self.now())"}"#,
            name: "retail-email")
        try post(
            "care", "a marketing email by the contact centre, which had not yet synced it",
            #"{"type":"interaction","subject":"\#(e)","channel":"email","interaction":"marketing-email","purposes":["dpv:DirectMarketing"],"legalBasis":"dpv:Consent","consentRef":{"org":"brand","seq":\#(web)},"agent":{"id":"mailer","kind":"software","onBehalfOf":"brand"},"occurredAt":"\#(Self.now())"}"#,
            name: "care-email")
        try JourneyDemo.connect(nodes, setup, except: nil)
        out.line("  (the contact centre's node is connected again and catches up)")
    }
}
