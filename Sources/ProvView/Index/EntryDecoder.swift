import ProvCrypto
import ProvLedger

/// The kinds of entry of format version 1 (Specs/format.md §3).
public enum EntryKind: String, Sendable, CaseIterable, Comparable {
    case consent, interaction, share, link, unlink
    /// Only `deps`: what its writer had verified of other logs (Specs/format.md §4.4). It names no subject.
    case heads

    var code: UInt8 {
        switch self {
        case .consent: 0
        case .interaction: 1
        case .share: 2
        case .link: 3
        case .unlink: 4
        case .heads: 5
        }
    }

    init(code: UInt8) { self = Self.allCases[Int(code)] }

    public static func < (a: EntryKind, b: EntryKind) -> Bool { a.code < b.code }
}

/// A text string of the buffer being decoded, by its byte range; `count` is -1 when the field is absent. `hash`
/// is the interner's hash of the bytes, computed by the decoder (which runs on every core) for the fields the
/// index interns, so that inserting (which runs on one) only probes.
struct Span: Equatable {
    var start: Int32
    var count: Int32
    var hash: UInt32 = 0

    init(start: Int, count: Int, hash: UInt32 = 0) {
        self.start = Int32(truncatingIfNeeded: start)
        self.count = Int32(truncatingIfNeeded: count)
        self.hash = hash
    }

    static let none = Span(start: 0, count: -1)
    var isPresent: Bool { count >= 0 }
}

/// A run of items in the decoder's scratch lists; `raw` is the list's whole CBOR encoding (interned as one key).
struct ListSpan: Equatable {
    var start: Int32 = 0
    var count: Int32 = 0
    var raw = Span.none
}

/// `[org, seq, leaf]` as read, the org still a span.
struct RawRef {
    var org: Span
    var seq: UInt64
    var leaf: SHA256Digest
}

/// What the view needs of one entry, read straight from its canonical bytes: numbers and digests by value, texts as
/// spans of the buffer and lists as runs of the decoder's scratch arrays, so that decoding allocates nothing. This
/// is the index's decoder (a full `Entry.decode` builds strings and costs about twice as much); it reads exactly
/// the fields of Specs/format.md §3–§4 and skips commitments (`evidence`, `detail`, `notice.sha256`).
struct DecodedEntry {
    var kind = EntryKind.consent
    var hlc = HLC(wall: 0, counter: 0)
    var seq: UInt64 = 0
    var occurredAt: UInt64 = 0
    /// 0 when absent (a stored `expiresAt` is greater than `occurredAt`, so never 0).
    var expiresAt: UInt64 = 0
    var subject = SHA256Digest.zero
    /// The second subject of a link or unlink.
    var subject2 = SHA256Digest.zero
    var subjectHash: UInt32 = 0
    var subject2Hash: UInt32 = 0
    var log = Span.none
    var channel = Span.none
    var event = Span.none
    var method = Span.none
    var legalBasis = Span.none
    var interaction = Span.none
    var noticeID = Span.none
    var noticeVersion = Span.none
    var agentID = Span.none
    /// A person agent's id when it is a 32-byte pseudonym rather than a text.
    var agentRef: SHA256Digest?
    var agentKind = Span.none
    var onBehalfOf = Span.none
    var recipient = Span.none
    var purposes = ListSpan()
    var controllers = ListSpan()
    var recipients = ListSpan()
    var dataCategories = ListSpan()
    /// Index into the decoder's refs, -1 when absent.
    var consentRef: Int32 = -1
    var derivedFrom = ListSpan()
    var deps = ListSpan()
}

/// Reads entries into `DecodedEntry` values. Spans are byte offsets from the `base` given to `decode`; the
/// scratch lists keep growing until `reset`, so a batch of entries can be decoded before any is used.
struct EntryDecoder {
    var spans: [Span] = []
    var refs: [RawRef] = []

    mutating func reset() {
        spans.removeAll(keepingCapacity: true)
        refs.removeAll(keepingCapacity: true)
    }

    struct Failure: Error {
        var message: String
    }

    /// Decodes the entry in `raw`, which lies inside the buffer starting at `base`.
    mutating func decode(_ raw: UnsafeRawBufferPointer, base: UnsafeRawPointer) throws(ViewError) -> DecodedEntry {
        var r = CBORReader(raw, maxDepth: 8)
        do {
            let e = try readEntry(&r, base: base)
            try r.expectEnd()
            return e
        } catch let e as CBORError {
            throw ViewError(.invalidEntry, "not canonical CBOR: \(e)")
        } catch let e as Failure {
            throw ViewError(.invalidEntry, e.message)
        } catch {
            throw ViewError(.invalidEntry, "\(error)")
        }
    }

