import Foundation
import ProvCrypto
import Testing

@testable import ProvLedger

@Suite struct EntryTests {
    let t: TestConsortium
    init() throws { t = try TestConsortium() }

    func entry(_ body: EntryBody, seq: UInt64 = 0) -> Entry {
        Entry(
            log: "acme/brand", seq: seq, prev: seq == 0 ? .zero : SHA256.hash("x"),
            hlc: HLC(wall: 1_795_521_600_000, counter: 3),
            deps: [EntryRef(org: "bank", seq: 9, leaf: SHA256.hash("b"))], body: body)
    }

    static let samples: [String] = [
        Events.consent(1),
        Events.interaction(2),
        #"{"type":"share","subject":"email:a@example.com","recipient":"retail","purposes":["dpv:DirectMarketing"],"dataCategories":["dpv:Contact","pd:EmailAddress"],"occurredAt":"2026-11-24T10:00:00Z"}"#,
        #"{"type":"link","subjects":["email:a@example.com","phone:+441632960001"],"evidence":"ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100","occurredAt":"2026-11-24T10:00:00Z"}"#,
        #"{"type":"unlink","subjects":["email:a@example.com","phone:+441632960001"],"occurredAt":"2026-11-24T10:00:00Z"}"#,
    ]

    @Test(arguments: samples)
    func canonicalRoundTrip(_ json: String) throws {
        let e = entry(try t.body(json))
        let bytes = e.encoded
        #expect(try Entry.decode(bytes) == e)
        // The generic strict decoder accepts it too (deterministic order of every map) and re-encodes it the same.
        #expect(try CBOR.decode(bytes).encoded == bytes)
    }

    /// An entry bundle carries lengths as uint16 (C2SP tlog-tiles), so no entry may be longer than 65,535 bytes.
    @Test func entriesAreAtMost65535Bytes() throws {
        #expect(Entry.maxSize == 65_535)
        // A well-formed map whose one text value pads it to exactly 65,536 bytes.
        var w = CBORWriter(reservingCapacity: 70_000)
        w.writeMapHeader(1)
        w.writeKey("v")
        w.writeText(String(repeating: "a", count: 65_536 - 1 - 2 - 3))
        let big = w.bytes
        #expect(big.count == 65_536)
        let e = ledgerError { _ = try Entry.decode(big) }
        #expect(e?.message.contains("65536 bytes, over 65535") == true, "\(e?.message ?? "accepted")")
        let ctx = AuditContext(consortium: t.consortium, org: "brand")
        #expect(throws: (any Error).self) { _ = try big.withUnsafeBytes { try Entry.audit($0, ctx) } }
    }

    /// A heads-only entry records what its writer had verified of other logs: it must cite at least one.
    @Test func headsEntriesCiteAtLeastOneHead() throws {
        let heads = entry(.heads(HeadsBody(occurredAt: 1_795_521_600_000)), seq: 4)
        var w = CBORWriter(reservingCapacity: 256)
        heads.encode(into: &w)
        let decoded = try Entry.decode(w.bytes)
        #expect(decoded == heads)
        let ctx = AuditContext(consortium: t.consortium, org: "brand")
        #expect(try w.bytes.withUnsafeBytes { try Entry.audit($0, ctx) }.kind == 5)
        var bare = heads
        bare.deps = []
        var w2 = CBORWriter(reservingCapacity: 256)
        bare.encode(into: &w2)
        #expect(ledgerError { _ = try Entry.decode(w2.bytes) }?.message.contains("a heads entry must cite") == true)
        #expect(throws: (any Error).self) { _ = try w2.bytes.withUnsafeBytes { try Entry.audit($0, ctx) } }
        // Input events cannot be of kind heads.
        #expect(ledgerError { _ = try t.body(#"{"type":"heads","occurredAt":"2026-11-24T10:00:00Z"}"#) } != nil)
    }

