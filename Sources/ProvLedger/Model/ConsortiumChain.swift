import Foundation
import ProvCrypto

/// The versions of a consortium descriptor, from the first (Specs/format.md §9.5): each version after the first
/// names the hash of the one before, the change that made it, and the approvals of a quorum of the members of the
/// one before. A chain is checked from its first version on; a version that does not follow from the one before,
/// or lacks its quorum, is refused with a message that says which version and why. The newest version is the one
/// every check uses; the earlier ones are kept so that anyone can check it offline.
public struct ConsortiumChain: Sendable {
    /// One version: the descriptor, its JSON as it stands in the file (what its hash covers), and the hash.
    public struct Version: Sendable {
        public let consortium: Consortium
        public let json: JSONValue
        public let hash: SHA256Digest
    }

    public private(set) var versions: [Version]

    /// A descriptor file, a version file of a data directory, or a chain posted to a node holds at most this many
    /// bytes (Specs/format.md §9.1).
    public static let maxFileSize = 1 << 20

    /// The newest version.
    public var current: Consortium { versions[versions.count - 1].consortium }
    public var head: Version { versions[versions.count - 1] }

    /// A chain of one first version.
    public init(first: Consortium) throws(LedgerError) { try self.init(versions: [first.json]) }

    /// Checks `versions` (JSON objects, oldest first, the first being version 1) in order. Messages start with the
    /// version they are about: `version 3: …`.
    public init(versions jsons: [JSONValue]) throws(LedgerError) {
        guard let first = jsons.first else { throw LedgerError(.config, "a consortium chain needs version 1") }
        let v1 = try Self.version(first, at: 1)
        guard v1.consortium.version == 1 else {
            throw LedgerError(
                .config,
                "the chain starts at version \(v1.consortium.version): version 1, the first, is missing (each "
                    + "version is checked against the one before it, from the first)")
        }
        versions = [v1]
        for j in jsons.dropFirst() { try append(j) }
    }

    /// Checks `json` as the next version and adds it.
    public mutating func append(_ json: JSONValue) throws(LedgerError) {
        let next = try Self.version(json, at: head.consortium.version + 1)
        try Self.check(next.consortium, after: head)
        versions.append(next)
    }

    /// Parses one version and hashes it; errors start with the version it was expected to be.
    static func version(_ json: JSONValue, at n: Int) throws(LedgerError) -> Version {
        let c = try parse(json, at: n)
        guard json.canonicalBytes != nil else { throw noCanonicalForm(c.version) }
        return Version(consortium: c, json: json, hash: try hash(of: c))
    }

    static func parse(_ json: JSONValue, at n: Int) throws(LedgerError) -> Consortium {
        do { return try Consortium(json: json) } catch let e as LedgerError {
            throw LedgerError(.config, "version \(n): \(e.message)")
        } catch { throw LedgerError(.config, "version \(n): \(error)") }
    }

    /// The hash of a version as it stands in a file (Specs/format.md §9.5, Hash): what `previous` of the next version
    /// names.
    public static func hash(_ json: JSONValue, version: Int) throws(LedgerError) -> SHA256Digest {
        try hash(of: try parse(json, at: version))
    }

    /// SHA-256 of the RFC 8785 form of the version as `Consortium.json` writes it, without its approvals
    /// (Specs/format.md §9.5, Hash). Written again, every way of writing one version (fields in any order, `null` or
    /// no `peer`, codes in any order) has one hash; without approvals, two copies of a version that differ only in
    /// which quorum approved it, or in what order, are one version, so nobody can split the history by re-posting
    /// a version with its approvals shuffled. The approvals sign the change and the hash of the version before,
    /// which decide everything else a version holds (§9.5 step 4).
    public static func hash(of c: Consortium) throws(LedgerError) -> SHA256Digest {
        guard case .object(let fields) = c.json,
            let bytes = JSONValue.object(fields.filter { $0.key != "approvals" }).canonicalBytes
        else { throw noCanonicalForm(c.version) }
        return SHA256.hash(bytes)
    }

    static func noCanonicalForm(_ version: Int) -> LedgerError {
        LedgerError(
            .config,
            "version \(version) has no canonical form: every number in a descriptor is a whole number from 0 to "
                + "\(JSONValue.maxCanonicalInteger) without sign, fraction or exponent")
    }