    private enum Key {
        case v, hlc, log, seq, body, deps, kind, prev
        case event, method, notice, channel, subject, evidence, purposes, expiresAt, legalBasis, occurredAt
        case recipients, controllers, agent, detail, consentRef, derivedFrom, interaction, recipient
        case dataCategories, subjects, id, sha256, version, onBehalfOf
        case unknown
    }

    /// Map keys of format version 1, packed big-endian (the bytes of `kind`, `body`... as two words).
    private static func key(_ k: UnsafeRawBufferPointer) -> Key {
        guard k.count < 16 else { return .unknown }
        var hi: UInt64 = 0
        var lo: UInt64 = 0
        for i in 0..<k.count {
            if i < 8 {
                hi |= UInt64(k[i]) << (56 - 8 * UInt64(i))
            } else {
                lo |= UInt64(k[i]) << (56 - 8 * UInt64(i - 8))
            }
        }
        switch (k.count, hi, lo) {
        case (1, 0x7600_0000_0000_0000, 0): return .v
        case (3, 0x686c_6300_0000_0000, 0): return .hlc
        case (3, 0x6c6f_6700_0000_0000, 0): return .log
        case (3, 0x7365_7100_0000_0000, 0): return .seq
        case (4, 0x626f_6479_0000_0000, 0): return .body
        case (4, 0x6465_7073_0000_0000, 0): return .deps
        case (4, 0x6b69_6e64_0000_0000, 0): return .kind
        case (4, 0x7072_6576_0000_0000, 0): return .prev
        case (5, 0x6576_656e_7400_0000, 0): return .event
        case (6, 0x6d65_7468_6f64_0000, 0): return .method
        case (6, 0x6e6f_7469_6365_0000, 0): return .notice
        case (7, 0x6368_616e_6e65_6c00, 0): return .channel
        case (7, 0x7375_626a_6563_7400, 0): return .subject
        case (8, 0x6576_6964_656e_6365, 0): return .evidence
        case (8, 0x7075_7270_6f73_6573, 0): return .purposes
        case (9, 0x6578_7069_7265_7341, 0x7400_0000_0000_0000): return .expiresAt
        case (10, 0x6c65_6761_6c42_6173, 0x6973_0000_0000_0000): return .legalBasis
        case (10, 0x6f63_6375_7272_6564, 0x4174_0000_0000_0000): return .occurredAt
        case (10, 0x7265_6369_7069_656e, 0x7473_0000_0000_0000): return .recipients
        case (11, 0x636f_6e74_726f_6c6c, 0x6572_7300_0000_0000): return .controllers
        case (5, 0x6167_656e_7400_0000, 0): return .agent
        case (6, 0x6465_7461_696c_0000, 0): return .detail
        case (10, 0x636f_6e73_656e_7452, 0x6566_0000_0000_0000): return .consentRef
        case (11, 0x6465_7269_7665_6446, 0x726f_6d00_0000_0000): return .derivedFrom
        case (11, 0x696e_7465_7261_6374, 0x696f_6e00_0000_0000): return .interaction
        case (9, 0x7265_6369_7069_656e, 0x7400_0000_0000_0000): return .recipient
        case (14, 0x6461_7461_4361_7465, 0x676f_7269_6573_0000): return .dataCategories
        case (8, 0x7375_626a_6563_7473, 0): return .subjects
        case (2, 0x6964_0000_0000_0000, 0): return .id
        case (6, 0x7368_6132_3536_0000, 0): return .sha256
        case (7, 0x7665_7273_696f_6e00, 0): return .version
        case (10, 0x6f6e_4265_6861_6c66, 0x4f66_0000_0000_0000): return .onBehalfOf
        default: return .unknown
        }
    }

    private func fail(_ field: String, _ reason: String) -> Failure { Failure(message: "\(field): \(reason)") }

    @inline(__always)
    private func text(_ r: inout CBORReader, base: UnsafeRawPointer) throws -> Span {
        let t = try r.readTextBytes()
        return Span(start: t.baseAddress.map { $0 - base } ?? 0, count: t.count)
    }

    private func digest(_ r: inout CBORReader, _ field: String) throws -> SHA256Digest {
        let b = try r.readBytes()
        guard b.count == 32 else { throw fail(field, "must be 32 bytes, got \(b.count)") }
        return SHA256Digest(copying: b.baseAddress!)
    }

