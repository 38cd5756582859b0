import ProvCrypto

/// Bytes of the buffer an entry was read from: `count` bytes, `start` bytes after the base the reader was given.
/// Offsets rather than pointers, so that fields read from a window of many entries stay valid while the window
/// does, and can be kept in arrays.
package struct ByteSpan: Equatable, Sendable {
    package var start: Int32
    package var count: Int32

    package init(start: Int, count: Int) {
        self.start = Int32(truncatingIfNeeded: start)
        self.count = Int32(truncatingIfNeeded: count)
    }

    /// The bytes, in the buffer that starts at `base`.
    @inline(__always)
    package func bytes(_ base: UnsafeRawPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + Int(start), count: Int(count))
    }

    package func string(_ base: UnsafeRawPointer) -> String { String(decoding: bytes(base), as: UTF8.self) }
}

/// A list as read: its whole encoding (its head included, so that equal lists have equal bytes) and how many
/// items it holds. The items are read again on demand from bytes the reader has already checked, so a list costs
/// no storage per item.
package struct ListSpan: Equatable, Sendable {
    package var encoding = ByteSpan(start: 0, count: 0)
    /// Where the first item starts.
    package var items: Int32 = 0
    package var count: Int32 = 0

    package init() {}

    /// The items of a list of texts (codes, org ids).
    package func texts(_ base: UnsafeRawPointer) -> TextItems {
        TextItems(cursor: base + Int(items), left: Int(count))
    }

    /// The items of a list of refs (`deps`, `derivedFrom`).
    package func refs(_ base: UnsafeRawPointer) -> RefItems { RefItems(cursor: base + Int(items), left: Int(count)) }
}

/// A ref `[org, seq, leaf]` as read (Specs/format.md §3): the org as bytes of the buffer.
package struct RefFields: Equatable, Sendable {
    package var org = ByteSpan(start: 0, count: 0)
    package var seq: UInt64 = 0
    package var leaf = SHA256Digest.zero
}

/// The head of an item the reader has checked, read again without checks.
@inline(__always)
private func checkedHead(_ p: inout UnsafeRawPointer) -> Int {
    let ai = p.load(as: UInt8.self) & 0x1f
    p += 1
    if ai < 24 { return Int(ai) }
    var v = 0
    for _ in 0..<(1 << Int(ai - 24)) {
        v = v << 8 | Int(p.load(as: UInt8.self))
        p += 1
    }
    return v
}

/// The texts of a checked list, in order.
package struct TextItems: Sequence, IteratorProtocol {
    fileprivate var cursor: UnsafeRawPointer
    fileprivate var left: Int

    /// Exact: an array built from the items reserves what they need.
    package var underestimatedCount: Int { left }

    @inline(__always)
    package mutating func next() -> UnsafeRawBufferPointer? {
        guard left > 0 else { return nil }
        left -= 1
        let n = checkedHead(&cursor)
        defer { cursor += n }
        return UnsafeRawBufferPointer(start: cursor, count: n)
    }
}

/// The refs of a checked list, in order.
package struct RefItems: Sequence, IteratorProtocol {
    fileprivate var cursor: UnsafeRawPointer
    fileprivate var left: Int

    /// Exact: an array built from the items reserves what they need.
    package var underestimatedCount: Int { left }

    @inline(__always)
    package mutating func next() -> (org: UnsafeRawBufferPointer, seq: UInt64, leaf: SHA256Digest)? {
        guard left > 0 else { return nil }
        left -= 1
        cursor += 1  // array(3)
        let n = checkedHead(&cursor)
        let org = UnsafeRawBufferPointer(start: cursor, count: n)
        cursor += n
        let seq = UInt64(truncatingIfNeeded: checkedHead(&cursor))
        cursor += 2  // bytes(32)
        defer { cursor += 32 }
        return (org, seq, SHA256Digest(copying: cursor))
    }
}