    // MARK: The rules between two versions

    /// Checks `next` against the version before it (Specs/format.md §9.5 steps 1–5).
    public static func check(_ next: Consortium, after prev: Version) throws(LedgerError) {
        let p = prev.consortium
        let n = next.version
        func bad(_ why: String) -> LedgerError { LedgerError(.config, "version \(n): \(why)") }
        guard n == p.version + 1 else {
            throw LedgerError(
                .config,
                "version \(n) follows version \(p.version): versions follow each other one by one (version "
                    + "\(p.version + 1) is missing)")
        }
        guard next.previous == prev.hash else {
            throw bad(
                "previous is \(next.previous?.hex.prefix(16) ?? "missing")…, but version \(p.version) hashes to "
                    + "\(prev.hash.hex.prefix(16))…: it is not the version before this one (changed, or another one)")
        }
        guard next.name == p.name else {
            throw bad("it is a version of consortium \(next.name), the version before is of \(p.name)")
        }
        guard next.linkKeyFingerprint == p.linkKeyFingerprint else {
            throw bad(
                "linkKeyFingerprint differs from version \(p.version)'s: no change replaces the linking key "
                    + "(Specs/format.md §9.7)")
        }
        guard next.vocabulary == p.vocabulary else {
            throw bad("vocabulary differs from version \(p.version)'s: no change of a version alters the vocabulary")
        }
        guard let change = next.change else { throw bad("no change") }
        let expected: Consortium
        do { expected = try p.applying(change) } catch { throw bad("change (\(change.summary)): \(error.message)") }
        if let d = expected.difference(next) {
            throw bad("\(d), which is not what its change (\(change.summary)) makes of version \(p.version)")
        }
        _ = try approvers(of: next, after: prev)
    }

    /// The members whose approvals of `next` count, checked against the version before (§9.5 step 5): each approval
    /// by a member of that version with its key there (or, for its own rotation, the new key), none twice, each
    /// verifying; at least the quorum of that version; a rotation signed by the member with both keys; no approval
    /// of a revocation by the key it revokes.
    public static func approvers(of next: Consortium, after prev: Version) throws(LedgerError) -> [String] {
        let p = prev.consortium
        let n = next.version
        guard let change = next.change else { throw LedgerError(.config, "version \(n): no change") }
        func bad(_ why: String) -> LedgerError { LedgerError(.config, "version \(n): \(why)") }
        let message = ConsortiumChange.message(
            consortium: p.name, version: n, previous: prev.hash, change: change)
        var seen: [String: Int] = [:]
        var approvers: [String] = []
        var newKeySigned = false
        for (i, a) in next.approvals.enumerated() {
            guard let m = p.currentMember(a.org) else {
                let removed = p.member(a.org).map { " (removed in version \($0.removedIn ?? 0))" } ?? ""
                throw bad("approvals[\(i)] is by \(a.org), which is not a member of version \(p.version)\(removed)")
            }
            let key: NoteVerifierKey
            if a.keyID == m.key.keyID {
                key = m.key
                if case .revoke(let org, _, _) = change, org == a.org {
                    throw bad(
                        "approvals[\(i)] is by \(a.org) with the key this change revokes (\(a.keyIDHex)): a revoked "
                            + "key does not approve its own revocation")
                }
            } else if case .rotate(let org, let new, _) = change, org == a.org, a.keyID == new.keyID {
                key = new
            } else {
                throw bad(
                    "approvals[\(i)] by \(a.org) is signed with key \(a.keyIDHex), which is not \(a.org)'s key in "
                        + "version \(p.version) (\(String(format: "%08x", m.key.keyID)))")
            }
            let id = "\(a.org) \(a.keyIDHex)"
            if let j = seen[id] {
                throw bad("approvals[\(i)]: \(a.org) signed twice with key \(a.keyIDHex) (approvals[\(j)] and [\(i)])")
            }
            seen[id] = i
            guard a.verifies(message, with: key) else {
                throw bad(
                    "approvals[\(i)] by \(a.org) (key \(a.keyIDHex)) does not verify: it was made for another change, "
                        + "version or consortium, or was altered")
            }
            if key == m.key { approvers.append(a.org) } else { newKeySigned = true }
        }
        if case .rotate(let org, let new, _) = change {
            let old = p.currentMember(org)?.key
            guard approvers.contains(org), newKeySigned else {
                throw bad(
                    "the rotation of \(org)'s key needs \(org)'s own signatures with its key "
                        + "\(old.map { String(format: "%08x", $0.keyID) } ?? "?") and with the new key "
                        + "\(String(format: "%08x", new.keyID)) (prov consortium sign --key … --new-key …): "
                        + (approvers.contains(org) ? "the new key's is missing" : "the current key's is missing"))
            }
        }
        guard approvers.count >= p.quorum else {
            throw bad(
                "approved by \(Phrase.count(approvers.count, "member"))"
                    + (approvers.isEmpty ? "" : " (\(approvers.joined(separator: ", ")))")
                    + " where \(p.quorum) are needed (\(p.quorumDescription))")
        }
        return approvers
    }

