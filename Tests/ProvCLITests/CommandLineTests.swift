import Foundation
import TestSupport
import Testing

@testable import ProvCLI
@testable import ProvLedger

/// The command layer (Specs/cli.md §2, §5): every command's help, the parser and the suggestions come from the
/// command's declaration, so these tests walk the declarations; a command added later is covered as it is
/// declared.
@Suite(.leavesNoFiles) struct CommandLineTests {
    static let names = Prov.commands.map(\.name)

    /// `prov <command> --help`, `-h` and `prov help <command>`: exit 0, the same text on standard output, naming
    /// the purpose, the synopsis, every option the command accepts, every exit code and the example.
    @Test(arguments: names)
    func everyCommandAnswersHelp(_ name: String) throws {
        let command = try #require(Prov.commands.first { $0.name == name })
        let words = name.split(separator: " ").map(String.init)
        let forms = [words + ["--help"], words + ["-h"], ["help"] + words]
        let runs = try forms.map { try prov($0) }
        for (form, r) in zip(forms, runs) {
            #expect(r.status == 0 && r.stderr.isEmpty, "\(form): exit \(r.status) \(r.stderr)")
            #expect(r.stdout == runs[0].stdout, "\(form) differs from --help")
        }
        let help = runs[0].stdout
        #expect(help.hasPrefix("prov \(name): \(command.purpose)\n"), "\(help)")
        #expect(help.contains("usage: \(command.synopsis)\n"), "\(help)")
        #expect(command.purpose.hasSuffix(".") && !command.purpose.dropLast().contains(". "), "one sentence")
        for option in command.allOptions {
            #expect(help.contains("--\(option.name)"), "\(name): --\(option.name) is not in its help")
            #expect(!option.help.isEmpty, "\(name): --\(option.name) has no explanation")
        }
        for operand in command.operands { #expect(help.contains("  \(operand.name)  "), "\(name): \(operand.name)") }
        for code in command.exitCodes { #expect(help.contains("\n  \(code.code)  "), "\(name): exit \(code.code)") }
        #expect(command.exitCodes.contains { $0.code == 0 } && command.exitCodes.contains { $0.code == 2 })
        #expect(!command.examples.isEmpty)
        for example in command.examples { #expect(help.contains("  \(example)\n"), "\(name): \(example)") }
    }

    /// What the help says a command takes, its parser takes: every declared option, given alongside the required
    /// ones; and nothing else, with the nearest declared option suggested for a slip of one letter.
    @Test(arguments: names)
    func theParserTakesWhatTheHelpSays(_ name: String) throws {
        let command = try #require(Prov.commands.first { $0.name == name })
        var base: [String] = []
        for o in command.options where o.required { base += ["--\(o.name)", "x"] }
        base += command.operands.filter(\.required).map { _ in "operand" }
        _ = try Arguments(base, for: command)
        for o in command.allOptions {
            let args = o.placeholder == nil ? ["--\(o.name)"] : ["--\(o.name)", o.name == "log-format" ? "json" : "1"]
            let parsed = try Arguments(o.required ? base : args + base, for: command)
            #expect(o.placeholder != nil || o.name == "help" || parsed.flag(o.name), "\(name): --\(o.name)")
            if o.placeholder != nil { #expect(parsed.all(o.name).count == 1, "\(name): --\(o.name)") }
            // One letter dropped from the middle of a longer name: the suggestion is the option meant.
            guard o.name.count >= 5 else { continue }
            var typo = o.name
            typo.remove(at: typo.index(typo.startIndex, offsetBy: o.name.count / 2))
            let e = #expect(throws: UsageError.self) { try Arguments(["--\(typo)"] + base, for: command) }
            #expect(e?.message == "unknown option --\(typo) for prov \(name): did you mean --\(o.name)?")
        }
        let e = #expect(throws: UsageError.self) { try Arguments(base + ["--zzzzzzzz"], for: command) }
        #expect(e?.message.hasPrefix("unknown option --zzzzzzzz for prov \(name): it takes ") == true)
        for o in command.options where o.required {
            var without: [String] = []
            for r in command.options where r.required && r.name != o.name { without += ["--\(r.name)", "x"] }
            without += command.operands.filter(\.required).map { _ in "operand" }
            let missing = #expect(throws: UsageError.self) { try Arguments(without, for: command) }
            #expect(
                missing?.message == "missing --\(o.name) \(o.placeholder ?? "")", "\(name): --\(o.name) is required")
        }
    }

    @Test func theOverviewListsEveryCommand() throws {
        for args in [["--help"], ["-h"], ["help"]] {
            let r = try prov(args)
            #expect(r.status == 0, "\(args)")
            for c in Prov.commands {
                #expect(r.stdout.contains("  \(c.name)  "), "\(args): \(c.name)")
                #expect(r.stdout.contains(String(c.purpose.prefix(40))), "\(args): \(c.name)")
            }
            #expect(r.stdout.contains("--log-format") && r.stdout.contains("--version"))
        }
        let none = try prov([])
        #expect(none.status == 2 && none.stderr.contains("usage: prov <command> [options]"))
    }

    /// A command of several words belongs to a group named by its first word, which has a purpose of its own.
    @Test func everyGroupIsDeclared() {
        let firsts = Set(Prov.commands.map(\.words).filter { $0.count > 1 }.map { $0[0] })
        #expect(firsts == Set(Prov.groups.map(\.name)))
        for g in Prov.groups { #expect(g.purpose.hasSuffix(".") && !g.purpose.hasPrefix("The prov "), "\(g.name)") }
    }

    @Test func groupsListTheirCommands() throws {
        let help = try prov(["bench", "--help"])
        #expect(help.status == 0)
        #expect(try prov(["help", "bench"]).stdout == help.stdout)
        let bench = Prov.commands.filter { $0.name.hasPrefix("bench ") }
        for c in bench { #expect(help.stdout.contains("  \(c.name)  "), "\(c.name)") }
        let bare = try prov(["bench"])
        #expect(bare.status == 2)
        #expect(
            bare.stderr.contains(
                "prov bench needs one of: " + bench.map { String($0.name.dropFirst(6)) }.joined(separator: ", ")),
            "\(bare.stderr)")
        let typo = try prov(["bench", "apend"])
        #expect(
            typo.status == 2
                && typo.stderr.contains("unknown command 'prov bench apend': did you mean prov bench append?"))
    }

    @Test(arguments: [
        (["verfy", "x"], "unknown command 'verfy': did you mean verify?"),
        (["verify-reciept"], "unknown command 'verify-reciept': did you mean verify-receipt?"),
        (["checkpiont"], "unknown command 'checkpiont': did you mean checkpoint?"),
        (
            ["verify", "--consortum", "c.json", "data"],
            "unknown option --consortum for prov verify: did you mean --consortium?"
        ),
        (["keygen", "-org", "brand"], "unknown option -org for prov keygen: did you mean --org?"),
        (["append", "--dir"], "--dir needs a value (DATADIR)"),
        (["append", "--dir", "--key", "k"], "--dir needs a value (DATADIR)"),
        (["verify", "--json=yes"], "--json takes no value"),
        (["receipt", "--dir", "d", "--org", "brand", "--seq", "1", "--seq", "2"], "--seq given more than once"),
        (["verify", "--consortium", "c.json"], "missing DATADIR"),
        (["verify", "--consortium", "c.json", "a", "b"], "unexpected argument 'b': prov verify takes DATADIR"),
        (["--frobnicate"], "unknown option --frobnicate before the command"),
    ])
    func mistakesAreUsageErrorsThatNameTheFix(_ c: ([String], String)) throws {
        let r = try prov(c.0)
        #expect(r.status == 2 && r.stdout.isEmpty, "\(c.0): exit \(r.status)")
        #expect(r.stderr.contains(c.1), "\(c.0): \(r.stderr)")
    }

    @Test func versionPrintsTheVersionAndTheFormatVersion() throws {
        let expected = "prov \(Prov.version) (format version \(Entry.formatVersion), Specs/format.md)\n"
        #expect(try prov(["--version"]).stdout == expected)
        #expect(try prov(["version"]).stdout == expected)
        let json = try JSON.parse(Array(try prov(["version", "--json"]).stdout.utf8))
        #expect(json["version"]?.stringValue == Prov.version)
        #expect(json["formatVersion"]?.int64Value == Int64(Entry.formatVersion))
    }

    /// Specs/cli.md §3: `--log-format text|json` and `PROV_LOG_FORMAT` choose the format of standard error (here not a
    /// terminal, where the default is JSON), with `provd`'s names and values; the option wins over the variable.
    @Test func logFormatChoosesTheFormatOfStandardError() throws {
        let args = ["checkpoint", "--dir", "/nonexistent-prov-data", "--org", "brand"]
        func isJSON(_ r: Run) -> Bool {
            (try? JSON.parse(Array(r.stderr.split(separator: "\n").last.map(String.init)?.utf8 ?? "".utf8)))?["level"]?
                .stringValue == "error"
        }
        let plain = try prov(args)
        #expect(plain.status == 2 && isJSON(plain), "\(plain.stderr)")
        for (extra, env, json) in [
            (["--log-format", "text"], [:], false), (["--log-format=text"], [:], false),
            ([], ["PROV_LOG_FORMAT": "text"], false), (["--log-format", "json"], ["PROV_LOG_FORMAT": "text"], true),
            (["--log-format", "text"], ["PROV_LOG_FORMAT": "json"], false),
        ] {
            for r in [try prov(args + extra, environment: env), try prov(extra + args, environment: env)] {
                #expect(r.status == 2, "\(extra) \(env)")
                #expect(isJSON(r) == json, "\(extra) \(env): \(r.stderr)")
                if !json { #expect(r.stderr.hasPrefix("prov: error: "), "\(extra) \(env): \(r.stderr)") }
            }
        }
        let badOption = try prov(args + ["--log-format", "yaml"])
        #expect(badOption.status == 2 && badOption.stderr.contains("--log-format takes text or json, got 'yaml'"))
        let badVariable = try prov(args, environment: ["PROV_LOG_FORMAT": "xml"])
        #expect(badVariable.status == 2 && badVariable.stderr.contains("PROV_LOG_FORMAT takes text or json, got 'xml'"))
    }
}
