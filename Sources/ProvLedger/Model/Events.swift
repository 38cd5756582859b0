import Foundation
import ProvCrypto

extension LedgerError {
    /// How an error message may show an input value: quoted when it cannot carry a customer identifier (1–64 of
    /// `A-Z a-z 0-9 : . _ -`, so no `@` or `+`, and no run of 6 or more digits), otherwise described by its size
    /// only. Error output ends up in logs, where raw emails, phone numbers and customer ids must never go.
    package static func shown(_ value: some StringProtocol) -> String {
        isShowable(value) ? "'\(value)'" : sized(value)
    }

    /// `a value of 12 bytes`, and where a space or another blank is in it (a common slip that its size alone would
    /// hide): `a value of 13 bytes that ends with a space`.
    static func sized(_ value: some StringProtocol) -> String {
        "a value of \(value.utf8.count) bytes" + (blank(in: value).map { " that \($0)" } ?? "")
    }

    /// Where the first blank of `value` is, said without the value: `starts with a space`, `ends with a tab`,
    /// `holds a space`; nil when there is none. Blanks are the space, the tab, line breaks and the no-break space.
    static func blank(in value: some StringProtocol) -> String? {
        func name(_ c: Character) -> String? {
            switch c {
            case " ": "a space"
            case "\t": "a tab"
            case "\n", "\r", "\r\n": "a line break"
            case "\u{A0}", "\u{202F}": "a no-break space"
            default: nil
            }
        }
        if let c = value.first, let n = name(c) { return "starts with \(n)" }
        if let c = value.last, let n = name(c) { return "ends with \(n)" }
        return value.lazy.compactMap(name).first.map { "holds \($0)" }
    }

    /// ` (it holds a space)` after a rule a value broke, when a blank is why.
    static func blankNote(_ value: some StringProtocol) -> String {
        blank(in: value).map { " (it \($0))" } ?? ""
    }

    /// True when `shown(_:)` quotes `value`. Six digits in a row may be part of a phone or customer number.
    package static func isShowable(_ value: some StringProtocol) -> Bool {
        (1...64).contains(value.utf8.count)
            && value.utf8.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a)
                    || ":._-".utf8.contains($0)
            }
            && !mayHoldIdentifier(value, digits: 6)
    }

    /// `shown(_:)` for a value that should be a vocabulary code: quoted only when it has the form of one (lower
    /// case, starting with a letter), so that a name, an e-mail address or a phone number put where a code
    /// belongs is described by its size only.
    static func shownCode(_ value: some StringProtocol) -> String {
        Vocabulary.isCode(String(value)) ? shown(value) : sized(value)
    }

    /// Whether `value` could carry an e-mail address or a phone number: an `@`, a `+`, or `digits` digits in a row.
    static func mayHoldIdentifier(_ value: some StringProtocol, digits limit: Int) -> Bool {
        var run = 0
        for b in value.utf8 {
            if b == UInt8(ascii: "@") || b == UInt8(ascii: "+") { return true }
            run = b >= 0x30 && b <= 0x39 ? run + 1 : 0
            if run >= limit { return true }
        }
        return false
    }
}

