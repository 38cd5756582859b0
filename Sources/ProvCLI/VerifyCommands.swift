import Foundation
import ProvCrypto
import ProvLedger
import ProvTools

#if canImport(Glibc)
    import Glibc
#endif

/// `prov verify` and `prov verify-receipt`: the auditor's commands. Each result is printed once, on standard
/// output: a line per log or receipt (Specs/format.md §12.3), or one JSON object (Specs/cli.md).
extension Prov {
    // MARK: verify

    static let verifyCommand = Command(
        "verify", purpose: "Audit every log in a data directory against the keys of the consortium descriptor alone.",
        options: [
            .value(
                "consortium", "FILE", "the consortium descriptor: its members' keys are all that is trusted",
                required: true),
            .value(
                "checkpoint", "FILE",
                "a signed checkpoint kept from before (prov checkpoint, a receipt, another node): the log must still "
                    + "hold what it covers, or verify fails with rollback or fork",
                repeatable: true),
            .json,
        ],
        operands: [
            Operand("DATADIR", "the data directory: the folder that holds one folder per org (data, not data/brand)")
        ],
        exitCodes: [
            ExitCode(0, "every log verified"),
            ExitCode(1, "a log failed verification: it is inconsistent, was altered, rolled back or forked"),
            ExitCode(
                2,
                "usage or input error (a descriptor none of the logs belongs to, a log folder given for the data "
                    + "directory, a file that does not parse), or a log could not be read and none failed"),
        ],
        examples: ["prov verify --consortium consortium.json data"],
        notes: [
            "Checks canonical encoding, the hash chain, clocks, every stored checkpoint's root and signature, "
                + "references between entries and logs, and rollback against the newest checkpoint (Specs/format.md "
                + "§12). One line per log on standard output, then the verdict; warnings go to standard error."
        ], run: verify)

    /// One log's outcome, as printed.
    enum LogStatus: String {
        case ok, failed, notVerified = "not-verified", absent
    }

