import Foundation
import ProvCrypto

/// Strict decoding of entry bytes: deterministic CBOR (the reader rejects every non-canonical form), exactly the
/// keys of format version 1, and bodies that pass `EntryBody.validate`. Accepting only one byte form per entry is
/// what makes the leaf hash a fingerprint of its meaning.
extension Entry {
    public static func decode(_ bytes: [UInt8]) throws(LedgerError) -> Entry {
        try withRawBytes(bytes) { raw throws(LedgerError) in try decode(raw) }
    }

    public static func decode(_ raw: UnsafeRawBufferPointer) throws(LedgerError) -> Entry {
        guard raw.count <= maxSize else {
            throw LedgerError(.invalidEntry, "entry is \(raw.count) bytes, over \(maxSize)")
        }
        var r = CBORReader(raw, maxDepth: 8)
        do {
            let e = try decodeEntry(&r)
            try r.expectEnd()
            return e
        } catch let e as CBORError {
            throw LedgerError(.invalidEntry, "not canonical CBOR: \(e)")
        } catch let e as LedgerError {
            throw e
        } catch {
            throw LedgerError(.invalidEntry, "\(error)")
        }
    }

    private static func decodeEntry(_ r: inout CBORReader) throws -> Entry {
        let n = try r.readMapHeader()
        var keys = KeyOrder()
        var version: UInt64?
        var hlc: HLC?
        var log: String?
        var seq: UInt64?
        var bodyRange: Range<Int>?
        var deps: [EntryRef]?
        var kind: String?
        var prev: SHA256Digest?
        for _ in 0..<n {
            let key = try keys.next(&r, in: "entry")
            switch key {
            case "v": version = try r.readUnsigned()
            case "hlc":
                guard try r.readArrayHeader() == 2 else { throw field("hlc", "must be [wall-ms, counter]") }
                hlc = HLC(wall: try r.readUnsigned(), counter: try r.readUnsigned())
            case "log": log = try r.readText()
            case "seq": seq = try r.readUnsigned()
            case "body":
                let start = r.offset
                try r.skipValue()
                bodyRange = start..<r.offset
            case "deps": deps = try readRefs(&r, "deps")
            case "kind": kind = try r.readText()
            case "prev": prev = try readDigest(&r, "prev")
            default: throw field(key, "unknown key in entry")
            }
        }
        guard let version else { throw field("v", "missing") }
        guard version == formatVersion else { throw field("v", "format version \(version) is not supported (1 is)") }
        guard let hlc, let log, let seq, let bodyRange, let deps, let kind, let prev else {
            let missing = [
                ("hlc", hlc == nil), ("log", log == nil), ("seq", seq == nil), ("body", bodyRange == nil),
                ("deps", deps == nil), ("kind", kind == nil), ("prev", prev == nil),
            ].first { $0.1 }!.0
            throw field(missing, "missing")
        }
        let parts = log.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, Vocabulary.isConsortiumName(String(parts[0])), Vocabulary.isOrgID(String(parts[1]))
        else { throw field("log", "'\(log)' is not <consortium>/<org>") }
        if seq == 0 && prev != .zero { throw field("prev", "entry 0 must have 32 zero bytes as prev") }
        for (i, d) in deps.enumerated() {
            if d.org == parts[1] { throw field("deps[\(i)]", "cites the entry's own log") }
            if i > 0 && deps[i - 1].org >= d.org { throw field("deps", "orgs must be unique and in ascending order") }
        }
        guard deps.count <= 256 else { throw field("deps", "more than 256 heads") }
        var br = CBORReader(UnsafeRawBufferPointer(rebasing: r.buffer[bodyRange]), maxDepth: 6)
        let body = try EntryBody.decode(kind: kind, &br)
        try body.validate()
        return Entry(log: log, seq: seq, prev: prev, hlc: hlc, deps: deps, body: body)
    }

    static func field(_ name: String, _ reason: String) -> LedgerError {
        LedgerError(.invalidEntry, "\(name): \(reason)")
    }

    static func readDigest(_ r: inout CBORReader, _ name: String) throws -> SHA256Digest {
        let b = try r.readBytes()
        guard b.count == 32 else { throw field(name, "must be 32 bytes, got \(b.count)") }
        return SHA256Digest(copying: b.baseAddress!)
    }

    static func readRef(_ r: inout CBORReader, _ name: String) throws -> EntryRef {
        guard try r.readArrayHeader() == 3 else { throw field(name, "must be [org, seq, leafHash]") }
        let org = try r.readText()
        guard Vocabulary.isOrgID(org) else { throw field(name, "'\(org)' is not an org id") }
        return EntryRef(org: org, seq: try r.readUnsigned(), leaf: try readDigest(&r, name))
    }

