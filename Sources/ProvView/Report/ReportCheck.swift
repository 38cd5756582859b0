import Foundation
import ProvCrypto
import ProvLedger

/// What checking a subject access report found (`prov verify-report`; Specs/view.md §8.4).
public struct ReportCheck: Sendable, Equatable {
    /// One fact of the report: a consent state, a timeline entry, a share, a compliance finding, an identity link.
    public struct Fact: Sendable, Equatable {
        /// `consents`, `timeline`, `shares`, `compliance` or `links`, and the index in that array.
        public var section: String
        public var index: Int
        /// The entry it rests on, `org/seq`.
        public var entry: String
        public var verified: Bool
        public var problem: String?
    }

    public var facts: [Fact]
    public var receipts: Int
    public var receiptsVerified: Int
    /// Problems with the report as a whole: keys that are not the descriptor's, a digest its content does not give.
    public var problems: [String]

    public var ok: Bool { problems.isEmpty && receiptsVerified == receipts && facts.allSatisfy(\.verified) }

    public var json: JSONValue {
        .object([
            JSONMember("ok", .bool(ok)), JSONMember("receipts", Render.number(receipts)),
            JSONMember("receiptsVerified", Render.number(receiptsVerified)),
            JSONMember("facts", Render.number(facts.count)),
            JSONMember("factsVerified", Render.number(facts.filter(\.verified).count)),
            JSONMember("problems", Render.strings(problems)),
            JSONMember(
                "failures",
                .array(
                    facts.filter { !$0.verified }.map {
                        .object([
                            JSONMember("section", .string($0.section)), JSONMember("index", Render.number($0.index)),
                            JSONMember("entry", .string($0.entry)),
                            JSONMember("problem", .string($0.problem ?? "")),
                        ])
                    })),
        ])
    }

    public var table: String {
        var s =
            "\(ok ? "OK" : "FAILED"): \(facts.filter(\.verified).count) of \(facts.count) facts verified, "
            + "\(receiptsVerified) of \(receipts) receipts\n"
        for p in problems { s += "problem: \(p)\n" }
        for f in facts where !f.verified { s += "\(f.section)[\(f.index)] \(f.entry): \(f.problem ?? "")\n" }
        return s
    }
}

extension SubjectReport {
    /// Checks a report's JSON offline against the consortium descriptor (not the keys the report carries): every
    /// receipt, every fact against the entry its receipt proves, the keys, and the digest.
    public static func verify(json bytes: [UInt8], consortium: Consortium) throws(ViewError) -> ReportCheck {
        let doc: JSONValue
        do { doc = try JSON.parse(bytes, maxDepth: 32, maxSize: 1 << 30) } catch {
            throw ViewError(.report, "the report is not valid JSON: \(error)")
        }
        guard doc["format"]?.stringValue == format else {
            throw ViewError(.report, "not a subject access report (format is not \(format))")
        }
        var checker = ReportChecker(consortium: consortium)
        return try checker.check(doc)
    }
}

/// The checks of `SubjectReport.verify`, one report at a time.
struct ReportChecker {
    let consortium: Consortium
    /// Verified entries by `org/seq`: their facts, or why their receipt failed.
    var entries: [String: Result<EntryFacts, ViewError>] = [:]

    init(consortium: Consortium) { self.consortium = consortium }

    static func bad(_ what: String) -> ViewError { ViewError(.report, "report: \(what)") }

    static func ref(_ v: JSONValue?) throws(ViewError) -> EntryRef {
        guard let org = v?["org"]?.stringValue, let seq = v?["seq"]?.int64Value, seq >= 0,
            let leafHex = v?["leaf"]?.stringValue, let leaf = SHA256Digest(hex: leafHex)
        else { throw bad("an entry reference is not {org, seq, leaf}") }
        return EntryRef(org: org, seq: UInt64(seq), leaf: leaf)
    }

    static func time(_ v: JSONValue?) throws(ViewError) -> UInt64 {
        guard let s = v?.stringValue, let t = Timestamp.parse(s) else { throw bad("a time is not RFC 3339") }
        return t
    }

