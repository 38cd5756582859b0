import Foundation
import ProvCrypto

/// Equivocation evidence (Specs/protocol.md §4.3): two checkpoints of one log, both signed by its owner's key, that
/// cannot both be true. Anyone checks it with the consortium descriptor alone.
///
/// - Same size, two roots: the owner signed two trees of one size.
/// - Different sizes: `prefixRoot` is the root of the larger tree at the smaller size, and `proof` a consistency
///   proof (RFC 9162 §2.1.4) from it to the larger root. The proof binds `prefixRoot` to the larger tree, so a
///   `prefixRoot` other than the smaller checkpoint's root shows that the smaller tree is not a prefix of the larger.
///
/// A node makes it only from what it holds and has verified itself: a peer's claim (a junk proof, a repeated
/// checkpoint) is never evidence.
public struct Evidence: Sendable, Equatable {
    public static let format = "prov-equivocation/v1"
    /// The largest evidence file read.
    public static let maxSize = 64 * 1024

    /// The checkpoint of the smaller size (or of the same size), and the other.
    public private(set) var first: SignedCheckpoint
    public private(set) var second: SignedCheckpoint
    /// When the sizes differ: the larger tree's root at the smaller size, and the proof that joins it to the larger
    /// root.
    public private(set) var prefixRoot: SHA256Digest?
    public private(set) var proof: [SHA256Digest]

    /// The log, by its origin (`<consortium>/<org>`).
    public var log: String { first.checkpoint.origin }

    /// Evidence from two checkpoints in either order; `prefixRoot` and `proof` are those of the larger tree.
    public init(
        _ a: SignedCheckpoint, _ b: SignedCheckpoint, prefixRoot: SHA256Digest? = nil, proof: [SHA256Digest] = []
    ) {
        let ordered = a.checkpoint.size <= b.checkpoint.size
        first = ordered ? a : b
        second = ordered ? b : a
        self.prefixRoot = first.checkpoint.size == second.checkpoint.size ? nil : prefixRoot
        self.proof = first.checkpoint.size == second.checkpoint.size ? [] : proof
    }

    /// What the evidence proves, in words: `brand signed two roots for size 12`.
    public struct Proven: Sendable, Equatable {
        public var org: String
        public var firstSize: UInt64
        public var secondSize: UInt64
        public var description: String
    }

    /// Checks the evidence against the descriptor: both checkpoints signed by the log's member key, and the conflict
    /// shown. `.success` when proven; `.failure` names what does not hold.
    public func verify(consortium: Consortium) -> Result<Proven, LedgerError> {
        func no(_ why: String) -> Result<Proven, LedgerError> {
            .failure(LedgerError(.verificationFailed, "evidence not proven: \(why)"))
        }
        guard let member = consortium.member(origin: log) else {
            return no("the log it names is not a log of consortium \(consortium.name)")
        }
        guard second.checkpoint.origin == log else { return no("the two checkpoints are of different logs") }
        for (name, cp) in [("first", first), ("second", second)] {
            if let why = member.signatureFailure(cp) { return no("the \(name) checkpoint: \(why)") }
        }
        let m = first.checkpoint.size
        let n = second.checkpoint.size
        let org = member.org
        if m == n {
            guard first.checkpoint.root != second.checkpoint.root else {
                return no("both checkpoints have the same root for size \(m)")
            }
            return .success(
                Proven(org: org, firstSize: m, secondSize: n, description: "\(org) signed two roots for size \(m)"))
        }
        guard let prefixRoot else { return no("no prefix root for checkpoints of sizes \(m) and \(n)") }
        if let why = Merkle.consistencyFailure(
            oldSize: m, newSize: n, oldRoot: prefixRoot, newRoot: second.checkpoint.root, proof: proof)
        {
            return no("the proof does not join the prefix root to the checkpoint of size \(n): \(why)")
        }
        guard prefixRoot != first.checkpoint.root else {
            return no("the checkpoint of size \(m) is a prefix of the checkpoint of size \(n): they agree")
        }
        return .success(
            Proven(
                org: org, firstSize: m, secondSize: n,
                description:
                    "\(org) signed a tree of size \(m) that is not the first \(m) entries of its tree of size \(n)"))
    }

    // MARK: Bytes

    /// The evidence as one JSON object (Specs/protocol.md §4.3).
    public var serialized: [UInt8] {
        let v = JSONValue.object([
            JSONMember("format", .string(Self.format)), JSONMember("log", .string(log)),
            JSONMember("first", .string(first.serialized)), JSONMember("second", .string(second.serialized)),
            JSONMember("prefixRoot", prefixRoot.map { .string($0.base64) } ?? .null),
            JSONMember("proof", .array(proof.map { .string($0.base64) })),
        ])
        return Array((v.prettySerialized + "\n").utf8)
    }

