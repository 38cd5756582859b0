import Foundation
import ProvCrypto
import ProvLedger

/// What checking a subject access report found (`prov verify-report`; Specs/view.md §8.4).
public struct ReportCheck: Sendable, Equatable {
    /// One fact of the report: a consent state, a timeline entry, a share, a compliance finding, one of the person's
    /// identifiers, an identity link, a context entry, a log of the frontier, or the view digest.
    public struct Fact: Sendable, Equatable {
        /// `consents`, `timeline`, `shares`, `compliance`, `refs`, `links`, `context` or `frontier`, and the index in
        /// that array; or `digest`, index 0.
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
    /// Problems with the report as a whole: keys that are not the descriptor's.
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
    /// Checks a report's JSON offline against the consortium descriptor (not the keys the report carries): the keys,
    /// every checkpoint and receipt, every fact against the entry its receipt proves, every derived fact (consent
    /// state, identity, finding) re-derived from the report's proven entries, the frontier and the digest
    /// (Specs/view.md §8.4, §8.5).
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
    /// Verified entries by `org/seq`, or why their receipt failed.
    var entries: [String: Result<Rederivation.Proven, ViewError>] = [:]
    /// The frontier's checkpoints that verified, by org, or why not.
    var checkpoints: [String: Result<Checkpoint, ViewError>] = [:]

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

    static func strings(_ v: JSONValue?) -> [String] { (v?.arrayValue ?? []).compactMap(\.stringValue) }

    mutating func check(_ doc: JSONValue) throws(ViewError) -> ReportCheck {
        var problems: [String] = []
        // The keys the page verifies with are the report's own: they must be the descriptor's.
        let claimed = (doc["consortium"]?["members"]?.arrayValue ?? []).compactMap { m -> (String, String)? in
            guard let o = m["org"]?.stringValue, let k = m["verifierKey"]?.stringValue else { return nil }
            return (o, k)
        }
        // A report lists each member with the key valid at its checkpoint's size (Specs/format.md §9.6), and the
        // members of the version it was made under: members join at the end, so those are the first ones here.
        let members = consortium.members
        if doc["consortium"]?["name"]?.stringValue != consortium.name || claimed.count > members.count
            || !zip(claimed, members).allSatisfy({ c, m in
                c.0 == m.org && m.allKeys.contains { $0.description == c.1 }
            })
        {
            problems.append("the verifier keys in the report are not those of the consortium descriptor")
        }
        for c in (doc["checkpoints"]?.arrayValue ?? []) {
            guard let org = c["org"]?.stringValue, checkpoints[org] == nil else { continue }
            checkpoints[org] = Result(catching: { () throws(ViewError) -> Checkpoint in
                guard let member = consortium.member(org), let text = c["checkpoint"]?.stringValue else {
                    throw Self.bad("the checkpoint listed for \(org) is not a member's signed checkpoint")
                }
                let cp: SignedCheckpoint
                do throws(LedgerError) { cp = try SignedCheckpoint(parsing: text) } catch {
                    throw ViewError(.report, error.message)
                }
                if let why = member.signatureFailure(cp) { throw Self.bad("\(org): \(why)") }
                return cp.checkpoint
            })
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
                guard case .success(let cp)? = checkpoints[ref.org], cp == receipt.checkpoint.checkpoint else {
                    throw Self.bad("the receipt of \(key) is not against the report's signed checkpoint of \(ref.org)")
                }
                let facts = try EntryFacts(decoding: receipt.entry, leaf: v.leaf)
                entries[key] = .success(Rederivation.Proven(facts: facts, deps: v.entry.deps))
                verified += 1
            } catch {
                entries[key] = .failure(error)
            }
        }
        let d = try Derived(self, doc)
        var facts: [ReportCheck.Fact] = []
        func record(_ section: String, _ i: Int, _ entry: String, _ body: () throws(ViewError) -> Void) {
            do throws(ViewError) {
                try body()
                facts.append(.init(section: section, index: i, entry: entry, verified: true, problem: nil))
            } catch {
                facts.append(.init(section: section, index: i, entry: entry, verified: false, problem: error.message))
            }
        }
        func label(_ v: JSONValue?) -> String { Labels.ref(try? Self.ref(v)) }
        for (i, c) in try Self.array(doc["consents"], "consents").enumerated() {
            record("consents", i, label(c["decidedBy"]?["ref"])) { () throws(ViewError) in try checkConsent(c, d) }
        }
        for (i, item) in try Self.array(doc["timeline"], "timeline").enumerated() {
            record("timeline", i, label(item["ref"])) { () throws(ViewError) in try checkTimeline(item, d) }
        }
        for (i, item) in try Self.array(doc["shares"], "shares").enumerated() {
            record("shares", i, label(item["ref"])) { () throws(ViewError) in
                try checkItem(item, person: d.refs)
            }
        }
        for (i, f) in try Self.array(doc["compliance"], "compliance").enumerated() {
            record("compliance", i, label(f["interaction"])) { () throws(ViewError) in try checkFinding(f, d) }
        }
        for (i, r) in Self.strings(doc["refs"]).enumerated() {
            record("refs", i, "") { () throws(ViewError) in
                guard let ref = SubjectRef.parse(r), d.component.contains(ref) else {
                    throw Self.bad("this identifier is not linked to the others by the report's link entries")
                }
            }
        }
        for (i, l) in try Self.array(doc["links"], "links").enumerated() {
            record("links", i, label(l["decidedBy"]?["ref"])) { () throws(ViewError) in try checkLink(l, d) }
        }
        for (i, item) in (doc["context"]?.arrayValue ?? []).enumerated() {
            record("context", i, label(item["ref"])) { () throws(ViewError) in try checkItem(item, person: nil) }
        }
        for (i, l) in try Self.array(doc["frontier"], "frontier").enumerated() {
            record("frontier", i, l["org"]?.stringValue ?? "") { () throws(ViewError) in try checkFrontier(l) }
        }
        record("digest", 0, "") { () throws(ViewError) in
            let claimedDigest = doc["digest"]?.stringValue ?? "none"
            let computed = ViewDigest.digest(try digestInput(doc))
            guard computed.hex == claimedDigest else {
                throw Self.bad("the view digest is \(claimedDigest), the report's content gives \(computed.hex)")
            }
        }
        return ReportCheck(facts: facts, receipts: receipts.count, receiptsVerified: verified, problems: problems)
    }