    // MARK: The file

    /// The chain as one file (Specs/format.md §9.5): the newest version's fields, and `history`, the versions
    /// before it, oldest first. A chain of version 1 alone is that version, as it was written.
    public var json: JSONValue {
        guard versions.count > 1, case .object(var top) = head.json else { return head.json }
        top.append(JSONMember("history", .array(versions.dropLast().map(\.json))))
        return .object(top)
    }

    /// Why the chain's file would be more than a descriptor file may hold (`maxFileSize`, Specs/format.md §9.5), or
    /// nil: such a chain is refused where it is made (`prov consortium apply`) and where it is offered, so that every
    /// node and every auditor can still read the file.
    public var fileSizeFailure: String? {
        let size = (json.prettySerialized + "\n").utf8.count
        guard size > Self.maxFileSize else { return nil }
        return "version \(current.version): the chain's file would be \(size) bytes, over the \(Self.maxFileSize) a "
            + "descriptor file may hold (Specs/format.md §9.5)"
    }

    /// Writes the chain file atomically (`prettySerialized`, a final LF).
    public func write(to path: String) throws(LedgerError) {
        do {
            try Data((json.prettySerialized + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw LedgerError(.io, "cannot write \(path): \(error.localizedDescription)")
        }
    }

    /// Reads a chain file's JSON: one version, or the newest with its `history`.
    public init(json: JSONValue) throws(LedgerError) { try self.init(versions: try Self.versions(in: json)) }

    /// The versions a chain file's JSON holds, oldest first, not yet checked: its `history`, then itself without it.
    public static func versions(in json: JSONValue) throws(LedgerError) -> [JSONValue] {
        guard case .object(var top) = json else {
            throw LedgerError(.config, "consortium descriptor must be a JSON object")
        }
        var older: [JSONValue] = []
        if let i = top.firstIndex(where: { $0.key == "history" }) {
            guard let list = top[i].value.arrayValue, !list.isEmpty, list.count < Consortium.maxVersion else {
                throw LedgerError(
                    .config, "consortium descriptor: history must be a non-empty array of the versions before")
            }
            for (k, v) in list.enumerated() where v["history"] != nil {
                throw LedgerError(.config, "consortium descriptor: history[\(k)] holds a history of its own")
            }
            older = list
            top.remove(at: i)
        }
        return older + [.object(top)]
    }

    /// Reads a descriptor file (one version, or a chain) or a folder of `consortium.v<N>.json` files, and checks the
    /// chain from its first version. Errors start with the path.
    public static func load(_ path: String) throws(LedgerError) -> ConsortiumChain {
        let versions = try readVersions(path)
        do { return try ConsortiumChain(versions: versions) } catch {
            throw LedgerError(.config, "\(path): \(error.message)")
        }
    }

    /// The versions a descriptor file or a folder of version files holds, oldest first, parsed as JSON but not yet
    /// checked (`prov consortium verify` checks them one by one).
    public static func readVersions(_ path: String) throws(LedgerError) -> [JSONValue] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw LedgerError(.config, "consortium descriptor \(path): no such file")
        }
        if isDirectory.boolValue {
            let found = try ConsortiumFolder.read(folder: path)
            guard !found.versions.isEmpty else {
                throw LedgerError(
                    .config,
                    "consortium descriptor \(path) is a directory without consortium.v<N>.json files: give the "
                        + "descriptor file, or a folder of its versions")
            }
            if let gap = found.gap { throw LedgerError(.config, "\(path): \(gap)") }
            var jsons: [JSONValue] = []
            for f in found.versions { jsons.append(try ConsortiumFolder.readVersion(f.path)) }
            return jsons
        }
        // Read to its end, so that a pipe works too (`--consortium <(...)`).
        guard let handle = FileHandle(forReadingAtPath: path), let d = try? handle.readToEnd() ?? Data() else {
            throw LedgerError(.config, "cannot read consortium descriptor \(path) (permissions?)")
        }
        return try versions(parsing: Array(d), source: path)
    }