/// The fields of one entry as read from its canonical bytes (Specs/format.md §3–§4), without building it: numbers,
/// digests and codes by value, texts as spans of the input and lists as spans read again on demand. What every
/// reader of entries builds on: `Entry.decode` (values), `Entry.audit` (the verifier) and the view's index.
///
/// Reading checks what is structural, in one pass over the bytes: deterministic CBOR (§2), the keys of format
/// version 1 in canonical order, a kind of the kind table, the code tables of §4.6 (kept as their numbers in
/// `Vocabulary`'s tables), the type and size of every field, the org id syntax of refs. The rules across fields
/// (§3 entry rules, §4 body rules) are `EntryRules`'; the consortium's membership and vocabulary are
/// `EntryRules.consortiumFailure`'s. Only keys that were read hold values: ask `has(_:)`.
package struct EntryFields: Sendable {
    /// The keys of the entry map, and of the body map, that were read.
    package var keys: UInt64 = 0
    package var bodyKeys: UInt64 = 0
    package var version: UInt64 = 0
    package var hlc = HLC(wall: 0, counter: 0)
    package var log = ByteSpan(start: 0, count: 0)
    package var seq: UInt64 = 0
    package var deps = ListSpan()
    package var kind = EntryKind.consent
    package var prev = SHA256Digest.zero

    /// The subject (consent, interaction, share), or the first of `subjects` (link, unlink).
    package var subject = SHA256Digest.zero
    /// The second of `subjects` (link, unlink).
    package var secondSubject = SHA256Digest.zero
    /// Codes, as their numbers in `Vocabulary.consentEventTable`, `channelTable`, `methodTable`,
    /// `legalBasisTable`, `agentKindTable`.
    package var event: UInt8 = 0
    package var channel: UInt8 = 0
    package var method: UInt8 = 0
    package var legalBasis: UInt8 = 0
    package var agentKind: UInt8 = 0
    package var purposes = ListSpan()
    package var controllers = ListSpan()
    package var recipients = ListSpan()
    package var dataCategories = ListSpan()
    package var noticeID = ByteSpan(start: 0, count: 0)
    package var noticeSHA256 = SHA256Digest.zero
    package var noticeVersion = ByteSpan(start: 0, count: 0)
    package var occurredAt: UInt64 = 0
    package var expiresAt: UInt64 = 0
    package var evidence = SHA256Digest.zero
    package var detail = SHA256Digest.zero
    package var interaction = ByteSpan(start: 0, count: 0)
    /// A person agent's id is a 32-byte ref (`agentRef`); a software or device agent's a text (`agentID`).
    package var agentIsRef = false
    package var agentID = ByteSpan(start: 0, count: 0)
    package var agentRef = SHA256Digest.zero
    package var hasOnBehalfOf = false
    package var onBehalfOf = ByteSpan(start: 0, count: 0)
    package var consentRef = RefFields()
    package var derivedFrom = ListSpan()
    package var recipient = ByteSpan(start: 0, count: 0)
    /// Where the entry's item ends in the input (bytes after it are refused by `checkEnd`).
    package var end = 0

    package init() {}

    /// Whether the entry map holds `key`.
    @inline(__always)
    package func has(entry key: FieldKey) -> Bool { keys & key.bit != 0 }

    /// Whether the body holds `key`.
    @inline(__always)
    package func has(_ key: FieldKey) -> Bool { bodyKeys & key.bit != 0 }

    /// The org of the log, `<org>` of `<consortium>/<org>`, when the log is a well-formed origin.
    package func ownOrg(_ base: UnsafeRawPointer) -> UnsafeRawBufferPointer? {
        let l = log.bytes(base)
        guard let slash = Vocabulary.originSlash(l) else { return nil }
        return UnsafeRawBufferPointer(rebasing: l[(slash + 1)...])
    }
}

extension EntryFields {
    /// Reads the entry `raw` in one pass (Specs/format.md §2–§4), which lies in the buffer starting at `base`
    /// (`raw`'s own start when nil): spans are offsets from `base`. Nothing is allocated unless it fails. Bytes
    /// after the entry's item are not checked here: `checkEnd` does, once the rules have run, so that a message
    /// names the first thing wrong in the order `Entry.decode` has always checked.
    package init(reading raw: UnsafeRawBufferPointer, base: UnsafeRawPointer? = nil) throws(LedgerError) {
        guard raw.count <= Entry.maxSize else {
            throw LedgerError(.invalidEntry, "entry is \(raw.count) bytes, over \(Entry.maxSize)")
        }
        self.init()
        var scan = EntryScan(
            reader: CBORReader(raw, maxDepth: 8), origin: raw.baseAddress.map { $0 - (base ?? $0) } ?? 0)
        do {
            try scan.entry(into: &self)
        } catch let e as CBORError {
            throw LedgerError(.invalidEntry, "not canonical CBOR: \(e)")
        } catch let e as LedgerError {
            throw e
        } catch {
            throw LedgerError(.invalidEntry, "\(error)")
        }
        end = scan.reader.offset
    }

    /// Refuses bytes after the entry's item in `raw` (Specs/format.md §2 rule 6).
    package func checkEnd(_ raw: UnsafeRawBufferPointer) throws(LedgerError) {
        guard end == raw.count else {
            let e = CBORError(.trailingBytes, end, "\(raw.count - end) bytes after the end of the item")
            throw LedgerError(.invalidEntry, "not canonical CBOR: \(e)")
        }
    }
}

