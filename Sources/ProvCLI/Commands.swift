import CShims
import Foundation
import ProvCrypto
import ProvLedger
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The `prov` command line: operators and auditors. Exit codes: 0 success, 1 verification failed, 2 usage,
/// input or I/O error.
public enum Prov {
    public static let usage = """
        usage: prov <command> [options]

          keygen --org ORG --consortium NAME --out KEYFILE
          consortium init --name NAME --member ORG=VKEY [--member ...] [--display ORG=NAME ...] [--vocabulary FILE] --out FILE --link-key LINKFILE
          append --dir DATADIR --key KEYFILE --consortium FILE --link-key LINKFILE [--input EVENTS.jsonl] [--follow]
          checkpoint --dir DATADIR --org ORG
          receipt --dir DATADIR --org ORG --seq N
          verify-receipt --consortium FILE RECEIPT
          verify --consortium FILE [--checkpoint FILE ...] DATADIR
          bench append|ingest|verify --entries N [--dir DIR] [--runs R]
          vectors --out DIR
          nodes init --dir DIR --orgs ORG1,ORG2,... [--consortium NAME] [--base-port PORT]
          demo [--nodes DIR]            the local consortium of Nodes/members.json doing a day's work

        Exit codes: 0 success, 1 verification failed, 2 usage, input or I/O error.
        """

    /// Runs one command; returns the exit code.
    public static func main(_ args: [String]) -> Int32 {
        let status = run(args)
        if status == 0 && outputFailed.load(ordering: .relaxed) {
            log("error", "standard output could not be written (\(String(cString: strerror(errno))))")
            return 2
        }
        return status
    }