    /// The versions of a descriptor file's bytes (`source` names it in messages), not yet checked.
    public static func versions(parsing data: [UInt8], source: String) throws(LedgerError) -> [JSONValue] {
        if let why = FileKind.misplaced(data, expected: "a JSON consortium descriptor") {
            throw LedgerError(.config, "\(source) \(why)")
        }
        let json: JSONValue
        do { json = try JSON.parse(data) } catch {
            throw LedgerError(.config, "\(source): not valid JSON: \(error.located(in: data))")
        }
        do { return try versions(in: json) } catch { throw LedgerError(.config, "\(source): \(error.message)") }
    }

    /// Parses a descriptor file's bytes (`source` names it in messages) and checks the chain.
    public static func parse(_ data: [UInt8], source: String) throws(LedgerError) -> ConsortiumChain {
        let versions = try versions(parsing: data, source: source)
        do { return try ConsortiumChain(versions: versions) } catch {
            throw LedgerError(.config, "\(source): \(error.message)")
        }
    }

    // MARK: Two chains

    /// How `other` stands to this chain: the same, newer (it extends this one), older (this one extends it), or
    /// neither (they differ at a version both hold).
    public enum Relation: Equatable, Sendable {
        case same, newer, older
        /// They differ from this version on.
        case diverges(at: Int)
    }

    /// What `jsons` (a chain offered by a peer or an operator, oldest first) is to this chain, checking no more than
    /// needed: its versions up to this chain's length are compared with this chain's by hash (this chain was checked
    /// when it was made), and only the versions after it are checked, approvals and all. A chain that differs from
    /// this one at a version this one holds is `diverges` without a signature checked: nothing of it is taken. A
    /// version that is no descriptor at all throws, as when a chain is made.
    public func offer(_ jsons: [JSONValue]) throws(LedgerError) -> (Relation, ConsortiumChain?) {
        for (held, json) in zip(versions, jsons) {
            guard try Self.hash(json, version: held.consortium.version) == held.hash else {
                return (.diverges(at: held.consortium.version), nil)
            }
        }
        guard jsons.count > versions.count else { return (jsons.count == versions.count ? .same : .older, nil) }
        var next = self
        for j in jsons.dropFirst(versions.count) { try next.append(j) }
        return (.newer, next)
    }

    public func relation(to other: ConsortiumChain) -> Relation {
        for (a, b) in zip(versions, other.versions) where a.hash != b.hash {
            return .diverges(at: a.consortium.version)
        }
        if other.versions.count == versions.count { return .same }
        return other.versions.count > versions.count ? .newer : .older
    }
}

extension Consortium {
    /// How the quorum of this version is set, in words.
    var quorumDescription: String {
        threshold.map { "the threshold of version \(version) is \($0)" }
            ?? "a majority of the \(Phrase.count(currentMembers.count, "member")) of version \(version)"
    }

