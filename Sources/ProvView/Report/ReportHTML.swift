import ProvCrypto
import ProvLedger

extension SubjectReport {
    /// The report as one self-contained HTML page (Specs/view.md §8.3): readable tables, the report's JSON with the
    /// consortium's verifier keys, the frontier's signed checkpoints and every receipt, and a script that checks
    /// them in the browser (WebCrypto SHA-256 and Ed25519, no network), re-derives every status and finding from
    /// the proven entries (§8.5), recomputes the view digest (§6.2) and marks each fact verified or not.
    public var html: String {
        var h = HTMLBuilder(consortium: consortium)
        let v = view
        // The companies by the names a customer knows: "Stride Sports, Northwind Retail and Helpline".
        let names = consortium.members.map(\.name)
        let name =
            names.count <= 1
            ? names.joined() : names.dropLast().joined(separator: ", ") + " and " + names.last!
        h.raw(
            """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Your data record with \(HTMLBuilder.escape(name))</title>
            \(Self.pagePolicy.meta)
            <style>\(Self.css)</style>
            </head><body data-verification="pending">
            <header><p class="kicker">Subject access report · GDPR Article 15</p>
            <h1>What \(HTMLBuilder.escape(name)) have recorded about you</h1>
            <p class="meta">Made \(HTMLBuilder.escape(Labels.time(generatedAt))). Consent states as of \
            \(HTMLBuilder.escape(Labels.time(v.at))). \(v.timeline.count) records from \
            \(Set(v.timeline.map(\.facts.org)).count) companies.</p>
            </header>
            <section id="summary" class="summary pending" role="status">
            <strong id="summary-title">Checking the proofs in this page…</strong>
            <span id="summary-detail">Each fact below is being checked against the companies' signed logs, in your browser.</span>
            <noscript><strong>Your browser did not run the checks.</strong> Open this file in a current browser with
            JavaScript on, or run <code>prov verify-report</code> on the JSON report.</noscript>
            </section>

            """)
        h.raw(
            """
            <section><h2>What each company may do with your data</h2>
            <p>One row per company and purpose. Only <em>Given</em> and <em>Renewed</em> allow a company to use your
            data for that purpose, and only until it expires. Companies listed under “Shared with” may use it too.</p>

            """)
        // The time the states are for is a checked fact too: a report made to look older or newer says so here.
        h.table(["Consent states as of", "Checked"], [("at:0", [("at", Labels.time(v.at))], nil)], empty: "")
        h.table(
            ["Company", "Purpose", "Status", "Since", "Expires", "Shared with", "Based on", "Checked"],
            v.consents.enumerated().map { i, c in
                (
                    "consents:\(i)",
                    [
                        ("controller", Labels.company(c.controller, consortium)), ("purpose", Labels.code(c.purpose)),
                        ("state", Labels.states[c.state] ?? c.state.rawValue),
                        ("since", Labels.time(c.decidedBy.hlc.wall)), ("expires", c.expiresAt.map(Labels.time) ?? "—"),
                        ("recipients", Labels.companies(c.recipients, consortium)),
                        ("entry", Labels.ref(c.decidedBy.ref)),
                    ], c.state.permits ? "ok" : "no"
                )
            }, empty: "No consent has been recorded for you.")
        h.raw(
            """
            </section>
            <section><h2>Everything recorded about you, newest first</h2>
            <p>Every consent, contact and data transfer the companies recorded, on every channel. “Recorded” is when
            the company's log learned of it; the time it happened, as the company stated it, is in the report's data.</p>

            """)
        h.table(
            ["Recorded", "Company", "Channel", "What", "Who", "Legal basis", "Consent relied on", "Entry", "Checked"],
            v.timeline.enumerated().map { i, t in ("timeline:\(i)", Self.itemCells(t.facts, consortium), nil) },
            empty: "Nothing has been recorded about you.")
        h.raw("</section>\n<section><h2>Your data shared between companies</h2>\n")
        let shares = v.timeline.filter { $0.facts.kind == .share }
        h.table(
            ["Recorded", "From", "To", "Data", "Purposes", "Entry", "Checked"],
            shares.enumerated().map { i, t in
                (
                    "shares:\(i)",
                    [
                        ("when", Labels.time(t.facts.hlc.wall)), ("company", Labels.company(t.facts.org, consortium)),
                        ("recipient", Labels.company(t.facts.recipient ?? "", consortium)),
                        ("categories", Labels.codes(t.facts.dataCategories)),
                        ("purposes", Labels.codes(t.facts.purposes)),
                        ("entry", Labels.ref(t.facts.ref)),
                    ], nil
                )
            }, empty: "No company recorded sharing your data with another.")
        h.raw(
            """
            </section>
            <section><h2>Was your consent respected?</h2>
            <p>Every contact that relied on your consent, checked against what the company knew at the time: the other
            companies' records its own log had cited by then. A <strong>violation</strong> means the company's own
            records already showed it had no valid consent; a <strong>propagation lag</strong> means you had withdrawn
            (or objected) shortly before, but the news had not yet reached that company. This page works each finding
            out again from the signed records it carries, and marks it verified only when it comes out the same.</p>

            """)
        h.table(
            ["Recorded", "Company", "What", "Finding", "Why", "What it had seen", "Checked"],
            v.compliance.enumerated().map { i, f in
                (
                    "compliance:\(i)",
                    [
                        ("when", Labels.time(f.interaction.hlc.wall)),
                        ("company", Labels.company(f.interaction.org, consortium)),
                        ("what", Labels.what(f.interaction, consortium)),
                        ("finding", Labels.classes[f.classification] ?? f.classification.rawValue),
                        ("why", Labels.why(f, consortium)),
                        ("seen", Labels.seen(f, knowledge[f.interaction.ref], consortium)),
                    ], f.classification == .lawful ? "ok" : "no"
                )
            }, empty: "No contact relied on your consent.")
        h.raw(
            """
            </section>
            <section><h2>Your identifiers</h2>
            <p>The companies never record your e-mail address, phone number or customer number: only keyed pseudonyms
            of them (below). These were recognised as you:</p>

            """)
        h.table(
            ["Identifier", "Checked"],
            v.refs.enumerated().map { i, r in ("refs:\(i)", [("ref", SubjectRef.text(r))], nil) },
            empty: "No identifier.")
        h.table(
            ["Identifiers", "Now", "Entry", "Checked"],
            v.links.enumerated().map { i, l in
                (
                    "links:\(i)",
                    [
                        ("refs", l.refs.map(SubjectRef.text).joined(separator: " ↔ ")),
                        ("linked", l.linked ? "Linked" : "Unlinked"), ("entry", Labels.ref(l.decidedBy.ref)),
                    ], nil
                )
            }, empty: "No identifiers were linked.")
        if !context.isEmpty {
            h.raw(
                """
                </section>
                <section><h2>Other records the findings rest on</h2>
                <p>Records of identifiers that were linked to you when a contact happened but are not now, and consents
                a contact named that are not in your records. The findings above were worked out with them.</p>

                """)
            h.table(
                [
                    "Recorded", "Company", "Channel", "What", "Who", "Legal basis", "Consent relied on", "Entry",
                    "Checked",
                ],
                context.enumerated().map { i, f in ("context:\(i)", Self.itemCells(f, consortium), nil) }, empty: "")
        }
        h.raw(
            """
            </section>
            <section class="howto"><h2>How to check this report</h2>
            <dl>
            <dt><span class="mark ok">✓ Verified</span></dt><dd>This fact is in the company's log exactly as shown: its
            receipt proves that the entry is in the log whose checkpoint the company signed with its key (below), and the
            row says what the entry says. A status or a finding is verified only when this page, working it out again
            from the signed records in the report, comes to the same answer.</dd>
            <dt><span class="mark no">✗ Not verified</span></dt><dd>The row differs from the signed entry, does not follow
            from the signed records, or its proof does not check out. Do not rely on it, and ask the company about it.</dd>
            </dl>
            <div class="notice" id="completeness"><h3>What a report cannot prove</h3>
            <p>Every fact shown here is proven, but no report can prove that <strong>nothing was left out</strong>: a
            company could leave a record about you out of the report it makes, and the facts that remain would still
            check out. Nor can it prove that a company had <em>not</em> seen a record: it proves what each company had
            seen, from the records its log cited, not that it saw nothing more.</p>
            <p><strong>How to check that nothing was left out:</strong> ask another company of the consortium for your
            report (from its own node), for the same time and once both show the same log sizes (below). Each company's
            node works out your view from its own copy of every log, and the view digest is a fingerprint of all of it.
            If the two view digests are the same, both reports hold the same records, statuses and findings.</p></div>
            <p>The checks run in your browser, with nothing sent anywhere. They use the keys below, which came with this
            page: compare them with the keys the consortium publishes. The same checks, against the published keys, run
            with <code>prov verify-report report.json --consortium consortium.json</code>. This page carries its own
            checks: whoever could rewrite the file could rewrite them too, so a page that matters is checked with that
            command, against the keys the consortium publishes, and not only here.</p>

            """)
        h.table(
            ["Company", "Verifier key", "Checked"],
            consortium.members.enumerated().map { i, m in
                (
                    "keys:\(i)",
                    [
                        ("company", "\(m.name) (\(m.org))"),
                        ("key", consortium.shownKey(m, for: checkpoints).description),
                    ],
                    nil
                )
            }, empty: "")
        h.raw(
            """
            <p>The view was computed from these logs, each checked against a checkpoint its company signed (size and
            root hash):</p>

            """)
        h.table(
            ["Log of", "Entries", "Root hash", "Checked"],
            v.frontier.logs.enumerated().map { i, l in
                (
                    "frontier:\(i)",
                    [("log", Labels.company(l.org, consortium)), ("size", String(l.size)), ("root", l.root.base64)], nil
                )
            }, empty: "No log.")
        h.table(
            ["View digest", "Checked"], [("digest:0", [("digest", v.digest.hex)], nil)], empty: "")
        h.raw("</section>\n")
        let data = json.serialized.replacingOccurrences(of: "<", with: "\\u003c")
        h.raw("<script type=\"application/json\" id=\"report-data\">\(data)</script>\n")
        h.raw("<script>\(ReportScript.source)</script>\n</body></html>\n")
        return h.out
    }

