import Foundation
import ProvCrypto
import ProvLedger
import ProvProcess
import TestSupport
import Testing

@testable import ProvView

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
            if let fact = attribute(tag, "data-fact") {
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

    func open(_ report: SubjectReport) throws -> Marks { try open(html: report.html) }

    /// The marks the page's script left after opening `html` from a file.
    func open(html: String) throws -> Marks {
        let dir = try makeTempDir("report")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("page.html")
        try Data(html.utf8).write(to: file)
        return Self.marks(try Self.run(["--virtual-time-budget=60000", "--dump-dom"], file))
    }

    @Test func aGoodReportIsVerifiedFactByFact() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let report = try journeyReport(j)
        let m = try open(report)
        #expect(m.state == "done", "the page's checks did not finish: \(m)")
        let facts = pageFactCount(report)
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

    @Test(arguments: Tampering.allCases) func aTamperedReportIsMarkedNotVerified(_ t: Tampering) throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let (report, fact) = try tampered(try journeyReport(j), t)
        let m = try open(report)
        #expect(m.state == "done", "the page's checks did not finish: \(m)")
        #expect(m.rows.filter { $0.value != "yes" }.keys.sorted() == [fact], "\(m.rows.filter { $0.value != "yes" })")
        #expect(m.failed == 1 && m.verified == pageFactCount(report) - 1)
    }

    /// Edits of the page alone (its JSON untouched): a row left out, a row shown twice, a cell that no longer says
    /// it is checked, and keys swapped in the data behind an unchanged key table. None leaves "All facts verified".
    @Test func editsOfThePageAloneAreNotVerified() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let report = try journeyReport(j)
        let html = report.html
        let violation = try #require(report.view.compliance.firstIndex { $0.classification == .violation })
        func row(_ fact: String) throws -> Range<String.Index> {
            let start = try #require(html.range(of: "<tr data-fact=\"\(fact)\">"))
            let end = try #require(html.range(of: "</tr>\n", range: start.upperBound..<html.endIndex))
            return start.lowerBound..<end.upperBound
        }
        let finding = try row("compliance:\(violation)")
        var removed = html
        removed.removeSubrange(finding)
        var doubled = html
        doubled.insert(contentsOf: html[try row("timeline:0")], at: try row("timeline:0").lowerBound)
        let cell = try #require(html.range(of: #"<td data-field="finding""#, range: finding))
        let cellEnd = try #require(html.range(of: "</td>", range: cell.upperBound..<finding.upperBound))
        let unmarked = html.replacingCharacters(
            in: cell.lowerBound..<cellEnd.upperBound, with: #"<td class="state-ok">Lawful</td>"#)
        #expect(unmarked != html)
        for (name, page) in [("removed", removed), ("doubled", doubled), ("unmarked", unmarked)] {
            let m = try open(html: page)
            #expect(m.state == "done", "\(name): \(m)")
            #expect((m.failed ?? 0) >= 1 && m.summary?.contains("All") == false, "\(name): \(m.summary ?? "")")
        }
        #expect(try open(html: unmarked).rows["compliance:\(violation)"] == "no")

        // Another key in the data the checks use, the key table left as it was: the table's row for it fails.
        let other = try NoteSigner(name: "acme/brand", privateKey: .generate()).verifierKey.description
        let brandKey = report.consortium.shownKey(try #require(report.consortium.member("brand")), for: []).description
        let dataStart = try #require(html.range(of: #"<script type="application/json" id="report-data">"#))
        var swapped = html
        let tail = swapped[dataStart.upperBound...].replacingOccurrences(of: brandKey, with: other)
        swapped.replaceSubrange(dataStart.upperBound..., with: tail)
        #expect(swapped != html)
        let m = try open(html: swapped)
        let brandRow = try #require(report.consortium.members.firstIndex { $0.org == "brand" })
        #expect(m.rows["keys:\(brandRow)"] == "no", "\(m.rows)")

        // Another time for the states in the data (a day earlier), the page's time left as it was: that row fails.
        let at = Timestamp.format(report.view.at)
        let earlier = Timestamp.format(report.view.at - 86_400_000)
        var dated = html
        let rest = dated[dataStart.upperBound...].replacingOccurrences(of: "\"\(at)\"", with: "\"\(earlier)\"")
        dated.replaceSubrange(dataStart.upperBound..., with: rest)
        #expect(dated != html)
        #expect(try open(html: dated).rows["at:0"] == "no")
    }

    /// The page re-derives what the index derived, on histories with every kind of finding and context entries.
    @Test(arguments: [(2, "email:p0@example.com"), (2, "email:p1@example.com"), (3, "email:p0@example.com")])
    func randomHistoriesVerifyInTheBrowser(_ seed: UInt64, _ person: String) throws {
        let h = try RandomHistory(seed: seed)
        defer { h.ledger.remove() }
        let source = DataDirectorySource(dataDirectory: h.ledger.dir.path, consortium: "acme")
        let report = try h.ledger.index().report(subject: person, at: t0 + 3_000_000, source: source, generatedAt: t0)
        let m = try open(report)
        #expect(m.state == "done", "the page's checks did not finish: \(m)")
        #expect(m.rows.filter { $0.value != "yes" }.isEmpty, "\(m.rows.filter { $0.value != "yes" })")
        #expect(m.verified == pageFactCount(report))
    }

    @Test func aConsentReceiptPageVerifiesAndAnAlteredOneDoesNot() throws {
        let j = try Journey()
        defer { j.ledger.remove() }
        let page = try consentReceipt(j)
        let good = try open(html: page.html)
        #expect(good.state == "done" && good.rows == ["consent:0": "yes"], "\(good)")
        #expect(good.summary?.contains("This consent record is verified") == true)
        // What the page shows, changed: the record is not verified.
        let shown = page.html.replacingOccurrences(
            of: "<td data-field=\"recipients\">Care, Retail</td>", with: "<td data-field=\"recipients\">Care</td>")
        #expect(shown != page.html)
        let m = try open(html: shown)
        #expect(m.state == "done" && m.rows == ["consent:0": "no"] && m.failed == 1, "\(m)")
        // The entry in the receipt, changed in one byte: its proof fails.
        var entry = page.receipt.entry
        entry[entry.count - 40] ^= 0x01
        let bytes = page.html.replacingOccurrences(
            of: Data(page.receipt.entry).base64EncodedString(), with: Data(entry).base64EncodedString())
        #expect(bytes != page.html)
        let n = try open(html: bytes)
        #expect(n.state == "done" && n.rows == ["consent:0": "no"], "\(n)")
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