/// Turns identifiers into subject refs. The raw identifier is normalised, MACed with the consortium linking key,
/// and dropped: only the ref goes further (Specs/events.md §Subjects).
public enum SubjectRef {
    /// Normalises a raw identifier with a scheme (`email:`, `phone:`, `cust:<org>:<id>`, `device:`); nil with a
    /// reason on failure.
    public static func normalise(_ raw: String, consortium: Consortium) -> Result<String, LedgerError> {
        func bad(_ why: String) -> Result<String, LedgerError> { .failure(LedgerError(.invalidEvent, why)) }
        guard raw.utf8.count <= 256 else { return bad("identifier longer than 256 bytes") }
        guard let colon = raw.firstIndex(of: ":") else {
            return bad(
                "identifier needs a scheme: email:, phone:, cust:<org>:, device: or ref:" + LedgerError.blankNote(raw))
        }
        let scheme = raw[..<colon]
        let value = raw[raw.index(after: colon)...]
        switch scheme {
        case "email":
            // Byte by byte: ASCII letters lower-cased, one '@', a dot inside the domain, no spaces or controls.
            var out = Array("email:".utf8)
            out.reserveCapacity(6 + value.utf8.count)
            var at = -1
            for b in value.utf8 {
                guard b > 0x20 && b != 0x7f else {
                    return bad(
                        "'email:' needs one address like alice@example.com"
                            + (b == 0x20 || b == 0x09 ? LedgerError.blankNote(value) : ""))
                }
                if b == UInt8(ascii: "@") {
                    guard at < 0 else { return bad("'email:' needs one address like alice@example.com") }
                    at = out.count
                }
                out.append(b >= 0x41 && b <= 0x5a ? b | 0x20 : b)
            }
            let domain = at < 0 ? [] : out[(at + 1)...]
            guard at > 6, domain.contains(UInt8(ascii: ".")), domain.first != UInt8(ascii: "."),
                domain.last != UInt8(ascii: ".")
            else { return bad("'email:' needs one address like alice@example.com") }
            // Non-ASCII is kept as given, apart from the lower-casing Swift does for it.
            let text = String(decoding: out, as: UTF8.self)
            return .success(value.utf8.allSatisfy { $0 < 0x80 } ? text : "email:" + value.lowercased())
        case "phone":
            var out = Array("phone:".utf8)
            for b in value.utf8 where !" -().".utf8.contains(b) { out.append(b) }
            let digits = out[6...]
            guard digits.first == UInt8(ascii: "+"), (8...16).contains(digits.count),
                digits.dropFirst().allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), digits.dropFirst().first != 0x30
            else { return bad("'phone:' needs an E.164 number like +441632960001") }
            return .success(String(decoding: out, as: UTF8.self))
        case "cust":
            let parts = value.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { return bad("'cust:' needs cust:<org>:<id>") }
            guard consortium.member(parts[0]) != nil else {
                // The org part is quoted only when it has the form of an org id: it may be a mistyped identifier.
                guard Vocabulary.isOrgID(String(parts[0])), LedgerError.isShowable(parts[0]) else {
                    return bad("'cust:' names an org that is not a consortium member")
                }
                return bad("'cust:' names org '\(parts[0])', which is not a consortium member")
            }
            guard (1...64).contains(parts[1].utf8.count),
                parts[1].utf8.allSatisfy({
                    ($0 >= 0x41 && $0 <= 0x5a) || Vocabulary.isLowerAlnum($0) || "._-".utf8.contains($0)
                })
            else { return bad("'cust:' id must be 1-64 of A-Z a-z 0-9 . _ -" + LedgerError.blankNote(parts[1])) }
            return .success("cust:\(parts[0]):\(parts[1])")
        case "device":
            let v = value.lowercased()
            guard (1...128).contains(v.utf8.count),
                v.utf8.allSatisfy({ Vocabulary.isLowerAlnum($0) || ":._-".utf8.contains($0) })
            else { return bad("'device:' id must be 1-128 of a-z 0-9 : . _ -" + LedgerError.blankNote(value)) }
            return .success("device:\(v)")
        default:
            // The scheme is quoted only when it looks like one (1-16 lower-case letters): anything before the first
            // ':' may be part of an identifier.
            guard (1...16).contains(scheme.utf8.count), scheme.utf8.allSatisfy({ $0 >= 0x61 && $0 <= 0x7a }) else {
                return bad(
                    "unknown identifier scheme (email, phone, cust, device, ref)" + LedgerError.blankNote(scheme))
            }
            return bad("unknown identifier scheme '\(scheme):' (email, phone, cust, device, ref)")
        }
    }

    /// The text form of a ref: `ref:` and the base64url of its 32 bytes, unpadded.
    public static func text(_ ref: SHA256Digest) -> String {
        ref.withUnsafeBytes { "ref:" + Base64URL.encode($0) }
    }

    /// Parses `ref:<base64url>`.
    public static func parse(_ text: String) -> SHA256Digest? {
        guard text.hasPrefix("ref:") else { return nil }
        let b = text.dropFirst(4)
        // The last character carries two unused bits: only the form `text(_:)` writes names the ref.
        guard b.utf8.count == 43, let bytes = Base64URL.decodeCanonical(b) else { return nil }
        return SHA256Digest(bytes: bytes)
    }
}

/// What the event parser needs to know about existing entries: for `consentRef` and `derivedFrom`.
public struct ReferencedEntry: Sendable {
    public var leaf: SHA256Digest
    public var kind: EntryKind
    public var subjects: [SHA256Digest]

