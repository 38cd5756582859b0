import ProvCrypto

/// Hybrid logical clock reading (Kulkarni et al. 2014): wall-clock milliseconds and a counter.
public struct HLC: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var wall: UInt64
    public var counter: UInt64

    public init(wall: UInt64, counter: UInt64) {
        self.wall = wall
        self.counter = counter
    }

    public static func < (a: HLC, b: HLC) -> Bool { (a.wall, a.counter) < (b.wall, b.counter) }

    /// The next reading after `self` at physical time `now`, also at least every clock in `cited`.
    public func tick(now: UInt64, cited: HLC? = nil) -> HLC {
        let floor = max(self, cited ?? self)
        if now > floor.wall { return HLC(wall: now, counter: 0) }
        return HLC(wall: floor.wall, counter: floor.counter + 1)
    }

    public var description: String { "\(wall).\(counter)" }
}

/// A pointer to one entry of a log: `[org, seq, leafHash]`. The leaf hash binds the reference to exact bytes.
public struct EntryRef: Sendable, Hashable, CustomStringConvertible {
    public var org: String
    public var seq: UInt64
    public var leaf: SHA256Digest

    public init(org: String, seq: UInt64, leaf: SHA256Digest) {
        self.org = org
        self.seq = seq
        self.leaf = leaf
    }

    public var description: String { "\(org)/\(seq)" }
}

/// The notice a consent was given against (ISO/IEC TS 27560 "notice").
public struct Notice: Sendable, Equatable {
    /// A notice id of the consortium's vocabulary.
    public var id: String
    /// Digits and dots, such as `7` or `2.1`.
    public var version: String
    public var sha256: SHA256Digest

    public init(id: String, version: String, sha256: SHA256Digest) {
        self.id = id
        self.version = version
        self.sha256 = sha256
    }
}

/// Who acted (W3C PROV agent), and for which company. A person is stored as a keyed pseudonym of their employee
/// id, never by name; software and devices by a name from the consortium's vocabulary.
public struct Agent: Sendable, Equatable {
    /// A person's ref, or the name of a software or device agent.
    public enum ID: Sendable, Hashable, CustomStringConvertible {
        /// A person: HMAC of the employee id under the agent-ref key (Specs/format.md §5.4).
        case ref(SHA256Digest)
        /// A software or device agent: a code of the consortium vocabulary.
        case name(String)

        /// `ref:<base64url>` for a person (the text form of subject refs), the name otherwise.
        public var description: String {
            switch self {
            case .ref(let r): SubjectRef.text(r)
            case .name(let n): n
            }
        }
    }

    public var id: ID
    /// `person`, `software` or `device`.
    public var kind: String
    /// The member the agent acted for, when not the log's own org.
    public var onBehalfOf: String?

    public init(id: ID, kind: String, onBehalfOf: String? = nil) {
        self.id = id
        self.kind = kind
        self.onBehalfOf = onBehalfOf
    }
}

/// A consent event (ISO/IEC TS 27560 consent record fields).
public struct ConsentBody: Sendable, Equatable {
    public var subject: SHA256Digest
    public var event: String
    public var purposes: [String]
    public var controllers: [String]
    public var recipients: [String]
    public var channel: String
    public var method: String
    public var legalBasis: String
    public var notice: Notice?
    public var occurredAt: UInt64
    public var expiresAt: UInt64?
    public var evidence: SHA256Digest?
}

/// An interaction with a customer on some channel.
public struct InteractionBody: Sendable, Equatable {
    public var subject: SHA256Digest
    public var channel: String
    public var interaction: String
    public var purposes: [String]
    public var legalBasis: String
    public var agent: Agent
    public var occurredAt: UInt64
    public var consentRef: EntryRef?
    public var derivedFrom: [EntryRef]
    public var detail: SHA256Digest?
}

/// Data about a subject passed to another company (PROV `wasDerivedFrom` lineage edge).
public struct ShareBody: Sendable, Equatable {
    public var subject: SHA256Digest
    public var recipient: String
    public var purposes: [String]
    public var dataCategories: [String]
    public var occurredAt: UInt64
    public var derivedFrom: [EntryRef]
}

/// Two subject refs that belong (link) or no longer belong (unlink) to one person.
public struct LinkBody: Sendable, Equatable {
    /// Two distinct refs, in ascending byte order.
    public var subjects: [SHA256Digest]
    public var evidence: SHA256Digest?
    public var occurredAt: UInt64
}