    static func readRefs(_ r: inout CBORReader, _ name: String) throws -> [EntryRef] {
        let n = try r.readArrayHeader()
        guard n <= 256 else { throw field(name, "more than 256 references") }
        var out: [EntryRef] = []
        out.reserveCapacity(n)
        for i in 0..<n { out.append(try readRef(&r, "\(name)[\(i)]")) }
        return out
    }

    static func readTexts(_ r: inout CBORReader, _ name: String) throws -> [String] {
        let n = try r.readArrayHeader()
        guard n <= 64 else { throw field(name, "more than 64 items") }
        var out: [String] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try r.readText()) }
        return out
    }
}

/// Reads text map keys and checks that they come in deterministic order (RFC 8949 §4.2.1: shorter encodings
/// first, then bytewise), which also rules out duplicates.
struct KeyOrder {
    private var previous: [UInt8] = []

    mutating func next(_ r: inout CBORReader, in map: String) throws -> String {
        let k = try r.readTextBytes()
        let ascending: Bool
        if previous.isEmpty {
            ascending = true
        } else if k.count != previous.count {
            ascending = k.count > previous.count
        } else {
            ascending = previous.withUnsafeBytes { memcmp($0.baseAddress!, k.baseAddress!, k.count) < 0 }
        }
        let key = String(decoding: k, as: UTF8.self)
        guard ascending else {
            throw LedgerError(.invalidEntry, "\(map): key '\(key)' is out of deterministic order or repeated")
        }
        previous = Array(k)
        return key
    }
}