    public init(leaf: SHA256Digest, kind: EntryKind, subjects: [SHA256Digest]) {
        self.leaf = leaf
        self.kind = kind
        self.subjects = subjects
    }
}

/// Parses and validates JSON input events (Specs/events.md) into entry bodies. Nothing is written here: the
/// caller appends only when every event of a batch parsed.
public struct EventParser {
    public let consortium: Consortium
    public let org: String
    let linkKey: LinkKey
    /// Looks up an existing entry by org and seq, in this node's logs or earlier in the same batch.
    public var resolve: (String, UInt64) -> ReferencedEntry?

    public init(
        consortium: Consortium, org: String, linkKey: LinkKey,
        resolve: @escaping (String, UInt64) -> ReferencedEntry? = { _, _ in nil }
    ) {
        self.consortium = consortium
        self.org = org
        self.linkKey = linkKey
        self.resolve = resolve
    }

    /// The event types: the entry kinds an input event may have, all but `heads` (Specs/events.md).
    static let types = EntryKind.allCases.filter { $0 != .heads }

    static func isAllowed(_ key: String, _ mask: UInt64) -> Bool {
        var k = key
        return k.withUTF8 { raw in
            guard raw.count < 16 else { return false }
            let (hi, lo) = FieldKey.pack(UnsafeRawBufferPointer(raw))
            guard let f = FieldKey.lookup(count: raw.count, hi: hi, lo: lo) else { return false }
            return mask & f.bit != 0
        }
    }

    /// Parses one JSON object into a validated body. Errors name the field.
    public func parse(_ event: JSONValue) throws(LedgerError) -> EntryBody {
        guard let fields = event.objectValue else {
            throw LedgerError(.invalidEvent, "an event must be a JSON object, got \(event.typeName)")
        }
        guard let type = event["type"]?.stringValue else { throw bad("type", "missing or not a string") }
        guard let kind = EntryKind(rawValue: type), kind != .heads else {
            throw bad(
                "type",
                "\(LedgerError.shown(type)) is not one of \(Self.types.map(\.rawValue).joined(separator: ", "))")
        }
        // The input fields of an event: the body keys of its kind, and `type`.
        let allowed = kind.bodyKeys | FieldKey.type.bit
        for f in fields where !Self.isAllowed(f.key, allowed) {
            throw unknownField(in: nil, f.key, "for a \(type) event")
        }
        let body: EntryBody
        switch kind {
        case .consent:
            body = .consent(
                ConsentBody(
                    subject: try subject(event, "subject"), event: try string(event, "event"),
                    purposes: try codeList(event, "purposes", known: Vocabulary.purposes, what: "DPV purpose"),
                    controllers: try orgList(event, "controllers", default: [org]),
                    recipients: try orgList(event, "recipients", default: []), channel: try string(event, "channel"),
                    method: try string(event, "method"), legalBasis: try string(event, "legalBasis"),
                    notice: try notice(event), occurredAt: try time(event, "occurredAt"),
                    expiresAt: event["expiresAt"] == nil ? nil : try time(event, "expiresAt"),
                    evidence: try optionalDigest(event, "evidence")))
        case .interaction:
            let s = try subject(event, "subject")
            var consentRef: EntryRef?
            if event["consentRef"] != nil {
                let (ref, target) = try reference(event["consentRef"]!, "consentRef")
                guard target.kind == .consent else {
                    throw bad("consentRef", "\(ref) is \(target.kind.withArticle) entry, not a consent entry")
                }
                consentRef = ref
            }
            body = .interaction(
                InteractionBody(
                    subject: s, channel: try string(event, "channel"),
                    interaction: try interaction(event),
                    purposes: try codeList(event, "purposes", known: Vocabulary.purposes, what: "DPV purpose"),
                    legalBasis: try string(event, "legalBasis"),
                    agent: try agent(event), occurredAt: try time(event, "occurredAt"), consentRef: consentRef,
                    derivedFrom: try references(event, "derivedFrom"), detail: try optionalDigest(event, "detail")))
        case .share:
            let recipient = try string(event, "recipient")
            try member(recipient, "recipient")
            guard recipient != org else {
                throw bad("recipient", "'\(org)' is the appending org: a share records data passed to another member")
            }
            body = .share(
                ShareBody(
                    subject: try subject(event, "subject"), recipient: recipient,
                    purposes: try codeList(event, "purposes", known: Vocabulary.purposes, what: "DPV purpose"),
                    dataCategories: try codeList(
                        event, "dataCategories", known: Vocabulary.dataCategories, what: "DPV data category"),
                    occurredAt: try time(event, "occurredAt"), derivedFrom: try references(event, "derivedFrom")))
        case .heads:
            preconditionFailure("not an event type: refused above")
        case .link, .unlink:
            guard let list = event["subjects"]?.arrayValue, list.count == 2 else {
                throw bad("subjects", "must be an array of exactly two identifiers")
            }
            var refs = [try subjectValue(list[0], "subjects[0]"), try subjectValue(list[1], "subjects[1]")]
            guard refs[0] != refs[1] else { throw bad("subjects", "both identifiers are the same subject") }
            refs.sort()
            let b = LinkBody(
                subjects: refs, evidence: try optionalDigest(event, "evidence"),
                occurredAt: try time(event, "occurredAt"))
            body = kind == .link ? .link(b) : .unlink(b)
        }
        do { try body.validate() } catch {
            // The entry's body fields carry the input's field names: say "field 'x'" as the parser does.
            var m = Substring(error.message)
            if m.hasPrefix("body."), let colon = m.range(of: ": ") {
                m = "field '\(m[m.index(m.startIndex, offsetBy: 5)..<colon.lowerBound])': \(m[colon.upperBound...])"
            }
            throw LedgerError(.invalidEvent, String(m))
        }
        return body
    }

