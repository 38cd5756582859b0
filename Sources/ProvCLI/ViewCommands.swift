import Foundation
import ProvCrypto
import ProvLedger
import ProvNet
import ProvTools
import ProvView

/// `prov view`, `permit`, `timeline`, `compliance`, `report` (Specs/view.md) against a running node
/// (`--node URL --token T`) or offline on a data directory (`--dir DATA --consortium FILE [--link-key FILE]`), with
/// the same output for the same logs: the node serves the very tables and JSON this prints offline. And
/// `prov verify-report`, offline.
extension Prov {
    /// Where a query is answered: a node's API, or a view built here from a data directory.
    enum ViewSource {
        case node(NodeAPI)
        case offline(OfflineView)
    }

    static let sourceOptions: [Option] = [
        .value("node", "URL", "ask a running node: its API address, http://HOST:PORT (or HOST:PORT)"),
        .value(
            "token", "TOKEN",
            "the node's bearer token (its auditorToken suffices; also the environment variable PROV_TOKEN)"),
        .value("dir", "DATADIR", "or compute it here, offline, from a data directory (every log in it)"),
        .value("consortium", "FILE", "the consortium descriptor (offline)"),
        .value(
            "link-key", "FILE",
            "the linking key (offline; needed to look a customer up by raw identifier rather than by ref)"),
    ]

    static let atOption = Option.value(
        "at", "TIME", "evaluate at this time: RFC 3339 or milliseconds since 1970 (default now)")

    static let viewNotes = [
        "SUBJECT is any of the person's refs (ref:...) or a raw identifier (email:..., phone:..., cust:ORG:ID), "
            + "pseudonymised at once: it is never stored, sent to a log or printed. An unknown subject is an empty "
            + "view. The same logs give the same output from a node and offline."
    ]

    /// Where to answer; `subject` is the customer asked about, checked before anything is read: offline, a raw
    /// identifier needs the linking key.
    static func viewSource(_ args: Arguments, subject: String? = nil) throws -> ViewSource {
        let node = try args.optional("node")
        let dir = try args.optional("dir")
        switch (node, dir) {
        case (let url?, nil):
            var address = url
            if address.hasPrefix("https://") {
                throw UsageError("--node: prov talks plain HTTP to a node's API; give http://HOST:PORT")
            }
            if address.hasPrefix("http://") { address.removeFirst(7) }
            while address.hasSuffix("/") { address.removeLast() }
            guard let token = try args.optional("token") ?? ProcessInfo.processInfo.environment["PROV_TOKEN"] else {
                throw UsageError("--node needs --token TOKEN (or PROV_TOKEN): the node's token or auditorToken")
            }
            return .node(try NodeAPI(address: address, token: token))
        case (nil, let dir?):
            let linkKeyPath = try args.optional("link-key")
            if let subject, !subject.hasPrefix("ref:"), linkKeyPath == nil {
                throw UsageError(
                    "a raw identifier is pseudonymised with the consortium's linking key: give --link-key FILE, or the "
                        + "customer's ref:… instead")
            }
            let consortium = try Consortium.load(try args.required("consortium"))
            let linkKey = try linkKeyPath.map { try LinkKey.load($0) }
            if let linkKey, let why = consortium.linkKeyMismatch(linkKey) { throw LedgerError(.config, why) }
            let built = try ViewIndex.build(dataDirectory: dir, consortium: consortium, linkKey: linkKey)
            for (org, reason) in built.excluded { log("warn", "the log of \(org) is left out of the view: \(reason)") }
            return .offline(built)
        case (.some, .some):
            throw UsageError("give --node or --dir, not both")
        case (nil, nil):
            throw UsageError("give --node URL --token TOKEN, or --dir DATADIR --consortium FILE")
        }
    }

    /// Asks the node for `path` as a table or JSON; a bad parameter is a usage error with the node's message.
    static func ask(_ api: NodeAPI, _ path: String, json: Bool, accept: String? = nil) throws -> [UInt8] {
        try askResponse(api, path, json: json, accept: accept).body
    }

