import Foundation
import ProvCrypto
import ProvLedger

/// The node's signing keys (Specs/protocol.md §8.4): node.json's `key`, and its `nextKey` while a rotation of the
/// org's key is prepared. The key that signs a checkpoint of the own log is the one the newest version of the
/// descriptor makes valid at the checkpoint's size; while `nextKey` is set and is not that key, the checkpoint is
/// signed with it too, so that checkpoints past the size a rotation names are valid whenever the rotation is taken.
struct NodeKeys: Sendable {
    var key: NoteSigner
    var next: NoteSigner?
    /// The own log's size when the node began to sign with `next` too: every checkpoint past it carries both
    /// signatures.
    var nextFrom: UInt64?

    init(config: NodeConfig) throws {
        key = try SigningKeyFile.read(config.keyPath)
        next = try config.nextKeyPath.map { try SigningKeyFile.read($0) }
    }

    /// The signer of `verifier` among the node's keys, if it holds it.
    func signer(for verifier: NoteVerifierKey) -> NoteSigner? {
        [key, next].compactMap { $0 }.first { $0.verifierKey == verifier }
    }

    /// The node must hold its member's current key (as `key` or `nextKey`), and any key it holds must be named for
    /// its log.
    func check(_ me: Consortium.Member, version: Int, config: NodeConfig) throws(LedgerError) {
        for (signer, field, path) in [(key, "key", config.keyPath), (next, "nextKey", config.nextKeyPath ?? "")] {
            guard let signer else { continue }
            guard signer.name == me.origin else {
                throw LedgerError(
                    .config,
                    "the signing key \(path) (\(field) of \(config.path)) is for '\(signer.name)', not for the log "
                        + "\(me.origin)")
            }
        }
        guard signer(for: me.key) == nil else { return }
        if let r = me.retiredKeys.first(where: { $0.key == key.verifierKey }) {
            throw LedgerError(
                .config,
                "the signing key \(config.keyPath) was \(me.org)'s key up to size \(r.lastSize) (\(r.revoked ? "revoked" : "rotated")); "
                    + "version \(version) of the descriptor makes \(String(format: "%08x", me.key.keyID)) its key: "
                    + "set key (or nextKey) of \(config.path) to that key's file (Nodes/README.md)")
        }
        throw LedgerError(
            .config, "the signing key \(config.keyPath) is not the key of \(me.org) in the consortium descriptor")
    }
}

extension Node {
    /// The key this node speaks with now (cosignatures; the peer listener's certificate is the one it started
    /// with): its member's current key when it holds it, else node.json's `key`.
    var signer: NoteSigner {
        let current = consortium.member(config.org)?.key
        return keys.withLock { k in current.flatMap { k.signer(for: $0) } ?? k.key }
    }

    /// The signers of a checkpoint of the own log at `size`: the key valid at that size, then `nextKey` while it is
    /// another key. Nil when the node does not hold the key valid at that size.
    func checkpointSigners(size: UInt64) -> [NoteSigner]? {
        guard let me = consortium.member(config.org) else { return nil }
        let valid = me.key(forSize: size)
        return keys.withLock { k in
            guard let primary = k.signer(for: valid) else { return nil }
            guard let next = k.next, next.verifierKey != valid, !me.allKeys.contains(next.verifierKey) else {
                return [primary]
            }
            return [primary, next]
        }
    }

    /// Signs the checkpoint of `group` of the own log (Specs/protocol.md §8.4) and places it as `HeldLog.write`
    /// does; its bytes are written and synced later.
    func writeOwnGroup(_ group: PendingGroup) throws(LedgerError) -> LogStore.WrittenGroup {
        let cp = Checkpoint(origin: own.member.origin, size: group.size, root: group.root)
        guard let signers = checkpointSigners(size: group.size) else {
            throw LedgerError(.config, keyHold ?? "this node holds no key valid at size \(group.size)")
        }
        var note = SignedNote(text: cp.text)
        do { for s in signers { note.signatures.append(try s.sign(text: cp.text)) } } catch {
            throw LedgerError(.io, "cannot sign checkpoint: \(error)")
        }
        return try own.read { store throws(LedgerError) in
            try store.write(group, checkpoint: SignedCheckpoint(checkpoint: cp, note: note), deferringData: true)
        }
    }

    /// Why the own log takes no entry for now because of its keys: a version of the descriptor made another key
    /// this node's from a size it has reached, and node.json names no file of that key.
    var keyHold: String? {
        guard let me = consortium.member(config.org), me.isCurrent else { return nil }
        let next = own.head.size + 1
        guard checkpointSigners(size: next) == nil else { return nil }
        let want = me.key(forSize: next)
        return "version \(consortium.version) of the descriptor makes \(String(format: "%08x", want.keyID)) the key "
            + "of \(me.org) past size \(me.retiredKeys.last?.lastSize ?? 0), and this node's node.json names no file of "
            + "it: set nextKey to that key's file and send SIGHUP (Nodes/README.md)"
    }

    /// The keys as `/v1/status` shows them.
    var keysJSON: JSONValue {
        let k = keys.withLock { $0 }
        return .object([
            JSONMember("signing", .string(String(format: "%08x", signer.verifierKey.keyID))),
            JSONMember("next", k.next.map { .string($0.verifierKey.description) } ?? .null),
            JSONMember("nextFrom", k.nextFrom.map { .number(String($0)) } ?? .null),
        ])
    }

    /// SIGHUP (Specs/protocol.md §2.3): node.json's `key` and `nextKey` are read again. A new `nextKey` signs every
    /// checkpoint of the own log from the next group on, besides the key valid at its size; `nextFrom` says from
    /// which size (a rotation proposed with `--from-size` at least that is safe whenever it is taken).
    public func reloadKeys(_ c: NodeConfig) {
        let loaded: NodeKeys
        do { loaded = try NodeKeys(config: c) } catch {
            log.error(
                "SIGHUP: cannot read the signing keys of node.json; keeping the keys in use",
                ["reason": (error as? CryptoError)?.reason ?? "\(error)"])
            return
        }
        guard let me = consortium.member(config.org) else { return }
        for s in [loaded.key, loaded.next].compactMap({ $0 }) where s.name != me.origin {
            log.error("SIGHUP: a key of node.json is for another log; keeping the keys in use", ["name": s.name])
            return
        }
        let before = keys.withLock { $0 }
        let nextChanged = before.next?.verifierKey != loaded.next?.verifierKey
        // Between groups, so that every checkpoint past `nextFrom` carries the next key's signature.
        writer.perform { [self] in
            keys.withLock { k in
                k.key = loaded.key
                k.next = loaded.next
                if nextChanged { k.nextFrom = loaded.next == nil ? nil : own.head.size }
            }
        }
        if nextChanged, let n = loaded.next {
            log.info(
                "signing with the next key too", ["key": n.verifierKey.description, "from": "\(own.head.size)"])
        }
        writer.wake()
    }
}
