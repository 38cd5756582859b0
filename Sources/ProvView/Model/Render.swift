import ProvCrypto
import ProvLedger

/// Helpers shared by the JSON and table renderings of every query result.
enum Render {
    static func time(_ ms: UInt64) -> String { Timestamp.format(ms) }

    static func hlc(_ h: HLC) -> String { "\(h.wall).\(h.counter)" }

    static func ref(_ r: EntryRef) -> JSONValue {
        .object([
            JSONMember("org", .string(r.org)), JSONMember("seq", .number(String(r.seq))),
            JSONMember("leaf", .string(r.leaf.hex)),
        ])
    }

    static func number(_ v: some BinaryInteger) -> JSONValue { .number(String(v)) }

    static func strings(_ l: [String]) -> JSONValue { .array(l.map { .string($0) }) }

    static func optional<T>(_ v: T?, _ f: (T) -> JSONValue) -> JSONValue { v.map(f) ?? .null }

    /// A signed duration in ms as text: `+1.250 s`, `-3 ms`.
    static func duration(_ ms: Int64) -> String {
        let sign = ms < 0 ? "-" : "+"
        let a = ms.magnitude
        if a < 1000 { return "\(sign)\(a) ms" }
        if a < 120_000 { return "\(sign)\(a / 1000).\(String(1000 + a % 1000).dropFirst()) s" }
        if a < 7_200_000 { return "\(sign)\(a / 60_000) min" }
        if a < 172_800_000 { return "\(sign)\(a / 3_600_000) h" }
        return "\(sign)\(a / 86_400_000) d"
    }

    /// A plain-text table: a header row, a rule, then the rows, columns padded to their widest cell.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            var s = ""
            for (i, c) in cells.enumerated() {
                s += c
                if i < cells.count - 1 { s += String(repeating: " ", count: widths[i] - c.count + 2) }
            }
            return s
        }
        var out = line(header) + "\n" + line(widths.map { String(repeating: "-", count: $0) }) + "\n"
        for r in rows { out += line(r) + "\n" }
        return out
    }

    static func refText(_ r: EntryRef) -> String { "\(r.org)/\(r.seq)" }

    /// The consortium as a page carries it: its name, and each member with the key that signed the page's
    /// checkpoint of its log (format.md §9.6: a page made before a rotation keeps the key it was signed with).
    static func consortium(_ c: Consortium, keysFor checkpoints: [SignedCheckpoint]) -> JSONValue {
        .object([
            JSONMember("name", .string(c.name)),
            JSONMember(
                "members",
                .array(
                    c.members.map {
                        .object([
                            JSONMember("org", .string($0.org)), JSONMember("name", .string($0.name)),
                            JSONMember("verifierKey", .string(c.shownKey($0, for: checkpoints).description)),
                        ])
                    })),
        ])
    }
}

/// One log of a frontier: its size and root hash, from a checkpoint its org signed.
public struct LogHead: Sendable, Equatable {
    public var org: String
    public var size: UInt64
    public var root: SHA256Digest

    public init(org: String, size: UInt64, root: SHA256Digest) {
        self.org = org
        self.size = size
        self.root = root
    }
}

/// The state of the logs a view was computed at: every log with a committed checkpoint, ascending by org id.
public struct Frontier: Sendable, Equatable {
    public var logs: [LogHead]

    public init(logs: [LogHead]) { self.logs = logs }

    public var json: JSONValue {
        .array(
            logs.map {
                .object([
                    JSONMember("org", .string($0.org)), JSONMember("size", Render.number($0.size)),
                    JSONMember("root", .string($0.root.base64)), JSONMember("rootHex", .string($0.root.hex)),
                ])
            })
    }

    public var table: String {
        Render.table(["LOG", "SIZE", "ROOT"], logs.map { [$0.org, String($0.size), $0.root.base64] })
    }
}

