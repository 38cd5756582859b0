import ProvCrypto
import ProvLedger

/// A consent receipt a customer keeps (Specs/view.md §8.6): one consent entry and its C2SP tlog-proof receipt as a
/// self-contained page, with the consent's ISO/IEC TS 27560 fields in plain words, that checks the receipt in the
/// browser the way a report page checks its facts (`GET /v1/entries/{org}/{seq}/receipt.html`, `prov receipt
/// --html`).
public struct ConsentReceiptPage: Sendable {
    /// The page's one script.
    static var scriptSource: String { ReportScript.prelude + ReportScript.core + script + ReportScript.epilogue }
    /// What the page may run and load (its script and style sheet only).
    public static let pagePolicy = PagePolicy(script: scriptSource, style: SubjectReport.css + css)

    public static let format = "prov-consent-receipt/v1"

    public let consortium: Consortium
    public let receipt: Receipt
    /// The consent, as the receipt proves it.
    public let facts: EntryFacts
    /// Members other than the log's company whose cosignatures on the checkpoint verify.
    public let cosigners: [String]

    /// Checks `receipt` against the descriptor's keys; throws when it does not verify or its entry is not a consent.
    public init(consortium: Consortium, receipt: Receipt) throws(ViewError) {
        let verified: Receipt.Verified
        do { verified = try receipt.verify(consortium: consortium) } catch {
            throw ViewError(.report, error.message)
        }
        let facts = try EntryFacts(decoding: receipt.entry, leaf: verified.leaf)
        guard facts.kind == .consent else {
            throw ViewError.parameter(
                "seq",
                "\(facts.org)/\(facts.ref.seq) is not a consent entry (it is of kind \(facts.kind.rawValue)): "
                    + "a consent receipt is made for consent entries")
        }
        self.consortium = consortium
        self.receipt = receipt
        self.facts = facts
        cosigners = verified.cosigners
    }

    /// The page's fields, in order: (field, what a customer reads as its name, the text).
    var fields: [(String, String, String)] {
        let f = facts
        let c = consortium
        let grants = f.event == "give" || f.event == "renew"
        return [
            ("event", "What you decided", Labels.events[f.event ?? ""] ?? f.event ?? "—"),
            ("purposes", "What for", Labels.codes(f.purposes)),
            ("controllers", "Who is responsible (controller)", Labels.companies(f.controllers, c)),
            (
                "recipients", "Who else may use your data",
                f.recipients.isEmpty ? (grants ? "No one else" : "—") : Labels.companies(f.recipients, c)
            ),
            ("basis", "Legal basis", f.legalBasis.map(Labels.code) ?? "—"),
            ("occurred", "When you decided", Labels.time(f.occurredAt)),
            ("expires", "Valid until", f.expiresAt.map(Labels.time) ?? (grants ? "No end date" : "—")),
            ("notice", "The notice you were shown", f.notice.map { "\($0.id), version \($0.version)" } ?? "—"),
            ("method", "How you told them", f.method.map { Labels.methods[$0] ?? $0 } ?? "—"),
            ("channel", "Where", Labels.channel(f.channel)),
            ("subject", "About you (a pseudonym, not your identifier)", f.subjects.map(SubjectRef.text).joined()),
            ("recorded", "Recorded in the log", Labels.time(f.hlc.wall)),
            ("signed", "Signed by", Labels.company(f.org, c)),
            ("cosigned", "Also confirmed by", Labels.companies(cosigners, c)),
            ("entry", "Record", Labels.ref(f.ref)),
        ]
    }

    public var json: JSONValue {
        .object([
            JSONMember("format", .string(Self.format)),
            JSONMember("consortium", Render.consortium(consortium, keysFor: [receipt.checkpoint])),
            JSONMember("ref", Render.ref(facts.ref)), JSONMember("receipt", .string(receipt.serialized)),
        ])
    }