    func bad(_ field: String, _ reason: String) -> LedgerError {
        LedgerError(.invalidEvent, "field '\(field)': \(reason)")
    }

    /// A code that must be in one list of the consortium's vocabulary (Specs/format.md §9.1): nothing free-form
    /// reaches the ledger. The message lists the declared codes, which are public.
    func vocabularyCode(
        _ value: String, _ name: String, _ known: Bool, _ declared: @autoclosure () -> [String], what: String
    ) throws(LedgerError) -> String {
        guard known else {
            let declared = declared()
            let list = declared.isEmpty ? "it declares none" : "it declares " + declared.joined(separator: ", ")
            throw bad(name, "\(LedgerError.shownCode(value)) is not \(what) of the consortium's vocabulary (\(list))")
        }
        return value
    }

    /// An input value as an error message may show it (`LedgerError.shown`).
    func shown(_ value: some StringProtocol) -> String { LedgerError.shown(value) }

    /// A field name the input should not have: named when it is showable (a key may be anything, an email too).
    func unknownField(in parent: String?, _ key: String, _ context: String = "") -> LedgerError {
        let suffix = context.isEmpty ? "" : " " + context
        guard LedgerError.isShowable(key) else {
            let what = "unknown field with a name of \(key.utf8.count) bytes\(suffix)"
            return parent.map { bad($0, what) } ?? LedgerError(.invalidEvent, "an event has an \(what)")
        }
        return bad(parent.map { "\($0).\(key)" } ?? key, "unknown field\(suffix)")
    }

    func string(_ e: JSONValue, _ name: String) throws(LedgerError) -> String {
        guard let v = e[name] else { throw bad(name, "missing") }
        guard let s = v.stringValue else { throw bad(name, "must be a string, got \(v.typeName)") }
        guard s.utf8.count <= 128 else { throw bad(name, "longer than 128 bytes") }
        return s
    }

    func time(_ e: JSONValue, _ name: String) throws(LedgerError) -> UInt64 {
        let s = try string(e, name)
        guard let t = Timestamp.parse(s) else {
            throw bad(name, "\(shown(s)) is not an RFC 3339 time like 2026-11-24T10:00:00Z (at most milliseconds)")
        }
        return t
    }

    func digest(_ v: JSONValue?, _ name: String) throws(LedgerError) -> SHA256Digest {
        guard let s = v?.stringValue else { throw bad(name, "must be a string of 64 hex digits") }
        guard let d = SHA256Digest(hex: s) else { throw bad(name, "\(shown(s)) is not 64 hex digits") }
        return d
    }

    func optionalDigest(_ e: JSONValue, _ name: String) throws(LedgerError) -> SHA256Digest? {
        e[name] == nil ? nil : try digest(e[name], name)
    }

    func subject(_ e: JSONValue, _ name: String) throws(LedgerError) -> SHA256Digest {
        guard let v = e[name] else { throw bad(name, "missing") }
        return try subjectValue(v, name)
    }

