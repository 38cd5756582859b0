import Foundation
import ProvCrypto
import ProvLedger
import ProvView

#if canImport(Glibc)
    import Glibc
#endif

/// `prov checkpoint` and `prov receipt`: what one log holds, read-only.
extension Prov {
    static let checkpointCommand = Command(
        "checkpoint",
        purpose: "Print the latest stored checkpoint of a log: its size and root hash, signed by the log's company.",
        options: [
            .value("dir", "DATADIR", "the data directory", required: true),
            .value("org", "ORG", "the org whose log to read", required: true), .json,
        ],
        examples: ["prov checkpoint --dir data --org brand > brand.checkpoint"],
        notes: [
            "It prints the newest checkpoint stored in the log (the C2SP signed note the writer made at its last "
                + "group commit), as it is on disk: it does not verify the log. Keep it: prov verify --checkpoint "
                + "FILE later proves the log still holds what it covers (no rollback, no fork)."
        ], run: checkpoint)

    static func checkpoint(_ args: Arguments) throws -> Int32 {
        let store = try openReader(args)
        guard let cp = store.latest else { throw LedgerError(.io, "log \(store.org) has no checkpoint yet") }
        if args.flag("json") {
            outJSON(
                [JSONMember("org", .string(store.org))] + checkpointJSON(cp.checkpoint)
                    + [JSONMember("checkpoint", .string(cp.serialized))])
        } else {
            write(1, cp.serialized)
        }
        return 0
    }

    /// `origin`, `size`, `root` (base64, as in the checkpoint) and `rootHex`.
    static func checkpointJSON(_ cp: Checkpoint) -> [JSONMember] {
        [
            JSONMember("origin", .string(cp.origin)), JSONMember("size", .number(String(cp.size))),
            JSONMember("root", .string(cp.root.base64)), JSONMember("rootHex", .string(cp.root.hex)),
        ]
    }

    static let receiptCommand = Command(
        "receipt",
        purpose: "Print an offline receipt for one entry: the entry, its inclusion proof and the log's signed "
            + "checkpoint (C2SP tlog-proof).",
        options: [
            .value("dir", "DATADIR", "the data directory", required: true),
            .value("org", "ORG", "the org whose log holds the entry", required: true),
            .value("seq", "N", "the entry's sequence number (0 is the first)", required: true),
            .value(
                "consortium", "FILE",
                "the consortium descriptor, to check the cosignatures a node keeps beside its own log (the file "
                    + "cosigned) against its members' keys"),
            .flag(
                "html",
                "print the consent receipt page a customer keeps instead (needs --consortium): the consent in plain "
                    + "words, checking its receipt in the browser"),
            .json,
        ],
        examples: [
            "prov receipt --dir data --org brand --seq 5 --consortium consortium.json > fact.tlog-proof",
            "prov receipt --dir data --org brand --seq 0 --consortium consortium.json --html > consent.html",
        ],
        notes: [
            "The proof is against the latest stored checkpoint. A node's own log folder also holds cosigned, a "
                + "checkpoint of the log with the cosignatures of other members: with --consortium, when that "
                + "checkpoint is signed by the log's company, belongs to this log's history and covers the entry, "
                + "the proof is against it instead, carrying each cosignature that verifies against the "
                + "descriptor's keys and no other line (Specs/format.md §10.11). Anyone with the consortium "
                + "descriptor checks the receipt offline: prov verify-receipt --consortium FILE RECEIPT.",
            "With --html the entry must be a consent: the page shows its ISO/IEC TS 27560 fields in plain words and "
                + "checks the receipt in the browser against the descriptor's keys it carries (Specs/view.md §8.6).",
        ], run: receipt)

    static func receipt(_ args: Arguments) throws -> Int32 {
        let text = try args.required("seq")
        guard let seq = UInt64(text) else {
            throw UsageError("--seq must be a non-negative integer, got '\(text.prefix(40))'")
        }
        let consortium = try args.optional("consortium").map { try Consortium.load($0) }
        let html = args.flag("html")
        if html && args.flag("json") { throw UsageError("--html and --json print two forms: give one") }
        if html && consortium == nil {
            throw UsageError("--html needs --consortium FILE: the page checks the receipt with the members' keys")
        }
        let store = try openReader(args)
        var receipt = try store.receipt(seq)
        var cosigners: [String] = []
        if let (cosigned, orgs) = try cosignedReceipt(store, seq, consortium) {
            receipt = cosigned
            cosigners = orgs
        }
        if html, let consortium {
            let page = try offline { () throws(ViewError) in
                try ConsentReceiptPage(consortium: consortium, receipt: receipt)
            }
            write(1, page.html)
        } else if args.flag("json") {
            let entry = try Entry.decode(receipt.entry)
            outJSON(
                [
                    JSONMember("org", .string(store.org)), JSONMember("seq", .number(String(seq))),
                    JSONMember("leafHash", .string(Merkle.leafHash(receipt.entry).hex)),
                ] + checkpointJSON(receipt.checkpoint.checkpoint) + [
                    JSONMember("cosignedBy", .array(cosigners.map { .string($0) })),
                    JSONMember("entry", entry.json), JSONMember("receipt", .string(receipt.serialized)),
                ])
        } else {
            write(1, receipt.serialized)
        }
        return 0
    }