    static func itemCells(_ f: EntryFacts, _ c: Consortium) -> [(String, String)] {
        [
            ("when", Labels.time(f.hlc.wall)), ("company", Labels.company(f.org, c)),
            ("channel", Labels.channel(f.channel)),
            ("what", Labels.what(f, c)), ("agent", Labels.agent(f, c)),
            ("basis", f.legalBasis.map(Labels.code) ?? "—"), ("relied", Labels.ref(f.consentRef)),
            ("entry", Labels.ref(f.ref)),
        ]
    }

    static let css = """
        :root{--ink:#1d2330;--muted:#5b6475;--line:#dfe3ea;--ok:#17773b;--okbg:#e6f4ea;--no:#b3261e;--nobg:#fce8e6;\
        --pending:#8a6d00;--pendbg:#fff5d6}
        *{box-sizing:border-box}body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);\
        margin:0 auto;max-width:1180px;padding:24px 28px 60px}
        h1{font-size:26px;margin:4px 0 6px}h2{font-size:19px;margin:34px 0 6px;padding-top:10px;border-top:1px solid var(--line)}
        .kicker{text-transform:uppercase;letter-spacing:.08em;font-size:12px;color:var(--muted);margin:0}
        .meta,section>p{color:var(--muted);margin:4px 0 12px}
        .summary{border-radius:10px;padding:14px 18px;margin:18px 0;border:1px solid;font-size:16px}
        .summary strong{display:block;font-size:18px;margin-bottom:2px}
        .summary.pending{background:var(--pendbg);border-color:#f0d98a;color:var(--pending)}
        .summary.ok{background:var(--okbg);border-color:#a8d5b5;color:var(--ok)}
        .summary.no{background:var(--nobg);border-color:#f2b8b5;color:var(--no)}
        table{border-collapse:collapse;width:100%;font-size:14px;margin:8px 0}
        th{text-align:left;font-weight:600;color:var(--muted);border-bottom:2px solid var(--line);padding:6px 8px}
        td{border-bottom:1px solid var(--line);padding:6px 8px;vertical-align:top}
        .no td{background:var(--nobg)}td.state-ok{color:var(--ok);font-weight:600}td.state-no{color:var(--no);font-weight:600}
        .mark{white-space:nowrap;font-weight:600}.mark.ok{color:var(--ok)}.mark.no{color:var(--no)}.mark.pending{color:var(--pending)}
        td[data-field=when],td[data-field=since],td[data-field=expires]{white-space:nowrap}
        td[data-field=agent]{overflow-wrap:anywhere;min-width:12em}
        .why{display:block;font-weight:400;font-size:12px;color:var(--no);white-space:normal}
        code{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
        .empty{color:var(--muted);font-style:italic}.refs{margin:4px 0 8px}
        .howto dt{margin-top:8px}.howto dd{margin:2px 0 8px 0;color:var(--muted)}
        h3{font-size:16px;margin:4px 0 4px}.howto p{color:var(--ink)}
        .notice{border:1px solid var(--line);border-left:4px solid var(--pending);border-radius:6px;padding:8px 16px;\
        margin:16px 0;background:#fafbfc}
        td[data-field=root],td[data-field=digest],td[data-field=ref]{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;\
        word-break:break-all}
        td[data-field=why],td[data-field=seen]{min-width:14em}
        """
}