    /// What the report's proven entries give (Specs/view.md §8.5), computed once for every check.
    struct Derived {
        var derivation: Rederivation
        var at: UInt64
        /// The report's `refs`, and the refs its link entries connect to the first of them.
        var refs: Set<SHA256Digest>
        var component: Set<SHA256Digest>
        /// Consent states at the frontier, by controller and purpose.
        var consents: [String: Rederivation.Pair]
        /// Latest link or unlink of each pair of refs, one of them the person's.
        var links: [[SHA256Digest]: Int]
        /// The report's rows: consent pairs, link pairs, findings and the unlisted interactions.
        var consentRows: Set<String>
        var linkRows: Set<[SHA256Digest]>
        var findings: Set<EntryRef>
        var unlisted: [EntryRef: JSONValue]
        var timeline: Set<EntryRef>

        init(_ c: ReportChecker, _ doc: JSONValue) throws(ViewError) {
            let refList = ReportChecker.strings(doc["refs"]).compactMap(SubjectRef.parse)
            refs = Set(refList)
            var frontier: [String: UInt64] = [:]
            for case (let org, .success(let cp)) in c.checkpoints { frontier[org] = cp.size }
            let proven = c.entries.values.compactMap { try? $0.get() }.sorted {
                ($0.facts.org, $0.facts.ref.seq) < ($1.facts.org, $1.facts.ref.seq)
            }
            let derivation = Rederivation(entries: proven, refs: refs, frontier: frontier)
            self.derivation = derivation
            at = try ReportChecker.time(doc["at"])
            component = refList.first.map { derivation.person($0, nil) } ?? []
            var consents: [String: Rederivation.Pair] = [:]
            for p in derivation.replay(derivation.consents(refs, nil)) where p.state.decidedBy != IndexState.none {
                consents["\(p.controller) \(p.purpose)"] = p
            }
            self.consents = consents
            links = derivation.links(touching: refs, nil)
            consentRows = Set(
                (doc["consents"]?.arrayValue ?? []).map {
                    "\($0["controller"]?.stringValue ?? "") \($0["purpose"]?.stringValue ?? "")"
                })
            linkRows = Set(
                (doc["links"]?.arrayValue ?? []).map {
                    ReportChecker.strings($0["refs"]).compactMap(SubjectRef.parse).sorted()
                })
            findings = Set(
                (doc["compliance"]?.arrayValue ?? []).compactMap { try? ReportChecker.ref($0["interaction"]) })
            unlisted = [:]
            for u in doc["unlisted"]?.arrayValue ?? [] {
                if let r = try? ReportChecker.ref(u["interaction"]) { unlisted[r] = u["knew"] ?? .array([]) }
            }
            timeline = Set((doc["timeline"]?.arrayValue ?? []).compactMap { try? ReportChecker.ref($0["ref"]) })
        }
    }