    /// As `ask`, with the whole response (headers too).
    static func askResponse(_ api: NodeAPI, _ path: String, json: Bool, accept: String? = nil) throws -> HTTPResponse {
        let r = try api.client.get(
            path,
            headers: [
                "Authorization": "Bearer \(api.token)", "Accept": accept ?? (json ? "application/json" : "text/plain"),
            ])
        switch r.status {
        case 200: return r
        case 400: throw UsageError(errorText(r.body))
        case 401: throw LedgerError(.config, "the node refused the token (401): \(errorText(r.body))")
        default: throw LedgerError(.io, "the node answered \(r.status): \(errorText(r.body))")
        }
    }

    static func errorText(_ body: [UInt8]) -> String {
        (try? JSON.parse(body))?["error"]?.stringValue ?? String(decoding: body.prefix(300), as: UTF8.self)
    }

    /// `s` percent-encoded for a URL path segment or query value.
    static func q(_ s: String) -> String { NodeAPI.percentEncoded(s) }

    static func time(_ args: Arguments, _ name: String) throws -> UInt64? {
        guard let v = try args.optional(name) else { return nil }
        if let ms = UInt64(v) { return ms }
        guard let t = Timestamp.parse(v) else {
            throw UsageError("--\(name) takes an RFC 3339 time (2026-11-24T10:00:00Z) or milliseconds since 1970")
        }
        return t
    }

    /// Prints a result offline as the node would send it: the table, or the JSON on one line.
    static func show(_ json: JSONValue, _ table: String, _ asJSON: Bool) {
        if asJSON {
            out(json.serialized)
        } else {
            write(1, table.hasSuffix("\n") ? table : table + "\n")
        }
    }

    /// Runs `offline` on a built view, mapping a bad parameter to a usage error.
    static func offline<T>(_ body: () throws(ViewError) -> T) throws -> T {
        do { return try body() } catch {
            if error.code == .badParameter { throw UsageError(error.message) }
            throw LedgerError(.io, error.message)
        }
    }

    static func subject(_ args: Arguments) throws -> String {
        guard let s = args.positionals.first else { throw UsageError("give the SUBJECT: a ref or an identifier") }
        return s
    }

    // MARK: view

    static let viewCommand = Command(
        "view",
        purpose: "Print a customer's view: consent per company and purpose, the timeline across companies, "
            + "compliance findings, and the view digest every node agrees on.",
        options: sourceOptions + [atOption, .json],
        operands: [Operand("SUBJECT", "a ref or a raw identifier of the customer")],
        exitCodes: ExitCode.standard,
        examples: [
            "prov view email:alex@example.com --node http://127.0.0.1:7501 --token $TOKEN",
            "prov view ref:cI-g0ZyTFin41rZ55VNW6HSy_SbU9X5isfZRgVNiDT4 --dir data --consortium consortium.json",
        ], notes: viewNotes, run: view)

    static func view(_ args: Arguments) throws -> Int32 {
        let s = try subject(args)
        let at = try time(args, "at")
        switch try viewSource(args, subject: s) {
        case .node(let api):
            write(
                1,
                String(
                    decoding: try ask(
                        api, "/v1/subjects/\(q(s))/view" + (at.map { "?at=\($0)" } ?? ""), json: args.flag("json")),
                    as: UTF8.self))
        case .offline(let built):
            let v = try offline { () throws(ViewError) in try built.index.view(subject: s, at: at) }
            show(v.json, v.table, args.flag("json"))
        }
        return 0
    }

    // MARK: permit

