import Foundation
import ProvCrypto

/// A proposed change of the consortium descriptor and the approvals collected for it (Specs/format.md §9.8): made by
/// `prov consortium propose` from the newest version, signed by members one by one with `prov consortium sign`, and
/// turned into the next version by `prov consortium apply` once a quorum signed.
public struct ConsortiumProposal: Sendable {
    public static let format = "prov-consortium-proposal/v1"

    public var consortium: String
    /// The version the change makes.
    public var version: Int
    /// The hash of the version it changes.
    public var previous: SHA256Digest
    public var change: ConsortiumChange
    public var approvals: [ConsortiumApproval]

    /// A proposal to change the newest version of `chain`; refused when the change does not apply to it.
    public init(changing chain: ConsortiumChain, with change: ConsortiumChange) throws(LedgerError) {
        _ = try chain.current.applying(change)
        consortium = chain.current.name
        version = chain.current.version + 1
        previous = chain.head.hash
        self.change = change
        approvals = []
    }

    /// What every approval signs.
    public var message: [UInt8] {
        ConsortiumChange.message(consortium: consortium, version: version, previous: previous, change: change)
    }

    public var json: JSONValue {
        .object([
            JSONMember("format", .string(Self.format)), JSONMember("consortium", .string(consortium)),
            JSONMember("version", .number(String(version))), JSONMember("previous", .string(previous.hex)),
            JSONMember("change", change.json), JSONMember("approvals", .array(approvals.map(\.json))),
        ])
    }

    /// Reads a proposal file; errors start with `source`.
    public init(parsing bytes: [UInt8], source: String) throws(LedgerError) {
        func bad(_ why: String) -> LedgerError { LedgerError(.config, "\(source): \(why)") }
        if let why = FileKind.misplaced(bytes, expected: "a consortium change proposal") {
            throw LedgerError(.config, "\(source) \(why)")
        }
        let json: JSONValue
        do { json = try JSON.parse(bytes) } catch { throw bad("not valid JSON: \(error.located(in: bytes))") }
        guard let fields = json.objectValue else { throw bad("a proposal is a JSON object") }
        guard json["format"] == .string(Self.format) else {
            throw bad(
                "not a consortium change proposal (its format is not \(Self.format); prov consortium propose "
                    + "makes one)")
        }
        for f in fields where !["format", "consortium", "version", "previous", "change", "approvals"].contains(f.key) {
            throw bad("unknown field \(LedgerError.shown(f.key))")
        }
        guard let name = json["consortium"]?.stringValue, Vocabulary.isConsortiumName(name) else {
            throw bad("consortium must be a consortium name")
        }
        guard let v = json["version"]?.canonicalIntegerValue, v >= 2, v <= UInt64(Consortium.maxVersion) else {
            throw bad("version must be a whole number from 2 to \(Consortium.maxVersion)")
        }
        guard let p = json["previous"]?.stringValue, let d = SHA256Digest(hex: p), d.hex == p else {
            throw bad("previous must be 64 lower-case hex digits")
        }
        guard let c = json["change"] else { throw bad("no change") }
        let change: ConsortiumChange
        do { change = try ConsortiumChange(json: c) } catch { throw bad(error.message) }
        guard let list = json["approvals"]?.arrayValue, list.count <= Consortium.maxMembers + 1 else {
            throw bad("approvals must be an array of at most \(Consortium.maxMembers + 1)")
        }
        var approvals: [ConsortiumApproval] = []
        for (i, a) in list.enumerated() {
            do { approvals.append(try ConsortiumApproval(json: a, path: "approvals[\(i)]")) } catch {
                throw bad(error.message)
            }
        }
        consortium = name
        version = Int(v)
        previous = d
        self.change = change
        self.approvals = approvals
    }

    /// Adds the approval of the member whose key `signer` is (its name is `<consortium>/<org>`), and for a rotation
    /// of that member's own key the new key's too, which it must then give (`newKey`). Returns the orgs' approvals
    /// added. Nothing is checked against the descriptor here: `apply` does that.
    public mutating func sign(with signer: NoteSigner, newKey: NoteSigner? = nil) throws(LedgerError)
        -> [ConsortiumApproval]
    {
        let prefix = consortium + "/"
        let org = String(signer.name.dropFirst(prefix.count))
        guard signer.name.hasPrefix(prefix), Vocabulary.isOrgID(org) else {
            throw LedgerError(
                .config,
                "the key is for '\(signer.name)', not a member of consortium \(consortium): sign with a member's key "
                    + "(its name is \(consortium)/<org>)")
        }
        var added: [ConsortiumApproval] = []
        if case .rotate(let rotated, let key, _) = change, rotated == org {
            guard let newKey else {
                throw LedgerError(
                    .config,
                    "this proposal rotates \(org)'s key: \(org) signs it with its current key and with the new one "
                        + "(--new-key NEWKEYFILE), which proves it holds the new key")
            }
            guard newKey.verifierKey == key else {
                throw LedgerError(
                    .config,
                    "the new key given is \(String(format: "%08x", newKey.verifierKey.keyID)) for "
                        + "'\(newKey.name)', but the proposal rotates to \(String(format: "%08x", key.keyID))")
            }
            added.append(try signed(org, newKey))
        } else if newKey != nil {
            throw LedgerError(
                .config,
                "a new key signs only the rotation of its own member's key; this proposal is: \(change.summary)")
        }
        added.insert(try signed(org, signer), at: 0)
        approvals += added
        return added
    }

    private func signed(_ org: String, _ signer: NoteSigner) throws(LedgerError) -> ConsortiumApproval {
        if approvals.contains(where: { $0.org == org && $0.keyID == signer.verifierKey.keyID }) {
            throw LedgerError(
                .config,
                "the proposal holds \(org)'s signature by key \(String(format: "%08x", signer.verifierKey.keyID)) "
                    + "already")
        }
        do { return try ConsortiumApproval.sign(message, org: org, with: signer) } catch {
            throw LedgerError(.io, "cannot sign: \(error)")
        }
    }

    /// Why the proposal is not for the newest version of `chain`, or nil when it is.
    public func mismatch(_ chain: ConsortiumChain) -> String? {
        let c = chain.current
        guard consortium == c.name else {
            return "the proposal is for consortium \(consortium), the descriptor is of \(c.name)"
        }
        guard version == c.version + 1, previous == chain.head.hash else {
            return "the proposal changes version \(version - 1) (\(previous.hex.prefix(16))…), but the descriptor's "
                + "newest version is \(c.version) (\(chain.head.hash.hex.prefix(16))…): propose the change again from "
                + "the newest version"
        }
        return nil
    }

    /// The next version of `chain` the proposal makes, with its approvals (not checked: `ConsortiumChain.append`
    /// checks them).
    public func nextVersion(of chain: ConsortiumChain) throws(LedgerError) -> Consortium {
        if let why = mismatch(chain) { throw LedgerError(.config, why) }
        var next = try chain.current.applying(change)
        next.previous = previous
        next.approvals = approvals
        return next
    }

    /// The members whose approval by their key in the newest version of `chain` verifies, in the order signed (for
    /// a report: `ConsortiumChain.append` decides).
    public func signers(in chain: ConsortiumChain) -> [String] {
        let m = message
        var out: [String] = []
        for a in approvals where !out.contains(a.org) {
            if let member = chain.current.currentMember(a.org), a.verifies(m, with: member.key) { out.append(a.org) }
        }
        return out
    }
}
