/// One `prov` command, declared once. Its help (`prov <command> --help`, `-h`, `prov help <command>`), its line
/// in `prov --help`, the parsing of its arguments (`Arguments`) and the suggestions for a mistyped option all come
/// from this declaration, so they cannot disagree. Adding a command is one declaration in `Prov.commands` plus the
/// function it runs:
///
/// ```swift
/// static let timelineCommand = Command(
///     "timeline", purpose: "Print one customer's timeline across every company's log.",
///     options: [.dataDirectory, .consortium, .value("subject", "ID", "the customer's identifier", required: true),
///               .json],
///     examples: ["prov timeline --dir data --consortium consortium.json --subject email:alice@example.com"],
///     run: timeline)
/// static func timeline(_ args: Arguments) throws -> Int32 { … }
/// ```
package struct Command: Sendable {
    /// The words that name it: `verify`, `consortium init`, `bench append`.
    package var name: String
    /// One sentence: what it does.
    package var purpose: String
    package var options: [Option]
    package var operands: [Operand]
    package var exitCodes: [ExitCode]
    package var examples: [String]
    /// Paragraphs of help after the options: what a reader must know beyond them.
    package var notes: [String]
    package var run: @Sendable (Arguments) throws -> Int32

    package init(
        _ name: String, purpose: String, options: [Option] = [], operands: [Operand] = [],
        exitCodes: [ExitCode] = ExitCode.standard, examples: [String], notes: [String] = [],
        run: @escaping @Sendable (Arguments) throws -> Int32
    ) {
        self.name = name
        self.purpose = purpose
        self.options = options
        self.operands = operands
        self.exitCodes = exitCodes
        self.examples = examples
        self.notes = notes
        self.run = run
    }

    /// Every option the command accepts: its own, then the ones every command takes.
    package var allOptions: [Option] { options + Option.common }

    /// `prov verify --consortium FILE [--checkpoint FILE]... [--json] DATADIR`, derived from the declaration.
    package var synopsis: String {
        var parts = ["prov", name]
        for o in options {
            var s = "--\(o.name)" + (o.placeholder.map { " \($0)" } ?? "")
            if !o.required { s = "[\(s)]" }
            if o.repeatable { s += "..." }
            parts.append(s)
        }
        for a in operands {
            var s = a.name
            if a.repeatable { s += "..." }
            parts.append(a.required ? s : "[\(s)]")
        }
        return parts.joined(separator: " ")
    }

    /// The text `prov <command> --help` prints.
    package var help: String {
        var out = "prov \(name): \(purpose)\n\nusage: \(synopsis)\n"
        let rows =
            allOptions.map { o in
                (
                    (o.name == "help" ? "-h, " : "") + "--\(o.name)" + (o.placeholder.map { " \($0)" } ?? ""),
                    o.help + (o.required ? " (required)" : "") + (o.repeatable ? " (repeatable)" : "")
                )
            }
        out += "\nOptions:\n" + Help.table(rows)
        if !operands.isEmpty {
            out += "\nArguments:\n" + Help.table(operands.map { ($0.name, $0.help) })
        }
        for n in notes { out += "\n" + Help.wrap(n, indent: 0) }
        out += "\nExit codes:\n" + Help.table(exitCodes.map { ("\($0.code)", $0.meaning) }, width: 1)
        out += "\n" + (examples.count == 1 ? "Example:\n" : "Examples:\n")
        for e in examples { out += "  \(e)\n" }
        return out
    }
}