    static let permitCommand = Command(
        "permit",
        purpose: "Say whether a company may process a customer's data for a purpose, with the consent entry that "
            + "decides it.",
        options: [
            .value("subject", "SUBJECT", "a ref or a raw identifier of the customer", required: true),
            .value("org", "ORG", "the company that wants to act", required: true),
            .value("purpose", "DPV", "the purpose, a DPV code such as dpv:DirectMarketing", required: true),
            .value("channel", "CHANNEL", "the channel (echoed; consents of format 1 have no channel scope)"),
        ] + sourceOptions + [atOption, .json],
        exitCodes: [
            ExitCode(0, "allowed: the company may process the data for that purpose"),
            ExitCode(1, "denied (the answer says why)"), ExitCode.usage,
        ],
        examples: [
            "prov permit --subject email:alex@example.com --org retail --purpose dpv:DirectMarketing "
                + "--node http://127.0.0.1:7502 --token $TOKEN",
            "prov permit ... --json > /dev/null && send-the-newsletter",
        ], notes: viewNotes, run: permit)

    static func permit(_ args: Arguments) throws -> Int32 {
        let s = try args.required("subject")
        let org = try args.required("org")
        let purpose = try args.required("purpose")
        let channel = try args.optional("channel")
        let at = try time(args, "at")
        switch try viewSource(args, subject: s) {
        case .node(let api):
            var path = "/v1/permit?subject=\(q(s))&org=\(q(org))&purpose=\(q(purpose))"
            if let channel { path += "&channel=\(q(channel))" }
            if let at { path += "&at=\(at)" }
            let r = try askResponse(api, path, json: args.flag("json"))
            write(1, String(decoding: r.body, as: UTF8.self))
            switch r.headers["Prov-Permit"] {
            case "allowed": return 0
            case "denied": return 1
            default: throw LedgerError(.io, "the node's answer has no Prov-Permit header: is it a provd node?")
            }
        case .offline(let built):
            let p = try offline { () throws(ViewError) in
                try built.index.permit(subject: s, org: org, purpose: purpose, channel: channel, at: at)
            }
            show(p.json, p.table, args.flag("json"))
            return p.allowed ? 0 : 1
        }
    }

    // MARK: timeline

    static let timelineCommand = Command(
        "timeline",
        purpose: "Print a customer's timeline across companies and channels, newest first, a page at a time.",
        options: [
            .value("limit", "N", "items per page, 1-1000 (default 100)"),
            .value("before", "CURSOR", "the next page: the cursor printed after the last page, or an RFC 3339 time"),
        ] + sourceOptions + [.json],
        operands: [Operand("SUBJECT", "a ref or a raw identifier of the customer")],
        exitCodes: ExitCode.standard,
        examples: ["prov timeline phone:+447700900123 --dir data --consortium consortium.json --link-key link.key"],
        notes: viewNotes, run: timeline)

    static func timeline(_ args: Arguments) throws -> Int32 {
        let s = try subject(args)
        let limit = try args.integer("limit", default: 100)
        let before = try args.optional("before")
        switch try viewSource(args, subject: s) {
        case .node(let api):
            var path = "/v1/subjects/\(q(s))/timeline?limit=\(limit)"
            if let before { path += "&before=\(q(before))" }
            write(1, String(decoding: try ask(api, path, json: args.flag("json")), as: UTF8.self))
        case .offline(let built):
            let t = try offline { () throws(ViewError) in
                try built.index.timeline(subject: s, limit: limit, before: before)
            }
            show(t.json, t.table, args.flag("json"))
        }
        return 0
    }

    // MARK: compliance

    static let complianceCommand = Command(
        "compliance",
        purpose: "Classify a company's interactions that relied on consent: lawful, violation (it knew) or "
            + "propagation lag (it had not yet seen the withdrawal), with the entries that decide each.",
        options: [
            .value("org", "ORG", "the company whose interactions to classify", required: true),
            .value("from", "TIME", "only interactions recorded from this time (RFC 3339 or ms)"),
            .value("to", "TIME", "only interactions recorded before this time"),
        ] + sourceOptions + [.json],
        exitCodes: ExitCode.standard,
        examples: ["prov compliance --org retail --node http://127.0.0.1:7502 --token $TOKEN"],
        run: compliance)