    static func verify(_ args: Arguments) throws -> Int32 {
        let json = args.flag("json")
        let descriptor = try args.required("consortium")
        let dataDirectory = args.positionals[0]
        let (consortium, notes) = try Self.consortium(descriptor, following: dataDirectory)
        var warnings: [String] = []
        for w in notes + [missingFingerprint(consortium, descriptor)].compactMap({ $0 }) {
            if json { warnings.append(w) } else { log("warn", w) }
        }
        let setAside = Quarantine.list(dataDirectory: dataDirectory)
        if !setAside.isEmpty {
            let w =
                "\(Phrase.count(setAside.count, "damaged copy", "damaged copies")) set aside by the node in "
                + "\(Quarantine.path(in: dataDirectory)) (not verified: the node fetched each again from its peers)"
            if json { warnings.append(w) } else { log("warn", w) }
        }
        var verifier = Verifier(consortium: consortium)
        for path in args.all("checkpoint") {
            let cp: SignedCheckpoint
            let bytes = try readText(path, expected: "a signed checkpoint", option: "--checkpoint")
            do throws(LedgerError) {
                cp = try SignedCheckpoint(parsing: String(decoding: bytes, as: UTF8.self))
            } catch {
                throw LedgerError(.io, "--checkpoint \(path): \(error.message)")
            }
            guard consortium.member(origin: cp.checkpoint.origin) != nil else {
                throw LedgerError(
                    .io,
                    "--checkpoint \(path) is for log '\(cp.checkpoint.origin)', not a log of consortium \(consortium.name)"
                )
            }
            verifier.trustedCheckpoints.append(cp)
        }
        try checkDataDirectory(dataDirectory, consortium)
        let progress = ProgressLine(enabled: isatty(2) != 0 && !json)
        verifier.progress = { org, n in progress.update("verifying \(org): \(Phrase.count(n, "entry", "entries"))") }
        let start = Date()
        let audits = try verifier.verify(dataDirectory: dataDirectory)
        progress.clear()
        let folders = Set((try? Verifier.logFolders(in: dataDirectory)) ?? [])
        var rows: [(org: String, status: LogStatus, audit: LogAudit?)] = audits.map { a in
            let status: LogStatus =
                a.failure == nil ? (folders.contains(a.org) ? .ok : .absent) : a.failureIsIO ? .notVerified : .failed
            return (a.org, status, a)
        }
        for m in consortium.members where !audits.contains(where: { $0.org == m.org }) {
            rows.append((m.org, .absent, nil))
        }
        let failed = rows.contains { $0.status == .failed }
        let unreadable = rows.contains { $0.status == .notVerified }
        let status: Int32 = failed ? 1 : unreadable ? 2 : 0
        let verdict = failed ? "failed" : unreadable ? "incomplete" : "ok"
        let total = audits.reduce(UInt64(0)) { $0 + $1.entries }
        let seconds = Date().timeIntervalSince(start)
        if json {
            outJSON([
                JSONMember("consortium", .string(consortium.name)), JSONMember("dataDirectory", .string(dataDirectory)),
                JSONMember("verdict", .string(verdict)), JSONMember("exitCode", .number(String(status))),
                JSONMember("logs", .array(rows.map { logJSON($0.org, $0.status, $0.audit) })),
                JSONMember("entries", .number(String(total))),
                JSONMember("seconds", .number(String(format: "%.3f", seconds))),
                JSONMember("warnings", .array(warnings.map { .string($0) })),
            ])
            return status
        }
        var shown = 0
        for (org, s, a) in rows {
            for w in a?.warnings ?? [] { log("warn", "\(org): \(w)") }
            guard let a, s != .absent else {
                out("\(org): no log in this directory")
                continue
            }
            shown += 1
            switch s {
            case .ok:
                let latest =
                    a.latest.map {
                        "; the latest checkpoint covers \(Phrase.count($0.size, "entry", "entries")), root \($0.root.base64)"
                    } ?? "; no checkpoint"
                out(
                    "\(org): OK: \(Phrase.count(a.entries, "entry", "entries")), "
                        + "\(Phrase.count(a.checkpoints, "checkpoint")) verified, "
                        + "\(Phrase.count(a.referencesChecked, "reference")) checked\(latest)")
            case .failed:
                out(
                    "\(org): FAILED after \(Phrase.count(a.entries, "entry", "entries")): \(unprefixed(a.failure!, org))"
                )
            default:
                out("\(org): NOT VERIFIED, cannot be read: \(unprefixed(a.failure!, org))")
            }
        }
        out(
            "\(verdict.uppercased()): \(Phrase.count(shown, "log")), \(Phrase.count(total, "entry", "entries")) in "
                + String(format: "%.2f s", seconds))
        return status
    }

    /// A message without the org the line already names: `brand: rollback: …` → `rollback: …`,
    /// `brand seq 5: …` → `seq 5: …`.
    static func unprefixed(_ message: String, _ org: String) -> String {
        if message.hasPrefix(org + ": ") { return String(message.dropFirst(org.count + 2)) }
        if message.hasPrefix(org + " seq ") { return String(message.dropFirst(org.count + 1)) }
        return message
    }

    static func logJSON(_ org: String, _ status: LogStatus, _ a: LogAudit?) -> JSONValue {
        .object([
            JSONMember("org", .string(org)), JSONMember("status", .string(status.rawValue)),
            JSONMember("entries", .number(String(a?.entries ?? 0))),
            JSONMember("checkpoints", .number(String(a?.checkpoints ?? 0))),
            JSONMember("referencesChecked", .number(String(a?.referencesChecked ?? 0))),
            JSONMember("latest", a?.latest.map { .object(checkpointJSON($0).filter { $0.key != "origin" }) } ?? .null),
            JSONMember("warnings", .array((a?.warnings ?? []).map { .string($0) })),
            JSONMember("failure", a?.failure.map { .string(unprefixed($0, org)) } ?? .null),
        ])
    }