    /// The verified entry `ref` names.
    func proven(_ ref: EntryRef) throws(ViewError) -> Rederivation.Proven {
        guard let r = entries["\(ref.org)/\(ref.seq)"] else {
            throw Self.bad("no receipt for \(ref.org)/\(ref.seq)")
        }
        let p = try r.get()
        guard p.facts.ref == ref else { throw Self.bad("\(ref.org)/\(ref.seq) is cited with another leaf hash") }
        return p
    }

    func entry(_ ref: EntryRef) throws(ViewError) -> EntryFacts { try proven(ref).facts }

    /// A timeline, share or context item: exactly the entry's facts; for the first two, an entry of the person.
    func checkItem(_ item: JSONValue, person: Set<SHA256Digest>?) throws(ViewError) {
        let f = try entry(try Self.ref(item["ref"]))
        let expected = f.json(company: Labels.company(f.org, consortium))
        let shown = (item.objectValue ?? []).filter { $0.key != "sharedIn" }
        guard shown == expected else {
            let differ = Set(shown.map(\.key)).union(expected.map(\.key)).sorted().filter { k in
                shown.first { $0.key == k }?.value != expected.first { $0.key == k }?.value
            }
            throw Self.bad("differs from the signed entry in \(differ.joined(separator: ", "))")
        }
        if let person, !f.subjects.contains(where: person.contains) {
            throw Self.bad("the entry is about none of the report's identifiers")
        }
    }

    /// A timeline item: its entry, and nothing derived from it left out of the report (§8.5).
    func checkTimeline(_ item: JSONValue, _ d: Derived) throws(ViewError) {
        try checkItem(item, person: d.refs)
        let f = try entry(try Self.ref(item["ref"]))
        guard let i = d.derivation.entry(f.org, f.ref.seq) else { return }
        switch f.kind {
        case .consent:
            for p in d.consents.values where p.state.decidedBy == UInt32(i) {
                guard d.consentRows.contains("\(p.controller) \(p.purpose)") else {
                    throw Self.bad("the report leaves out the consent state this entry decides (\(p.purpose))")
                }
            }
        case .link, .unlink:
            for (pair, l) in d.links where l == i && !d.linkRows.contains(pair) {
                throw Self.bad("the report leaves out the identity link this entry decides")
            }
        case .interaction:
            let g = try d.derivation.classify(
                i, cited: d.derivation.knownCited(f.org, upTo: f.ref.seq), claimedFlags: [])
            let listed = d.findings.contains(f.ref)
            if g.listed && !listed {
                throw Self.bad(
                    "the report leaves out this contact's compliance finding: it is a \(g.classification.rawValue)")
            }
            if !listed {
                guard let knew = d.unlisted[f.ref] else {
                    throw Self.bad("the report neither gives this contact's finding nor lists it among those with none")
                }
                try checkKnew(knew, of: f)
            }
        case .share, .heads:
            break
        }
    }