    static func compliance(_ args: Arguments) throws -> Int32 {
        let org = try args.required("org")
        let from = try time(args, "from")
        let to = try time(args, "to")
        switch try viewSource(args) {
        case .node(let api):
            var path = "/v1/compliance?org=\(q(org))"
            if let from { path += "&from=\(from)" }
            if let to { path += "&to=\(to)" }
            write(1, String(decoding: try ask(api, path, json: args.flag("json")), as: UTF8.self))
        case .offline(let built):
            let c = try offline { () throws(ViewError) in try built.index.compliance(org: org, from: from, to: to) }
            show(c.json, c.table, args.flag("json"))
        }
        return 0
    }

    // MARK: report

    static let reportCommand = Command(
        "report",
        purpose: "Write a customer's subject access report (GDPR Art 15): everything recorded about them, with an "
            + "offline receipt for every entry, as JSON or as a page that verifies itself in a browser.",
        options: [
            .flag("html", "write the self-verifying HTML page instead of JSON"),
            .value("out", "FILE", "write to FILE instead of standard output"), atOption,
        ] + sourceOptions,
        operands: [Operand("SUBJECT", "a ref or a raw identifier of the customer")],
        exitCodes: ExitCode.standard,
        examples: [
            "prov report email:alex@example.com --html --out alex.html --node http://127.0.0.1:7501 --token $TOKEN",
            "prov report email:alex@example.com --out alex.json --dir data --consortium consortium.json "
                + "--link-key link.key",
        ],
        notes: viewNotes + ["Check a JSON report offline with prov verify-report REPORT --consortium FILE."],
        run: report)

    static func report(_ args: Arguments) throws -> Int32 {
        let s = try subject(args)
        let at = try time(args, "at")
        let html = args.flag("html")
        let bytes: [UInt8]
        switch try viewSource(args, subject: s) {
        case .node(let api):
            bytes = try ask(
                api, "/v1/subjects/\(q(s))/report" + (at.map { "?at=\($0)" } ?? ""), json: !html,
                accept: html ? "text/html" : "application/json")
        case .offline(let built):
            let r = try offline { () throws(ViewError) in
                try built.index.report(subject: s, at: at, source: built.source)
            }
            bytes = html ? Array(r.html.utf8) : Array((r.json.serialized + "\n").utf8)
        }
        if let path = try args.optional("out") {
            do { try Data(bytes).write(to: URL(fileURLWithPath: path)) } catch {
                throw LedgerError(.io, "cannot write \(path): \(error.localizedDescription)")
            }
            out("wrote \(path) (\(Phrase.count(bytes.count, "byte")))")
        } else {
            write(1, String(decoding: bytes, as: UTF8.self))
        }
        return 0
    }

    // MARK: verify-report

    static let verifyReportCommand = Command(
        "verify-report",
        purpose: "Check a subject access report (JSON) offline against the consortium's keys alone: every receipt, "
            + "and every fact against the entry its receipt proves.",
        options: [.value("consortium", "FILE", "the consortium descriptor", required: true), .json],
        operands: [Operand("REPORT", "the report's JSON file (prov report without --html)")],
        exitCodes: [
            ExitCode(0, "every fact and receipt verified"),
            ExitCode(1, "a fact or receipt did not verify, or the report does not parse"),
            ExitCode.usage,
        ],
        examples: ["prov verify-report alex.json --consortium consortium.json"], run: verifyReport)

    static func verifyReport(_ args: Arguments) throws -> Int32 {
        guard let path = args.positionals.first else { throw UsageError("give the REPORT file") }
        let consortium = try Consortium.load(try args.required("consortium"))
        let bytes = try readFile(path)
        let check: ReportCheck
        do { check = try SubjectReport.verify(json: bytes, consortium: consortium) } catch {
            throw LedgerError(.verificationFailed, "\(path) is not a subject access report: \(error.message)")
        }
        if args.flag("json") {
            out(check.json.serialized)
        } else {
            write(1, check.table)
        }
        return check.ok ? 0 : 1
    }
}