/// What the index holds, for monitoring and the benchmark.
public struct IndexStatistics: Sendable, Equatable {
    /// Entries ingested, committed or not.
    public var entries: Int
    /// Entries covered by committed checkpoints: what queries see.
    public var committedEntries: UInt64
    public var subjects: Int
    /// Bytes reserved by the index's tables (not counting the allocator's own overhead).
    public var reservedBytes: Int
}

extension EntryFacts {
    /// The entry's fields as JSON (Specs/view.md §9.1); `company` is the org's name in the descriptor.
    func json(company: String) -> [JSONMember] {
        var m: [JSONMember] = [
            JSONMember("ref", Render.ref(ref)), JSONMember("kind", .string(kind.rawValue)),
            JSONMember("org", .string(org)), JSONMember("company", .string(company)),
            JSONMember("hlc", .string(Render.hlc(hlc))), JSONMember("recordedAt", .string(Render.time(hlc.wall))),
            JSONMember("occurredAt", .string(Render.time(occurredAt))),
            JSONMember("skewMs", Render.number(skewMs)),
            JSONMember("subjects", .array(subjects.map { .string(SubjectRef.text($0)) })),
        ]
        if let channel { m.append(JSONMember("channel", .string(channel))) }
        if !purposes.isEmpty { m.append(JSONMember("purposes", Render.strings(purposes))) }
        if let legalBasis { m.append(JSONMember("legalBasis", .string(legalBasis))) }
        if let event { m.append(JSONMember("event", .string(event))) }
        if let method { m.append(JSONMember("method", .string(method))) }
        if !controllers.isEmpty { m.append(JSONMember("controllers", Render.strings(controllers))) }
        if !recipients.isEmpty { m.append(JSONMember("recipients", Render.strings(recipients))) }
        if let expiresAt { m.append(JSONMember("expiresAt", .string(Render.time(expiresAt)))) }
        if let notice {
            m.append(
                JSONMember(
                    "notice",
                    .object([JSONMember("id", .string(notice.id)), JSONMember("version", .string(notice.version))])
                ))
        }
        if let interaction { m.append(JSONMember("interaction", .string(interaction))) }
        if let agent {
            var a = [JSONMember("id", .string(agent.id)), JSONMember("kind", .string(agent.kind))]
            if let o = agent.onBehalfOf { a.append(JSONMember("onBehalfOf", .string(o))) }
            m.append(JSONMember("agent", .object(a)))
        }
        if let consentRef { m.append(JSONMember("consentRef", Render.ref(consentRef))) }
        if !derivedFrom.isEmpty { m.append(JSONMember("derivedFrom", .array(derivedFrom.map(Render.ref)))) }
        if let recipient { m.append(JSONMember("recipient", .string(recipient))) }
        if !dataCategories.isEmpty { m.append(JSONMember("dataCategories", Render.strings(dataCategories))) }
        return m
    }

    /// One line saying what the entry records, for tables and the report.
    var summary: String {
        switch kind {
        case .consent:
            var s =
                "consent \(event ?? "?") for \(purposes.joined(separator: ", ")) (controller \(controllers.joined(separator: ", "))"
            if !recipients.isEmpty { s += "; recipients \(recipients.joined(separator: ", "))" }
            if let expiresAt { s += "; expires \(Render.time(expiresAt))" }
            return s + ")"
        case .interaction:
            var s = "\(interaction ?? "interaction") for \(purposes.joined(separator: ", ")) on \(legalBasis ?? "?")"
            if let agent {
                s += " by \(agent.kind) \(agent.id)"
                if let o = agent.onBehalfOf { s += " for \(o)" }
            }
            if let consentRef { s += ", relying on \(Render.refText(consentRef))" }
            return s
        case .share:
            return
                "shared \(dataCategories.joined(separator: ", ")) with \(recipient ?? "?") for \(purposes.joined(separator: ", "))"
        case .link, .unlink:
            return
                "\(kind == .link ? "linked" : "unlinked") \(subjects.map(SubjectRef.text).joined(separator: " and "))"
        case .heads:
            return "cited the heads of other logs it had verified"
        }
    }
}