    func checkDeciding(_ d: JSONValue?) throws(ViewError) -> Rederivation.Proven {
        let p = try proven(try Self.ref(d?["ref"]))
        let f = p.facts
        guard try Self.hlc(d?["hlc"]) == f.hlc, try Self.time(d?["occurredAt"]) == f.occurredAt,
            d?["event"]?.stringValue == f.event
        else { throw Self.bad("the entry \(f.org)/\(f.ref.seq) is not shown as it was recorded") }
        return p
    }

    /// Each citation names an entry of the interaction's log, at or before it, whose references reach that seq.
    func checkKnew(_ knew: JSONValue?, of f: EntryFacts) throws(ViewError) {
        for c in try Self.array(knew, "knew") {
            let by = try checkDeciding(c["by"])
            guard let org = c["org"]?.stringValue, let seq = c["seq"]?.int64Value, by.facts.org == f.org,
                by.facts.ref.seq <= f.ref.seq, by.cites[org].map(Int64.init) == seq
            else {
                throw Self.bad(
                    "\(Labels.ref(by.facts.ref)) does not show what \(f.org) had seen when it recorded \(Labels.ref(f.ref))"
                )
            }
        }
    }

    func checkConsent(_ c: JSONValue, _ d: Derived) throws(ViewError) {
        let f = try checkDeciding(c["decidedBy"]).facts
        guard let controller = c["controller"]?.stringValue, let purpose = c["purpose"]?.stringValue,
            let p = d.consents["\(controller) \(purpose)"]
        else { throw Self.bad("the report's consent entries give no state for this company and purpose") }
        let s = p.state
        let decidedBy = d.derivation.entries[Int(s.decidedBy)].facts
        guard decidedBy.ref == f.ref else {
            throw Self.bad("the state is decided by \(Labels.ref(decidedBy.ref)), not \(Labels.ref(f.ref))")
        }
        let grant = s.grant == IndexState.none ? nil : d.derivation.entries[Int(s.grant)].facts
        let expected: [(String, JSONValue)] = [
            ("state", .string(s.effective(at: d.at).rawValue)), ("recorded", .string(s.status.rawValue)),
            ("grant", Render.optional(grant?.ref, Render.ref)),
            (
                "expiresAt",
                Render.optional(grant != nil && s.expiresAt != 0 ? s.expiresAt : nil) { .string(Render.time($0)) }
            ),
            ("recipients", Render.strings(grant?.recipients ?? [])),
            ("eventsApplied", Render.number(s.applied)), ("eventsIgnored", Render.number(s.ignored)),
        ]
        for (k, v) in expected where c[k] != v {
            throw Self.bad("its \(k) is not what the report's consent entries give")
        }
    }

    func checkFinding(_ c: JSONValue, _ d: Derived) throws(ViewError) {
        let f = try entry(try Self.ref(c["interaction"]))
        guard f.kind == .interaction, c["org"]?.stringValue == f.org,
            c["subject"]?.stringValue == f.subjects.first.map(SubjectRef.text),
            c["channel"]?.stringValue == f.channel, c["legalBasis"]?.stringValue == f.legalBasis,
            Self.strings(c["purposes"]) == f.purposes, try Self.hlc(c["hlc"]) == f.hlc,
            try Self.time(c["occurredAt"]) == f.occurredAt, (c["onBehalfOf"]?.stringValue) == f.agent?.onBehalfOf
        else { throw Self.bad("the interaction differs from the signed entry \(f.org)/\(f.ref.seq)") }
        var deciding: [EntryRef] = []
        for x in c["deciding"]?.arrayValue ?? [] { deciding.append(try checkDeciding(x).facts.ref) }
        guard d.timeline.contains(f.ref), let i = d.derivation.entry(f.org, f.ref.seq) else {
            throw Self.bad("the interaction is not in the report's timeline")
        }
        try checkKnew(c["knew"], of: f)
        let flags = (c["flags"]?.arrayValue ?? []).compactMap { $0["code"]?.stringValue }
        let g = try d.derivation.classify(
            i, cited: d.derivation.knownCited(f.org, upTo: f.ref.seq), claimedFlags: flags)
        guard g.listed else {
            throw Self.bad("it neither relied on consent, nor met an objection, nor named a consent: not a finding")
        }
        let claimed = c["classification"]?.stringValue ?? "none"
        guard claimed == g.classification.rawValue else {
            throw Self.bad(
                "the report says \(claimed); the signed entries it carries give \(g.classification.rawValue)")
        }
        let expected: [(String, JSONValue?, JSONValue)] = [
            ("purpose", c["purpose"], Render.optional(g.purpose) { .string($0) }),
            ("cause", c["cause"], Render.optional(g.cause) { .string($0) }),
            ("lagMs", c["lagMs"], Render.optional(g.lagMs) { Render.number($0) }),
        ]
        for (k, shown, v) in expected where shown != v {
            throw Self.bad("its \(k) is not what the signed entries it carries give")
        }
        guard deciding == g.deciding else { throw Self.bad("its deciding entries are not what the entries give") }
        guard flags == g.flags else { throw Self.bad("its flags are not what the signed entries give") }
        try checkSeen(c, f, g, d)
    }