extension EntryBody {
    static func decode(kind: String, _ r: inout CBORReader) throws -> EntryBody {
        let n = try r.readMapHeader()
        var keys = KeyOrder()
        func f(_ name: String, _ reason: String) -> LedgerError { Entry.field("body.\(name)", reason) }
        switch kind {
        case "consent":
            var subject: SHA256Digest?
            var event: String?
            var purposes: [String]?
            var controllers: [String]?
            var recipients: [String] = []
            var channel: String?
            var method: String?
            var basis: String?
            var notice: Notice?
            var at: UInt64?
            var expires: UInt64?
            var evidence: SHA256Digest?
            for _ in 0..<n {
                let key = try keys.next(&r, in: "body")
                switch key {
                case "subject": subject = try Entry.readDigest(&r, "body.subject")
                case "event": event = try r.readText()
                case "purposes": purposes = try Entry.readTexts(&r, "body.purposes")
                case "controllers": controllers = try Entry.readTexts(&r, "body.controllers")
                case "recipients":
                    recipients = try Entry.readTexts(&r, "body.recipients")
                    if recipients.isEmpty { throw f("recipients", "an empty list is omitted, not written") }
                case "channel": channel = try r.readText()
                case "method": method = try r.readText()
                case "legalBasis": basis = try r.readText()
                case "notice":
                    guard try r.readMapHeader() == 3 else { throw f("notice", "must have id, sha256 and version") }
                    var nk = KeyOrder()
                    guard try nk.next(&r, in: "notice") == "id" else { throw f("notice", "first key must be id") }
                    let id = try r.readText()
                    guard try nk.next(&r, in: "notice") == "sha256" else {
                        throw f("notice", "second key must be sha256")
                    }
                    let digest = try Entry.readDigest(&r, "body.notice.sha256")
                    guard try nk.next(&r, in: "notice") == "version" else {
                        throw f("notice", "third key must be version")
                    }
                    notice = Notice(id: id, version: try r.readText(), sha256: digest)
                case "occurredAt": at = try r.readUnsigned()
                case "expiresAt": expires = try r.readUnsigned()
                case "evidence": evidence = try Entry.readDigest(&r, "body.evidence")
                default: throw f(key, "unknown key in a consent body")
                }
            }
            guard let subject else { throw f("subject", "missing") }
            guard let event else { throw f("event", "missing") }
            guard let purposes else { throw f("purposes", "missing") }
            guard let controllers else { throw f("controllers", "missing") }
            guard let channel else { throw f("channel", "missing") }
            guard let method else { throw f("method", "missing") }
            guard let basis else { throw f("legalBasis", "missing") }
            guard let at else { throw f("occurredAt", "missing") }
            return .consent(
                ConsentBody(
                    subject: subject, event: event, purposes: purposes, controllers: controllers,
                    recipients: recipients, channel: channel, method: method, legalBasis: basis, notice: notice,
                    occurredAt: at, expiresAt: expires, evidence: evidence))
        case "interaction":
            var subject: SHA256Digest?
            var channel: String?
            var type: String?
            var purposes: [String]?
            var basis: String?
            var agent: Agent?
            var at: UInt64?
            var consentRef: EntryRef?
            var derived: [EntryRef] = []
            var detail: SHA256Digest?
            for _ in 0..<n {
                let key = try keys.next(&r, in: "body")
                switch key {
                case "subject": subject = try Entry.readDigest(&r, "body.subject")
                case "channel": channel = try r.readText()
                case "interaction": type = try r.readText()
                case "purposes": purposes = try Entry.readTexts(&r, "body.purposes")
                case "legalBasis": basis = try r.readText()
                case "agent":
                    let an = try r.readMapHeader()
                    guard an == 2 || an == 3 else { throw f("agent", "must have id, kind and optionally onBehalfOf") }
                    var ak = KeyOrder()
                    guard try ak.next(&r, in: "agent") == "id" else { throw f("agent", "first key must be id") }
                    let id = try r.readText()
                    guard try ak.next(&r, in: "agent") == "kind" else { throw f("agent", "second key must be kind") }
                    let kind = try r.readText()
                    var onBehalfOf: String?
                    if an == 3 {
                        guard try ak.next(&r, in: "agent") == "onBehalfOf" else {
                            throw f("agent", "third key must be onBehalfOf")
                        }
                        onBehalfOf = try r.readText()
                    }
                    agent = Agent(id: id, kind: kind, onBehalfOf: onBehalfOf)
                case "occurredAt": at = try r.readUnsigned()
                case "consentRef": consentRef = try Entry.readRef(&r, "body.consentRef")
                case "derivedFrom":
                    derived = try Entry.readRefs(&r, "body.derivedFrom")
                    if derived.isEmpty { throw f("derivedFrom", "an empty list is omitted, not written") }
                case "detail": detail = try Entry.readDigest(&r, "body.detail")
                default: throw f(key, "unknown key in an interaction body")
                }
            }
            guard let subject else { throw f("subject", "missing") }
            guard let channel else { throw f("channel", "missing") }
            guard let type else { throw f("interaction", "missing") }
            guard let purposes else { throw f("purposes", "missing") }
            guard let basis else { throw f("legalBasis", "missing") }
            guard let agent else { throw f("agent", "missing") }
            guard let at else { throw f("occurredAt", "missing") }
            return .interaction(
                InteractionBody(
                    subject: subject, channel: channel, interaction: type, purposes: purposes, legalBasis: basis,
                    agent: agent, occurredAt: at, consentRef: consentRef, derivedFrom: derived, detail: detail))
        case "share":
            var subject: SHA256Digest?
            var recipient: String?
            var purposes: [String]?
            var categories: [String]?
            var at: UInt64?
            var derived: [EntryRef] = []
            for _ in 0..<n {
                let key = try keys.next(&r, in: "body")
                switch key {
                case "subject": subject = try Entry.readDigest(&r, "body.subject")
                case "recipient": recipient = try r.readText()
                case "purposes": purposes = try Entry.readTexts(&r, "body.purposes")
                case "dataCategories": categories = try Entry.readTexts(&r, "body.dataCategories")
                case "occurredAt": at = try r.readUnsigned()
                case "derivedFrom":
                    derived = try Entry.readRefs(&r, "body.derivedFrom")
                    if derived.isEmpty { throw f("derivedFrom", "an empty list is omitted, not written") }
                default: throw f(key, "unknown key in a share body")
                }
            }
            guard let subject else { throw f("subject", "missing") }
            guard let recipient else { throw f("recipient", "missing") }
            guard let purposes else { throw f("purposes", "missing") }
            guard let categories else { throw f("dataCategories", "missing") }
            guard let at else { throw f("occurredAt", "missing") }
            return .share(
                ShareBody(
                    subject: subject, recipient: recipient, purposes: purposes, dataCategories: categories,
                    occurredAt: at, derivedFrom: derived))
        case "link", "unlink":
            var subjects: [SHA256Digest]?
            var evidence: SHA256Digest?
            var at: UInt64?
            for _ in 0..<n {
                let key = try keys.next(&r, in: "body")
                switch key {
                case "subjects":
                    guard try r.readArrayHeader() == 2 else { throw f("subjects", "must hold exactly two refs") }
                    subjects = [
                        try Entry.readDigest(&r, "body.subjects[0]"), try Entry.readDigest(&r, "body.subjects[1]"),
                    ]
                case "evidence": evidence = try Entry.readDigest(&r, "body.evidence")
                case "occurredAt": at = try r.readUnsigned()
                default: throw f(key, "unknown key in a \(kind) body")
                }
            }
            guard let subjects else { throw f("subjects", "missing") }
            guard let at else { throw f("occurredAt", "missing") }
            let b = LinkBody(subjects: subjects, evidence: evidence, occurredAt: at)
            return kind == "link" ? .link(b) : .unlink(b)
        default:
            throw Entry.field("kind", "'\(kind)' is not an entry kind of format version 1")
        }
    }