    /// The receipt for entry `seq` against the checkpoint of the log folder's `cosigned` file, with the cosigners
    /// whose lines it keeps; nil when the file is absent or cannot serve (Specs/format.md §10.11). Nothing of the
    /// file is trusted: the checkpoint must be signed by the log's member and lead from the stored entry to its
    /// root, and of its other lines only the cosignatures of other members that verify against the descriptor's
    /// keys are kept. Warnings name the file, never its bytes.
    static func cosignedReceipt(_ store: LogStore, _ seq: UInt64, _ consortium: Consortium?) throws -> (
        Receipt, [String]
    )? {
        if let consortium, consortium.member(origin: store.origin) == nil {
            throw LedgerError(
                .config, "the log \(store.origin) is not a log of consortium \(consortium.name) (--consortium)")
        }
        let path = store.directory + "/cosigned"
        let bytes: [UInt8]?
        do { bytes = try FileHandleFD.readIfPresent(path, maxSize: SignedNote.maxSize) } catch {
            log("warn", "\(error.message); the receipt is against the latest checkpoint, without cosignatures")
            return nil
        }
        guard let bytes else { return nil }
        guard let consortium, let member = consortium.member(origin: store.origin) else {
            log(
                "warn",
                "\(path) holds cosignatures, which are checked against the members' keys only with --consortium "
                    + "FILE: the receipt is against the latest checkpoint, without them")
            return nil
        }
        func unused(_ why: String) -> (Receipt, [String])? {
            log("warn", "\(path) \(why): not used; the receipt is against the latest checkpoint")
            return nil
        }
        guard let text = String(validating: bytes, as: UTF8.self), let cp = try? SignedCheckpoint(parsing: text)
        else { return unused("is not a signed checkpoint") }
        let size = cp.checkpoint.size
        guard cp.checkpoint.origin == store.origin else { return unused("is a checkpoint of another log") }
        guard seq < size else { return nil }
        guard size <= store.size else {
            return unused("covers \(Phrase.count(size, "entry", "entries")), more than the log holds")
        }
        // The owner's lines: the key valid at the size, and the next key's while a rotation is prepared, so that
        // the receipt still verifies once the rotation is taken (Specs/format.md §9.6).
        let owner = member.ownerLines(cp)
        guard !owner.isEmpty else { return unused("carries no valid signature by \(member.org)") }
        let entry = try store.entryBytes(seq)
        let proof = try store.inclusionProof(index: seq, size: size)
        if Merkle.inclusionFailure(
            leaf: Merkle.leafHash(entry), index: seq, size: size, proof: proof, root: cp.checkpoint.root) != nil
        {
            return unused("has another root than this log at size \(size)")
        }
        var kept = owner
        var cosigners: [String] = []
        for m in consortium.members where m.org != member.org {
            guard let s = m.verifiedCosignature(cp) else { continue }
            kept.append(s)
            cosigners.append(m.org)
        }
        guard !cosigners.isEmpty else {
            return unused("holds no cosignature by another member that verifies against the descriptor's keys")
        }
        let dropped = cp.note.signatures.count - kept.count
        if dropped > 0 {
            log(
                "warn",
                "\(path): \(Phrase.count(dropped, "signature line")) left out of the receipt: only \(member.org)'s "
                    + "signature and the cosignatures of other members that verify against the descriptor's keys "
                    + "are kept")
        }
        var note = cp.note
        note.signatures = kept
        return (
            Receipt(
                entry: entry, index: seq, proof: proof,
                checkpoint: SignedCheckpoint(checkpoint: cp.checkpoint, note: note)),
            cosigners
        )
    }

    /// Opens a log read-only; its origin comes from the stored checkpoint.
    static func openReader(_ args: Arguments) throws -> LogStore {
        let dir = try args.required("dir")
        let org = try args.required("org")
        guard Vocabulary.isOrgID(org) else {
            throw UsageError("--org must be an org id (1-32 of a-z 0-9 -), got '\(org.prefix(40))'")
        }
        // The log's origin names its consortium: from the checkpoint file, or from the first entry when that
        // file is missing or torn.
        var origin: String?
        // Read as the log store reads them: never through a link, never blocking on a FIFO.
        if let bytes = try? FileHandleFD.openIfPresent("\(dir)/\(org)/checkpoint", flags: O_RDONLY)?.read(
            count: 1 << 16, at: 0),
            let text = String(bytes: bytes, encoding: .utf8), let first = text.split(separator: "\n").first
        {
            origin = String(first)
        }
        if origin == nil || origin?.hasSuffix("/" + org) != true {
            let segDir = "\(dir)/\(org)/segments"
            if let first = (try? FileHandleFD.list(directory: segDir))?.filter({ $0.hasSuffix(".seg") }).min(),
                let head = try? FileHandleFD(path: segDir + "/" + first, flags: O_RDONLY).read(
                    count: SegmentFormat.magic.count + SegmentFormat.headerSize + Entry.maxSize, at: 0)
            {
                head.withUnsafeBytes { buf in
                    if case .record(.entry, let payload, _) = SegmentFormat.record(
                        in: buf, at: SegmentFormat.magic.count),
                        let e = try? Entry.decode(payload)
                    {
                        origin = e.log
                    }
                }
            }
        }
        let consortiumName = origin.flatMap { o in o.lastIndex(of: "/").map { String(o[..<$0]) } } ?? "unknown"
        return try LogStore(
            dataDirectory: dir, consortium: consortiumName, org: org, writable: false, log: { log("warn", $0) })
    }
}
