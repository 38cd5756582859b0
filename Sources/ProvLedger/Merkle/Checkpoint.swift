import Foundation
import ProvCrypto

/// A C2SP tlog-checkpoint body: origin, tree size, base64 root hash, each on its own line.
public struct Checkpoint: Sendable, Equatable {
    public var origin: String
    public var size: UInt64
    public var root: SHA256Digest

    public init(origin: String, size: UInt64, root: SHA256Digest) {
        self.origin = origin
        self.size = size
        self.root = root
    }

    public var text: String { "\(origin)\n\(size)\n\(root.base64)\n" }

    /// Parses a checkpoint body (c2sp.org/tlog-checkpoint). Extension lines are not used by this ledger and are
    /// rejected, so a checkpoint has one text form.
    public init(text: String) throws(LedgerError) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 4, lines[3].isEmpty else {
            throw LedgerError(.invalidEntry, "checkpoint must be exactly origin, size and root hash lines")
        }
        guard !lines[0].isEmpty else { throw LedgerError(.invalidEntry, "checkpoint origin line is empty") }
        guard let size = UInt64(lines[1]), String(size) == lines[1] else {
            throw LedgerError(.invalidEntry, "checkpoint size '\(lines[1])' is not a decimal number")
        }
        guard let raw = Data(base64Encoded: String(lines[2])), let root = SHA256Digest(bytes: raw),
            root.base64 == lines[2]
        else { throw LedgerError(.invalidEntry, "checkpoint root '\(lines[2])' is not base64 of 32 bytes") }
        self.init(origin: String(lines[0]), size: size, root: root)
    }
}

/// A checkpoint with its signed-note signatures: the log's own, and cosignatures.
public struct SignedCheckpoint: Sendable, Equatable {
    public var checkpoint: Checkpoint
    public var note: SignedNote

    public static func sign(_ checkpoint: Checkpoint, with signer: NoteSigner) throws -> SignedCheckpoint {
        let text = checkpoint.text
        return SignedCheckpoint(
            checkpoint: checkpoint, note: SignedNote(text: text, signatures: [try signer.sign(text: text)]))
    }

    public init(checkpoint: Checkpoint, note: SignedNote) {
        self.checkpoint = checkpoint
        self.note = note
    }

    public init(parsing text: String) throws(LedgerError) {
        let note: SignedNote
        do { note = try SignedNote(parsing: text) } catch let e as CryptoError {
            throw LedgerError(.invalidEntry, "checkpoint note: \(e.reason)")
        } catch { throw LedgerError(.invalidEntry, "checkpoint note: \(error)") }
        self.init(checkpoint: try Checkpoint(text: note.text), note: note)
    }

    public var serialized: String { note.serialized }

    /// Checks the log's signature by `key` and that the origin is the key's. Returns nil when valid, else the reason.
    public func signatureFailure(key: NoteVerifierKey) -> String? {
        guard checkpoint.origin == key.name else {
            return "checkpoint origin '\(checkpoint.origin)' is not the log '\(key.name)'"
        }
        guard note.signatures.contains(where: { $0.name == key.name }) else {
            return "checkpoint carries no signature by \(key.name)"
        }
        guard note.verifiedSignature(by: key) != nil else {
            return
                "checkpoint signature by \(key.name) does not verify against its consortium key (forged or re-signed)"
        }
        return nil
    }
}

/// An offline receipt in the c2sp.org/tlog-proof@v1 format; `extra` carries the entry's canonical bytes.
public struct Receipt: Sendable, Equatable {
    public static let header = "c2sp.org/tlog-proof@v1"

    public var entry: [UInt8]
    public var index: UInt64
    public var proof: [SHA256Digest]
    public var checkpoint: SignedCheckpoint

    public init(entry: [UInt8], index: UInt64, proof: [SHA256Digest], checkpoint: SignedCheckpoint) {
        self.entry = entry
        self.index = index
        self.proof = proof
        self.checkpoint = checkpoint
    }

