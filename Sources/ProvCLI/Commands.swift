import Foundation
import ProvCrypto
import ProvLedger

#if canImport(Glibc)
    import Glibc
#endif

/// The `prov` command line: operators and auditors. Every command is a declaration (`Command`) in `commands`;
/// help, argument parsing and suggestions come from it. Exit codes: 0 success, 1 verification failed, 2 usage,
/// input or I/O error.
public enum Prov {
    /// The version of `prov`.
    public static let version = "0.1.0"

    /// Every command, in the order `prov --help` lists them. A new command is one more declaration here.
    package static let commands: [Command] =
        [
            keygenCommand, keyShowCommand, consortiumInitCommand,
        ] + consortiumCommands + [
            appendCommand, checkpointCommand, receiptCommand, verifyCommand, verifyReceiptCommand,
            verifyEvidenceCommand, viewCommand, permitCommand, timelineCommand, complianceCommand, reportCommand,
            verifyReportCommand, fetchCommand, tilesExportCommand, nodesInitCommand, demoCommand,
        ] + benchCommands + [vectorsCommand, versionCommand]

    /// What the first word of commands of more than one word stands for (`prov bench --help` says it).
    package static let groups: [CommandGroup] = [
        CommandGroup("key", purpose: "Key files: show what a key file holds."),
        CommandGroup(
            "consortium",
            purpose: "The consortium descriptor: write one, change it by a quorum of the members, check its chain."),
        CommandGroup("nodes", purpose: "Nodes on this machine: set up a consortium of provd nodes."),
        CommandGroup("tiles", purpose: "Static publication: write logs as C2SP tlog-tiles any web server serves."),
        CommandGroup(
            "bench", purpose: "Benchmarks; each prints one JSON object of medians over its runs (BENCHMARKS.md)."),
    ]

    /// The group `word` names: any first word of a command of more than one word.
    static func group(_ word: String) -> CommandGroup? {
        guard commands.contains(where: { $0.words.count > 1 && $0.words[0] == word }) else { return nil }
        return groups.first { $0.name == word } ?? CommandGroup(word, purpose: "The prov \(word) commands.")
    }

    /// `prov --help`: every command with its purpose.
    package static var overview: String {
        var out = """
            prov: the ProvenanceLedger command line, for the companies that keep the logs and the auditors who \
            check them.

            usage: prov <command> [options]
                   prov <command> --help    (or -h, or prov help <command>): its options, exit codes and an example

            Commands:

            """
        out += Help.table(commands.map { ($0.name, $0.purpose) })
        out += "\nOptions before a command:\n"
        out += Help.table([
            ("--log-format text|json", Option.common[0].help),
            ("--version", "print the version and the format version"),
            ("-h, --help", "print this list"),
        ])
        out += "\nExit codes: 0 success, 1 verification failed, 2 usage, input or I/O error.\n"
        return out
    }

    /// Runs one command line; returns the exit code.
    public static func main(_ args: [String]) -> Int32 {
        let status = run(args)
        let failed = outputFailed.load(ordering: .relaxed)
        if status == 0 && failed != 0 {
            log("error", "standard output could not be written (\(String(cString: strerror(failed))))")
            return 2
        }
        return status
    }

