import Foundation
import ProvCrypto
import ProvLedger
import ProvNode
import ProvTools

#if canImport(Glibc)
    import Glibc
#endif

/// `prov fetch` and `prov tiles export`: remote audit and static publication (Specs/protocol.md §7, cli.md).
extension Prov {
    static let fetchCommand = Command(
        "fetch",
        purpose: "Copy or update every log a node (or a static tiles export) holds into a local data directory, "
            + "verifying every entry against the owners' signed checkpoints; then audit it offline with prov verify.",
        options: [
            .value("node", "URL", "a node's API: http://HOST:PORT (with --token)"),
            .value("token", "TOKEN", "the node's auditorToken (or token; also the environment variable PROV_TOKEN)"),
            .value("url", "URL", "or a static export (prov tiles export) served over HTTP: http://HOST:PORT/PATH"),
            .value("consortium", "FILE", "the consortium descriptor", required: true),
            .value(
                "dir", "DATADIR", "the local data directory: made when missing, updated when it exists", required: true),
            .json,
        ],
        exitCodes: [
            ExitCode(0, "every log the source holds was verified and is here, or already was"),
            ExitCode(
                1,
                "the source served something that does not verify, a history that conflicts with what was verified "
                    + "here before (evidence is kept), or less than was verified before (a rollback)"),
            ExitCode(2, "usage error, or the source or the data directory cannot be reached or written"),
        ],
        examples: [
            "prov fetch --node http://127.0.0.1:7501 --token $AUDITOR --consortium consortium.json --dir audit",
            "prov fetch --url http://mirror.example/acme --consortium consortium.json --dir audit",
        ],
        notes: [
            "The data directory is the auditor's trust state: each copy ends at the newest checkpoint verified so far, "
                + "and every later fetch, from any node or mirror, must extend it. A fork between runs or between two "
                + "sources ends in evidence in DATADIR/evidence (check it with prov verify-evidence) and exit 1. A run "
                + "that stops keeps every chunk it verified; the next one resumes from there."
        ], run: fetch)

    static func fetch(_ args: Arguments) throws -> Int32 {
        let consortium = try Consortium.load(try args.required("consortium"))
        let dir = try args.required("dir")
        let source: RemoteCopy.Source
        switch (try args.optional("node"), try args.optional("url")) {
        case (let node?, nil):
            guard let token = try args.optional("token") ?? ProcessInfo.processInfo.environment["PROV_TOKEN"] else {
                throw UsageError("--node needs --token TOKEN (or PROV_TOKEN): the node's auditorToken or token")
            }
            source = .node(address: node, token: token)
        case (nil, let url?): source = .tiles(url: url)
        case (.some, .some): throw UsageError("give --node or --url, not both")
        case (nil, nil): throw UsageError("give --node URL --token TOKEN, or --url URL")
        }
        var copy = RemoteCopy(consortium: consortium, dataDirectory: dir, source: source)
        let progress = ProgressLine(enabled: isatty(2) != 0)
        copy.progress = { org, n in progress.update("  \(org): \(n) entries verified and stored") }
        let results = try copy.run()
        progress.clear()
        let failed = results.contains(where: \.failed)
        if args.flag("json") {
            outJSON([
                JSONMember("consortium", .string(consortium.name)), JSONMember("dir", .string(dir)),
                JSONMember("verdict", .string(failed ? "failed" : "ok")),
                JSONMember("logs", .array(results.map(fetchJSON))),
            ])
        } else {
            for r in results { out("\(r.org): \(fetchLine(r))") }
            out(failed ? "FAILED: the source does not agree with what was verified" : "OK: every log verified")
        }
        return failed ? 1 : 0
    }

    static func fetchLine(_ r: RemoteCopy.Result) -> String {
        let root = r.root.map { ", root \($0.base64)" } ?? ""
        switch r.outcome {
        case .fetched(let from, let to):
            return "fetched \(Phrase.count(to - from, "entry", "entries")), verified: \(to) in all\(root)"
        case .upToDate(let n): return "up to date: \(Phrase.count(n, "entry", "entries"))\(root)"
        case .absent: return "the source holds no checkpoint of this log"
        case .rolledBack(let served, let held):
            return "FAILED: rollback: the source serves \(Phrase.count(served, "entry", "entries")), but "
                + "\(held) were verified here before"
        case .forked(let what, let evidence):
            return "FAILED: equivocation: \(what) (evidence \(evidence))"
        case .failed(let why): return "FAILED: \(why); nothing of it was kept"
        }
    }

