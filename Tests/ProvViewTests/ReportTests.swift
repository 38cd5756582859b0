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
        let v = report.view
        #expect(c.facts.count == v.timeline.count + v.consents.count + v.compliance.count + v.links.count + 1)
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

    @Test func aChangedStateBreaksTheDigestAndForeignKeysAreNamed() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        var report = try journeyReport(j)
        // Dropping the violation leaves every remaining fact true to its entry, but not the digest.
        report.view.compliance.removeAll { $0.classification == .violation }
        let c = try check(report, j.ledger.consortium)
        #expect(c.facts.allSatisfy { $0.verified })
        #expect(c.problems.count == 1 && c.problems[0].contains("digest"))
        // Checked against another consortium's keys, nothing verifies and the keys are named.
        let other = try Ledger()
        defer { other.remove() }
        let d = try check(try journeyReport(j), other.consortium)
        #expect(d.receiptsVerified == 0 && d.problems.contains { $0.contains("verifier keys") })
        #expect(throws: ViewError.self) {
            try SubjectReport.verify(json: Array("{}".utf8), consortium: j.ledger.consortium)
        }
    }
}

/// The HTML report checks itself in a real browser: headless Chromium opens it from a file, with no network, and
/// the test reads the marks its script left in the page.
///
/// Without Chromium the suite is skipped, and says so (scripts/test installs it where it may); CI sets
/// PROV_REQUIRE_BROWSER=1, and then a missing browser fails the suite instead.
@Suite(
    .serialized, .leavesNoFiles,
    .enabled(
        if: Browser.chromium != nil || Browser.required,
        "Chromium is not installed (apt-get install chromium, or run scripts/test, which installs it)"))
struct ReportBrowserTests {
    static func chromium() -> String? { Browser.chromium }

    /// Runs Chromium headless with `arguments` on `file`, returns its standard output; ended by pid if it hangs.
    static func run(_ arguments: [String], _ file: URL) throws -> String {
        let browser = try #require(
            chromium(), "Chromium is not installed, and PROV_REQUIRE_BROWSER=1 requires it (apt-get install chromium)")
        let profile = try makeTempDir("chromium-profile")
        defer { try? FileManager.default.removeItem(at: profile) }
        // Everything the browser writes goes to the profile folder, removed afterwards.
        let r = try ChildProcess.run(
            browser,
            ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile.path)"]
                + arguments + [file.absoluteString],
            environment: ["XDG_CONFIG_HOME": profile.path, "XDG_CACHE_HOME": profile.path], timeout: 120)
        #expect(!r.timedOut, "Chromium did not finish within 120 s")
        return r.stdoutText
    }

    struct Marks {
        var state: String?
        var verified: Int?
        var failed: Int?
        /// Fact (`section:index`) → `yes` / `no` / nil when the script left no mark.
        var rows: [String: String?]
        var summary: String?
    }

    static func marks(_ dom: String) -> Marks {
        func attribute(_ tag: Substring, _ name: String) -> String? {
            guard let r = tag.range(of: " \(name)=\"") else { return nil }
            return String(tag[r.upperBound...].prefix { $0 != "\"" })
        }
        var rows: [String: String?] = [:]
        var body: Substring?
        var rest = dom[...]
        while let open = rest.range(of: "<") {
            let tag = rest[open.lowerBound...].prefix { $0 != ">" }
            if tag.hasPrefix("<body") { body = tag }
            if tag.hasPrefix("<tr"), let fact = attribute(tag, "data-fact") {
                rows[fact] = attribute(tag, "data-verified")
            }
            rest = rest[tag.endIndex...]
        }
        let summary = dom.range(of: "id=\"summary-title\">").map { String(dom[$0.upperBound...].prefix { $0 != "<" }) }
        return Marks(
            state: body.flatMap { attribute($0, "data-verification") },
            verified: body.flatMap { attribute($0, "data-verified") }.flatMap { Int($0) },
            failed: body.flatMap { attribute($0, "data-failed") }.flatMap { Int($0) }, rows: rows, summary: summary)
    }

    func open(_ report: SubjectReport) throws -> Marks {
        let dir = try makeTempDir("report")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("report.html")
        try Data(report.html.utf8).write(to: file)
        return Self.marks(try Self.run(["--virtual-time-budget=60000", "--dump-dom"], file))
    }

    @Test func aGoodReportIsVerifiedFactByFact() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let report = try journeyReport(j)
        let m = try open(report)
        #expect(m.state == "done", "the page's checks did not finish: \(m)")
        let v = report.view
        let facts = v.consents.count + v.timeline.count + 1 + v.compliance.count + v.links.count
        #expect(m.rows.count == facts)
        #expect(m.rows.values.allSatisfy { $0 == "yes" }, "\(m.rows.filter { $0.value != "yes" })")
        #expect(m.verified == facts && m.failed == 0)
        #expect(m.summary?.contains("All \(facts) facts in this report are verified") == true)
    }

    @Test func anAlteredFactIsMarkedNotVerified() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let report = try journeyReport(j)
        let i = try #require(report.view.timeline.firstIndex { $0.facts.ref == j.refs["withdraw"] })
        let m = try open(alteringChannel(report, at: i))
        #expect(m.state == "done")
        #expect(m.rows["timeline:\(i)"] == "no", "the altered fact must not be marked verified")
        #expect(m.rows.filter { $0.value != "yes" }.keys.sorted() == ["timeline:\(i)"])
        #expect(m.failed == 1 && m.summary?.contains("1 of") == true)
    }

    @Test func anAlteredEntryIsMarkedNotVerifiedWhereverItIsUsed() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let report = try journeyReport(j)
        let m = try open(alteringReceipt(report, of: j.refs["give-web"]!))
        #expect(m.state == "done")
        let failed = m.rows.filter { $0.value != "yes" }.keys
        let i = try #require(report.view.timeline.firstIndex { $0.facts.ref == j.refs["give-web"] })
        #expect(failed.contains("timeline:\(i)"))
        #expect(Set(failed.map { $0.split(separator: ":")[0] }) == ["timeline", "consents", "compliance"])
        #expect(m.failed == failed.count)
    }
}

/// The headless browser the page tests use, and whether this run demands it.
enum Browser {
    static var chromium: String? {
        ["chromium", "chromium-browser", "google-chrome"].lazy.compactMap { ChildProcess.find($0) }.first
    }

    /// CI sets PROV_REQUIRE_BROWSER=1: a missing browser then fails the browser tests instead of skipping them.
    static var required: Bool { ProcessInfo.processInfo.environment["PROV_REQUIRE_BROWSER"] == "1" }
}