/// The one pass of `EntryFields(reading:)`: every field with the type it must have, and the messages of
/// Specs/format.md §4.5.
private struct EntryScan {
    var reader: CBORReader
    /// Where the input starts, from the base spans count from.
    let origin: Int

    static func field(_ name: String, _ reason: String) -> LedgerError {
        LedgerError(.invalidEntry, "\(name): \(reason)")
    }

    /// `name`, or `name[i]` for an item of a list.
    static func named(_ name: String, _ index: Int?) -> String { index.map { "\(name)[\($0)]" } ?? name }

    @inline(__always)
    mutating func text() throws -> ByteSpan {
        let t = try reader.readTextBytes()
        return ByteSpan(start: origin + reader.offset - t.count, count: t.count)
    }

    @inline(__always)
    mutating func digest(_ name: String, _ index: Int? = nil) throws -> SHA256Digest {
        let b = try reader.readBytes()
        guard b.count == 32 else { throw Self.field(Self.named(name, index), "must be 32 bytes, got \(b.count)") }
        return SHA256Digest(copying: b.baseAddress!)
    }

    /// A text that must be one of the codes of `table` (Specs/format.md §4.6), as its number. A code found in the
    /// table is ASCII, so only a text that is not has its UTF-8 checked (failing as `readTextBytes` would).
    @inline(__always)
    mutating func code(_ table: CodeTable, _ name: @autoclosure () -> String, what: String) throws -> UInt8 {
        let (t, start) = try reader.readTextBytesUnchecked()
        guard let n = table.number(t) else {
            try CBORReader.checkUTF8(t, itemAt: start)
            throw Self.field(name(), "'\(String(decoding: t, as: UTF8.self))' is not a known \(what)")
        }
        return UInt8(n)
    }

    /// Starts a list of at most `max` items; the caller reads them, then `close`s it.
    @inline(__always)
    mutating func open(_ name: String, max: Int, what: String) throws -> ListSpan {
        let start = reader.offset
        let n = try reader.readArrayHeader()
        guard n <= max else { throw Self.field(name, "more than \(max) \(what)") }
        var l = ListSpan()
        l.encoding = ByteSpan(start: origin + start, count: 0)
        l.items = Int32(truncatingIfNeeded: origin + reader.offset)
        l.count = Int32(n)
        return l
    }

    @inline(__always)
    func close(_ l: inout ListSpan) {
        l.encoding.count = Int32(truncatingIfNeeded: origin + reader.offset) - l.encoding.start
    }

    mutating func texts(_ name: String) throws -> ListSpan {
        var l = try open(name, max: 64, what: "items")
        for _ in 0..<l.count { _ = try reader.readTextBytes() }
        close(&l)
        return l
    }

    mutating func codes(_ table: CodeTable, _ name: String, what: String) throws -> ListSpan {
        var l = try open(name, max: 64, what: "items")
        for i in 0..<Int(l.count) { _ = try code(table, "\(name)[\(i)]", what: what) }
        close(&l)
        return l
    }

    mutating func ref(_ name: String, _ index: Int? = nil) throws -> RefFields {
        guard try reader.readArrayHeader() == 3 else {
            throw Self.field(Self.named(name, index), "must be [org, seq, leafHash]")
        }
        let t = try reader.readTextBytes()
        guard Vocabulary.isOrgID(t) else {
            throw Self.field(Self.named(name, index), "'\(String(decoding: t, as: UTF8.self))' is not an org id")
        }
        let org = ByteSpan(start: origin + reader.offset - t.count, count: t.count)
        let seq = try reader.readUnsigned()
        return RefFields(org: org, seq: seq, leaf: try digest(name, index))
    }

    mutating func refs(_ name: String) throws -> ListSpan {
        var l = try open(name, max: 256, what: "references")
        for i in 0..<Int(l.count) { _ = try ref(name, i) }
        close(&l)
        return l
    }

    mutating func entry(into f: inout EntryFields) throws {
        let n = try reader.readMapHeader()
        var keys = KeyOrder()
        for _ in 0..<n {
            let key = try keys.next(&reader, in: "entry")
            f.keys |= key.bit
            switch key {
            case .v: f.version = try reader.readUnsigned()
            case .hlc:
                guard try reader.readArrayHeader() == 2 else { throw Self.field("hlc", "must be [wall-ms, counter]") }
                f.hlc = HLC(wall: try reader.readUnsigned(), counter: try reader.readUnsigned())
            case .log: f.log = try text()
            case .seq: f.seq = try reader.readUnsigned()
            // "body" sorts before "kind": the body is read into the union of all kinds' fields, and the rules
            // check it against the kind afterwards (Specs/format.md §3).
            case .body: try body(into: &f)
            case .deps: f.deps = try refs("deps")
            case .kind:
                let (t, start) = try reader.readTextBytesUnchecked()
                guard let kind = EntryKind(name: t) else {
                    try CBORReader.checkUTF8(t, itemAt: start)
                    throw Self.field(
                        "kind", "'\(String(decoding: t, as: UTF8.self))' is not a known entry kind of format version 1")
                }
                f.kind = kind
            case .prev: f.prev = try digest("prev")
            default: throw Self.field(key.name, "unknown key in entry")
            }
        }
    }