    @Test func nonCanonicalReencodingIsRejected() throws {
        let e = entry(try t.body(Events.consent(1)))
        var bytes = e.encoded
        // The map header says 8 keys; "v": 1 is the first pair. Re-encode the 1 as a two-byte integer (0x18 0x01).
        #expect(bytes[0] == 0xa8 && bytes[1] == 0x61 && bytes[2] == UInt8(ascii: "v") && bytes[3] == 0x01)
        bytes.replaceSubrange(3...3, with: [0x18, 0x01])
        #expect(throws: LedgerError.self) { try Entry.decode(bytes) }
        #expect(ledgerError { _ = try Entry.decode(bytes) }?.message.contains("not canonical") == true)
    }

    @Test func unsortedOrUnknownKeysAreRejected() throws {
        let e = entry(try t.body(Events.consent(1)))
        // Rebuild the top map with "log" and "hlc" swapped: same content, wrong order.
        guard case .map(var pairs) = try CBOR.decode(e.encoded) else { Issue.record("not a map"); return }
        pairs.swapAt(1, 2)
        var w = CBORWriter()
        w.writeMapHeader(pairs.count)
        for p in pairs {
            w.write(p.key)
            w.write(p.value)
        }
        #expect(throws: LedgerError.self) { try Entry.decode(w.bytes) }
        // An extra key is refused even in the right place.
        var w2 = CBORWriter()
        w2.writeMapHeader(pairs.count + 1)
        w2.write(.text("a"))
        w2.write(.null)
        pairs.swapAt(1, 2)
        for p in pairs {
            w2.write(p.key)
            w2.write(p.value)
        }
        #expect(throws: LedgerError.self) { try Entry.decode(w2.bytes) }
    }