    static func hlc(_ v: JSONValue?) throws(ViewError) -> HLC {
        let p = v?.stringValue?.split(separator: ".") ?? []
        guard p.count == 2, let w = UInt64(p[0]), let c = UInt64(p[1]) else {
            throw bad("an hlc is not <wall>.<counter>")
        }
        return HLC(wall: w, counter: c)
    }

    static func array(_ v: JSONValue?, _ name: String) throws(ViewError) -> [JSONValue] {
        guard let a = v?.arrayValue else { throw bad("'\(name)' is not an array") }
        return a
    }

    mutating func check(_ doc: JSONValue) throws(ViewError) -> ReportCheck {
        var problems: [String] = []
        // The keys the page verifies with are the report's own: they must be the descriptor's.
        let claimed = (doc["consortium"]?["members"]?.arrayValue ?? []).compactMap { m -> (String, String)? in
            guard let o = m["org"]?.stringValue, let k = m["verifierKey"]?.stringValue else { return nil }
            return (o, k)
        }
        let trusted = consortium.members.map { ($0.org, $0.key.description) }
        if doc["consortium"]?["name"]?.stringValue != consortium.name || claimed.count != trusted.count
            || !zip(claimed, trusted).allSatisfy({ $0.0 == $1.0 && $0.1 == $1.1 })
        {
            problems.append("the verifier keys in the report are not those of the consortium descriptor")
        }
        let receipts = try Self.array(doc["receipts"], "receipts")
        var verified = 0
        for r in receipts {
            let ref = try Self.ref(r["ref"])
            let key = "\(ref.org)/\(ref.seq)"
            do throws(ViewError) {
                guard let text = r["receipt"]?.stringValue else { throw Self.bad("receipt of \(key) is not a string") }
                let receipt: Receipt
                do { receipt = try Receipt(parsing: text) } catch { throw ViewError(.report, error.message) }
                let v: Receipt.Verified
                do { v = try receipt.verify(consortium: consortium) } catch { throw ViewError(.report, error.message) }
                let org = consortium.member(origin: receipt.checkpoint.checkpoint.origin)?.org
                guard org == ref.org, receipt.index == ref.seq, v.leaf == ref.leaf else {
                    throw Self.bad("the receipt listed as \(key) proves another entry")
                }
                entries[key] = .success(try EntryFacts(decoding: receipt.entry, leaf: v.leaf))
                verified += 1
            } catch {
                entries[key] = .failure(error)
            }
        }
        var facts: [ReportCheck.Fact] = []
        func record(_ section: String, _ i: Int, _ entry: EntryRef?, _ body: () throws(ViewError) -> Void) {
            do throws(ViewError) {
                try body()
                facts.append(.init(section: section, index: i, entry: Labels.ref(entry), verified: true, problem: nil))
            } catch {
                facts.append(
                    .init(section: section, index: i, entry: Labels.ref(entry), verified: false, problem: error.message)
                )
            }
        }
        for section in ["timeline", "shares"] {
            for (i, item) in try Self.array(doc[section], section).enumerated() {
                let ref = try? Self.ref(item["ref"])
                record(section, i, ref) { () throws(ViewError) in try checkItem(item) }
            }
        }
        let at = try Self.time(doc["at"])
        for (i, c) in try Self.array(doc["consents"], "consents").enumerated() {
            let ref = try? Self.ref(c["decidedBy"]?["ref"])
            record("consents", i, ref) { () throws(ViewError) in try checkConsent(c, at: at) }
        }
        for (i, f) in try Self.array(doc["compliance"], "compliance").enumerated() {
            let ref = try? Self.ref(f["interaction"])
            record("compliance", i, ref) { () throws(ViewError) in try checkFinding(f) }
        }
        for (i, l) in try Self.array(doc["links"], "links").enumerated() {
            let ref = try? Self.ref(l["decidedBy"]?["ref"])
            record("links", i, ref) { () throws(ViewError) in try checkLink(l) }
        }
        if let claimedDigest = doc["digest"]?.stringValue {
            let computed = ViewDigest.digest(try digestInput(doc))
            if computed.hex != claimedDigest {
                problems.append("the view digest is \(claimedDigest), the report's content gives \(computed.hex)")
            }
        } else {
            problems.append("the report has no view digest")
        }
        return ReportCheck(facts: facts, receipts: receipts.count, receiptsVerified: verified, problems: problems)
    }