/// An entry that only cites other logs' heads in `deps`: written by a node that verified other logs moving
/// while its own company wrote nothing (Specs/protocol.md §5.4).
public struct HeadsBody: Sendable, Equatable {
    public var occurredAt: UInt64

    public init(occurredAt: UInt64) { self.occurredAt = occurredAt }
}

public enum EntryBody: Sendable, Equatable {
    case consent(ConsentBody)
    case interaction(InteractionBody)
    case share(ShareBody)
    case link(LinkBody)
    case unlink(LinkBody)
    case heads(HeadsBody)

    /// The body's kind (Specs/format.md §3).
    public var kind: EntryKind {
        switch self {
        case .consent: .consent
        case .interaction: .interaction
        case .share: .share
        case .link: .link
        case .unlink: .unlink
        case .heads: .heads
        }
    }

    public var occurredAt: UInt64 {
        switch self {
        case .consent(let b): b.occurredAt
        case .interaction(let b): b.occurredAt
        case .share(let b): b.occurredAt
        case .link(let b), .unlink(let b): b.occurredAt
        case .heads(let b): b.occurredAt
        }
    }

    /// The subject refs the entry is about.
    public var subjects: [SHA256Digest] {
        switch self {
        case .consent(let b): [b.subject]
        case .interaction(let b): [b.subject]
        case .share(let b): [b.subject]
        case .link(let b), .unlink(let b): b.subjects
        case .heads: []
        }
    }
}

/// One record of one company's log. Its canonical bytes are deterministic CBOR (Specs/format.md §Entries).
public struct Entry: Sendable, Equatable {
    /// The only format version so far.
    public static let formatVersion: UInt64 = 1
    /// Upper bound on an entry's encoded size.
    public static let maxSize = 65_535

    public var log: String
    public var seq: UInt64
    public var prev: SHA256Digest
    public var hlc: HLC
    public var deps: [EntryRef]
    public var body: EntryBody

    public init(log: String, seq: UInt64, prev: SHA256Digest, hlc: HLC, deps: [EntryRef] = [], body: EntryBody) {
        self.log = log
        self.seq = seq
        self.prev = prev
        self.hlc = hlc
        self.deps = deps
        self.body = body
    }

    /// The org part of the log origin `<consortium>/<org>`.
    public var org: Substring { log.split(separator: "/", maxSplits: 1).last ?? "" }
}

// MARK: - Encoding

extension Entry {
    /// The canonical bytes.
    public var encoded: [UInt8] {
        var w = CBORWriter(reservingCapacity: 320)
        encode(into: &w)
        return w.bytes
    }

    /// Appends the canonical bytes. Keys are written in deterministic order: shorter first, then bytewise
    /// (RFC 8949 §4.2.1).
    package func encode(into w: inout CBORWriter) {
        w.writeMapHeader(8)
        w.writeKey("v")
        w.writeUnsigned(Self.formatVersion)
        w.writeKey("hlc")
        w.writeArrayHeader(2)
        w.writeUnsigned(hlc.wall)
        w.writeUnsigned(hlc.counter)
        w.writeKey("log")
        w.writeText(log)
        w.writeKey("seq")
        w.writeUnsigned(seq)
        w.writeKey("body")
        body.encode(into: &w)
        w.writeKey("deps")
        Self.writeRefs(deps, into: &w)
        w.writeKey("kind")
        w.writeKey(body.kind.staticName)
        w.writeKey("prev")
        Self.writeDigest(prev, into: &w)
    }

    @inline(__always) static func writeDigest(_ d: SHA256Digest, into w: inout CBORWriter) {
        d.withUnsafeBytes { w.writeBytes($0) }
    }

    static func writeRef(_ r: EntryRef, into w: inout CBORWriter) {
        w.writeArrayHeader(3)
        w.writeText(r.org)
        w.writeUnsigned(r.seq)
        writeDigest(r.leaf, into: &w)
    }

    static func writeRefs(_ refs: [EntryRef], into w: inout CBORWriter) {
        w.writeArrayHeader(refs.count)
        for r in refs { writeRef(r, into: &w) }
    }

    static func writeTexts(_ list: [String], into w: inout CBORWriter) {
        w.writeArrayHeader(list.count)
        for s in list { w.writeText(s) }
    }
}