    /// One kind table (Specs/format.md §3): each kind has one name and one number, and is known by its bytes.
    @Test func theKindTableNamesAndNumbersEachKindOnce() {
        #expect(EntryKind.allCases.map(\.rawValue) == ["consent", "interaction", "share", "link", "unlink", "heads"])
        for (i, k) in EntryKind.allCases.enumerated() {
            #expect(k.code == UInt8(i) && EntryKind(code: k.code) == k && EntryKind(rawValue: k.rawValue) == k)
            var name = k.rawValue
            #expect(name.withUTF8 { EntryKind(name: UnsafeRawBufferPointer($0)) } == k)
        }
        #expect(
            EntryKind(rawValue: "Consent") == nil && EntryKind(rawValue: "shar") == nil && EntryKind(code: 6) == nil)
        #expect(EntryKind.interaction.withArticle == "an interaction" && EntryKind.share.withArticle == "a share")
    }

    /// The verifier's audit reads entries with the decoder's reader and rules, then the consortium check: where it
    /// refuses an entry, it says what `prov verify` reports (Specs/format.md §12.2), in the same order.
    @Test func theAuditRefusesWithTheDecodersMessage() throws {
        let ctx = AuditContext(consortium: t.consortium, org: "brand")
        guard case .consent(let good) = try t.body(Events.consent(1)) else { throw LedgerError(.io, "not a consent") }
        func messages(_ b: ConsentBody, log: String = "acme/brand") -> (decode: String?, audit: String?) {
            var e = entry(.consent(b))
            e.log = log
            let bytes = e.encoded
            var decoded: String?
            do { let d = try Entry.decode(bytes); decoded = d.consortiumFailure(t.consortium) } catch {
                decoded = error.message
            }
            if decoded == nil && log != "acme/brand" { decoded = "entry belongs to log '\(log)', not 'acme/brand'" }
            var audited: String?
            do { _ = try bytes.withUnsafeBytes { try Entry.audit($0, ctx) } } catch {
                audited = (error as? LedgerError)?.message
            }
            return (decoded, audited)
        }
        #expect(messages(good) == (nil, nil))
        var b = good
        b.purposes = ["dpv:Marketing", "dpv:DirectMarketing"]
        #expect(messages(b).audit == "body.purposes: must be unique and in ascending order")
        #expect(messages(b).decode == messages(b).audit)
        b = good
        b.expiresAt = b.occurredAt
        #expect(messages(b).audit == "body.expiresAt: must be after occurredAt")
        #expect(messages(b).decode == messages(b).audit)
        b = good
        b.controllers = ["zeta"]
        #expect(messages(b).audit == "body.controllers: 'zeta' is not a consortium member")
        #expect(messages(b).decode == messages(b).audit)
        #expect(messages(good, log: "acme/retail").audit == "entry belongs to log 'acme/retail', not 'acme/brand'")
        #expect(messages(good, log: "acme/retail").decode == messages(good, log: "acme/retail").audit)
    }

    @Test func leafHashIsSHA256OfZeroPrefixAndBytes() throws {
        let bytes = entry(try t.body(Events.consent(1))).encoded
        #expect(Merkle.leafHash(bytes) == SHA256.hash([0] + bytes))
    }

    @Test func hlcNeverGoesBackwards() {
        let h = HLC(wall: 100, counter: 5)
        #expect(h.tick(now: 50) == HLC(wall: 100, counter: 6))
        #expect(h.tick(now: 200) == HLC(wall: 200, counter: 0))
        #expect(h.tick(now: 50, cited: HLC(wall: 150, counter: 2)) == HLC(wall: 150, counter: 3))
    }

    @Test func timestamps() {
        #expect(Timestamp.parse("1970-01-01T00:00:00Z") == 0)
        #expect(Timestamp.parse("2026-11-24T12:00:00Z") == 1_795_521_600_000)
        #expect(Timestamp.parse("2026-11-24T13:00:00.5+01:00") == 1_795_521_600_500)
        #expect(Timestamp.format(1_795_521_600_500) == "2026-11-24T12:00:00.500Z")
        for bad in [
            "2026-11-24", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-24T10:00:00",
            "2026-11-24T10:00:00.1234Z", "1969-12-31T23:59:59Z",
        ] {
            #expect(Timestamp.parse(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct EventValidationTests {
    let t: TestConsortium
    init() throws { t = try TestConsortium() }

    func error(_ json: String) -> String? {
        if let e = ledgerError({ _ = try t.body(json) }) { return e.message }
        return nil
    }

    static let cases: [(String, String)] = [
        (
            #"{"type":"consent","subject":"email:a@example.com","event":"give","purposes":["dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z","colour":"red"}"#,
            "field 'colour': unknown field"
        ),
        (
            #"{"type":"consent","subject":"email:a@example.com","event":"maybe","purposes":["dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'event': 'maybe' is not a known consent event"
        ),
        (
            #"{"type":"consent","subject":"email:a@example.com","event":"give","purposes":["dpv:Spamming"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'purposes[0]': 'dpv:Spamming' is not a known DPV purpose"
        ),
        (
            #"{"type":"interaction","subject":"email:a@example.com","channel":"web","interaction":"web-visit","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"jane.doe@brand.example","kind":"person"},"occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'agent.id': a person is given by their employee id"
        ),
        (
            #"{"type":"interaction","subject":"email:a@example.com","channel":"voice","interaction":"call-+441632960001","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"a1","kind":"person"},"occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'interaction': a value of 18 bytes is not an interaction type of the consortium's vocabulary"
        ),
        (
            #"{"type":"consent","subject":"email:a@example.com","event":"give","purposes":["dpv:Zzz","dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'purposes[0]': 'dpv:Zzz' is not a known DPV purpose"
        ),
        (
            #"{"type":"consent","subject":"email:a@example.com","event":"give","purposes":["dpv:DirectMarketing"],"controllers":["zeta","brand"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'controllers[0]': 'zeta' is not a consortium member"
        ),
        (
            #"{"type":"consent","subject":"cust:brand:a\u0011b","event":"give","purposes":["dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'subject': 'cust:' id must be 1-64 of A-Z a-z 0-9 . _ -"
        ),
        (
            #"{"type":"consent","subject":"email:a@example.com","event":"give","purposes":["dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"9999-12-31T23:59:59-01:00"}"#,
            "field 'occurredAt': '9999-12-31T23:59:59-01:00' is not an RFC 3339 time"
        ),
        (
            #"{"type":"consent","subject":"ref:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB","event":"give","purposes":["dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'subject': 'ref:' must be followed by 43 base64url characters"
        ),
        (
            #"{"type":"consent","subject":"email:a@example.com","event":"give","purposes":["dpv:DirectMarketing"],"channel":"fax","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'channel': 'fax' is not a known channel"
        ),
        (
            #"{"type":"consent","subject":"email:a@example.com","event":"give","purposes":["dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"yesterday"}"#,
            "field 'occurredAt': 'yesterday' is not an RFC 3339 time"
        ),
        (
            #"{"type":"consent","subject":"email:a@example.com","event":"give","purposes":["dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z","evidence":"abc"}"#,
            "field 'evidence': 'abc' is not 64 hex digits"
        ),
        (
            #"{"type":"consent","subject":"email:a@example.com","event":"give","purposes":["dpv:DirectMarketing"],"controllers":["acme-evil"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'controllers[0]': 'acme-evil' is not a consortium member"
        ),
        (
            #"{"type":"consent","subject":"alice","event":"give","purposes":["dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'subject': identifier needs a scheme"
        ),
        (
            #"{"type":"consent","subject":"phone:12345","event":"give","purposes":["dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'subject': 'phone:' needs an E.164 number"
        ),
        (
            #"{"type":"consent","subject":"email:a@example.com","event":"give","purposes":["dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z","expiresAt":"2026-11-23T10:00:00Z"}"#,
            "field 'expiresAt': must be after occurredAt"
        ),
        (
            #"{"type":"interaction","subject":"email:a@example.com","channel":"web","interaction":"web-visit","purposes":["dpv:DirectMarketing"],"legalBasis":"dpv:Consent","agent":{"id":"mailer","kind":"software"},"occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'consentRef': required when legalBasis is dpv:Consent"
        ),
        (
            #"{"type":"interaction","subject":"email:a@example.com","channel":"web","interaction":"web-visit","purposes":["dpv:DirectMarketing"],"legalBasis":"dpv:Consent","agent":{"id":"mailer","kind":"software"},"occurredAt":"2026-11-24T10:00:00Z","consentRef":{"org":"brand","seq":7}}"#,
            "field 'consentRef': no entry brand/7 on this node"
        ),
        (
            #"{"type":"interaction","subject":"email:a@example.com","channel":"web","interaction":"web-visit","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"mailer","kind":"robot"},"occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'agent.kind': 'robot' is not a known agent kind"
        ),
        (
            #"{"type":"share","subject":"email:a@example.com","recipient":"nobody","purposes":["dpv:DirectMarketing"],"dataCategories":["dpv:Contact"],"occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'recipient': 'nobody' is not a consortium member"
        ),
        (
            #"{"type":"link","subjects":["email:a@example.com","email:A@example.com"],"evidence":"ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100","occurredAt":"2026-11-24T10:00:00Z"}"#,
            "field 'subjects': both identifiers are the same subject"
        ),
        (#"{"type":"wish","occurredAt":"2026-11-24T10:00:00Z"}"#, "field 'type': 'wish' is not one of"),
        (#"[1,2]"#, "an event must be a JSON object"),
    ]

    @Test(arguments: cases)
    func badEventsNameTheField(_ c: (String, String)) {
        let message = error(c.0)
        #expect(message?.contains(c.1) == true, "got: \(message ?? "accepted")")
    }

    @Test func rawIdentifiersNeverReachTheEntry() throws {
        let body = try t.body(Events.consent(7))
        let bytes = Entry(log: "acme/brand", seq: 0, prev: .zero, hlc: HLC(wall: 1, counter: 0), body: body).encoded
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(!text.contains("user7"))
        #expect(!text.contains("example.com"))
        // Same person, other spelling: same ref.
        let a = try t.body(
            #"{"type":"consent","subject":"email:User7@Example.COM","event":"give","purposes":["dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#
        )
        #expect(a.subjects == body.subjects)
        // An existing ref passes through unchanged.
        let refText = SubjectRef.text(body.subjects[0])
        let b = try t.body(
            #"{"type":"consent","subject":"\#(refText)","event":"give","purposes":["dpv:DirectMarketing"],"channel":"web","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"2026-11-24T10:00:00Z"}"#
        )
        #expect(b.subjects == body.subjects)
    }
}