    /// The verified facts of the entry `ref` names.
    func entry(_ ref: EntryRef) throws(ViewError) -> EntryFacts {
        guard let r = entries["\(ref.org)/\(ref.seq)"] else {
            throw Self.bad("no receipt for \(ref.org)/\(ref.seq)")
        }
        let f = try r.get()
        guard f.ref == ref else { throw Self.bad("\(ref.org)/\(ref.seq) is cited with another leaf hash") }
        return f
    }

    func checkItem(_ item: JSONValue) throws(ViewError) {
        let f = try entry(try Self.ref(item["ref"]))
        let expected = f.json(company: Labels.company(f.org, consortium))
        let shown = (item.objectValue ?? []).filter { $0.key != "sharedIn" }
        guard shown == expected else {
            let differ = Set(shown.map(\.key)).union(expected.map(\.key)).sorted().filter { k in
                shown.first { $0.key == k }?.value != expected.first { $0.key == k }?.value
            }
            throw Self.bad("differs from the signed entry in \(differ.joined(separator: ", "))")
        }
    }

    func checkDeciding(_ d: JSONValue?) throws(ViewError) -> EntryFacts {
        let f = try entry(try Self.ref(d?["ref"]))
        guard try Self.hlc(d?["hlc"]) == f.hlc, try Self.time(d?["occurredAt"]) == f.occurredAt,
            d?["event"]?.stringValue == f.event
        else { throw Self.bad("the deciding entry \(f.org)/\(f.ref.seq) is not shown as it was recorded") }
        return f
    }

    static let eventOfState: [String: String] = [
        "given": "give", "renewed": "renew", "withdrawn": "withdraw", "refused": "refuse", "revoked": "revoke",
        "requested": "request", "objected": "object", "invalidated": "invalidate",
    ]

    func checkConsent(_ c: JSONValue, at: UInt64) throws(ViewError) {
        let f = try checkDeciding(c["decidedBy"])
        guard let controller = c["controller"]?.stringValue, let purpose = c["purpose"]?.stringValue,
            let state = c["state"]?.stringValue
        else { throw Self.bad("a consent state lacks controller, purpose or state") }
        guard f.kind == .consent, f.controllers.contains(controller), f.purposes.contains(purpose) else {
            throw Self.bad("\(f.org)/\(f.ref.seq) is not a consent of \(controller) for \(purpose)")
        }
        if state == "expired" {
            guard f.event == "give" || f.event == "renew", let x = f.expiresAt, x <= at else {
                throw Self.bad("\(f.org)/\(f.ref.seq) is not a consent that had expired by the report's time")
            }
        } else {
            guard f.event == Self.eventOfState[state] else {
                throw Self.bad("\(f.org)/\(f.ref.seq) records a \(f.event ?? "?"), not a consent \(state)")
            }
            if f.event == "give" || f.event == "renew", let x = f.expiresAt, x <= at {
                throw Self.bad("\(f.org)/\(f.ref.seq) had expired by the report's time")
            }
        }
        if c["grant"] != .null {
            guard try Self.ref(c["grant"]) == f.ref else { throw Self.bad("the grant is not the deciding entry") }
            let expires = c["expiresAt"] == .null ? nil : try Self.time(c["expiresAt"])
            let recipients = (c["recipients"]?.arrayValue ?? []).compactMap(\.stringValue)
            guard expires == f.expiresAt, recipients == f.recipients else {
                throw Self.bad("expiry or recipients differ from \(f.org)/\(f.ref.seq)")
            }
        }
    }

    func checkFinding(_ c: JSONValue) throws(ViewError) {
        let f = try entry(try Self.ref(c["interaction"]))
        guard f.kind == .interaction, c["org"]?.stringValue == f.org,
            c["subject"]?.stringValue == f.subjects.first.map(SubjectRef.text),
            c["channel"]?.stringValue == f.channel, c["legalBasis"]?.stringValue == f.legalBasis,
            (c["purposes"]?.arrayValue ?? []).compactMap(\.stringValue) == f.purposes,
            try Self.hlc(c["hlc"]) == f.hlc, try Self.time(c["occurredAt"]) == f.occurredAt,
            (c["onBehalfOf"]?.stringValue) == f.agent?.onBehalfOf
        else { throw Self.bad("the interaction differs from the signed entry \(f.org)/\(f.ref.seq)") }
        for d in c["deciding"]?.arrayValue ?? [] { _ = try checkDeciding(d) }
    }