    public var serialized: String {
        var s = "\(Self.header)\nextra \(Data(entry).base64EncodedString())\nindex \(index)\n"
        for h in proof { s += h.base64 + "\n" }
        return s + "\n" + checkpoint.serialized
    }

    public init(parsing text: String) throws(LedgerError) {
        func bad(_ why: String) -> LedgerError { LedgerError(.invalidEntry, "receipt: \(why)") }
        guard let blank = text.range(of: "\n\n") else { throw bad("no blank line before the checkpoint") }
        let head = text[..<blank.lowerBound].split(separator: "\n", omittingEmptySubsequences: false)
        guard head.first == Substring(Self.header) else { throw bad("first line must be '\(Self.header)'") }
        var i = 1
        var extra: [UInt8]?
        // Every base64 text is the canonical one, so a receipt has one text form (Specs/format.md §8.2).
        if i < head.count, head[i].hasPrefix("extra ") {
            guard let d = Base64.decodeCanonical(head[i].dropFirst(6)) else {
                throw bad("extra line is not canonical base64")
            }
            extra = d
            i += 1
        }
        guard let entry = extra else { throw bad("no 'extra' line with the entry bytes") }
        guard i < head.count, head[i].hasPrefix("index "), let index = UInt64(head[i].dropFirst(6)),
            String(index) == head[i].dropFirst(6)
        else { throw bad("line \(i + 1) must be 'index N'") }
        i += 1
        var proof: [SHA256Digest] = []
        while i < head.count {
            guard let d = Base64.decodeCanonical(head[i]), let h = SHA256Digest(bytes: d) else {
                throw bad("proof line \(i + 1) is not canonical base64 of a 32-byte hash")
            }
            proof.append(h)
            i += 1
        }
        guard proof.count <= 64 else { throw bad("more than 64 proof hashes") }
        self.init(
            entry: entry, index: index, proof: proof,
            checkpoint: try SignedCheckpoint(parsing: String(text[blank.upperBound...])))
    }

    /// What checking a receipt established.
    public struct Verified: Sendable {
        public var entry: Entry
        public var leaf: SHA256Digest
        public var cosigners: [String]
    }

    /// Verifies the receipt offline against the consortium keys: entry decodes canonically, its log and seq match
    /// the index and the checkpoint, the inclusion proof leads to the checkpoint root, and the log's signature
    /// verifies. Cosignatures by other members are checked and listed.
    public func verify(consortium: Consortium) throws(LedgerError) -> Verified {
        func fail(_ why: String) -> LedgerError { LedgerError(.verificationFailed, "receipt: \(why)") }
        let cp = checkpoint.checkpoint
        guard let member = consortium.member(origin: cp.origin) else {
            throw fail("checkpoint origin '\(cp.origin)' is not a log of consortium \(consortium.name)")
        }
        if let why = member.signatureFailure(checkpoint) { throw fail(why) }
        let e: Entry
        do { e = try Entry.decode(entry) } catch { throw fail("entry bytes: \(error.message)") }
        guard e.log == cp.origin else {
            throw fail("entry belongs to log '\(e.log)', the checkpoint to '\(cp.origin)'")
        }
        guard e.seq == index else { throw fail("entry has seq \(e.seq) but the receipt says index \(index)") }
        // The same rule `prov verify` applies: every org an entry names is a member, every code of the
        // consortium's vocabulary is declared there.
        if let why = e.consortiumFailure(consortium) { throw fail("\(member.org) seq \(index): \(why)") }
        let leaf = Merkle.leafHash(entry)
        if let why = Merkle.inclusionFailure(leaf: leaf, index: index, size: cp.size, proof: proof, root: cp.root) {
            throw fail("\(member.org) seq \(index): \(why)")
        }
        var cosigners: [String] = []
        for m in consortium.members where m.org != member.org {
            if m.verifiedCosignature(checkpoint) != nil { cosigners.append(m.org) }
        }
        return Verified(entry: e, leaf: leaf, cosigners: cosigners)
    }
}
