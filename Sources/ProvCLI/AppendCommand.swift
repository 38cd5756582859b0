import CShims
import Foundation
import ProvCrypto
import ProvLedger

#if canImport(Glibc)
    import Glibc
#endif

/// `prov append`: JSON Lines events into the company's own log (Specs/events.md).
extension Prov {
    static let appendCommand = Command(
        "append",
        purpose: "Append events (JSON Lines) to the company's own log as one group commit; print each new entry's "
            + "seq and leaf hash once it is on disk.",
        options: [
            .value("dir", "DATADIR", "the data directory; the log is DATADIR/<org of the key>", required: true),
            .value("key", "KEYFILE", "the company's signing key (made by prov keygen)", required: true),
            .value("consortium", "FILE", "the consortium descriptor", required: true),
            .value(
                "link-key", "LINKFILE", "the consortium's linking key; its fingerprint must be the descriptor's",
                required: true),
            .value("input", "FILE", "read the events from FILE instead of standard input"),
            .flag(
                "follow",
                "stream standard input: each line on its own, committed as it arrives, until end of input or "
                    + "SIGTERM/Ctrl-C"),
        ],
        exitCodes: [
            ExitCode(0, "every event appended (or empty input)"),
            ExitCode(
                2,
                "nothing appended: an invalid event (the message names the line and field), a usage error, a key or "
                    + "descriptor that is wrong, a locked or damaged log, an I/O error; in --follow, a line was "
                    + "rejected (the others are appended)"),
        ],
        examples: [
            "prov append --dir data --key brand.key --consortium consortium.json --link-key link.key --input "
                + "events.jsonl"
        ],
        notes: [
            "Events are JSON objects, one per line (Specs/events.md). Every event of the input is appended, or none: "
                + "each entry is acknowledged as '<seq> <leaf hash>' on standard output after the group's fsync. On "
                + "a terminal, end the input with Ctrl-D; Ctrl-C before then appends nothing and leaves no new log "
                + "folder behind."
        ], run: append)

    static func append(_ args: Arguments) throws -> Int32 {
        let follow = args.flag("follow")
        if follow, try args.optional("input") != nil { throw UsageError("--follow reads standard input; drop --input") }
        // In --follow, stop signals are taken from the start, before anything is loaded or opened: every whole
        // line sent before one is committed, whenever it comes.
        let stop = follow ? prov_stop_signals_install() : -1
        let consortium = try Consortium.load(try args.required("consortium"))
        let signer = try signingKey(try args.required("key"))
        let linkKey = try linkingKey(try args.required("link-key"))
        let dir = try args.required("dir")
        try Ingestor.checkKeys(consortium: consortium, signer: signer, linkKey: linkKey)
        if follow {
            if isatty(0) != 0 {
                log(
                    "info",
                    "reading events from standard input as they come, one JSON object per line; end with Ctrl-D, "
                        + "or stop with Ctrl-C (every whole line typed is committed)")
            }
            let ingestor = try openIngestor(dir, consortium, signer, linkKey)
            defer { ingestor.close() }
            return try Follow(ingestor: ingestor.ingestor, stop: stop).run()
        }
        // The whole input is read before the log is opened: Ctrl-C while typing leaves nothing behind.
        let input: [UInt8]
        if let path = try args.optional("input") {
            input = try readText(path, expected: "JSON Lines events", option: "--input")
        } else {
            if isatty(0) != 0 {
                log(
                    "info",
                    "reading events from standard input, one JSON object per line; end with Ctrl-D (Ctrl-C "
                        + "cancels: nothing is appended)")
            }
            input = Array(FileHandle.standardInput.readDataToEndOfFile())
            if let why = FileKind.misplaced(input, expected: "JSON Lines events") {
                throw LedgerError(.io, "standard input \(why)")
            }
        }
        // From here a stop signal is noted, not obeyed at once: before the group is written it cancels the append
        // (nothing written, no new folder left); after, the entries are committed and acknowledged.
        let signals = prov_stop_signals_install()
        let ingestor = try openIngestor(dir, consortium, signer, linkKey)
        defer { ingestor.close() }
        let group = try withRawBytes(input) { raw throws(LedgerError) in
            try ingestor.ingestor.prepare(raw, now: Ingestor.now())
        }
        var pending = pollfd(fd: signals, events: Int16(POLLIN), revents: 0)
        if poll(&pending, 1, 0) > 0 {
            throw LedgerError(.io, "stopped by a signal before anything was written: nothing was appended")
        }
        let results = try ingestor.ingestor.store.commit(group, signer: signer)
        var text = ""
        text.reserveCapacity(results.count * 80)
        for r in results { text += "\(r.seq) \(r.leaf.hex)\n" }
        write(1, text)
        return 0
    }

    /// An open log for `append`, closed with `close()`: a log folder this command created and then appended
    /// nothing to (bad input, empty input, a stop signal) is removed again, so a rejected batch leaves no trace.
    struct OpenLog {
        let ingestor: Ingestor
        let newFolder: String?

        func close() {
            ingestor.store.close()
            if let newFolder, ingestor.store.size == 0 { try? FileManager.default.removeItem(atPath: newFolder) }
        }
    }

    static func openIngestor(
        _ dir: String, _ consortium: Consortium, _ signer: NoteSigner, _ linkKey: LinkKey
    ) throws -> OpenLog {
        let logDir = consortium.member(origin: signer.name).map { dir + "/" + $0.org }
        let isNew = logDir.map { !FileManager.default.fileExists(atPath: $0) } ?? false
        let ingestor = try Ingestor(
            dataDirectory: dir, consortium: consortium, signer: signer, linkKey: linkKey, log: { log("warn", $0) })
        return OpenLog(ingestor: ingestor, newFolder: isNew ? logDir : nil)
    }

    /// `append --follow`: streams standard input. Whatever whole lines have arrived are committed as one group,
    /// acknowledged on stdout once durable. While more input is waiting, the next group is parsed during the
    /// previous group's fsync; when input goes quiet, the last group is flushed at once. Each line stands alone: a
    /// bad line is reported on stderr with its line number in the stream and appended nowhere; the stream goes on,
    /// and the exit status is 2 if any line was rejected.
    struct Follow {
        let ingestor: Ingestor
        let stop: Int32

        func run() throws -> Int32 {
            let ingestor = self.ingestor
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
                        + (carry.isEmpty || skipping
                            ? "" : "; \(Phrase.count(carry.count, "byte")) of an unfinished last line dropped"))
            } else if !carry.isEmpty && !skipping {
                try commit(carry)  // at end of input, a last line without a newline still counts
            }
            try committer.flush()
            return failures == 0 ? 0 : 2
        }
    }
}
