import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// `prov verify` holds every reference an entry makes (`deps`, `consentRef`, `derivedFrom`) to the entry it
/// names: a log signed by its own key can still lie about what it cites, and the auditor must catch it.
@Suite(.leavesNoFiles) struct ReferenceTests {
    let t: TestConsortium
    init() throws { t = try TestConsortium() }

    func ingestor(_ dir: URL, _ org: String) throws -> Ingestor {
        try Ingestor(
            dataDirectory: dir.path, consortium: t.consortium, signer: t.signers[org]!, linkKey: t.linkKey,
            log: { _ in })
    }

    /// Appends `body` as its writer would, references and all, without the event parser's checks.
    func appendRaw(_ ing: Ingestor, _ body: EntryBody, deps: [EntryRef] = []) throws {
        var group = ing.store.beginGroup(now: Ingestor.now())
        _ = group.add(body, deps: deps)
        _ = try ing.store.commit(group, signer: ing.signer)
    }

    func interaction(consentRef: EntryRef?, derivedFrom: [EntryRef] = []) throws -> EntryBody {
        guard
            case .interaction(var b) = try t.body(
                #"{"type":"interaction","subject":"email:user0@example.com","channel":"voice","interaction":"support-call","purposes":["dpv:CustomerCare"],"legalBasis":"dpv:Contract","agent":{"id":"agent-42","kind":"person"},"occurredAt":"2026-11-24T10:00:00Z"}"#
            )
        else { throw LedgerError(.io, "not an interaction") }
        b.consentRef = consentRef
        b.derivedFrom = derivedFrom
        return .interaction(b)
    }

    func verify(_ dir: URL) throws -> [String: LogAudit] {
        let audits = try Verifier(consortium: t.consortium).verify(dataDirectory: dir.path)
        return Dictionary(uniqueKeysWithValues: audits.map { ($0.org, $0) })
    }

    @Test func trueReferencesAreCheckedAndCounted() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let brand = try ingestor(dir, "brand")
        let acks = try brand.append(Array(Events.lines(4).utf8))
        try appendRaw(
            brand,
            try interaction(
                consentRef: EntryRef(org: "brand", seq: 0, leaf: acks[0].leaf),
                derivedFrom: [EntryRef(org: "brand", seq: 2, leaf: acks[2].leaf)]))
        let retail = try ingestor(dir, "retail")
        try appendRaw(
            retail, try interaction(consentRef: nil, derivedFrom: [EntryRef(org: "brand", seq: 1, leaf: acks[1].leaf)]),
            deps: [EntryRef(org: "brand", seq: 3, leaf: acks[3].leaf)])
        let audits = try verify(dir)
        #expect(audits["brand"]?.ok == true && audits["retail"]?.ok == true, "\(audits)")
        #expect(audits["brand"]?.referencesChecked == 2)
        // retail cites brand/1 in derivedFrom and brand's head in deps.
        #expect(audits["retail"]?.referencesChecked == 2)
    }

    @Test func falseReferenceIntoTheSameLogFails() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let brand = try ingestor(dir, "brand")
        let acks = try brand.append(Array(Events.lines(4).utf8))
        let lie = SHA256.hash("a consent that never was")
        try appendRaw(brand, try interaction(consentRef: EntryRef(org: "brand", seq: 2, leaf: lie)))
        let a = try #require(try verify(dir)["brand"])
        #expect(
            a.failure
                == "brand seq 4: consentRef cites brand/2 with leaf \(lie.hex), but that entry's leaf is \(acks[2].leaf.hex)"
        )
        // A consentRef to an entry that is not a consent (seq 1 is an interaction), with its true leaf hash.
        let dir3 = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir3) }
        let b3 = try ingestor(dir3, "brand")
        let acks3 = try b3.append(Array(Events.lines(2).utf8))
        try appendRaw(b3, try interaction(consentRef: EntryRef(org: "brand", seq: 1, leaf: acks3[1].leaf)))
        let a3 = try #require(try verify(dir3)["brand"])
        #expect(
            a3.failure == "brand seq 2: consentRef cites brand/1, which is an interaction entry, not a consent entry")
        // Into another (valid) log, the same.
        let dir4 = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir4) }
        let acks4 = try ingestor(dir4, "brand").append(Array(Events.lines(2).utf8))
        let r4 = try ingestor(dir4, "retail")
        try appendRaw(r4, try interaction(consentRef: EntryRef(org: "brand", seq: 1, leaf: acks4[1].leaf)))
        #expect(
            try verify(dir4)["retail"]?.failure
                == "retail seq 0: consentRef cites brand/1, which is an interaction entry, not a consent entry")

        // Citing an entry that comes later is refused too.
        let dir2 = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir2) }
        let b2 = try ingestor(dir2, "brand")
        _ = try b2.append(Array(Events.lines(2).utf8))
        try appendRaw(b2, try interaction(consentRef: nil, derivedFrom: [EntryRef(org: "brand", seq: 7, leaf: lie)]))
        let a2 = try #require(try verify(dir2)["brand"])
        #expect(a2.failure == "brand seq 2: derivedFrom cites brand/7, which is not an earlier entry of this log")
    }

    @Test func falseReferenceToAnotherLogFailsAndMissingLogsAreCounted() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let brand = try ingestor(dir, "brand")
        let acks = try brand.append(Array(Events.lines(3).utf8))
        let retail = try ingestor(dir, "retail")
        let lie = SHA256.hash("forked brand entry")
        try appendRaw(
            retail, try interaction(consentRef: nil, derivedFrom: [EntryRef(org: "brand", seq: 1, leaf: lie)]))
        var audits = try verify(dir)
        #expect(audits["brand"]?.ok == true)
        #expect(
            audits["retail"]?.failure
                == "retail seq 0: derivedFrom cites brand/1 with leaf \(lie.hex), but brand/1 here has leaf "
                + "\(acks[1].leaf.hex): one of the two logs is not what was cited")

        // A false head in deps (a fork of brand's log, as retail saw it) is caught the same way.
        let dir2 = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir2) }
        _ = try ingestor(dir2, "brand").append(Array(Events.lines(3).utf8))
        let r2 = try ingestor(dir2, "retail")
        try appendRaw(r2, try interaction(consentRef: nil), deps: [EntryRef(org: "brand", seq: 2, leaf: lie)])
        audits = try verify(dir2)
        #expect(
            audits["retail"]?.failure?.hasPrefix("retail seq 0: deps cites brand/2 with leaf ") == true, "\(audits)")

        // A true head whose clock is ahead of the entry citing it: the citing log's clock went backwards.
        let dir3 = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir3) }
        let later = try ingestor(dir3, "brand").append(
            Array(Events.lines(3).utf8), now: Ingestor.now() + 3_600_000)
        let r3 = try ingestor(dir3, "retail")
        try appendRaw(r3, try interaction(consentRef: nil), deps: [EntryRef(org: "brand", seq: 2, leaf: later[2].leaf)])
        audits = try verify(dir3)
        let f = audits["retail"]?.failure ?? ""
        #expect(f.hasPrefix("retail seq 0: hlc ") && f.contains(" of brand/2, which it cites in deps"), "\(f)")

        // Without brand's log here, nothing can be compared: counted as a warning, not a failure.
        try FileManager.default.removeItem(atPath: dir.path + "/brand")
        audits = try verify(dir)
        let r = try #require(audits["retail"])
        #expect(r.failure == nil)
        #expect(
            r.warnings.contains(
                "1 reference to brand's log not checked: it is not in this directory or did not verify"))
    }
}