    func subjectValue(_ v: JSONValue, _ name: String) throws(LedgerError) -> SHA256Digest {
        guard let raw = v.stringValue else { throw bad(name, "must be a string, got \(v.typeName)") }
        if raw.hasPrefix("ref:") {
            guard let r = SubjectRef.parse(raw) else {
                throw bad(name, "'ref:' must be followed by 43 base64url characters")
            }
            return r
        }
        switch SubjectRef.normalise(raw, consortium: consortium) {
        case .success(let n): return linkKey.ref(for: n)
        // The message never repeats the raw identifier: error output ends up in logs.
        case .failure(let e): throw bad(name, e.message)
        }
    }

    func member(_ o: String, _ name: String) throws(LedgerError) {
        guard consortium.member(o) != nil else { throw bad(name, "\(shown(o)) is not a consortium member") }
    }

    /// A list of codes, checked in the order given (so an error names the input's index), returned sorted.
    func codeList(
        _ e: JSONValue, _ name: String, known: Set<String>? = nil, what: String = "", orgs: Bool = false
    ) throws(LedgerError) -> [String] {
        guard let v = e[name] else { throw bad(name, "missing") }
        guard let list = v.arrayValue else { throw bad(name, "must be an array of strings, got \(v.typeName)") }
        guard list.count <= 32 else { throw bad(name, "more than 32 items") }
        var out: [String] = []
        for (i, item) in list.enumerated() {
            guard let s = item.stringValue, s.utf8.count <= 128 else {
                throw bad("\(name)[\(i)]", "must be a string of at most 128 bytes")
            }
            if let known, !known.contains(s) {
                throw bad("\(name)[\(i)]", "\(shown(s)) is not a known \(what)" + Vocabulary.listing(known))
            }
            if orgs { try member(s, "\(name)[\(i)]") }
            out.append(s)
        }
        out.sort()
        for i in out.indices.dropFirst() where out[i] == out[i - 1] { throw bad(name, "lists \(shown(out[i])) twice") }
        return out
    }

    func orgList(_ e: JSONValue, _ name: String, default def: [String]) throws(LedgerError) -> [String] {
        guard e[name] != nil else { return def }
        return try codeList(e, name, orgs: true)
    }

    func interaction(_ e: JSONValue) throws(LedgerError) -> String {
        let v = try string(e, "interaction")
        return try vocabularyCode(
            v, "interaction", consortium.vocabulary.isInteraction(v), consortium.vocabulary.interactions,
            what: "an interaction type")
    }

    func notice(_ e: JSONValue) throws(LedgerError) -> Notice? {
        guard let v = e["notice"] else { return nil }
        guard let fields = v.objectValue else { throw bad("notice", "must be an object {id, version, sha256}") }
        for f in fields where !["id", "version", "sha256"].contains(f.key) {
            throw unknownField(in: "notice", f.key)
        }
        guard let id = v["id"]?.stringValue, let version = v["version"]?.stringValue else {
            throw bad("notice", "needs string fields id and version")
        }
        _ = try vocabularyCode(
            id, "notice.id", consortium.vocabulary.isNotice(id), consortium.vocabulary.notices, what: "a notice")
        guard Vocabulary.isNoticeVersion(version) else {
            throw bad(
                "notice.version",
                "\(LedgerError.sized(version)) is not a version: 1-4 groups of 1-4 digits separated by "
                    + "dots, such as 7 or 2.1")
        }
        return Notice(id: id, version: version, sha256: try digest(v["sha256"], "notice.sha256"))
    }