    mutating func body(into f: inout EntryFields) throws {
        func bad(_ name: String, _ reason: String) -> LedgerError { Self.field("body.\(name)", reason) }
        let n = try reader.readMapHeader()
        var order = KeyOrder()
        for _ in 0..<n {
            let key = try order.next(&reader, in: "body")
            f.bodyKeys |= key.bit
            switch key {
            case .subject: f.subject = try digest("body.subject")
            case .event: f.event = try code(Vocabulary.consentEventTable, "body.event", what: "consent event")
            case .purposes: f.purposes = try codes(Vocabulary.purposeTable, "body.purposes", what: "DPV purpose")
            case .controllers: f.controllers = try texts("body.controllers")
            case .recipients:
                f.recipients = try texts("body.recipients")
                if f.recipients.count == 0 { throw bad("recipients", "an empty list is omitted, not written") }
            case .channel: f.channel = try code(Vocabulary.channelTable, "body.channel", what: "channel")
            case .method: f.method = try code(Vocabulary.methodTable, "body.method", what: "collection method")
            case .legalBasis:
                f.legalBasis = try code(Vocabulary.legalBasisTable, "body.legalBasis", what: "DPV legal basis")
            case .notice:
                guard try reader.readMapHeader() == 3 else { throw bad("notice", "must have id, sha256 and version") }
                var nk = KeyOrder()
                guard try nk.next(&reader, in: "notice") == .id else { throw bad("notice", "first key must be id") }
                f.noticeID = try text()
                guard try nk.next(&reader, in: "notice") == .sha256 else {
                    throw bad("notice", "second key must be sha256")
                }
                f.noticeSHA256 = try digest("body.notice.sha256")
                guard try nk.next(&reader, in: "notice") == .version else {
                    throw bad("notice", "third key must be version")
                }
                f.noticeVersion = try text()
            case .occurredAt: f.occurredAt = try reader.readUnsigned()
            case .expiresAt: f.expiresAt = try reader.readUnsigned()
            case .evidence: f.evidence = try digest("body.evidence")
            case .interaction: f.interaction = try text()
            case .agent:
                let an = try reader.readMapHeader()
                guard an == 2 || an == 3 else { throw bad("agent", "must have id, kind and optionally onBehalfOf") }
                var ak = KeyOrder()
                guard try ak.next(&reader, in: "agent") == .id else { throw bad("agent", "first key must be id") }
                // A person is a 32-byte ref, software and devices a name: which one, the kind says after it.
                switch try reader.peekMajorType() {
                case 2:
                    f.agentIsRef = true
                    f.agentRef = try digest("body.agent.id")
                case 3: f.agentID = try text()
                default: throw bad("agent.id", "must be a 32-byte ref (a person) or a text name (software, device)")
                }
                guard try ak.next(&reader, in: "agent") == .kind else { throw bad("agent", "second key must be kind") }
                f.agentKind = try code(Vocabulary.agentKindTable, "body.agent.kind", what: "agent kind")
                if an == 3 {
                    guard try ak.next(&reader, in: "agent") == .onBehalfOf else {
                        throw bad("agent", "third key must be onBehalfOf")
                    }
                    f.onBehalfOf = try text()
                    f.hasOnBehalfOf = true
                }
            case .consentRef: f.consentRef = try ref("body.consentRef")
            case .derivedFrom:
                f.derivedFrom = try refs("body.derivedFrom")
                if f.derivedFrom.count == 0 { throw bad("derivedFrom", "an empty list is omitted, not written") }
            case .detail: f.detail = try digest("body.detail")
            case .recipient: f.recipient = try text()
            case .dataCategories:
                f.dataCategories = try codes(
                    Vocabulary.dataCategoryTable, "body.dataCategories", what: "DPV data category")
            case .subjects:
                guard try reader.readArrayHeader() == 2 else { throw bad("subjects", "must hold exactly two refs") }
                f.subject = try digest("body.subjects", 0)
                f.secondSubject = try digest("body.subjects", 1)
            default: throw bad(key.name, "unknown key in an entry body")
            }
        }
    }
}