    private mutating func texts(_ r: inout CBORReader, base: UnsafeRawPointer, _ field: String) throws -> ListSpan {
        let from = r.offset
        let n = try r.readArrayHeader()
        guard n <= 64 else { throw fail(field, "more than 64 items") }
        let start = Int32(spans.count)
        for _ in 0..<n { spans.append(try text(&r, base: base)) }
        let at = r.buffer.baseAddress! + from - base
        let raw = UnsafeRawBufferPointer(rebasing: r.buffer[from..<r.offset])
        return ListSpan(
            start: start, count: Int32(n), raw: Span(start: at, count: raw.count, hash: Interner.hash(raw)))
    }

    private mutating func ref(_ r: inout CBORReader, base: UnsafeRawPointer, _ field: String) throws {
        guard try r.readArrayHeader() == 3 else { throw fail(field, "must be [org, seq, leafHash]") }
        let org = try text(&r, base: base)
        let seq = try r.readUnsigned()
        refs.append(RawRef(org: org, seq: seq, leaf: try digest(&r, field)))
    }

    private mutating func refList(_ r: inout CBORReader, base: UnsafeRawPointer, _ field: String, max: Int) throws
        -> ListSpan
    {
        let n = try r.readArrayHeader()
        guard n <= max else { throw fail(field, "more than \(max) references") }
        let start = Int32(refs.count)
        for _ in 0..<n { try ref(&r, base: base, field) }
        return ListSpan(start: start, count: Int32(n))
    }