    static func fetchJSON(_ r: RemoteCopy.Result) -> JSONValue {
        var status = "ok"
        var failure: String?
        var evidence: String?
        switch r.outcome {
        case .rolledBack, .failed:
            (status, failure) = ("failed", fetchLine(r).replacingOccurrences(of: "FAILED: ", with: ""))
        case .forked(let what, let path): (status, failure, evidence) = ("failed", "equivocation: \(what)", path)
        case .absent: status = "absent"
        default: break
        }
        var fetched: UInt64 = 0
        if case .fetched(let from, let to) = r.outcome { fetched = to - from }
        return .object([
            JSONMember("org", .string(r.org)), JSONMember("status", .string(status)),
            JSONMember("size", .number(String(r.size))), JSONMember("fetched", .number(String(fetched))),
            JSONMember("root", r.root.map { .string($0.base64) } ?? .null),
            JSONMember("failure", failure.map { .string($0) } ?? .null),
            JSONMember("evidence", evidence.map { .string($0) } ?? .null),
        ])
    }

    static let tilesExportCommand = Command(
        "tiles export",
        purpose: "Write every log of a data directory as static C2SP tlog-tiles that any web server, object store or "
            + "CDN serves: tiles, entry bundles, chunk checkpoints and the checkpoint (with its verified cosignatures).",
        options: [
            .value("dir", "DATADIR", "the data directory (a node's, or one prov fetch made)", required: true),
            .value("out", "DIR", "where to write: DIR/<org>/checkpoint, DIR/<org>/tile/…", required: true),
            .value(
                "consortium", "FILE", "the consortium descriptor: checks each log's checkpoint and cosignatures",
                required: true),
            .json,
        ],
        exitCodes: [
            ExitCode(0, "every log written (a re-run writes only what is new)"),
            ExitCode(1, "a log's stored checkpoint does not verify against the descriptor: that log is not exported"),
            ExitCode.usage,
        ],
        examples: ["prov tiles export --dir node/data --out /var/www/acme --consortium consortium.json"],
        notes: [
            "Readers verify everything they read (prov fetch --url http://HOST/PATH does); the export is "
                + "incremental: full tiles and bundles never change, so a re-run writes only the new ones, the new "
                + "partial ones and the checkpoint, last."
        ], run: tilesExport)

    static func tilesExport(_ args: Arguments) throws -> Int32 {
        let consortium = try Consortium.load(try args.required("consortium"))
        let dir = try args.required("dir")
        let outDir = try args.required("out")
        let progress = ProgressLine(enabled: isatty(2) != 0)
        var rows: [JSONValue] = []
        var failed = false
        for org in try Verifier.logFolders(in: dir) {
            guard let member = consortium.member(org) else {
                log("warn", "folder '\(org)' of \(dir) is not the log of a member of \(consortium.name): not exported")
                continue
            }
            let store = try LogStore(
                dataDirectory: dir, consortium: consortium.name, org: org, writable: false, log: { _ in })
            defer { store.close() }
            guard let latest = store.latest else {
                out("\(org): empty, nothing to export")
                continue
            }
            if let why = member.signatureFailure(latest) {
                failed = true
                out("\(org): FAILED: the stored checkpoint: \(why); not exported")
                continue
            }
            let served = Self.withVerifiedCosignatures(store: store, latest: latest, member: member, consortium)
            let counts: TileExport.Counts
            do {
                counts = try TileExport(store: store, member: member, folder: outDir + "/" + org).run(
                    checkpoint: served
                ) { n in progress.update("  \(org): \(n) entries exported") }
            } catch {
                guard error.code == .verificationFailed else { throw error }
                progress.clear()
                failed = true
                out("\(org): FAILED: \(error.message); the export stops there")
                continue
            }
            progress.clear()
            rows.append(
                .object([
                    JSONMember("org", .string(org)), JSONMember("size", .number(String(counts.size))),
                    JSONMember("written", .number(String(counts.written))),
                    JSONMember("kept", .number(String(counts.kept))),
                ]))
            if !args.flag("json") {
                out(
                    "\(org): \(Phrase.count(counts.size, "entry", "entries")) at \(outDir)/\(org): "
                        + "\(Phrase.count(counts.written, "file")) written, \(counts.kept) already there")
            }
        }
        if args.flag("json") {
            outJSON([JSONMember("out", .string(outDir)), JSONMember("logs", .array(rows))])
        }
        return failed ? 1 : 0
    }

    /// The latest checkpoint with the cosignatures of the log's `cosigned` file when it is of that checkpoint: only
    /// the member's signature lines (format.md §9.6) and other members' cosignatures that verify are kept
    /// (Specs/format.md §10.11).
    static func withVerifiedCosignatures(
        store: LogStore, latest: SignedCheckpoint, member: Consortium.Member, _ consortium: Consortium
    ) -> SignedCheckpoint {
        guard let bytes = try? FileHandleFD.readIfPresent(store.directory + "/cosigned", maxSize: SignedNote.maxSize),
            let text = String(validating: bytes, as: UTF8.self), let cp = try? SignedCheckpoint(parsing: text),
            cp.checkpoint == latest.checkpoint, case let own = member.ownerLines(cp), !own.isEmpty
        else { return latest }
        var note = cp.note
        note.signatures =
            own
            + consortium.members.filter { $0.org != member.org }.compactMap { $0.verifiedCosignature(cp) }
        return SignedCheckpoint(checkpoint: cp.checkpoint, note: note)
    }
}