    /// A descriptor without `linkKeyFingerprint` verifies logs as well as any (nothing here uses the linking key),
    /// but `prov append` refuses it: the auditor is told, once.
    static func missingFingerprint(_ consortium: Consortium, _ path: String) -> String? {
        guard consortium.linkKeyFingerprint == nil else { return nil }
        return "consortium descriptor \(path) has no linkKeyFingerprint (written by an older prov): prov append "
            + "refuses it, since a wrong linking key could not be told from the consortium's; whoever holds the "
            + "linking key adds the value prov append prints"
    }

    /// Mistakes that are not tampering, told as usage errors before any audit: a log folder given for the data
    /// directory, or a directory none of whose logs belongs to the descriptor (a folder that is no member's, or
    /// whose checkpoint file is another log's or signed by another key than the member's). A log whose checkpoint
    /// file cannot be read or parsed may belong: the audit decides.
    static func checkDataDirectory(_ path: String, _ consortium: Consortium) throws(UsageError) {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        if FileHandleFD.kind(of: trimmed + "/segments") != nil && consortium.member("segments") == nil {
            let parent = (trimmed as NSString).deletingLastPathComponent
            throw UsageError(
                "\(path) is a log folder (it holds segments/), not a data directory: pass the folder that holds "
                    + "it, \(parent.isEmpty ? "." : parent)")
        }
        guard let folders = try? Verifier.logFolders(in: trimmed), !folders.isEmpty else { return }
        var reasons: [String] = []
        for folder in folders {
            guard let member = consortium.member(folder) else {
                reasons.append("\(folder) is not a member")
                continue
            }
            guard
                let bytes = try? FileHandleFD.openIfPresent("\(trimmed)/\(folder)/checkpoint", flags: O_RDONLY)?
                    .read(count: 1 << 16, at: 0),
                let cp = try? SignedCheckpoint(parsing: String(decoding: bytes, as: UTF8.self))
            else { return }
            if cp.checkpoint.origin != member.origin {
                reasons.append("\(folder) is the log \(cp.checkpoint.origin), not \(member.origin)")
            } else if !cp.note.signatures.contains(where: { $0.name == member.origin && member.hasKey(id: $0.keyID) }) {
                reasons.append("\(folder) is signed by another key than the descriptor's for \(member.origin)")
            } else {
                return
            }
        }
        throw UsageError(
            "no log in \(path) belongs to the consortium of this descriptor, \(consortium.name) ("
                + reasons.prefix(4).joined(separator: "; ") + (reasons.count > 4 ? "; …" : "")
                + "): pass the descriptor of the consortium whose logs these are, or the data directory of "
                + "\(consortium.name)'s logs")
    }

    // MARK: verify-receipt

    static let verifyReceiptCommand = Command(
        "verify-receipt", purpose: "Check receipts offline against the consortium's keys: one result line each.",
        options: [
            .value("consortium", "FILE", "the consortium descriptor", required: true),
            .value(
                "min-cosigners", "K",
                "also require cosignatures by at least K other members that verify (default 0): how many companies "
                    + "vouched that they hold and verified that history"),
            .json,
        ],
        operands: [
            Operand(
                "RECEIPT", "a receipt file (prov receipt); - reads one from standard input", repeatable: true)
        ],
        exitCodes: [
            ExitCode(0, "every receipt verified"),
            ExitCode(1, "a receipt does not verify or does not parse"),
            ExitCode(
                2,
                "usage or input error (a descriptor that does not parse), or a receipt could not be read and none failed"
            ),
        ],
        examples: [
            "prov verify-receipt --consortium consortium.json fact.tlog-proof",
            "prov receipt --dir data --org brand --seq 5 | prov verify-receipt --consortium consortium.json -",
        ],
        notes: [
            "A receipt proves one entry is in its company's log: the inclusion proof leads to the root of a "
                + "checkpoint signed by that company (and cosigned by others). With one receipt, the entry follows "
                + "its result line."
        ], run: verifyReceipt)

