import Foundation
import ProvCrypto
import ProvLedger
import ProvProcess
import TestSupport
import Testing

@testable import ProvView

/// The journey's report for Alice, with receipts read from the data directory.
func journeyReport(_ j: Journey) throws -> SubjectReport {
    let index = try j.ledger.index()
    let source = DataDirectorySource(dataDirectory: j.ledger.dir.path, consortium: "acme")
    return try index.report(subject: j.alice, at: t0 + 86_400_000, source: source, generatedAt: t0 + 86_400_000)
}

/// What a report's checks must catch: a finding's class or cause rewritten, a finding left out (the digest made
/// again to match, so only the re-derivation can tell), the digest changed, a frontier root changed.
enum Tampering: String, CaseIterable, Sendable {
    case classChanged, causeChanged, findingRemoved, digestChanged, frontierRootChanged
}

/// A copy of `report` tampered with as `t` says, and the one fact (`section:index`) that must then not verify.
func tampered(_ report: SubjectReport, _ t: Tampering) throws -> (SubjectReport, String) {
    var r = report
    let violation = try #require(r.view.compliance.firstIndex { $0.classification == .violation })
    switch t {
    case .classChanged:
        r.view.compliance[violation].classification = .lawful
        r.view.digest = ViewDigest.digest(r.view)
        return (r, "compliance:\(violation)")
    case .causeChanged:
        let lag = try #require(r.view.compliance.firstIndex { $0.classification == .propagationLag })
        r.view.compliance[lag].cause = "expired"
        return (r, "compliance:\(lag)")
    case .findingRemoved:
        let ref = r.view.compliance.remove(at: violation).interaction.ref
        r.view.digest = ViewDigest.digest(r.view)
        return (r, "timeline:\(try #require(r.view.timeline.firstIndex { $0.facts.ref == ref }))")
    case .digestChanged:
        r.view.digest = SHA256.hash(Array("another view".utf8))
        return (r, "digest:0")
    case .frontierRootChanged:
        r.view.frontier.logs[0].root = SHA256.hash(Array("another root".utf8))
        r.view.digest = ViewDigest.digest(r.view)
        return (r, "frontier:0")
    }
}

/// A copy of `report` whose fact `index` of the timeline claims another channel than its entry says.
func alteringChannel(_ report: SubjectReport, at index: Int) -> SubjectReport {
    var r = report
    r.view.timeline[index].facts.channel = r.view.timeline[index].facts.channel == "email" ? "post" : "email"
    return r
}

/// A copy of `report` whose receipt for `ref` carries entry bytes changed in one byte.
func alteringReceipt(_ report: SubjectReport, of ref: EntryRef) -> SubjectReport {
    var r = report
    let k = r.receipts.firstIndex { Merkle.leafHash($0.entry) == ref.leaf }!
    r.receipts[k].entry[r.receipts[k].entry.count - 40] ^= 0x01
    return r
}

/// The facts a report's check counts: its rows, its identifiers, its frontier and the digest.
/// The rows the page checks: the facts, a row per member in the key table, and the time the states are for
/// (view.md §8.3).
func pageFactCount(_ r: SubjectReport) -> Int { factCount(r) + r.consortium.members.count + 1 }

func factCount(_ r: SubjectReport) -> Int {
    let v = r.view
    return v.consents.count + v.timeline.count + v.timeline.filter { $0.facts.kind == .share }.count
        + v.compliance.count + v.refs.count + v.links.count + r.context.count + v.frontier.logs.count + 1
}

/// The journey's first consent as the page a customer keeps, its receipt against a checkpoint the other two
/// companies cosigned.
func consentReceipt(_ j: Journey) throws -> ConsentReceiptPage {
    let source = DataDirectorySource(dataDirectory: j.ledger.dir.path, consortium: "acme")
    var r = try j.ledger.index().entry(org: "brand", seq: j.refs["give-web"]!.seq, source: source).receipt
    let text = r.checkpoint.checkpoint.text
    for org in ["retail", "care"] {
        r.checkpoint.note.signatures.append(try j.ledger.signers[org]!.cosign(checkpointText: text, time: t0 / 1000))
    }
    return try ConsentReceiptPage(consortium: j.ledger.consortium, receipt: r)
}