    /// Reads evidence; the error says what is malformed (it never quotes the input).
    public init(parsing bytes: [UInt8]) throws(LedgerError) {
        func bad(_ why: String) -> LedgerError { LedgerError(.invalidEntry, "evidence: \(why)") }
        guard bytes.count <= Self.maxSize else { throw bad("larger than \(Self.maxSize) bytes") }
        // A key or another file in the wrong place is named as such, before any parser could quote a byte of it.
        if let why = FileKind.misplaced(bytes, expected: "equivocation evidence") { throw bad(why) }
        let v: JSONValue
        do { v = try JSON.parse(bytes, maxDepth: 4, maxSize: Self.maxSize) } catch {
            throw bad("not JSON (\(error.code.rawValue) at byte \(error.offset))")
        }
        guard v["format"]?.stringValue == Self.format else { throw bad("format is not \(Self.format)") }
        guard let a = v["first"]?.stringValue, let b = v["second"]?.stringValue, let log = v["log"]?.stringValue else {
            throw bad("needs log, first and second")
        }
        let first: SignedCheckpoint
        let second: SignedCheckpoint
        do {
            first = try SignedCheckpoint(parsing: a)
            second = try SignedCheckpoint(parsing: b)
        } catch { throw bad("first or second is not a signed checkpoint (Specs/format.md §7)") }
        guard first.checkpoint.origin == log, second.checkpoint.origin == log else {
            throw bad("a checkpoint is not of the log it names")
        }
        guard first.checkpoint.size <= second.checkpoint.size else { throw bad("first is larger than second") }
        func digest(_ value: JSONValue?) throws(LedgerError) -> SHA256Digest {
            guard let s = value?.stringValue, s.utf8.count == 44, let d = Data(base64Encoded: s), d.count == 32 else {
                throw bad("a hash is not the base64 of 32 bytes")
            }
            return SHA256Digest(bytes: d)!
        }
        var prefix: SHA256Digest?
        var proof: [SHA256Digest] = []
        if first.checkpoint.size != second.checkpoint.size {
            prefix = try digest(v["prefixRoot"])
            guard let list = v["proof"]?.arrayValue, list.count <= 64 else {
                throw bad("proof must be at most 64 hashes")
            }
            for h in list { proof.append(try digest(h)) }
        }
        self.init(first, second, prefixRoot: prefix, proof: proof)
    }

    /// The file name evidence is kept under: the org, both sizes, and a short hash of the conflict (`conflict`), so
    /// a name never has to be read to tell the log, and one conflict has one name however its notes were passed on.
    public func fileName(org: String) -> String {
        "\(org).\(first.checkpoint.size)-\(second.checkpoint.size).\(conflict.hex.prefix(16)).json"
    }

    /// SHA-256 of what conflicts (Specs/format.md §10.12): the log, and each checkpoint's size and root, the smaller
    /// size first (for one size, the root whose hex is lower first), as the text `<log>\n<size> <root base64>\n<size>
    /// <root base64>\n`. Signature lines other than the owner's, which a note may carry and a checker ignores, and the
    /// order two checkpoints of one size came in, do not make another piece of evidence: nobody can fill a node's
    /// disk, or the consortium's, with one fork passed on under ever new names.
    public var conflict: SHA256Digest {
        var a = first.checkpoint
        var b = second.checkpoint
        if a.size == b.size && b.root.hex < a.root.hex { swap(&a, &b) }
        return SHA256.hash("\(log)\n\(a.size) \(a.root.base64)\n\(b.size) \(b.root.base64)\n")
    }
}

extension LogStore {
    /// A validly signed checkpoint `theirs` of this log, checked against the tree held here: evidence when it is not
    /// that tree's prefix (or its root) at its size, made from what this store holds (its latest checkpoint, and for
    /// a smaller size the prefix root and consistency proof of its own tree); nil when they agree or `theirs` is
    /// larger than what is held (Specs/protocol.md §4.3).
    package func conflict(with theirs: SignedCheckpoint) throws(LedgerError) -> Evidence? {
        guard let ours = latest else { return nil }
        let s = theirs.checkpoint.size
        let n = ours.checkpoint.size
        guard s <= n else { return nil }
        let root = s == n ? ours.checkpoint.root : try subtreeRoot(0..<s)
        guard root != theirs.checkpoint.root else { return nil }
        if s == n { return Evidence(ours, theirs) }
        return Evidence(theirs, ours, prefixRoot: root, proof: try consistencyProof(old: s, new: n))
    }
}