    static func verifyReceipt(_ args: Arguments) throws -> Int32 {
        let json = args.flag("json")
        let descriptor = try args.required("consortium")
        let consortium = try Consortium.load(descriptor)
        let minCosigners = try args.integer("min-cosigners", default: 0)
        guard minCosigners >= 0, minCosigners < max(1, consortium.members.count) else {
            throw UsageError(
                "--min-cosigners takes 0 to \(max(0, consortium.members.count - 1)) (the other members of "
                    + "\(consortium.name))")
        }
        var warnings: [String] = []
        if let w = missingFingerprint(consortium, descriptor) {
            if json { warnings.append(w) } else { log("warn", w) }
        }
        guard args.positionals.filter({ $0 == "-" }).count <= 1 else {
            throw UsageError("- (standard input) given more than once")
        }
        var results: [JSONValue] = []
        var failed = false
        var unreadable = false
        for path in args.positionals {
            let name = path == "-" ? "standard input" : path
            var fields: [JSONMember] = [JSONMember("file", .string(name))]
            func record(_ status: String, _ failure: String?, _ line: String) {
                fields.insert(JSONMember("status", .string(status)), at: 1)
                fields.append(JSONMember("failure", failure.map { .string($0) } ?? .null))
                results.append(.object(fields))
                if !json { out("\(name): \(line)") }
            }
            let bytes: [UInt8]
            switch readReceipt(path) {
            case .success(let b): bytes = b
            case .failure(let e):
                unreadable = true
                record("not-verified", e.message, "NOT VERIFIED: \(e.message)")
                continue
            }
            // A receipt that does not even parse fails verification like one whose proof is wrong.
            let receipt: Receipt
            do { receipt = try Receipt(parsing: String(decoding: bytes, as: UTF8.self)) } catch {
                failed = true
                let why = "the receipt is malformed: " + unprefixed(error.message, "receipt")
                record("failed", why, "FAILED: \(why)")
                continue
            }
            let cp = receipt.checkpoint.checkpoint
            fields += [JSONMember("seq", .number(String(receipt.index)))] + checkpointJSON(cp)
            do {
                let v = try receipt.verify(consortium: consortium)
                guard v.cosigners.count >= minCosigners else {
                    failed = true
                    let why =
                        "cosigned by \(Phrase.count(v.cosigners.count, "other member")) "
                        + (v.cosigners.isEmpty ? "" : "(\(v.cosigners.joined(separator: ", "))) ")
                        + "where --min-cosigners asks for \(minCosigners)"
                    fields += [
                        JSONMember("org", .string(String(v.entry.org))), JSONMember("leafHash", .string(v.leaf.hex)),
                        JSONMember("cosignedBy", .array(v.cosigners.map { .string($0) })),
                    ]
                    record("failed", why, "FAILED: \(why)")
                    continue
                }
                fields += [
                    JSONMember("org", .string(String(v.entry.org))), JSONMember("leafHash", .string(v.leaf.hex)),
                    JSONMember("cosignedBy", .array(v.cosigners.map { .string($0) })),
                    JSONMember("entry", v.entry.json),
                ]
                record(
                    "ok", nil,
                    "OK: \(v.entry.org) seq \(v.entry.seq) (leaf \(v.leaf.hex)) is in log \(cp.origin), whose "
                        + "checkpoint of \(Phrase.count(cp.size, "entry", "entries")) is signed by \(v.entry.org)"
                        + (v.cosigners.isEmpty ? "" : " and cosigned by \(v.cosigners.joined(separator: ", "))"))
                if !json && args.positionals.count == 1 { out(v.entry.json.prettySerialized) }
            } catch {
                failed = true
                let why = unprefixed(error.message, "receipt")
                record("failed", why, "FAILED: \(why)")
            }
        }
        let status: Int32 = failed ? 1 : unreadable ? 2 : 0
        if json {
            outJSON([
                JSONMember("consortium", .string(consortium.name)),
                JSONMember("verdict", .string(failed ? "failed" : unreadable ? "incomplete" : "ok")),
                JSONMember("exitCode", .number(String(status))), JSONMember("receipts", .array(results)),
                JSONMember("warnings", .array(warnings.map { .string($0) })),
            ])
        }
        return status
    }

