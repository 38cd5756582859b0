import Foundation
import ProvCrypto
import TestSupport
import Testing

@testable import ProvLedger

/// The descriptor chain (Specs/format.md §9.5, §9.6): each version checked against the one before, its change, its
/// approvals and its quorum; each refusal says which version and why.
@Suite(.leavesNoFiles) struct ConsortiumChainTests {
    /// A first version of brand, retail and bank (majority: 2 of 3), and their signers.
    static func start() throws -> (ConsortiumChain, TestConsortium) {
        let t = try TestConsortium()
        return (try ConsortiumChain(first: t.consortium), t)
    }

    /// The JSON of the next version made by `change`, approved by `by` (their keys in `signers`), then altered by
    /// `edit`.
    static func next(
        _ chain: ConsortiumChain, _ change: ConsortiumChange, by: [String], signers: [String: NoteSigner],
        edit: (inout Consortium) -> Void = { _ in }
    ) throws -> JSONValue {
        var p = try ConsortiumProposal(changing: chain, with: change)
        for org in by { _ = try p.sign(with: signers[org]!) }
        var c = try p.nextVersion(of: chain)
        edit(&c)
        return c.json
    }

    static func failure(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no error"
        } catch let e as LedgerError { return e.message } catch { return "\(error)" }
    }

    static func newMember(_ org: String = "telco") throws -> (ConsortiumChange, NoteSigner) {
        let s = try NoteSigner(name: "acme/\(org)", privateKey: .generate())
        return (.add(org: org, name: "Telco", key: s.verifierKey, peer: "127.0.0.1:7404", api: nil), s)
    }

    @Test func aMemberAddedByAQuorumMakesVersionTwoAndTheFileHoldsTheWholeChain() throws {
        var (chain, t) = try Self.start()
        let (add, _) = try Self.newMember()
        try chain.append(try Self.next(chain, add, by: ["brand", "retail"], signers: t.signers))
        #expect(chain.current.version == 2)
        #expect(chain.current.previous == chain.versions[0].hash)
        #expect(chain.current.currentMembers.map(\.org) == ["brand", "retail", "bank", "telco"])
        #expect(chain.current.quorum == 3)
        // The file is the newest version with its history; read back, every version has the same hash.
        let back = try ConsortiumChain.parse(Array((chain.json.prettySerialized + "\n").utf8), source: "c.json")
        #expect(back.versions.map(\.hash) == chain.versions.map(\.hash))
        #expect(back.json["history"]?.arrayValue?.count == 1)
        // Whitespace and the order of fields do not change a version's hash: it is over the canonical form.
        guard case .object(let fields) = chain.versions[0].json else { return }
        let reordered = JSONValue.object(fields.reversed())
        #expect(try ConsortiumChain.hash(reordered, version: 1) == chain.versions[0].hash)
    }

    /// One version approved two ways (approvals in another order, or by another quorum) is one version: a member who
    /// re-posts a version with its approvals shuffled cannot split the history.
    @Test func copiesOfAVersionThatDifferInApprovalsOrFormAreOneVersion() throws {
        let (chain, t) = try Self.start()
        let (add, _) = try Self.newMember()
        let byAll = try Self.next(chain, add, by: ["brand", "retail", "bank"], signers: t.signers)
        let byTwo = try Self.next(chain, add, by: ["bank", "retail"], signers: t.signers)
        guard case .object(let fields) = byAll else { return }
        let shuffled = JSONValue.object(
            fields.map { f in
                guard f.key == "approvals", case .array(let a) = f.value else { return f }
                return JSONMember(f.key, .array(a.reversed()))
            })
        var a = chain
        var b = chain
        var c = chain
        try a.append(byAll)
        try b.append(shuffled)
        try c.append(byTwo)
        #expect(a.head.hash == b.head.hash && a.head.hash == c.head.hash)
        #expect(a.relation(to: b) == .same && a.relation(to: c) == .same)
        // A change of content is another version, whatever its approvals.
        let other = try Self.next(chain, .remove(org: "bank"), by: ["brand", "retail"], signers: t.signers)
        var d = chain
        try d.append(other)
        #expect(a.relation(to: d) == .diverges(at: 2))
    }

    @Test func aFirstVersionIsWrittenAsBeforeVersionsExisted() throws {
        let (chain, t) = try Self.start()
        #expect(chain.json == t.consortium.json)
        let keys = t.consortium.json.objectValue!.map(\.key)
        #expect(keys == ["consortium", "formatVersion", "linkKeyFingerprint", "vocabulary", "members"])
        #expect(
            t.consortium.json["members"]?.arrayValue?[0].objectValue?.map(\.key)
                == ["org", "name", "origin", "verifierKey", "peer", "api"])
    }

    struct Refusal: CustomTestStringConvertible, Sendable {
        var name: String
        var says: String
        var make: @Sendable (ConsortiumChain, TestConsortium) throws -> JSONValue
        var testDescription: String { name }
    }

    static let refusals: [Refusal] = [
        Refusal(name: "one approval of the two needed", says: "approved by 1 member (brand) where 2 are needed") {
            chain, t in try next(chain, try newMember().0, by: ["brand"], signers: t.signers)
        },
        Refusal(name: "a wrong previous hash", says: "it is not the version before this one") { chain, t in
            try next(chain, try newMember().0, by: ["brand", "retail"], signers: t.signers) {
                $0.previous = SHA256.hash("another")
            }
        },
        Refusal(name: "a version gap", says: "version 3 follows version 1: versions follow each other one by one") {
            chain, t in
            try next(chain, try newMember().0, by: ["brand", "retail"], signers: t.signers) { $0.version = 3 }
        },
        Refusal(
            name: "a signature by a non-member", says: "approvals[1] is by telco, which is not a member of version 1"
        ) { chain, t in
            let (add, telco) = try newMember()
            var p = try ConsortiumProposal(changing: chain, with: add)
            _ = try p.sign(with: t.signers["brand"]!)
            _ = try p.sign(with: telco)
            return try p.nextVersion(of: chain).json
        },
        Refusal(name: "the same signer twice", says: "brand signed twice with key") { chain, t in
            try next(chain, try newMember().0, by: ["brand", "retail"], signers: t.signers) {
                $0.approvals.append($0.approvals[0])
            }
        },
        Refusal(name: "an altered signature", says: "approvals[1] by retail (key") { chain, t in
            try next(chain, try newMember().0, by: ["brand", "retail"], signers: t.signers) {
                $0.approvals[1].signature[7] ^= 1
            }
        },
        Refusal(name: "approvals of another change", says: "does not verify: it was made for another change") {
            chain, t in
            var p = try ConsortiumProposal(changing: chain, with: .remove(org: "bank"))
            for o in ["brand", "retail"] { _ = try p.sign(with: t.signers[o]!) }
            var c = try chain.current.applying(.remove(org: "retail"))
            c.previous = chain.head.hash
            c.approvals = p.approvals
            return c.json
        },
        Refusal(
            name: "a threshold below a majority", says: "threshold 1 is out of range: with 3 members it must be from 2"
        ) { chain, t in
            try next(chain, .threshold(2), by: ["brand", "retail"], signers: t.signers) { $0.threshold = 1 }
        },
        Refusal(name: "members that do not follow from the change", says: "member brand has another name") {
            chain, t in
            try next(chain, try newMember().0, by: ["brand", "retail"], signers: t.signers) {
                $0.members[0].name = "Brand & Co"
            }
        },
        Refusal(name: "a rotation without the new key's signature", says: "the new key's is missing") { chain, t in
            let new = try NoteSigner(name: "acme/brand", privateKey: .generate())
            var p = try ConsortiumProposal(
                changing: chain, with: .rotate(org: "brand", key: new.verifierKey, fromSize: 9))
            _ = try p.sign(with: t.signers["brand"]!, newKey: new)
            _ = try p.sign(with: t.signers["retail"]!)
            var c = try p.nextVersion(of: chain)
            c.approvals.remove(at: 1)
            return c.json
        },
        Refusal(
            name: "a revocation approved by the revoked key", says: "a revoked key does not approve its own revocation"
        ) { chain, t in
            let new = try NoteSigner(name: "acme/retail", privateKey: .generate())
            return try next(
                chain, .revoke(org: "retail", key: new.verifierKey, fromSize: 4), by: ["retail", "brand", "bank"],
                signers: t.signers)
        },
    ]

    @Test(arguments: refusals) func aVersionIsRefusedWithAPreciseMessage(_ r: Refusal) throws {
        var (chain, t) = try Self.start()
        let json = try r.make(chain, t)
        let message = Self.failure { try chain.append(json) }
        #expect(message.contains(r.says), "\(message)")
        #expect(chain.versions.count == 1)
    }

    @Test func changesThatCannotApplyAreRefusedBeforeAnyoneSigns() throws {
        var (chain, t) = try Self.start()
        try chain.append(try Self.next(chain, .remove(org: "brand"), by: ["brand", "retail"], signers: t.signers))
        try chain.append(try Self.next(chain, .remove(org: "retail"), by: ["retail", "bank"], signers: t.signers))
        #expect(chain.current.currentMembers.map(\.org) == ["bank"])
        #expect(chain.current.members.map(\.removedIn) == [2, 3, nil])
        #expect(
            Self.failure { _ = try chain.current.applying(.remove(org: "bank")) }
                == "removing bank would leave no member")
        #expect(Self.failure { _ = try chain.current.applying(.threshold(2)) }.contains("threshold 2 is out of range"))
        #expect(
            Self.failure {
                _ = try chain.current.applying(
                    .add(org: "brand", name: "B", key: t.signers["brand"]!.verifierKey, peer: nil, api: nil))
            }
                == "brand was a member until version 2: an org id is not given again")
        #expect(
            Self.failure { _ = try chain.current.applying(.remove(org: "brand")) } == "brand was removed in version 2")
        let stranger = try NoteSigner(name: "acme/nobody", privateKey: .generate())
        #expect(
            Self.failure {
                _ = try chain.current.applying(.rotate(org: "nobody", key: stranger.verifierKey, fromSize: 1))
            }
                == "nobody is not a member of version 3")
        // A reserved org id, a key of another member, a key named for another log.
        let ev = try NoteSigner(name: "acme/evidence", privateKey: .generate())
        #expect(
            Self.failure {
                _ = try chain.current.applying(
                    .add(org: "evidence", name: "E", key: ev.verifierKey, peer: nil, api: nil))
            }
            .contains("org id 'evidence' is reserved"))
        let wrongName = try NoteSigner(name: "other/telco", privateKey: .generate())
        #expect(
            Self.failure {
                _ = try chain.current.applying(
                    .add(org: "telco", name: "T", key: wrongName.verifierKey, peer: nil, api: nil))
            }
            .contains("expected an Ed25519 key named 'acme/telco'"))
    }

    @Test func aRotatedKeySignsUpToItsSizeAndTheNewKeyPastIt() throws {
        var (chain, t) = try Self.start()
        let new = try NoteSigner(name: "acme/brand", privateKey: .generate())
        var p = try ConsortiumProposal(changing: chain, with: .rotate(org: "brand", key: new.verifierKey, fromSize: 10))
        _ = try p.sign(with: t.signers["brand"]!, newKey: new)
        _ = try p.sign(with: t.signers["bank"]!)
        try chain.append(try p.nextVersion(of: chain).json)
        let brand = try #require(chain.current.member("brand"))
        #expect(brand.key == new.verifierKey && brand.retiredKeys.map(\.lastSize) == [10])
        func cp(_ size: UInt64, _ signer: NoteSigner) throws -> SignedCheckpoint {
            try SignedCheckpoint.sign(
                Checkpoint(origin: "acme/brand", size: size, root: SHA256.hash("\(size)")), with: signer)
        }
        let old = t.signers["brand"]!
        #expect(brand.signatureFailure(try cp(10, old)) == nil)
        #expect(brand.signatureFailure(try cp(11, new)) == nil)
        let late = brand.signatureFailure(try cp(11, old)) ?? ""
        #expect(
            late.contains("is signed by brand's retired key") && late.contains("signs only up to size 10"), "\(late)")
        let early = brand.signatureFailure(try cp(3, new)) ?? ""
        #expect(early.contains("brand's current key") && early.contains("only past size 10"), "\(early)")
        // Both signature lines (a node preparing its rotation signs with both): valid on either side, and a copy
        // keeps both owner lines, the valid one first.
        var both = try cp(12, old)
        both.note.signatures.append(try new.sign(text: both.checkpoint.text))
        #expect(brand.signatureFailure(both) == nil)
        #expect(brand.ownerLines(both).map(\.keyID) == [new.verifierKey.keyID, old.verifierKey.keyID])
        // The rotation needs a size above the last one: the key in between would sign nothing.
        let newer = try NoteSigner(name: "acme/brand", privateKey: .generate())
        #expect(
            Self.failure { _ = try chain.current.applying(.rotate(org: "brand", key: newer.verifierKey, fromSize: 10)) }
                .contains("fromSize 10 is not above 10"))
        #expect(
            Self.failure { _ = try chain.current.applying(.rotate(org: "brand", key: old.verifierKey, fromSize: 20)) }
                .contains("was brand's key already"))
    }

    @Test func aProposalRoundTripsAndSaysWhoSigned() throws {
        let (chain, t) = try Self.start()
        let (add, _) = try Self.newMember()
        var p = try ConsortiumProposal(changing: chain, with: add)
        _ = try p.sign(with: t.signers["retail"]!)
        let back = try ConsortiumProposal(parsing: Array(p.json.prettySerialized.utf8), source: "p.json")
        #expect(back.signers(in: chain) == ["retail"])
        #expect(back.message == p.message)
        var again = back
        #expect(Self.failure { _ = try again.sign(with: t.signers["retail"]!) }.contains("holds retail's signature"))
        let other = try NoteSigner(name: "other/retail", privateKey: .generate())
        #expect(Self.failure { _ = try again.sign(with: other) }.contains("not a member of consortium acme"))
        #expect(
            Self.failure { _ = try ConsortiumProposal(parsing: Array("{}".utf8), source: "p.json") }
                .contains("p.json: not a consortium change proposal"))
        // The message names the purpose, the consortium, the version, the version it changes and the change.
        let lines = String(decoding: p.message, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(
            lines.prefix(4) == ["provenance-ledger consortium change v1", "acme", "2", Substring(chain.head.hash.hex)])
        #expect(lines[4].hasPrefix("{\"api\":null,\"name\":\"Telco\",\"org\":\"telco\",\"peer\":\"127.0.0.1:7404\""))
    }

    @Test func aDataDirectoryKeepsEveryVersionAndANodeTakesTheNewest() throws {
        var (chain, t) = try Self.start()
        let dir = try TemporaryFiles.directory("chain").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let given = chain
        try chain.append(try Self.next(chain, try Self.newMember().0, by: ["brand", "bank"], signers: t.signers))
        try ConsortiumFolder.store(chain, dataDirectory: dir)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: dir + "/consortium").sorted()
                == ["consortium.v1.json", "consortium.v2.json"])
        // Started with version 1, the stored version 2 is taken; the folder itself loads as a chain.
        let (taken, warnings) = try ConsortiumFolder.reconcile(given, dataDirectory: dir)
        #expect(taken.current.version == 2 && warnings.isEmpty)
        #expect(try ConsortiumChain.load(dir + "/consortium").current.version == 2)
        // A version 3 that does not follow is left out with a warning; another version 1 is an error.
        var bad = try Self.next(chain, .threshold(3), by: ["brand", "bank", "retail"], signers: t.signers)
        if case .object(var f) = bad {
            f.removeAll { $0.key == "approvals" }; f.append(JSONMember("approvals", .array([]))); bad = .object(f)
        }
        try Data(bad.prettySerialized.utf8).write(to: URL(fileURLWithPath: dir + "/consortium/consortium.v3.json"))
        let (kept, said) = try ConsortiumFolder.reconcile(given, dataDirectory: dir)
        #expect(kept.current.version == 2)
        #expect(said.first?.contains("consortium.v3.json does not follow from version 2") == true, "\(said)")
        let other = try TestConsortium()
        let message = Self.failure {
            _ = try ConsortiumFolder.reconcile(try ConsortiumChain(first: other.consortium), dataDirectory: dir)
        }
        #expect(message.contains("is another version 1 of the consortium"), "\(message)")
    }
}