    public var html: String {
        var h = HTMLBuilder(consortium: consortium)
        let who = HTMLBuilder.escape(Labels.company(facts.org, consortium))
        let event = HTMLBuilder.escape((Labels.events[facts.event ?? ""] ?? "Consent").lowercased())
        h.raw(
            """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Your consent receipt from \(who)</title>
            \(Self.pagePolicy.meta)
            <style>\(SubjectReport.css)\(Self.css)</style>
            </head><body data-verification="pending">
            <header><p class="kicker">Consent receipt · ISO/IEC TS 27560</p>
            <h1>\(who) recorded your decision: \(event)</h1>
            <p class="meta">Keep this page. It proves what you decided and when, as \(who) recorded it in its signed
            log: the company cannot change or remove that record later without it showing.</p>
            </header>
            <section id="summary" class="summary pending" role="status">
            <strong id="summary-title">Checking the proof in this page…</strong>
            <span id="summary-detail">The record below is being checked against the company's signed log, in your browser.</span>
            <noscript><strong>Your browser did not run the check.</strong> Open this file in a current browser with
            JavaScript on, or run <code>prov verify-receipt</code> on the receipt below.</noscript>
            </section>
            <section class="receipt" data-fact="consent:0"><table class="fact"><tbody>

            """)
        for (field, name, text) in fields {
            h.raw(
                "<tr><th>\(HTMLBuilder.escape(name))</th><td data-field=\"\(field)\">\(HTMLBuilder.escape(text))</td></tr>\n"
            )
        }
        h.raw(
            """
            <tr><th>Checked</th><td class="mark pending" data-mark>…</td></tr>
            </tbody></table></section>
            <section class="howto"><h2>How to check this receipt</h2>
            <p>The check runs in your browser, with nothing sent anywhere: the receipt below holds the record, a proof
            that it is in the company's log, and the log's checkpoint, signed with the company's key (and, when other
            companies of the consortium have checked the same log, their signatures too). A record that differs by a
            single character does not check out.</p>
            <p>The keys used are the ones below, which came with this page: compare them with the keys the consortium
            publishes. The same check, against the published keys, runs with
            <code>prov verify-receipt --consortium consortium.json receipt.tlog-proof</code> on the text below.</p>
            <table class="keys"><thead><tr><th>Company</th><th>Verifier key</th></tr></thead><tbody>
            """)
        for m in consortium.members {
            h.raw(
                "<tr><td>\(HTMLBuilder.escape(m.name)) (\(HTMLBuilder.escape(m.org)))</td>"
                    + "<td><code>\(HTMLBuilder.escape(consortium.shownKey(m, for: [receipt.checkpoint]).description))"
                    + "</code></td></tr>")
        }
        h.raw(
            """
            </tbody></table>
            <details><summary>The receipt (C2SP tlog-proof)</summary><pre>\(HTMLBuilder.escape(receipt.serialized))</pre></details>
            </section>

            """)
        let data = json.serialized.replacingOccurrences(of: "<", with: "\\u003c")
        h.raw("<script type=\"application/json\" id=\"report-data\">\(data)</script>\n")
        h.raw("<script>\(Self.scriptSource)</script>\n")
        h.raw("</body></html>\n")
        return h.out
    }

    static let css = """
        .fact th{width:34%;font-weight:600;color:var(--muted);border-bottom:1px solid var(--line);padding:8px 8px;\
        vertical-align:top}.fact td{font-size:15px}.receipt{margin:18px 0}
        td[data-field=subject],td[data-field=entry]{font:13px/1.4 ui-monospace,Menlo,Consolas,monospace;\
        word-break:break-all}
        pre{font:11px/1.4 ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all;\
        background:#f6f7f9;padding:10px;border-radius:6px}details{margin:12px 0}
        """

    /// The page's check (Specs/view.md §8.6): the receipt proves the entry named, a consent; each field reads what
    /// the proven entry says. Its labels mirror `fields`.
    static let script = #"""
        const methods = { api: 'Through the company\u2019s systems', 'app-toggle': 'A switch in the app', checkbox: 'A tick box',
          'cookie-banner': 'A cookie banner', 'device-setting': 'A device setting', 'double-opt-in': 'Confirmed twice (double opt-in)',
          'email-link': 'A link in an e-mail', 'in-person': 'In person', ivr: 'An automated phone menu', 'preference-centre': 'A preference centre',
          'signed-paper': 'A signed paper form', 'sms-keyword': 'A keyword sent by text message', verbal: 'Spoken', 'web-form': 'A web form' };
        const checks = {
          async consent(ref) {
            const r = await receipt(data.receipt), f = r.facts;
            if (f.ref.org !== ref.org || f.ref.seq !== ref.seq || f.ref.leaf !== ref.leaf) throw new Error('the receipt proves another record');
            if (f.kind !== 'consent') throw new Error('the record is not a consent');
            const grants = f.event === 'give' || f.event === 'renew';
            return { event: label(events, f.event), purposes: codes(f.purposes), controllers: companies(f.controllers),
              recipients: f.recipients ? companies(f.recipients) : grants ? 'No one else' : '\u2014', basis: f.legalBasis ? code(f.legalBasis) : '\u2014',
              occurred: when(f.occurredAt), expires: f.expiresAt ? when(f.expiresAt) : grants ? 'No end date' : '\u2014',
              notice: f.notice ? f.notice.id + ', version ' + f.notice.version : '\u2014', method: label(methods, f.method), channel: label(channels, f.channel),
              subject: f.subjects.join(''), recorded: when(f.recordedAt), signed: company(f.org), cosigned: companies(r.checkpoint.cosigners), entry: refLabel(f.ref) };
          },
        };
        const { ok } = await markRows(checks, (section, i) => section === 'consent' && i === 0 ? data.ref : undefined);
        const summary = document.getElementById('summary');
        summary.className = 'summary ' + (ok === 1 ? 'ok' : 'no');
        document.getElementById('summary-title').textContent = ok === 1
          ? '\u2713 This consent record is verified' : '\u2717 This consent record could not be verified';
        document.getElementById('summary-detail').textContent = ok === 1
          ? 'It is in ' + company(data.ref.org) + '\u2019s signed log exactly as shown. Checked in your browser just now, with the keys listed below.'
          : 'What this page shows differs from what the company signed, or the proof does not check out: do not rely on it.';
        document.body.dataset.verification = 'done';

        """#
}
