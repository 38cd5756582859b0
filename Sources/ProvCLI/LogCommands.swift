import Foundation
import ProvCrypto
import ProvLedger

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
            .value("seq", "N", "the entry's sequence number (0 is the first)", required: true), .json,
        ],
        examples: ["prov receipt --dir data --org brand --seq 5 > fact.tlog-proof"],
        notes: [
            "The proof is against the latest stored checkpoint. Anyone with the consortium descriptor checks the "
                + "receipt offline: prov verify-receipt --consortium FILE RECEIPT."
        ], run: receipt)

    static func receipt(_ args: Arguments) throws -> Int32 {
        let text = try args.required("seq")
        guard let seq = UInt64(text) else {
            throw UsageError("--seq must be a non-negative integer, got '\(text.prefix(40))'")
        }
        let store = try openReader(args)
        let receipt = try store.receipt(seq)
        if args.flag("json") {
            let entry = try Entry.decode(receipt.entry)
            outJSON(
                [
                    JSONMember("org", .string(store.org)), JSONMember("seq", .number(String(seq))),
                    JSONMember("leafHash", .string(Merkle.leafHash(receipt.entry).hex)),
                ] + checkpointJSON(receipt.checkpoint.checkpoint) + [
                    JSONMember("entry", entry.json), JSONMember("receipt", .string(receipt.serialized)),
                ])
        } else {
            write(1, receipt.serialized)
        }
        return 0
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