/// Builds the page; every text that came from the logs is escaped.
struct HTMLBuilder {
    let consortium: Consortium
    var out = ""

    static func escape(_ s: String) -> String {
        var r = ""
        for ch in s {
            switch ch {
            case "&": r += "&amp;"
            case "<": r += "&lt;"
            case ">": r += "&gt;"
            case "\"": r += "&quot;"
            case "'": r += "&#39;"
            default: r.append(ch)
            }
        }
        return r
    }

    mutating func raw(_ s: String) { out += s }

    /// A table of facts: each row names its fact (`section:index`) and each checked cell its field; cells whose
    /// field starts with `-` are shown, not checked. `state` colours the row's status cell.
    mutating func table(_ header: [String], _ rows: [(String, [(String, String)], String?)], empty: String) {
        guard !rows.isEmpty else {
            out += "<p class=\"empty\">\(Self.escape(empty))</p>\n"
            return
        }
        out += "<table><thead><tr>" + header.map { "<th>\(Self.escape($0))</th>" }.joined() + "</tr></thead><tbody>\n"
        for (fact, cells, state) in rows {
            out += "<tr data-fact=\"\(fact)\">"
            for (field, text) in cells {
                let cls = field == "state" || field == "finding" ? " class=\"state-\(state ?? "ok")\"" : ""
                let attr = field.hasPrefix("-") ? "" : " data-field=\"\(field)\""
                out += "<td\(attr)\(cls)>\(Self.escape(text))</td>"
            }
            out += "<td class=\"mark pending\" data-mark>…</td></tr>\n"
        }
        out += "</tbody></table>\n"
    }
}