    func checkLink(_ l: JSONValue) throws(ViewError) {
        let f = try checkDeciding(l["decidedBy"])
        let refs = (l["refs"]?.arrayValue ?? []).compactMap { $0.stringValue.flatMap(SubjectRef.parse) }
        guard f.kind == (l["linked"] == .bool(true) ? .link : .unlink), refs.count == 2, Set(refs) == Set(f.subjects)
        else { throw Self.bad("the identity link differs from the signed entry \(f.org)/\(f.ref.seq)") }
    }

    /// Specs/view.md §6.1 from the report's own content.
    func digestInput(_ doc: JSONValue) throws(ViewError) -> ViewDigest.Input {
        let atGiven = doc["atGiven"] == .bool(true)
        var links: [ViewDigest.Input.Link] = []
        for l in try Self.array(doc["links"], "links") {
            let refs = (l["refs"]?.arrayValue ?? []).compactMap { $0.stringValue.flatMap(SubjectRef.parse) }
            guard refs.count == 2 else { throw Self.bad("an identity link does not name two refs") }
            links.append(
                .init(
                    a: refs[0], b: refs[1], linked: l["linked"] == .bool(true),
                    decidedBy: try Self.ref(l["decidedBy"]?["ref"])))
        }
        var consents: [ViewDigest.Input.Consent] = []
        for c in try Self.array(doc["consents"], "consents") {
            guard let controller = c["controller"]?.stringValue, let purpose = c["purpose"]?.stringValue,
                let state = c[atGiven ? "state" : "recorded"]?.stringValue
            else { throw Self.bad("a consent state lacks controller, purpose or state") }
            consents.append(
                .init(
                    controller: controller, purpose: purpose, state: state,
                    decidedBy: try Self.ref(c["decidedBy"]?["ref"]),
                    grant: c["grant"] == .null ? nil : try Self.ref(c["grant"]),
                    expiresAt: c["expiresAt"] == .null ? nil : try Self.time(c["expiresAt"])))
        }
        var entries: [(ref: EntryRef, hlc: HLC)] = []
        for t in try Self.array(doc["timeline"], "timeline") {
            entries.append((try Self.ref(t["ref"]), try Self.hlc(t["hlc"])))
        }
        var frontier: [LogHead] = []
        for l in try Self.array(doc["frontier"], "frontier") {
            guard let org = l["org"]?.stringValue, let size = l["size"]?.int64Value, size >= 0,
                let root = l["rootHex"]?.stringValue.flatMap({ SHA256Digest(hex: $0) }),
                l["root"]?.stringValue == root.base64
            else { throw Self.bad("a frontier log is not {org, size, root, rootHex} of one root") }
            frontier.append(LogHead(org: org, size: UInt64(size), root: root))
        }
        var compliance: [ViewDigest.Input.Finding] = []
        for c in try Self.array(doc["compliance"], "compliance") {
            guard let cls = c["classification"]?.stringValue else { throw Self.bad("a finding has no classification") }
            var deciding: [EntryRef] = []
            for d in c["deciding"]?.arrayValue ?? [] { deciding.append(try Self.ref(d["ref"])) }
            compliance.append(
                .init(
                    interaction: try Self.ref(c["interaction"]), hlc: try Self.hlc(c["hlc"]), classification: cls,
                    purpose: c["purpose"]?.stringValue, lagMs: c["lagMs"]?.int64Value.map { UInt64(max(0, $0)) },
                    deciding: deciding, flags: (c["flags"]?.arrayValue ?? []).compactMap { $0["code"]?.stringValue }))
        }
        let refs = (doc["refs"]?.arrayValue ?? []).compactMap { $0.stringValue.flatMap(SubjectRef.parse) }
        return ViewDigest.Input(
            at: atGiven ? try Self.time(doc["at"]) : nil, refs: refs, links: links, entries: entries,
            consents: consents, frontier: frontier, compliance: compliance)
    }
}

extension ViewDigest {
    static func digest(_ input: Input) -> SHA256Digest { SHA256.hash(encoding(input)) }
}