    func agent(_ e: JSONValue) throws(LedgerError) -> Agent {
        guard let v = e["agent"], let fields = v.objectValue else {
            throw bad("agent", "missing or not an object {id, kind, onBehalfOf}")
        }
        for f in fields where !["id", "kind", "onBehalfOf"].contains(f.key) {
            throw unknownField(in: "agent", f.key)
        }
        guard let raw = v["id"]?.stringValue else { throw bad("agent.id", "missing or not a string") }
        guard let kind = v["kind"]?.stringValue else { throw bad("agent.kind", "missing or not a string") }
        guard Vocabulary.agentKinds.contains(kind) else {
            throw bad(
                "agent.kind", "\(shown(kind)) is not a known agent kind" + Vocabulary.listing(Vocabulary.agentKinds))
        }
        let id: Agent.ID
        if kind == "person" {
            // A person is personal data like a customer: the employee id is pseudonymised, scoped to the org
            // that records the act, and dropped (Specs/events.md §4.1).
            if raw.hasPrefix("ref:") {
                guard let r = SubjectRef.parse(raw) else {
                    throw bad("agent.id", "'ref:' must be followed by 43 base64url characters")
                }
                id = .ref(r)
            } else {
                guard Vocabulary.isEmployeeID(raw) else {
                    throw bad(
                        "agent.id",
                        "a person is given by their employee id, 1-64 of A-Z a-z 0-9 . _ - (stored as a keyed "
                            + "pseudonym, never as given), or by a ref:" + LedgerError.blankNote(raw))
                }
                id = .ref(linkKey.agentRef(org: org, employeeID: raw))
            }
        } else {
            id = .name(
                try vocabularyCode(
                    raw, "agent.id", consortium.vocabulary.isAgent(raw, kind: kind),
                    consortium.vocabulary.agents(kind: kind), what: "a \(kind) agent"))
        }
        var onBehalfOf: String?
        if let o = v["onBehalfOf"] {
            guard let s = o.stringValue else { throw bad("agent.onBehalfOf", "must be a string") }
            try member(s, "agent.onBehalfOf")
            onBehalfOf = s
        }
        return Agent(id: id, kind: kind, onBehalfOf: onBehalfOf)
    }

    func reference(_ v: JSONValue, _ name: String) throws(LedgerError) -> (EntryRef, ReferencedEntry) {
        guard let fields = v.objectValue else { throw bad(name, "must be an object {org, seq}") }
        for f in fields where !["org", "seq"].contains(f.key) { throw unknownField(in: name, f.key) }
        guard let o = v["org"]?.stringValue else { throw bad("\(name).org", "missing or not a string") }
        try member(o, "\(name).org")
        guard let seq = v["seq"]?.int64Value, seq >= 0 else {
            throw bad("\(name).seq", "missing or not a non-negative integer")
        }
        guard let target = resolve(o, UInt64(seq)) else {
            throw bad(name, "no entry \(o)/\(seq) on this node (the log is absent or shorter)")
        }
        return (EntryRef(org: o, seq: UInt64(seq), leaf: target.leaf), target)
    }

    func references(_ e: JSONValue, _ name: String) throws(LedgerError) -> [EntryRef] {
        guard let v = e[name] else { return [] }
        guard let list = v.arrayValue, !list.isEmpty, list.count <= 64 else {
            throw bad(name, "must be an array of 1-64 {org, seq} objects")
        }
        var out: [EntryRef] = []
        for (i, item) in list.enumerated() { out.append(try reference(item, "\(name)[\(i)]").0) }
        return out
    }
}