extension EntryBody {
    package func encode(into w: inout CBORWriter) {
        switch self {
        case .consent(let b):
            w.writeMapHeader(
                8 + (b.notice == nil ? 0 : 1) + (b.expiresAt == nil ? 0 : 1) + (b.evidence == nil ? 0 : 1)
                    + (b.recipients.isEmpty ? 0 : 1))
            w.writeKey("event")
            w.writeText(b.event)
            w.writeKey("method")
            w.writeText(b.method)
            if let n = b.notice {
                w.writeKey("notice")
                w.writeMapHeader(3)
                w.writeKey("id")
                w.writeText(n.id)
                w.writeKey("sha256")
                Entry.writeDigest(n.sha256, into: &w)
                w.writeKey("version")
                w.writeText(n.version)
            }
            w.writeKey("channel")
            w.writeText(b.channel)
            w.writeKey("subject")
            Entry.writeDigest(b.subject, into: &w)
            if let e = b.evidence {
                w.writeKey("evidence")
                Entry.writeDigest(e, into: &w)
            }
            w.writeKey("purposes")
            Entry.writeTexts(b.purposes, into: &w)
            if let x = b.expiresAt {
                w.writeKey("expiresAt")
                w.writeUnsigned(x)
            }
            w.writeKey("legalBasis")
            w.writeText(b.legalBasis)
            w.writeKey("occurredAt")
            w.writeUnsigned(b.occurredAt)
            if !b.recipients.isEmpty {
                w.writeKey("recipients")
                Entry.writeTexts(b.recipients, into: &w)
            }
            w.writeKey("controllers")
            Entry.writeTexts(b.controllers, into: &w)
        case .interaction(let b):
            w.writeMapHeader(
                7 + (b.detail == nil ? 0 : 1) + (b.consentRef == nil ? 0 : 1) + (b.derivedFrom.isEmpty ? 0 : 1))
            w.writeKey("agent")
            w.writeMapHeader(b.agent.onBehalfOf == nil ? 2 : 3)
            w.writeKey("id")
            switch b.agent.id {
            case .ref(let r): Entry.writeDigest(r, into: &w)
            case .name(let n): w.writeText(n)
            }
            w.writeKey("kind")
            w.writeText(b.agent.kind)
            if let o = b.agent.onBehalfOf {
                w.writeKey("onBehalfOf")
                w.writeText(o)
            }
            if let d = b.detail {
                w.writeKey("detail")
                Entry.writeDigest(d, into: &w)
            }
            w.writeKey("channel")
            w.writeText(b.channel)
            w.writeKey("subject")
            Entry.writeDigest(b.subject, into: &w)
            w.writeKey("purposes")
            Entry.writeTexts(b.purposes, into: &w)
            if let c = b.consentRef {
                w.writeKey("consentRef")
                Entry.writeRef(c, into: &w)
            }
            w.writeKey("legalBasis")
            w.writeText(b.legalBasis)
            w.writeKey("occurredAt")
            w.writeUnsigned(b.occurredAt)
            if !b.derivedFrom.isEmpty {
                w.writeKey("derivedFrom")
                Entry.writeRefs(b.derivedFrom, into: &w)
            }
            w.writeKey("interaction")
            w.writeText(b.interaction)
        case .share(let b):
            w.writeMapHeader(5 + (b.derivedFrom.isEmpty ? 0 : 1))
            w.writeKey("subject")
            Entry.writeDigest(b.subject, into: &w)
            w.writeKey("purposes")
            Entry.writeTexts(b.purposes, into: &w)
            w.writeKey("recipient")
            w.writeText(b.recipient)
            w.writeKey("occurredAt")
            w.writeUnsigned(b.occurredAt)
            if !b.derivedFrom.isEmpty {
                w.writeKey("derivedFrom")
                Entry.writeRefs(b.derivedFrom, into: &w)
            }
            w.writeKey("dataCategories")
            Entry.writeTexts(b.dataCategories, into: &w)
        case .link(let b), .unlink(let b):
            w.writeMapHeader(2 + (b.evidence == nil ? 0 : 1))
            if let e = b.evidence {
                w.writeKey("evidence")
                Entry.writeDigest(e, into: &w)
            }
            w.writeKey("subjects")
            w.writeArrayHeader(b.subjects.count)
            for s in b.subjects { Entry.writeDigest(s, into: &w) }
            w.writeKey("occurredAt")
            w.writeUnsigned(b.occurredAt)
        case .heads(let b):
            w.writeMapHeader(1)
            w.writeKey("occurredAt")
            w.writeUnsigned(b.occurredAt)
        }
    }
}