    private mutating func readEntry(_ r: inout CBORReader, base: UnsafeRawPointer) throws -> DecodedEntry {
        var e = DecodedEntry()
        var seen: UInt32 = 0
        var kindSpan = Span.none
        var subjectCount = 0
        var has = (subject: false, occurredAt: false)
        for _ in 0..<(try r.readMapHeader()) {
            let k = Self.key(try r.readTextBytes())
            switch k {
            case .v:
                guard try r.readUnsigned() == Entry.formatVersion else { throw fail("v", "format version is not 1") }
                seen |= 1
            case .hlc:
                guard try r.readArrayHeader() == 2 else { throw fail("hlc", "must be [wall-ms, counter]") }
                e.hlc = HLC(wall: try r.readUnsigned(), counter: try r.readUnsigned())
                seen |= 2
            case .log:
                e.log = try text(&r, base: base)
                seen |= 4
            case .seq:
                e.seq = try r.readUnsigned()
                seen |= 8
            case .deps:
                e.deps = try refList(&r, base: base, "deps", max: 256)
                seen |= 16
            case .kind:
                kindSpan = try text(&r, base: base)
                seen |= 32
            case .body:
                seen |= 64
                for _ in 0..<(try r.readMapHeader()) {
                    let bk = Self.key(try r.readTextBytes())
                    switch bk {
                    case .subject:
                        e.subject = try digest(&r, "body.subject")
                        has.subject = true
                    case .subjects:
                        guard try r.readArrayHeader() == 2 else { throw fail("body.subjects", "must hold two refs") }
                        e.subject = try digest(&r, "body.subjects[0]")
                        e.subject2 = try digest(&r, "body.subjects[1]")
                        subjectCount = 2
                    case .event: e.event = try text(&r, base: base)
                    case .method: e.method = try text(&r, base: base)
                    case .channel: e.channel = try text(&r, base: base)
                    case .legalBasis: e.legalBasis = try text(&r, base: base)
                    case .interaction: e.interaction = try text(&r, base: base)
                    case .recipient: e.recipient = try text(&r, base: base)
                    case .purposes: e.purposes = try texts(&r, base: base, "body.purposes")
                    case .controllers: e.controllers = try texts(&r, base: base, "body.controllers")
                    case .recipients: e.recipients = try texts(&r, base: base, "body.recipients")
                    case .dataCategories: e.dataCategories = try texts(&r, base: base, "body.dataCategories")
                    case .occurredAt:
                        e.occurredAt = try r.readUnsigned()
                        has.occurredAt = true
                    case .expiresAt:
                        e.expiresAt = try r.readUnsigned()
                        guard e.expiresAt > 0 else { throw fail("body.expiresAt", "must be after occurredAt") }
                    case .consentRef:
                        e.consentRef = Int32(refs.count)
                        try ref(&r, base: base, "body.consentRef")
                    case .derivedFrom: e.derivedFrom = try refList(&r, base: base, "body.derivedFrom", max: 64)
                    case .notice:
                        for _ in 0..<(try r.readMapHeader()) {
                            switch Self.key(try r.readTextBytes()) {
                            case .id: e.noticeID = try text(&r, base: base)
                            case .version: e.noticeVersion = try text(&r, base: base)
                            default: try r.skipValue()
                            }
                        }
                    case .agent:
                        for _ in 0..<(try r.readMapHeader()) {
                            switch Self.key(try r.readTextBytes()) {
                            case .id:
                                // A text id, or (format change under way) a person's 32-byte pseudonym.
                                if try r.peekMajorType() == 2 {
                                    e.agentRef = try digest(&r, "body.agent.id")
                                    e.agentID = Span(start: 0, count: 0)
                                } else {
                                    e.agentID = try text(&r, base: base)
                                }
                            case .kind: e.agentKind = try text(&r, base: base)
                            case .onBehalfOf: e.onBehalfOf = try text(&r, base: base)
                            default: try r.skipValue()
                            }
                        }
                    default:
                        // Commitments (`evidence`, `detail`) and fields of later format versions.
                        try r.skipValue()
                    }
                }
            default:
                try r.skipValue()
            }
        }
        guard seen == 127 else {
            let names = ["v", "hlc", "log", "seq", "deps", "kind", "body"]
            let missing = (0..<7).first { seen & (1 << $0) == 0 }!
            throw fail(names[missing], "missing")
        }
        // The texts the index interns one by one.
        func hash(_ s: inout Span) { if s.isPresent { s.hash = Interner.hash(s.bytes(base)) } }
        hash(&e.channel)
        hash(&e.event)
        hash(&e.method)
        hash(&e.legalBasis)
        hash(&e.interaction)
        hash(&e.agentID)
        hash(&e.agentKind)
        e.subjectHash = SubjectTable.hash(e.subject)
        e.subject2Hash = subjectCount == 2 ? SubjectTable.hash(e.subject2) : 0
        let kind = kindSpan.bytes(base)
        guard let k = EntryKind.allCases.first(where: { $0.rawValue.utf8.elementsEqual(kind) }) else {
            throw fail("kind", "not one of consent, interaction, share, link, unlink, heads")
        }
        e.kind = k
        guard has.occurredAt else { throw fail("body.occurredAt", "missing") }
        switch k {
        case .consent:
            guard has.subject else { throw fail("body.subject", "missing") }
            guard e.event.isPresent else { throw fail("body.event", "missing") }
            guard e.purposes.count > 0 else { throw fail("body.purposes", "missing") }
            guard e.controllers.count > 0 else { throw fail("body.controllers", "missing") }
            guard e.channel.isPresent else { throw fail("body.channel", "missing") }
            guard e.method.isPresent else { throw fail("body.method", "missing") }
            guard e.legalBasis.isPresent else { throw fail("body.legalBasis", "missing") }
        case .interaction:
            guard has.subject else { throw fail("body.subject", "missing") }
            guard e.purposes.count > 0 else { throw fail("body.purposes", "missing") }
            guard e.legalBasis.isPresent else { throw fail("body.legalBasis", "missing") }
            guard e.channel.isPresent else { throw fail("body.channel", "missing") }
            guard e.agentID.isPresent, e.agentKind.isPresent else { throw fail("body.agent", "missing") }
            guard e.interaction.isPresent else { throw fail("body.interaction", "missing") }
        case .share:
            guard has.subject else { throw fail("body.subject", "missing") }
            guard e.purposes.count > 0 else { throw fail("body.purposes", "missing") }
            guard e.recipient.isPresent else { throw fail("body.recipient", "missing") }
            guard e.dataCategories.count > 0 else { throw fail("body.dataCategories", "missing") }
        case .link, .unlink:
            guard subjectCount == 2, e.subject != e.subject2 else {
                throw fail("body.subjects", "must hold two different refs")
            }
        case .heads:
            guard !has.subject, subjectCount == 0 else { throw fail("body.subject", "is not a field of a heads body") }
            guard e.deps.count > 0 else { throw fail("deps", "a heads entry must cite at least one head") }
        }
        return e
    }
}

extension Span {
    /// The bytes of this span in the buffer starting at `base`.
    func bytes(_ base: UnsafeRawPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + Int(start), count: Int(max(count, 0)))
    }

    func string(_ base: UnsafeRawPointer) -> String { String(decoding: bytes(base), as: UTF8.self) }
}