func check(_ r: SubjectReport, _ consortium: Consortium) throws -> ReportCheck {
    try SubjectReport.verify(json: Array(r.json.serialized.utf8), consortium: consortium)
}

@Suite(.leavesNoFiles) struct ReportTests {
    @Test func aReportCarriesAReceiptForEveryFactAndVerifies() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let report = try journeyReport(j)
        #expect(report.view.timeline.count == j.refs.count)
        #expect(Set(report.receipts.map { Merkle.leafHash($0.entry) }) == Set(j.refs.values.map(\.leaf)))
        for r in report.receipts { _ = try r.verify(consortium: j.ledger.consortium) }
        let c = try check(report, j.ledger.consortium)
        #expect(c.ok, "\(c.table)")
        #expect(c.receipts == j.refs.count && c.receiptsVerified == c.receipts)
        #expect(c.facts.count == factCount(report))
    }

    @Test func anAlteredFactIsCaught() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let report = try journeyReport(j)
        let i = try #require(report.view.timeline.firstIndex { $0.facts.ref == j.refs["withdraw"] })
        let c = try check(alteringChannel(report, at: i), j.ledger.consortium)
        #expect(!c.ok)
        #expect(c.facts.filter { !$0.verified }.map { "\($0.section)[\($0.index)]" } == ["timeline[\(i)]"])
        #expect(c.facts.first { !$0.verified }?.problem?.contains("channel") == true)
        #expect(c.problems.isEmpty, "the digest does not cover the channel: the entry's leaf hash does")
    }

    @Test func anAlteredEntryFailsItsReceiptAndEveryFactOnIt() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let report = try journeyReport(j)
        let c = try check(alteringReceipt(report, of: j.refs["give-web"]!), j.ledger.consortium)
        #expect(c.receiptsVerified == c.receipts - 1)
        let failed = Set(c.facts.filter { !$0.verified }.map(\.section))
        // The give is a timeline item, the deciding entry of a consent state, and relied on by findings.
        #expect(failed == ["timeline", "consents", "compliance"])
        #expect(c.facts.filter { !$0.verified }.allSatisfy { $0.problem != nil })
    }

    @Test(arguments: Tampering.allCases) func aTamperedReportIsCaught(_ t: Tampering) throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let (report, fact) = try tampered(try journeyReport(j), t)
        let c = try check(report, j.ledger.consortium)
        #expect(!c.ok)
        #expect(c.facts.filter { !$0.verified }.map { "\($0.section):\($0.index)" } == [fact], "\(c.table)")
        #expect(c.problems.isEmpty && c.receiptsVerified == c.receipts)
    }

    @Test func aConsentReceiptPageShowsTheConsentInPlainWords() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let page = try consentReceipt(j)
        #expect(page.cosigners == ["retail", "care"])
        let fields = Dictionary(uniqueKeysWithValues: page.fields.map { ($0.0, $0.2) })
        #expect(fields["event"] == "Consent given" && fields["controllers"] == "Brand")
        #expect(fields["recipients"] == "Care, Retail" && fields["purposes"] == "Direct marketing, Personalisation")
        #expect(fields["notice"] == "privacy, version 7" && fields["method"] == "A web form")
        #expect(fields["expires"] == "No end date" && fields["cosigned"] == "Retail, Care")
        #expect(page.html.contains("<td data-field=\"event\">Consent given</td>"))
        // Only a consent has a consent receipt.
        let source = DataDirectorySource(dataDirectory: j.ledger.dir.path, consortium: "acme")
        let link = try j.ledger.index().entry(org: "care", seq: j.refs["link-phone"]!.seq, source: source).receipt
        #expect(throws: ViewError.self) { try ConsentReceiptPage(consortium: j.ledger.consortium, receipt: link) }
    }

    @Test func foreignKeysAreNamedAndNothingVerifies() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        // Checked against another consortium's keys, nothing verifies and the keys are named.
        let other = try Ledger()
        defer { other.remove() }
        let d = try check(try journeyReport(j), other.consortium)
        #expect(d.receiptsVerified == 0 && d.problems.contains { $0.contains("verifier keys") })
        #expect(d.facts.filter { $0.section == "frontier" }.allSatisfy { !$0.verified })
        #expect(throws: ViewError.self) {
            try SubjectReport.verify(json: Array("{}".utf8), consortium: j.ledger.consortium)
        }
    }
}
