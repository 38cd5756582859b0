import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger
@testable import ProvView

/// A fresh empty directory under the temporary folder, recorded for the check that no test leaves files behind;
/// the caller removes it.
func makeTempDir(_ tag: String = "prov-view") throws -> URL { try TemporaryFiles.directory(tag) }

/// 2026-11-24T12:00:00Z in ms: the clock the tests start from.
let t0: UInt64 = 1_795_521_600_000

func iso(_ ms: UInt64) -> String { Timestamp.format(ms) }

/// A consortium of three companies (a sports brand, a retailer, a contact centre), each writing its own log into
/// one data directory through the ledger's own store, with the clock and the cited heads under the test's control.
final class Ledger {
    let dir: URL
    let consortium: Consortium
    let signers: [String: NoteSigner]
    let linkKey: LinkKey
    private(set) var stores: [String: LogStore] = [:]
    /// The highest seq of each other log each log has cited in deps.
    private var cited: [String: [String: UInt64]] = [:]

    init(orgs: [String] = ["brand", "retail", "care"], name: String = "acme") throws {
        dir = try makeTempDir()
        (consortium, signers, linkKey) = try Consortium.withFreshKeys(
            name: name, orgs: orgs, displayName: { $0.prefix(1).uppercased() + $0.dropFirst() })
        for org in orgs {
            stores[org] = try LogStore(
                dataDirectory: dir.path, consortium: name, org: org, writable: true, log: { _ in })
        }
    }

    func remove() { try? FileManager.default.removeItem(at: dir) }

    func ref(_ identifier: String) throws -> SHA256Digest {
        guard case .success(let n) = SubjectRef.normalise(identifier, consortium: consortium) else {
            throw ViewError(.badParameter, "bad identifier in test")
        }
        return linkKey.ref(for: n)
    }

    func refText(_ identifier: String) throws -> String { SubjectRef.text(try ref(identifier)) }

    /// Appends one event (JSON as `prov append` takes it) to `org`'s log as one group commit at clock `now`.
    /// `sees` names, for each other org, the last seq `org` has seen of it (cited in `deps` when it moved);
    /// by default every other log's head.
    @discardableResult
    func append(_ org: String, _ json: String, now: UInt64, sees: [String: UInt64]? = nil) throws -> EntryRef {
        let store = stores[org]!
        let parser = EventParser(consortium: consortium, org: org, linkKey: linkKey) { o, seq in
            guard let s = self.stores[o], seq < s.size, let e = try? s.entry(seq), let leaf = try? s.leafHash(seq)
            else { return nil }
            return ReferencedEntry(leaf: leaf, kind: e.body.kind, subjects: e.body.subjects)
        }
        let body = try parser.parse(try JSON.parse(json))
        var deps: [EntryRef] = []
        var citedHLC: HLC?
        let heads = sees ?? stores.compactMapValues { $0.size > 0 ? $0.size - 1 : nil }.filter { $0.key != org }
        for (o, seq) in heads.sorted(by: { $0.key < $1.key }) where o != org {
            if let c = cited[org]?[o], c >= seq { continue }
            let s = stores[o]!
            deps.append(EntryRef(org: o, seq: seq, leaf: try s.leafHash(seq)))
            let h = try s.entry(seq).hlc
            citedHLC = max(citedHLC ?? h, h)
            cited[org, default: [:]][o] = seq
        }
        let acks = try store.append([body], signer: signers[org]!, now: now, deps: deps, citedHLC: citedHLC)
        return EntryRef(org: org, seq: acks[0].seq, leaf: acks[0].leaf)
    }

    /// Every committed entry as (org, seq, leaf, bytes), log by log.
    func entries() throws -> [(org: String, seq: UInt64, leaf: SHA256Digest, bytes: [UInt8])] {
        var out: [(String, UInt64, SHA256Digest, [UInt8])] = []
        for (org, s) in stores.sorted(by: { $0.key < $1.key }) {
            for seq in 0..<s.size { out.append((org, seq, try s.leafHash(seq), try s.entryBytes(seq))) }
        }
        return out
    }

    /// A new index fed every log entry by entry, interleaving the logs in the order `order` gives (a list of orgs,
    /// one item per entry to take next from that log), then committed.
    func index(order: [String]? = nil) throws -> ViewIndex {
        let index = ViewIndex(consortium: consortium, linkKey: linkKey)
        var next: [String: UInt64] = [:]
        let sequence =
            order ?? stores.keys.sorted().flatMap { org in Array(repeating: org, count: Int(stores[org]!.size)) }
        for org in sequence {
            let s = stores[org]!
            let seq = next[org, default: 0]
            guard seq < s.size else { continue }
            try index.ingest(org: org, seq: seq, leaf: try s.leafHash(seq), entryBytes: try s.entryBytes(seq))
            next[org] = seq + 1
        }
        for (org, s) in stores where s.size > 0 {
            try index.commit(org: org, size: s.size, checkpoint: s.latest!)
        }
        return index
    }