    /// The next version as `change` makes it of this one (Specs/format.md §9.5), without approvals: refused, with the
    /// reason, when the change does not apply to this version.
    public func applying(_ change: ConsortiumChange) throws(LedgerError) -> Consortium {
        var members = self.members
        var threshold = self.threshold
        let next = version + 1
        func notCurrent(_ org: String) -> LedgerError {
            guard let m = member(org) else {
                return LedgerError(.config, "\(org) is not a member of version \(version)")
            }
            return LedgerError(.config, "\(org) was removed in version \(m.removedIn ?? 0)")
        }
        func checkNewKey(_ key: NoteVerifierKey, for org: String) throws(LedgerError) {
            guard key.name == origin(of: org), key.type == .ed25519 else {
                throw LedgerError(
                    .config, "the verifier key is for '\(key.name)', expected an Ed25519 key named '\(origin(of: org))'"
                )
            }
            for m in members {
                for k in m.allKeys where k.publicKey == key.publicKey {
                    throw LedgerError(
                        .config,
                        m.org == org
                            ? "key \(ConsortiumChange.keyID(key)) was \(org)'s key already: a key is not used twice"
                            : "key \(ConsortiumChange.keyID(key)) is \(m.org)'s: every member has keys of its own")
                }
            }
        }
        switch change {
        case .add(let org, let name, let key, let peer, let api):
            if let m = member(org) {
                throw LedgerError(
                    .config,
                    m.isCurrent
                        ? "\(org) is a member already"
                        : "\(org) was a member until version \(m.removedIn ?? 0): an org id is not given again")
            }
            if let why = Self.reservedOrgIDs[org] { throw LedgerError(.config, "org id '\(org)' is reserved: \(why)") }
            try checkNewKey(key, for: org)
            let n = currentMembers.count + 1
            if let t = threshold, Self.thresholdFailure(t, members: n) != nil {
                throw LedgerError(
                    .config,
                    "adding \(org) makes \(n) members, for which threshold \(t) is not a majority: raise the threshold "
                        + "first")
            }
            members.append(Member(org: org, name: name, origin: origin(of: org), key: key, peer: peer, api: api))
        case .remove(let org):
            guard let i = members.firstIndex(where: { $0.org == org && $0.isCurrent }) else { throw notCurrent(org) }
            let left = currentMembers.count - 1
            guard left > 0 else { throw LedgerError(.config, "removing \(org) would leave no member") }
            if let t = threshold, t > left {
                throw LedgerError(
                    .config,
                    "removing \(org) leaves \(Phrase.count(left, "member")), fewer than the threshold \(t): lower "
                        + "the threshold first")
            }
            members[i].removedIn = next
        case .threshold(let t):
            if let why = Self.thresholdFailure(t, members: currentMembers.count) {
                throw LedgerError(.config, why)
            }
            guard t != self.threshold else { throw LedgerError(.config, "the threshold is \(t) already") }
            threshold = t
        case .rotate(let org, let key, let n), .revoke(let org, let key, let n):
            guard let i = members.firstIndex(where: { $0.org == org && $0.isCurrent }) else { throw notCurrent(org) }
            try checkNewKey(key, for: org)
            if let last = members[i].retiredKeys.last, n <= last.lastSize {
                throw LedgerError(
                    .config,
                    "fromSize \(n) is not above \(last.lastSize), the last size of \(org)'s key before its current "
                        + "one: the current key would sign no checkpoint")
            }
            var isRevoke = false
            if case .revoke = change { isRevoke = true }
            members[i].retiredKeys.append(RetiredKey(key: members[i].key, lastSize: n, revoked: isRevoke))
            members[i].key = key
        }
        return try Consortium(
            name: name, members: members, linkKeyFingerprint: linkKeyFingerprint, vocabulary: vocabulary,
            version: next, previous: SHA256Digest.zero, threshold: threshold, change: change)
    }

    /// The first way `other` differs from this version in what a change decides (members, their keys and
    /// addresses, removals, threshold), in words; nil when it does not.
    func difference(_ other: Consortium) -> String? {
        if threshold != other.threshold {
            return "its threshold is \(other.threshold.map(String.init) ?? "not set")"
        }
        for m in members where other.member(m.org) == nil { return "it has no member \(m.org)" }
        for (i, m) in other.members.enumerated() {
            guard let e = member(m.org) else { return "it has a member \(m.org)" }
            guard members.firstIndex(where: { $0.org == m.org }) == i else {
                return "its members are in another order (\(m.org) is members[\(i)])"
            }
            guard e == m else {
                let what =
                    e.key != m.key
                    ? "verifier key"
                    : e.retiredKeys != m.retiredKeys
                        ? "retired keys"
                        : e.removedIn != m.removedIn
                            ? "removedIn" : e.name != m.name ? "name" : e.peer != m.peer ? "peer" : "api"
                return "member \(m.org) has another \(what)"
            }
        }
        return nil
    }
}