    /// `seenBy` and `seenAfterMs` (§8.5): when the acting company had seen the entry that decided.
    func checkSeen(_ c: JSONValue, _ f: EntryFacts, _ g: Rederivation.Finding, _ d: Derived) throws(ViewError) {
        let seen = c["seenBy"] ?? .null
        let after = c["seenAfterMs"] ?? .null
        guard let w = g.decidedBy, w.org != f.org else {
            guard seen == .null, after == .null else { throw Self.bad("it names an entry that decided nothing") }
            return
        }
        let wall = try entry(w).hlc.wall
        if seen == .null {
            guard g.classification == .propagationLag, after == .null else {
                throw Self.bad("it does not show that \(f.org) had seen \(Labels.ref(w))")
            }
            return
        }
        let s = try checkDeciding(seen).facts
        let reaches = d.derivation.knownCited(f.org, upTo: s.ref.seq)[w.org].map { $0 >= w.seq } ?? false
        let before = s.ref.seq <= f.ref.seq
        guard s.org == f.org, reaches, before == (g.classification == .violation) else {
            throw Self.bad("\(Labels.ref(s.ref)) does not show when \(f.org) had seen \(Labels.ref(w))")
        }
        let ms: UInt64? = g.classification == .violation ? nil : (s.hlc.wall >= wall ? s.hlc.wall - wall : 0)
        guard after == Render.optional(ms, { Render.number($0) }) else {
            throw Self.bad("its seenAfterMs is not what \(Labels.ref(s.ref)) gives")
        }
    }

    func checkLink(_ l: JSONValue, _ d: Derived) throws(ViewError) {
        let f = try checkDeciding(l["decidedBy"]).facts
        let pair = Self.strings(l["refs"]).compactMap(SubjectRef.parse).sorted()
        guard pair.count == 2, let i = d.links[pair], d.derivation.entries[i].facts.ref == f.ref,
            f.kind == (l["linked"] == .bool(true) ? .link : .unlink)
        else { throw Self.bad("the identity link is not what the report's link entries give") }
        if f.kind == .link && !pair.allSatisfy(d.refs.contains) {
            throw Self.bad("it links an identifier that the report's list of your identifiers leaves out")
        }
    }

    func checkFrontier(_ l: JSONValue) throws(ViewError) {
        guard let org = l["org"]?.stringValue, let size = l["size"]?.int64Value, size >= 0,
            let root = l["rootHex"]?.stringValue.flatMap({ SHA256Digest(hex: $0) }),
            l["root"]?.stringValue == root.base64
        else { throw Self.bad("a frontier log is not {org, size, root, rootHex} of one root") }
        guard let r = checkpoints[org] else { throw Self.bad("the report carries no signed checkpoint of \(org)") }
        let cp = try r.get()
        guard cp.size == UInt64(size), cp.root == root else {
            throw Self.bad("\(org)'s signed checkpoint is of size \(cp.size) and root \(cp.root.hex), not these")
        }
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