    /// A receipt file's bytes (`-`: standard input), or why there are none, said without its path (the result line
    /// starts with it) and without any of its bytes when it is not text.
    static func readReceipt(_ path: String, what: String = "a receipt", file: String = "a receipt file") -> Result<
        [UInt8], LedgerError
    > {
        let bytes: [UInt8]
        if path == "-" {
            bytes = Array(FileHandle.standardInput.readDataToEndOfFile())
        } else {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                return .failure(LedgerError(.io, "no such file"))
            }
            guard !isDirectory.boolValue else { return .failure(LedgerError(.io, "a directory, not \(file)")) }
            guard let d = FileManager.default.contents(atPath: path) else {
                return .failure(LedgerError(.io, "cannot be read (permissions?)"))
            }
            bytes = Array(d)
        }
        if let why = FileKind.misplaced(bytes, expected: what) {
            return .failure(LedgerError(.io, (path == "-" ? "the input " : "the file ") + why))
        }
        return .success(bytes)
    }
}

extension Prov {
    static let verifyEvidenceCommand = Command(
        "verify-evidence",
        purpose: "Check equivocation evidence offline against the consortium's keys: two checkpoints signed by one "
            + "company's key that cannot both be true.",
        options: [.value("consortium", "FILE", "the consortium descriptor", required: true), .json],
        operands: [
            Operand(
                "EVIDENCE",
                "an evidence file (a node keeps them in its evidence folder; - reads one from standard input)")
        ],
        exitCodes: [
            ExitCode(0, "proven: the company signed two histories of its log"),
            ExitCode(
                1, "not proven: the file parses, but what it shows is not a conflict the descriptor's keys signed"),
            ExitCode(2, "unreadable: the file cannot be read or is not evidence (Specs/protocol.md §4.3)"),
        ],
        examples: ["prov verify-evidence --consortium consortium.json evidence/brand.6-8.3fa1c2d4e5b60718.json"],
        notes: [
            "Evidence holds both signed checkpoints and, when their sizes differ, the larger tree's root at the smaller "
                + "size with a consistency proof to the larger root: anyone checks it with the descriptor alone."
        ], run: verifyEvidence)

    static func verifyEvidence(_ args: Arguments) throws -> Int32 {
        guard args.positionals.count == 1, let path = args.positionals.first else {
            throw UsageError("give one EVIDENCE file")
        }
        let consortium = try Consortium.load(try args.required("consortium"))
        let bytes: [UInt8]
        switch readReceipt(path, what: "evidence", file: "an evidence file") {
        case .success(let b): bytes = b
        case .failure(let e): throw LedgerError(.io, "\(path): \(e.message)")
        }
        let evidence: Evidence
        do { evidence = try Evidence(parsing: bytes) } catch { throw LedgerError(.io, "\(path): \(error.message)") }
        let verdict = evidence.verify(consortium: consortium)
        let sizes = [evidence.first.checkpoint.size, evidence.second.checkpoint.size]
        if args.flag("json") {
            var fields = [
                JSONMember("file", .string(path)), JSONMember("log", .string(evidence.log)),
                JSONMember("sizes", .array(sizes.map { .number(String($0)) })),
            ]
            switch verdict {
            case .success(let p):
                fields += [
                    JSONMember("status", .string("proven")), JSONMember("org", .string(p.org)),
                    JSONMember("proven", .string(p.description)), JSONMember("failure", .null),
                ]
            case .failure(let e):
                fields += [
                    JSONMember("status", .string("not-proven")), JSONMember("org", .null),
                    JSONMember("proven", .null), JSONMember("failure", .string(e.message)),
                ]
            }
            outJSON(fields)
        } else {
            switch verdict {
            case .success(let p): out("\(path): PROVEN: \(p.description)")
            case .failure(let e): out("\(path): NOT PROVEN: \(e.message)")
            }
        }
        if case .success = verdict { return 0 }
        return 1
    }
}
