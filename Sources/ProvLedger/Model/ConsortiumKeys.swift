import ProvCrypto

/// A member's keys over its log's life (Specs/format.md §9.6): every checkpoint of size S of a member's log is
/// checked with the key valid at S, so a receipt made before a rotation still verifies after it, and a checkpoint a
/// revoked key signs past its last size is refused everywhere.
extension Consortium.Member {
    /// The key that signs checkpoints of size `size`: the first retired key whose last size is at least `size`,
    /// else the current key.
    public func key(forSize size: UInt64) -> NoteVerifierKey {
        for r in retiredKeys where size <= r.lastSize { return r.key }
        return key
    }

    /// Every key the member has had, oldest first, the current one last.
    public var allKeys: [NoteVerifierKey] { retiredKeys.map(\.key) + [key] }

    /// The keys that speak for the member on the peer listener and in cosignatures: the current key and the keys
    /// rotated away as planned, not the revoked ones. (A node keeps presenting its old key until it restarts.)
    public var trustedKeys: [NoteVerifierKey] { retiredKeys.filter { !$0.revoked }.map(\.key) + [key] }

    /// Whether one of the member's keys, at any size, has key ID `id`.
    public func hasKey(id: UInt32) -> Bool { allKeys.contains { $0.keyID == id } }

    /// Checks the member's signature on a checkpoint of its log with the key valid at the checkpoint's size
    /// (Specs/format.md §7.4, §9.6). Nil when valid, else the reason; a checkpoint signed by another of the member's
    /// keys, one not valid at that size, is named as such.
    public func signatureFailure(_ cp: SignedCheckpoint) -> String? {
        let size = cp.checkpoint.size
        let valid = key(forSize: size)
        guard let why = cp.signatureFailure(key: valid) else { return nil }
        guard cp.checkpoint.origin == origin else { return why }
        for other in allKeys where other != valid && cp.note.verifiedSignature(by: other) != nil {
            if let i = retiredKeys.firstIndex(where: { $0.key == other }) {
                let r = retiredKeys[i]
                return "checkpoint at size \(size) is signed by \(org)'s \(r.revoked ? "revoked" : "retired") key "
                    + "\(Self.hex(other)), which signs only up to size \(r.lastSize): past it only key "
                    + "\(Self.hex(i + 1 < retiredKeys.count ? retiredKeys[i + 1].key : key)) does"
            }
            let last = retiredKeys.last?.lastSize ?? 0
            return "checkpoint at size \(size) is signed by \(org)'s current key \(Self.hex(other)), which signs only "
                + "past size \(last): up to it key \(Self.hex(valid)) does"
        }
        return why
    }

    /// The member's signature on `cp` by the key valid at its size, if one verifies.
    public func verifiedSignature(_ cp: SignedCheckpoint) -> NoteSignature? {
        guard cp.checkpoint.origin == origin else { return nil }
        return cp.note.verifiedSignature(by: key(forSize: cp.checkpoint.size))
    }

    /// The owner's signature lines a stored copy of `cp` keeps (Specs/protocol.md §5.2): the line by the key valid
    /// at its size, then at most one more line under the log's key name with a 64-byte signature, which the owner
    /// adds while it prepares a rotation (Specs/format.md §9.6) with a key this version may not know yet.
    /// Cosignatures (72 bytes) and any further lines are left out.
    public func ownerLines(_ cp: SignedCheckpoint) -> [NoteSignature] {
        guard let valid = verifiedSignature(cp) else { return [] }
        let extra = cp.note.signatures.first {
            $0.name == origin && $0.signature.count == 64 && $0.keyID != valid.keyID
        }
        return [valid] + (extra.map { [$0] } ?? [])
    }

    /// The cosignatures of this member on `cp` that verify, by any key it trusts (current or rotated).
    public func verifiedCosignature(_ cp: SignedCheckpoint) -> NoteSignature? {
        for k in trustedKeys {
            if let s = cp.note.verifiedSignature(by: k.asCosigner) { return s }
        }
        return nil
    }

    static func hex(_ key: NoteVerifierKey) -> String { ConsortiumChange.keyID(key) }
}

extension Consortium {
    /// A member's key history must be in order: each retired key's last size above the one before, and no key twice.
    static func checkKeyHistory(_ m: Member) throws(LedgerError) {
        var last: UInt64?
        for (i, r) in m.retiredKeys.enumerated() {
            if let l = last, r.lastSize <= l {
                throw LedgerError(
                    .config,
                    "member \(m.org): retiredKeys[\(i)].lastSize \(r.lastSize) is not above \(l), the last size of "
                        + "the key before it")
            }
            last = r.lastSize
        }
        let raw = m.allKeys.map(\.publicKey.rawRepresentation)
        guard Set(raw).count == raw.count else {
            throw LedgerError(.config, "member \(m.org): a key appears twice in its key history")
        }
    }
}

extension Consortium {
    /// The key a page that checks `checkpoints` in a browser lists for `member` (Specs/view.md §8): the key valid at
    /// the size of the member's checkpoint among them, else its current key. A page made before a rotation keeps
    /// verifying after it.
    public func shownKey(_ member: Member, for checkpoints: [SignedCheckpoint]) -> NoteVerifierKey {
        guard let cp = checkpoints.first(where: { $0.checkpoint.origin == member.origin }) else { return member.key }
        return member.key(forSize: cp.checkpoint.size)
    }
}