    /// A random interleaving of all entries (each log still in seq order).
    func shuffledOrder(seed: UInt64) -> [String] {
        var rng = SplitMix64(seed: seed)
        var remaining = stores.mapValues { Int($0.size) }
        var out: [String] = []
        while !remaining.values.allSatisfy({ $0 == 0 }) {
            let candidates = remaining.filter { $0.value > 0 }.keys.sorted()
            let o = candidates[Int(rng.next() % UInt64(candidates.count))]
            out.append(o)
            remaining[o]! -= 1
        }
        return out
    }
}

/// Consent events as JSON input lines.
enum Event {
    static func consent(
        _ subject: String, _ event: String, purposes: [String] = ["dpv:DirectMarketing"],
        controllers: [String] = ["brand"],
        recipients: [String] = [], channel: String = "web", occurred: UInt64 = t0 - 3_600_000, expires: UInt64? = nil,
        notice: (id: String, version: String)? = nil
    ) -> String {
        var s =
            #"{"type":"consent","subject":"\#(subject)","event":"\#(event)","purposes":\#(list(purposes)),"controllers":\#(list(controllers)),"channel":"\#(channel)","method":"web-form","legalBasis":"dpv:Consent","occurredAt":"\#(iso(occurred))""#
        if !recipients.isEmpty { s += #","recipients":\#(list(recipients))"# }
        if let expires { s += #","expiresAt":"\#(iso(expires))""# }
        if let n = notice {
            s +=
                #","notice":{"id":"\#(n.id)","version":"\#(n.version)","sha256":"\#(String(repeating: "cd", count: 32))"}"#
        }
        return s + "}"
    }

    static func interaction(
        _ subject: String, purposes: [String] = ["dpv:DirectMarketing"], basis: String = "dpv:Consent",
        consentRef: EntryRef? = nil, channel: String = "email", type: String = "newsletter", agent: String = "mailer",
        agentKind: String = "software", onBehalfOf: String? = nil, occurred: UInt64 = t0, derivedFrom: [EntryRef] = []
    ) -> String {
        var s =
            #"{"type":"interaction","subject":"\#(subject)","channel":"\#(channel)","interaction":"\#(type)","purposes":\#(list(purposes)),"legalBasis":"\#(basis)","occurredAt":"\#(iso(occurred))","agent":{"id":"\#(agent)","kind":"\#(agentKind)""#
        if let onBehalfOf { s += #","onBehalfOf":"\#(onBehalfOf)""# }
        s += "}"
        if let r = consentRef { s += #","consentRef":{"org":"\#(r.org)","seq":\#(r.seq)}"# }
        if !derivedFrom.isEmpty {
            s +=
                #","derivedFrom":[\#(derivedFrom.map { #"{"org":"\#($0.org)","seq":\#($0.seq)}"# }.joined(separator: ","))]"#
        }
        return s + "}"
    }

    static func share(
        _ subject: String, to recipient: String, purposes: [String] = ["dpv:DirectMarketing"],
        categories: [String] = ["dpv:Contact"], derivedFrom: [EntryRef] = [], occurred: UInt64 = t0
    ) -> String {
        var s =
            #"{"type":"share","subject":"\#(subject)","recipient":"\#(recipient)","purposes":\#(list(purposes)),"dataCategories":\#(list(categories)),"occurredAt":"\#(iso(occurred))""#
        if !derivedFrom.isEmpty {
            s +=
                #","derivedFrom":[\#(derivedFrom.map { #"{"org":"\#($0.org)","seq":\#($0.seq)}"# }.joined(separator: ","))]"#
        }
        return s + "}"
    }

    static func link(_ a: String, _ b: String, unlink: Bool = false, occurred: UInt64 = t0) -> String {
        let evidence = unlink ? "" : #","evidence":"\#(String(repeating: "ab", count: 32))""#
        return
            #"{"type":"\#(unlink ? "unlink" : "link")","subjects":["\#(a)","\#(b)"],"occurredAt":"\#(iso(occurred))"\#(evidence)}"#
    }

    static func list(_ l: [String]) -> String { "[" + l.map { "\"\($0)\"" }.joined(separator: ",") + "]" }
}