/// An option of a command: `--name VALUE` or a switch `--name`.
package struct Option: Sendable {
    package var name: String
    /// What the value is (`FILE`, `DATADIR`, `N`); nil for a switch, which takes no value.
    package var placeholder: String?
    package var help: String
    package var required: Bool
    package var repeatable: Bool

    /// An option that takes a value.
    package static func value(
        _ name: String, _ placeholder: String, _ help: String, required: Bool = false, repeatable: Bool = false
    ) -> Option {
        Option(name: name, placeholder: placeholder, help: help, required: required, repeatable: repeatable)
    }

    /// A switch: present or not.
    package static func flag(_ name: String, _ help: String) -> Option {
        Option(name: name, placeholder: nil, help: help, required: false, repeatable: false)
    }

    /// `--json`: the result as one JSON object on standard output (fields in Specs/cli.md).
    package static let json = flag(
        "json", "print the result as one JSON object on standard output (its fields: Specs/cli.md)")

    /// What every command takes: the stderr format, and help.
    package static let common: [Option] = [
        .value(
            "log-format", "text|json",
            "diagnostics on standard error as text lines or JSON objects (default: text on a terminal, JSON "
                + "otherwise; also the environment variable PROV_LOG_FORMAT)"),
        .flag("help", "print this help and exit 0"),
    ]
}

/// A positional argument.
package struct Operand: Sendable {
    package var name: String
    package var help: String
    package var required: Bool
    package var repeatable: Bool

    package init(_ name: String, _ help: String, required: Bool = true, repeatable: Bool = false) {
        self.name = name
        self.help = help
        self.required = required
        self.repeatable = repeatable
    }
}

/// What an exit code of a command means.
package struct ExitCode: Sendable {
    package var code: Int32
    package var meaning: String

    package init(_ code: Int32, _ meaning: String) {
        self.code = code
        self.meaning = meaning
    }

    package static let usage = ExitCode(2, "usage error, bad input, or a file that cannot be read or written")
    /// Commands that verify nothing.
    package static let standard = [ExitCode(0, "success"), usage]
}

/// Words that name several commands (`bench`, `consortium`): `prov bench --help` lists them.
package struct CommandGroup: Sendable {
    package var name: String
    package var purpose: String

    package init(_ name: String, purpose: String) {
        self.name = name
        self.purpose = purpose
    }
}

/// Help text layout: two columns, wrapped at 100 columns.
enum Help {
    static let columns = 100

    /// Rows of `  left  right`, the right column wrapped and aligned.
    static func table(_ rows: [(String, String)], width: Int? = nil) -> String {
        let w = width ?? min(24, rows.map(\.0.count).max() ?? 0)
        let indent = String(repeating: " ", count: 2 + w + 2)
        var out = ""
        for (left, right) in rows {
            var text = lines(right, width: columns - indent.count)
            if left.count > w {
                out += "  \(left)\n"
            } else {
                out += "  " + left.padding(toLength: w, withPad: " ", startingAt: 0) + "  " + text.removeFirst() + "\n"
            }
            for l in text { out += indent + l + "\n" }
        }
        return out
    }

    /// `text` in lines of at most `columns`, each indented by `indent`.
    static func wrap(_ text: String, indent: Int) -> String {
        let pad = String(repeating: " ", count: indent)
        return lines(text, width: columns - indent).map { pad + $0 + "\n" }.joined()
    }

    /// `text` cut at spaces into lines of at most `width` characters (a longer word stays whole); at least one line.
    static func lines(_ text: String, width: Int) -> [String] {
        var out: [String] = []
        var line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty && line.count + 1 + word.count > width {
                out.append(line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        out.append(line)
        return out
    }
}

/// "Did you mean …?": the nearest known name, when it is near enough to be what was meant.
enum Suggest {
    /// The candidate nearest to `typed` by edit distance (a transposition counts once), if it is within a third of
    /// its length (at least 1, at most 3) or `typed` is the start of exactly one candidate.
    static func nearest(_ typed: String, among candidates: [String]) -> String? {
        let starts = candidates.filter { $0.hasPrefix(typed) }
        if !typed.isEmpty && starts.count == 1 { return starts[0] }
        var best: (String, Int)?
        for c in candidates {
            let d = distance(typed, c)
            if d < (best?.1 ?? Int.max) { best = (c, d) }
        }
        guard let (name, d) = best, d <= min(3, max(1, max(typed.count, name.count) / 3)) else { return nil }
        return name
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and adjacent transpositions.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased().utf8)
        let b = Array(b.lowercased().utf8)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }
}