extension EntryBody {
    /// Checks the body rules of Specs/format.md §4 on a body built from an input event, before it becomes an
    /// entry: known codes (the message lists the table's codes), sorted unique lists, sizes. Membership of org ids
    /// is checked against the consortium by the caller. Stored entries are checked by `EntryRules` on their bytes.
    public func validate() throws(LedgerError) {
        func f(_ name: String, _ reason: String) -> LedgerError { EntryRules.field("body.\(name)", reason) }
        func codes(_ list: [String], _ name: String, in set: Set<String>, what: String) throws(LedgerError) {
            guard !list.isEmpty else { throw f(name, "must not be empty") }
            guard list.count <= 32 else { throw f(name, "more than 32 items") }
            for (i, c) in list.enumerated() {
                guard set.contains(c) else {
                    throw f("\(name)[\(i)]", "\(LedgerError.shown(c)) is not a known \(what)" + Vocabulary.listing(set))
                }
                if i > 0 && list[i - 1] >= c { throw f(name, "must be unique and in ascending order") }
            }
        }
        func orgs(_ list: [String], _ name: String, allowEmpty: Bool) throws(LedgerError) {
            guard allowEmpty || !list.isEmpty else { throw f(name, "must not be empty") }
            guard list.count <= 32 else { throw f(name, "more than 32 items") }
            for (i, c) in list.enumerated() {
                guard Vocabulary.isOrgID(c) else {
                    throw f("\(name)[\(i)]", "\(LedgerError.shown(c)) is not an org id")
                }
                if i > 0 && list[i - 1] >= c { throw f(name, "must be unique and in ascending order") }
            }
        }
        func time(_ t: UInt64, _ name: String) throws(LedgerError) {
            guard t < Timestamp.end else { throw f(name, "\(t) ms is not before the year 10000") }
        }
        func one(_ value: String, _ name: String, in set: Set<String>, what: String) throws(LedgerError) {
            guard set.contains(value) else {
                throw f(name, "\(LedgerError.shown(value)) is not a known \(what)" + Vocabulary.listing(set))
            }
        }
        switch self {
        case .consent(let b):
            try one(b.event, "event", in: Vocabulary.consentEvents, what: "consent event")
            try codes(b.purposes, "purposes", in: Vocabulary.purposes, what: "DPV purpose")
            try orgs(b.controllers, "controllers", allowEmpty: false)
            try orgs(b.recipients, "recipients", allowEmpty: true)
            try one(b.channel, "channel", in: Vocabulary.channels, what: "channel")
            try one(b.method, "method", in: Vocabulary.collectionMethods, what: "collection method")
            try one(b.legalBasis, "legalBasis", in: Vocabulary.legalBases, what: "DPV legal basis")
            if let n = b.notice {
                guard Vocabulary.isCode(n.id) else {
                    throw f("notice.id", "\(LedgerError.shownCode(n.id)) is not a code (1-64 of a-z 0-9 . _ -)")
                }
                guard Vocabulary.isNoticeVersion(n.version) else {
                    throw f(
                        "notice.version",
                        "a value of \(n.version.utf8.count) bytes is not a version: 1-4 groups of 1-4 digits separated "
                            + "by dots, such as 7 or 2.1")
                }
            }
            try time(b.occurredAt, "occurredAt")
            if let x = b.expiresAt {
                try time(x, "expiresAt")
                if x <= b.occurredAt { throw f("expiresAt", "must be after occurredAt") }
            }
        case .interaction(let b):
            try one(b.channel, "channel", in: Vocabulary.channels, what: "channel")
            guard Vocabulary.isCode(b.interaction) else {
                throw f("interaction", "\(LedgerError.shownCode(b.interaction)) is not a code (1-64 of a-z 0-9 . _ -)")
            }
            try codes(b.purposes, "purposes", in: Vocabulary.purposes, what: "DPV purpose")
            try one(b.legalBasis, "legalBasis", in: Vocabulary.legalBases, what: "DPV legal basis")
            try one(b.agent.kind, "agent.kind", in: Vocabulary.agentKinds, what: "agent kind")
            switch (b.agent.id, b.agent.kind) {
            case (.ref, "person"): break
            case (.ref, _): throw f("agent.id", "a \(b.agent.kind) agent is named by a code, not a ref")
            case (.name, "person"):
                throw f("agent.id", "a person agent is a 32-byte ref (a keyed pseudonym), never a name")
            case (.name(let n), _):
                guard Vocabulary.isCode(n) else {
                    throw f("agent.id", "\(LedgerError.shownCode(n)) is not a code (1-64 of a-z 0-9 . _ -)")
                }
            }
            if let o = b.agent.onBehalfOf, !Vocabulary.isOrgID(o) {
                throw f("agent.onBehalfOf", "\(LedgerError.shown(o)) is not an org id")
            }
            if b.legalBasis == "dpv:Consent" && b.consentRef == nil {
                throw f("consentRef", "required when legalBasis is dpv:Consent")
            }
            try time(b.occurredAt, "occurredAt")
            guard b.derivedFrom.count <= 64 else { throw f("derivedFrom", "more than 64 references") }
        case .share(let b):
            guard Vocabulary.isOrgID(b.recipient) else {
                throw f("recipient", "\(LedgerError.shown(b.recipient)) is not an org id")
            }
            try codes(b.purposes, "purposes", in: Vocabulary.purposes, what: "DPV purpose")
            try codes(b.dataCategories, "dataCategories", in: Vocabulary.dataCategories, what: "DPV data category")
            guard b.derivedFrom.count <= 64 else { throw f("derivedFrom", "more than 64 references") }
            try time(b.occurredAt, "occurredAt")
        case .link(let b), .unlink(let b):
            guard b.subjects.count == 2, b.subjects[0] < b.subjects[1] else {
                throw f("subjects", "must be two different refs in ascending byte order")
            }
            if case .link = self, b.evidence == nil { throw f("evidence", "required for a link") }
            try time(b.occurredAt, "occurredAt")
        case .heads(let b):
            try time(b.occurredAt, "occurredAt")
        }
    }
}