    /// Checks the rules that hold for every stored entry, whoever wrote it: known codes, sorted unique lists,
    /// sizes. Membership of org ids is checked against the consortium by the caller.
    public func validate() throws(LedgerError) {
        func f(_ name: String, _ reason: String) -> LedgerError { Entry.field("body.\(name)", reason) }
        func codes(_ list: [String], _ name: String, in set: Set<String>, what: String) throws(LedgerError) {
            guard !list.isEmpty else { throw f(name, "must not be empty") }
            guard list.count <= 32 else { throw f(name, "more than 32 items") }
            for (i, c) in list.enumerated() {
                guard set.contains(c) else { throw f("\(name)[\(i)]", "'\(c)' is not a known \(what)") }
                if i > 0 && list[i - 1] >= c { throw f(name, "must be unique and in ascending order") }
            }
        }
        func orgs(_ list: [String], _ name: String, allowEmpty: Bool) throws(LedgerError) {
            guard allowEmpty || !list.isEmpty else { throw f(name, "must not be empty") }
            guard list.count <= 32 else { throw f(name, "more than 32 items") }
            for (i, c) in list.enumerated() {
                guard Vocabulary.isOrgID(c) else { throw f("\(name)[\(i)]", "'\(c)' is not an org id") }
                if i > 0 && list[i - 1] >= c { throw f(name, "must be unique and in ascending order") }
            }
        }
        func one(_ value: String, _ name: String, in set: Set<String>, what: String) throws(LedgerError) {
            guard set.contains(value) else { throw f(name, "'\(value)' is not a known \(what)") }
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
                guard Vocabulary.isToken(n.id) else { throw f("notice.id", "must be 1-64 printable characters") }
                guard Vocabulary.isToken(n.version, max: 32) else {
                    throw f("notice.version", "must be 1-32 printable characters")
                }
            }
            if let x = b.expiresAt, x <= b.occurredAt { throw f("expiresAt", "must be after occurredAt") }
        case .interaction(let b):
            try one(b.channel, "channel", in: Vocabulary.channels, what: "channel")
            guard Vocabulary.isToken(b.interaction) else {
                throw f("interaction", "must be 1-64 printable characters without spaces")
            }
            try codes(b.purposes, "purposes", in: Vocabulary.purposes, what: "DPV purpose")
            try one(b.legalBasis, "legalBasis", in: Vocabulary.legalBases, what: "DPV legal basis")
            guard Vocabulary.isToken(b.agent.id) else { throw f("agent.id", "must be 1-64 printable characters") }
            try one(b.agent.kind, "agent.kind", in: Vocabulary.agentKinds, what: "agent kind")
            if let o = b.agent.onBehalfOf, !Vocabulary.isOrgID(o) {
                throw f("agent.onBehalfOf", "'\(o)' is not an org id")
            }
            if b.legalBasis == "dpv:Consent" && b.consentRef == nil {
                throw f("consentRef", "required when legalBasis is dpv:Consent")
            }
            guard b.derivedFrom.count <= 64 else { throw f("derivedFrom", "more than 64 references") }
        case .share(let b):
            guard Vocabulary.isOrgID(b.recipient) else { throw f("recipient", "'\(b.recipient)' is not an org id") }
            try codes(b.purposes, "purposes", in: Vocabulary.purposes, what: "DPV purpose")
            try codes(b.dataCategories, "dataCategories", in: Vocabulary.dataCategories, what: "DPV data category")
            guard b.derivedFrom.count <= 64 else { throw f("derivedFrom", "more than 64 references") }
        case .link(let b), .unlink(let b):
            guard b.subjects.count == 2, b.subjects[0] < b.subjects[1] else {
                throw f("subjects", "must be two different refs in ascending byte order")
            }
            if case .link = self, b.evidence == nil { throw f("evidence", "required for a link") }
        }
    }

    /// Every org id the body names, with the field that names it, for membership checks.
    public var namedOrgs: [(field: String, org: String)] {
        switch self {
        case .consent(let b):
            return b.controllers.map { ("controllers", $0) } + b.recipients.map { ("recipients", $0) }
        case .interaction(let b):
            var out = b.derivedFrom.map { ("derivedFrom", $0.org) }
            if let o = b.agent.onBehalfOf { out.append(("agent.onBehalfOf", o)) }
            if let c = b.consentRef { out.append(("consentRef", c.org)) }
            return out
        case .share(let b):
            return [("recipient", b.recipient)] + b.derivedFrom.map { ("derivedFrom", $0.org) }
        case .link, .unlink:
            return []
        }
    }
}