    static func run(_ args: [String]) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // A file-size limit (ulimit -f) makes a write fail with EFBIG, reported like any write error, instead of
        // killing the process without a word.
        signal(SIGXFSZ, SIG_IGN)
        var command: Command?
        do {
            if let env = ProcessInfo.processInfo.environment["PROV_LOG_FORMAT"] {
                logFormat = try logFormat(env, from: "PROV_LOG_FORMAT")
            }
            return try dispatch(args, &command)
        } catch let e as UsageError {
            if let hint = e.hint {
                log("error", "\(e.message) (\(hint))")
            } else if let command {
                log("error", "\(e.message) (prov \(command.name) --help says more)", ["usage": command.synopsis])
            } else {
                log("error", "\(e.message) (prov --help lists the commands)")
            }
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

    /// Finds the command `args` names, parses its arguments against its declaration and runs it; `command` is set
    /// once known, for the usage line of an error.
    static func dispatch(_ args: [String], _ command: inout Command?) throws -> Int32 {
        var args = args[...]
        // Options before the command: --version, --help, and the one every command takes.
        while let first = args.first, first.hasPrefix("-"), first != "-" {
            args.removeFirst()
            switch first {
            case "--version": return try versionCommand.run(try Arguments([], for: versionCommand))
            case "-h", "--help":
                out(overview)
                return 0
            case "--log-format":
                guard let v = args.popFirst() else { throw UsageError("--log-format needs a value (text|json)") }
                logFormat = try logFormat(v, from: "--log-format")
            case _ where first.hasPrefix("--log-format="):
                logFormat = try logFormat(String(first.dropFirst(13)), from: "--log-format")
            default:
                let near = Suggest.nearest(String(first.drop { $0 == "-" }), among: ["version", "help", "log-format"])
                throw UsageError(
                    "unknown option \(first) before the command" + (near.map { ": did you mean --\($0)?" } ?? ""))
            }
        }
        guard let word = args.first else {
            err(overview)
            throw UsageError("no command given")
        }
        if word == "help" { return try help(Array(args.dropFirst())) }
        let found: Command
        let rest: [String]
        do { (found, rest) = try resolve(Array(args)) } catch let g as GroupHelp {
            out(help(of: g.group))
            return 0
        }
        command = found
        let parsed = try Arguments(rest, for: found)
        if parsed.helpRequested {
            out(found.help)
            return 0
        }
        if let f = try parsed.optional("log-format") { logFormat = try logFormat(f, from: "--log-format") }
        return try found.run(parsed)
    }

    /// The command the first words of `args` name, and the arguments after them. A group's name alone, or with
    /// `--help`, is answered with the group's commands (as an error, or as help).
    static func resolve(_ args: [String]) throws -> (Command, [String]) {
        for c in commands.sorted(by: { $0.words.count > $1.words.count })
        where args.count >= c.words.count && Array(args.prefix(c.words.count)) == c.words {
            return (c, Array(args.dropFirst(c.words.count)))
        }
        let word = args[0]
        if let group = group(word) {
            let members = commands.filter { $0.words[0] == word }
            guard let sub = args.dropFirst().first else {
                throw UsageError(
                    "prov \(word) needs one of: "
                        + members.map { $0.words.dropFirst().joined(separator: " ") }
                        .joined(separator: ", "), hint: "prov \(word) --help says what each does")
            }
            if sub == "-h" || sub == "--help" { throw GroupHelp(group: group) }
            let near = Suggest.nearest(sub, among: members.map { $0.words.dropFirst().joined(separator: " ") })
            throw UsageError(
                "unknown command 'prov \(word) \(sub.prefix(40))'"
                    + (near.map { ": did you mean prov \(word) \($0)?" } ?? ""),
                hint: "prov \(word) --help lists its commands")
        }
        let tops = Array(Set(commands.map { $0.words[0] } + ["help"])).sorted()
        let near = Suggest.nearest(word, among: tops)
        throw UsageError("unknown command '\(word.prefix(40))'" + (near.map { ": did you mean \($0)?" } ?? ""))
    }

    /// `prov bench --help`: not an error, the group's help (thrown out of `resolve`, answered by `help`).
    struct GroupHelp: Error {
        var group: CommandGroup
    }

    /// The help of one group of commands.
    static func help(of group: CommandGroup) -> String {
        let members = commands.filter { $0.words[0] == group.name }
        return "prov \(group.name): \(group.purpose)\n\nCommands:\n" + Help.table(members.map { ($0.name, $0.purpose) })
            + "\nprov \(group.name) <command> --help says more about each.\n"
    }

    /// `prov help [command words]`: the overview, a command's help, or a group's.
    static func help(_ words: [String]) throws -> Int32 {
        guard !words.isEmpty else {
            out(overview)
            return 0
        }
        do {
            let (c, rest) = try resolve(words)
            guard rest.isEmpty else {
                throw UsageError("prov help takes one command, got '\(words.joined(separator: " "))'")
            }
            out(c.help)
        } catch let g as GroupHelp {
            out(help(of: g.group))
        } catch let e as UsageError where words.count == 1 {
            guard let group = group(words[0]) else { throw e }
            out(help(of: group))
        }
        return 0
    }
}

extension Command {
    /// The words of the name.
    var words: [String] { name.split(separator: " ").map(String.init) }
}

// MARK: version

extension Prov {
    static let versionCommand = Command(
        "version", purpose: "Print the version of prov and the version of the ledger format it reads and writes.",
        options: [.json], examples: ["prov version", "prov --version"]
    ) { args in
        if args.flag("json") {
            outJSON([
                JSONMember("version", .string(version)),
                JSONMember("formatVersion", .number(String(Entry.formatVersion))),
            ])
        } else {
            out("prov \(version) (format version \(Entry.formatVersion), Specs/format.md)")
        }
        return 0
    }
}