    static func run(_ args: [String]) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // A file-size limit (ulimit -f) makes a write fail with EFBIG, reported like any write error, instead of
        // killing the process without a word.
        signal(SIGXFSZ, SIG_IGN)
        guard let command = args.first else {
            err(usage)
            return 2
        }
        let rest = Array(args.dropFirst())
        do {
            switch command {
            case "keygen": return try keygen(rest)
            case "consortium":
                guard rest.first == "init" else { throw UsageError("usage: prov consortium init ...") }
                return try consortiumInit(Array(rest.dropFirst()))
            case "append": return try append(rest)
            case "checkpoint": return try checkpoint(rest)
            case "receipt": return try receipt(rest)
            case "verify-receipt": return try verifyReceipt(rest)
            case "verify": return try verify(rest)
            case "bench": return try Bench.run(rest)
            case "vectors": return try Vectors.run(rest)
            case "demo": return try Demo.run(rest)
            case "nodes": return try nodes(rest)
            case "journey": return try journey(rest)
            case "help", "--help", "-h":
                out(usage)
                return 0
            default: throw UsageError("unknown command '\(command)'")
            }
        } catch let e as UsageError {
            log("error", "usage: \(e.message) (prov help shows the commands)")
            if isatty(2) != 0 { err("\n" + usage) }
            return 2
        } catch let e as LedgerError {
            log("error", (e.code == .verificationFailed ? "verification failed: " : "") + e.message)
            return e.code == .verificationFailed ? 1 : 2
        } catch let e as CryptoError {
            log("error", e.reason)
            return 2
        } catch {
            log("error", "\(error)")
            return 2
        }
    }

    static func out(_ s: String) { write(1, s + "\n") }

    static func err(_ s: String) { write(2, s + "\n") }

    /// Writes all of `text` to a file descriptor. A reader that went away (`prov ... | head -1`) or any other
    /// write error ends the output, not the process: SIGPIPE is ignored and the error dropped.
    static func write(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { b in
            var done = 0
            while done < b.count {
                let n = Glibc.write(fd, b.baseAddress! + done, b.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    // A reader that left is not an error of ours; a full disk or an I/O error is (exit 2).
                    if fd == 1 && !(n < 0 && errno == EPIPE) { outputFailed.store(true, ordering: .relaxed) }
                    return
                }
                done += n
            }
        }
    }

    /// Set when standard output could not be written (other than a closed pipe): the command then exits 2.
    static let outputFailed = Atomic<Bool>(false)

    /// A log line on stderr. On a terminal, `prov: level: message` for a person; otherwise one JSON object per line for a log collector.
    static func log(_ level: String, _ msg: String) {
        if isatty(2) != 0 {
            err("prov: \(level == "warn" ? "warning" : level): \(msg)")
            return
        }
        let v = JSONValue.object([
            JSONMember("ts", .string(Timestamp.format(UInt64(Date().timeIntervalSince1970 * 1000)))),
            JSONMember("level", .string(level)), JSONMember("msg", .string(msg)),
        ])
        err(v.serialized)
    }

    /// A file that must be text: one that is binary (a key file on the wrong option) is refused without a byte of it.
    static func readText(_ path: String, expected what: String, option: String) throws -> [UInt8] {
        let bytes = try readFile(path)
        if let why = FileKind.misplaced(bytes, expected: what) { throw LedgerError(.io, "\(option) \(path) \(why)") }
        return bytes
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw LedgerError(.io, "\(path): no such file")
        }
        guard !isDirectory.boolValue else { throw LedgerError(.io, "\(path) is a directory, not a file") }
        guard let d = FileManager.default.contents(atPath: path) else {
            throw LedgerError(.io, "cannot read \(path) (permissions?)")
        }
        return Array(d)
    }

    // MARK: keygen

    static func keygen(_ a: [String]) throws -> Int32 {
        let args = try Arguments(a, options: ["org", "consortium", "out"])
        let org = try args.required("org")
        let name = try args.required("consortium")
        guard Vocabulary.isOrgID(org) else { throw UsageError("--org must be 1-32 of a-z 0-9 - (got '\(org)')") }
        guard Vocabulary.isConsortiumName(name) else {
            throw UsageError("--consortium must be 1-64 of a-z 0-9 . - (got '\(name)')")
        }
        let signer = try NoteSigner(name: "\(name)/\(org)", privateKey: .generate())
        try SigningKeyFile.write(signer, to: try args.required("out"))
        out(signer.verifierKey.description)
        return 0
    }

    // MARK: consortium init

    static func consortiumInit(_ a: [String]) throws -> Int32 {
        let args = try Arguments(a, options: ["name", "member", "display", "vocabulary", "out", "link-key"])
        let name = try args.required("name")
        let outPath = try args.required("out")
        let linkPath = try args.required("link-key")
        var display: [String: String] = [:]
        for d in args.all("display") {
            let p = d.split(separator: "=", maxSplits: 1)
            guard p.count == 2 else { throw UsageError("--display takes ORG=NAME, got '\(d)'") }
            display[String(p[0])] = String(p[1])
        }
        guard !args.all("member").isEmpty else { throw UsageError("at least one --member ORG=VKEY is needed") }
        var members: [Consortium.Member] = []
        for m in args.all("member") {
            let p = m.split(separator: "=", maxSplits: 1)
            guard p.count == 2 else { throw UsageError("--member takes ORG=VERIFIERKEY, got '\(m)'") }
            let org = String(p[0])
            let key: NoteVerifierKey
            do { key = try NoteVerifierKey(parsing: String(p[1])) } catch let e as CryptoError {
                throw LedgerError(.config, "member \(org): \(e.reason)")
            }
            members.append(
                Consortium.Member(
                    org: org, name: display[org] ?? org, origin: "\(name)/\(org)", key: key, peer: nil, api: nil))
        }
        for org in display.keys where !members.contains(where: { $0.org == org }) {
            throw UsageError("--display names '\(org)', which is not given with --member")
        }
        var vocabulary = ConsortiumVocabulary.standard
        if let path = try args.optional("vocabulary") {
            vocabulary = try ConsortiumVocabulary(parsing: try readFile(path), source: "--vocabulary \(path)")
        }
        _ = try Consortium(name: name, members: members, vocabulary: vocabulary)
        guard !FileManager.default.fileExists(atPath: outPath) else {
            throw LedgerError(.io, "\(outPath) exists: a consortium descriptor is not overwritten; remove it first")
        }
        // The descriptor carries the linking key's fingerprint, so the key is made (or read) first.
        let linkKey: LinkKey
        if FileManager.default.fileExists(atPath: linkPath) {
            linkKey = try LinkKey.load(linkPath)
            log("info", "using the existing linking key \(linkPath)")
        } else {
            linkKey = try LinkKey.create(linkPath)
        }
        let c = try Consortium(
            name: name, members: members, linkKeyFingerprint: linkKey.fingerprint, vocabulary: vocabulary)
        try c.write(to: outPath)
        out("wrote \(outPath): consortium \(name) with \(members.count) members")
        return 0
    }

    // MARK: append

    static func append(_ a: [String]) throws -> Int32 {
        let args = try Arguments(a, options: ["dir", "key", "consortium", "link-key", "input"], flags: ["follow"])
        // Stop signals are taken from the start, before anything is loaded or opened: every whole line sent
        // before one is committed, whenever it comes.
        let stop = args.flags.contains("follow") ? prov_stop_signals_install() : -1
        let consortium = try Consortium.load(try args.required("consortium"))
        let signer = try SigningKeyFile.read(try args.required("key"))
        let linkKey = try LinkKey.load(try args.required("link-key"))
        let dir = try args.required("dir")
        // A log this command creates and then appends nothing to (bad input, empty input) is removed again:
        // a rejected batch leaves no trace.
        let logDir = consortium.member(origin: signer.name).map { dir + "/" + $0.org }
        let isNew = logDir.map { !FileManager.default.fileExists(atPath: $0) } ?? false
        let ingestor = try Ingestor(
            dataDirectory: dir, consortium: consortium, signer: signer, linkKey: linkKey, log: { log("warn", $0) })
        defer {
            ingestor.store.close()
            if isNew, ingestor.store.size == 0, let logDir { try? FileManager.default.removeItem(atPath: logDir) }
        }
        if args.flags.contains("follow") {
            guard try args.optional("input") == nil else {
                throw UsageError("--follow reads standard input; drop --input")
            }
            return try follow(ingestor, stop: stop)
        }
        let input: [UInt8]
        if let path = try args.optional("input") {
            input = try readText(path, expected: "JSON Lines events", option: "--input")
        } else {
            input = Array(FileHandle.standardInput.readDataToEndOfFile())
            if let why = FileKind.misplaced(input, expected: "JSON Lines events") {
                throw LedgerError(.io, "standard input \(why)")
            }
        }
        let results = try ingestor.append(input)
        var text = ""
        text.reserveCapacity(results.count * 80)
        for r in results { text += "\(r.seq) \(r.leaf.hex)\n" }
        write(1, text)
        return 0
    }

    /// Streams standard input: whatever whole lines have arrived are committed as one group, acknowledged on
    /// stdout once durable. While more input is waiting, the next group is parsed during the previous group's
    /// fsync; when input goes quiet, the last group is flushed at once. Each line stands alone: a bad line is
    /// reported on stderr with its line number in the stream and appended nowhere; the stream goes on, and the
    /// exit status is 2 if any line was rejected.
    static func follow(_ ingestor: Ingestor, stop: Int32) throws -> Int32 {
        // Acknowledgements are printed as soon as a group is durable, also when a later group then fails.
        let committer = PipelinedCommitter(store: ingestor.store, signer: ingestor.signer) { results in
            var text = ""
            for r in results { text += "\(r.seq) \(r.leaf.hex)\n" }
            write(1, text)
        }
        var carry: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var failures = 0
        var nextLine = 1
        var skipping = false  // inside a line over the limit, already reported, up to its newline
        func commit(_ lines: [UInt8]) throws {
            let group = try withRawBytes(lines) { raw throws(LedgerError) in
                try ingestor.prepare(raw, now: Ingestor.now(), firstLine: nextLine) { error in
                    failures += 1
                    log("error", "rejected, not appended: \(error.message)")
                }
            }
            nextLine += lines.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            try committer.submit(group)
        }
        /// Takes the `n` bytes just read: the whole lines so far are committed as one group, the rest waits.
        func take(_ n: Int) throws {
            carry += chunk[0..<n]
            if skipping {
                guard let end = carry.firstIndex(of: UInt8(ascii: "\n")) else {
                    carry.removeAll(keepingCapacity: true)
                    return
                }
                carry.removeFirst(end + 1)
                skipping = false
                nextLine += 1
            }
            guard let lastNewline = carry.lastIndex(of: UInt8(ascii: "\n")) else {
                if carry.count > Ingestor.maxLineBytes {
                    // Not buffered without end: reported now, skipped up to its newline.
                    failures += 1
                    log(
                        "error",
                        "rejected, not appended: line \(nextLine): longer than \(Ingestor.maxLineBytes) bytes")
                    carry.removeAll(keepingCapacity: true)
                    skipping = true
                }
                return
            }
            let lines = Array(carry[...lastNewline])
            carry.removeFirst(lastNewline + 1)
            try commit(lines)
        }
        func read() -> Int { chunk.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress!, $0.count) } }

        // SIGTERM and SIGINT stop the stream cleanly: every whole line sent before them is committed and
        // acknowledged before exit. Input and the stop signals are waited for together (poll ignores fd -1).
        var fds = [
            pollfd(fd: 0, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stop, events: Int16(POLLIN), revents: 0),
        ]
        var stopped = false
        while true {
            if poll(&fds, 2, 0) == 0 {
                // Nothing waiting: acknowledge what is durable, then sleep until input or a signal comes.
                try committer.flush()
                if poll(&fds, 2, -1) < 0 {
                    guard errno == EINTR else {
                        throw LedgerError(.io, "waiting for input: \(String(cString: strerror(errno)))")
                    }
                    continue
                }
            }
            if fds[1].revents != 0 {
                stopped = true
                break
            }
            let n = read()
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            try take(n)
        }
        if stopped {
            // What was sent before the signal is still taken. An unfinished line may be cut anywhere: it is not
            // guessed at.
            while poll(&fds, 1, 0) > 0 {
                let n = read()
                if n <= 0 { break }
                try take(n)
            }
            log(
                "info",
                "stopping on signal: every whole line read is committed"
                    + (carry.isEmpty || skipping ? "" : "; \(carry.count) bytes of an unfinished last line dropped"))
        } else if !carry.isEmpty && !skipping {
            try commit(carry)  // at end of input, a last line without a newline still counts
        }
        try committer.flush()
        return failures == 0 ? 0 : 2
    }

    // MARK: checkpoint, receipt

    static func checkpoint(_ a: [String]) throws -> Int32 {
        let args = try Arguments(a, options: ["dir", "org"])
        let store = try openReader(args)
        guard let cp = store.latest else { throw LedgerError(.io, "log \(store.org) has no checkpoint yet") }
        write(1, cp.serialized)
        return 0
    }

    /// Opens a log read-only; its origin comes from the stored checkpoint.
    static func openReader(_ args: Arguments) throws -> LogStore {
        let dir = try args.required("dir")
        let org = try args.required("org")
        guard Vocabulary.isOrgID(org) else {
            throw UsageError("--org must be an org id (1-32 of a-z 0-9 -), got '\(org)'")
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

    static func receipt(_ a: [String]) throws -> Int32 {
        let args = try Arguments(a, options: ["dir", "org", "seq"])
        guard let seq = UInt64(try args.required("seq")) else {
            throw UsageError("--seq must be a non-negative integer")
        }
        let store = try openReader(args)
        write(1, try store.receipt(seq).serialized)
        return 0
    }

    /// A descriptor without `linkKeyFingerprint` verifies logs as well as any (nothing here uses the linking key),
    /// but `prov append` refuses it: the auditor is told, once.
    static func warnIfNoFingerprint(_ consortium: Consortium, _ path: String) {
        guard consortium.linkKeyFingerprint == nil else { return }
        log(
            "warn",
            "consortium descriptor \(path) has no linkKeyFingerprint (written by an older prov): prov append refuses "
                + "it, since a wrong linking key could not be told from the consortium's; whoever holds the linking "
                + "key adds the value prov append prints")
    }

    static func verifyReceipt(_ a: [String]) throws -> Int32 {
        let args = try Arguments(a, options: ["consortium"], positionals: 1)
        let consortium = try Consortium.load(try args.required("consortium"))
        warnIfNoFingerprint(consortium, try args.required("consortium"))
        guard args.positionals.count == 1 else { throw UsageError("give exactly one receipt file") }
        let text = String(
            decoding: try readText(args.positionals[0], expected: "a receipt", option: "receipt"), as: UTF8.self)
        // A receipt that does not even parse fails verification like one whose proof is wrong.
        let receipt: Receipt
        do { receipt = try Receipt(parsing: text) } catch {
            throw LedgerError(.verificationFailed, "receipt \(args.positionals[0]) is malformed: \(error.message)")
        }
        let v = try receipt.verify(consortium: consortium)
        let cp = receipt.checkpoint.checkpoint
        out(
            "OK: \(v.entry.org) seq \(v.entry.seq) (leaf \(v.leaf.hex)) is in the log \(cp.origin) at size \(cp.size), "
                + "signed by \(v.entry.org)"
                + (v.cosigners.isEmpty ? "" : ", cosigned by \(v.cosigners.joined(separator: ", "))"))
        out(v.entry.json.prettySerialized)
        return 0
    }

    // MARK: verify

    static func verify(_ a: [String]) throws -> Int32 {
        let args = try Arguments(a, options: ["consortium", "checkpoint"], positionals: 1)
        let consortium = try Consortium.load(try args.required("consortium"))
        warnIfNoFingerprint(consortium, try args.required("consortium"))
        guard args.positionals.count == 1 else { throw UsageError("give exactly one data directory") }
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
        let progress = Progress(enabled: isatty(2) != 0)
        verifier.progress = { org, n in progress.update("verifying \(org): \(n) entries") }
        let start = Date()
        let audits = try verifier.verify(dataDirectory: args.positionals[0])
        progress.clear()
        var failed = false
        var unreadable = false
        for a in audits {
            for w in a.warnings { log("warn", "\(a.org): \(w)") }
            if let f = a.failure, a.failureIsIO {
                unreadable = true
                log("error", f)
                out("\(a.org): NOT VERIFIED, cannot be read: \(f)")
            } else if let f = a.failure {
                failed = true
                log("error", "verification failed: \(f)")
                out("\(a.org): FAILED after \(a.entries) entries: \(f)")
            } else {
                let latest = a.latest.map { "latest checkpoint size \($0.size) root \($0.root.hex)" } ?? "no checkpoint"
                out(
                    "\(a.org): OK: \(a.entries) entries, \(a.checkpoints) checkpoints verified, "
                        + "\(a.referencesChecked) references checked, \(latest)")
            }
        }
        for m in consortium.members where !audits.contains(where: { $0.org == m.org }) {
            out("\(m.org): no log in this directory")
        }
        let total = audits.reduce(UInt64(0)) { $0 + $1.entries }
        let secs = Date().timeIntervalSince(start)
        let verdict = failed ? "FAILED" : unreadable ? "INCOMPLETE" : "OK"
        out("\(verdict): \(audits.count) logs, \(total) entries in \(String(format: "%.2f", secs)) s")
        return failed ? 1 : unreadable ? 2 : 0
    }
}

/// A one-line progress display on a terminal's stderr; silent when stderr is not a terminal.
final class Progress: @unchecked Sendable {
    // Only touched from the thread running the command.
    let enabled: Bool
    var last = Date.distantPast

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ text: String) {
        guard enabled, Date().timeIntervalSince(last) > 0.2 else { return }
        last = Date()
        Prov.write(2, "\r\u{1B}[K\(text)")
    }

    func clear() {
        if enabled { Prov.write(2, "\r\u{1B}[K") }
    }
}
