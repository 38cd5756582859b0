/// A usage error: exit code 2, the message, and the command's synopsis.
public struct UsageError: Error, CustomStringConvertible {
    public var message: String
    /// Where to read more, said after the message; by default the command's help or the list of commands.
    public var hint: String?
    public var description: String { message }
    public init(_ message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }
}

/// A command's arguments, parsed against its declaration (`Command`): `--name value` or `--name=value` options,
/// `--flag` switches and operands, `--` ending the options. Anything the declaration does not name is a usage
/// error that suggests the nearest option the command has; so is a missing required option or operand, a value
/// missing, an option given twice that is not repeatable, and an operand too many.
package struct Arguments {
    package let command: Command
    package private(set) var options: [String: [String]] = [:]
    package private(set) var flags: Set<String> = []
    package private(set) var positionals: [String] = []
    /// `-h` or `--help` was given: the caller prints the help instead of running the command.
    package private(set) var helpRequested = false

    package init(_ args: [String], for command: Command) throws(UsageError) {
        self.command = command
        let declared = command.allOptions
        func option(_ name: String) -> Option? { declared.first { $0.name == name } }
        var i = 0
        while i < args.count {
            let a = args[i]
            i += 1
            if a == "--" {
                positionals += args[i...]
                break
            }
            if a == "-h" || a == "--help" {
                helpRequested = true
                continue
            }
            guard a.hasPrefix("-") && a != "-" else {
                positionals.append(a)
                continue
            }
            var name = String(a.drop { $0 == "-" })
            var inline: String?
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard a.hasPrefix("--"), let o = option(name) else { throw unknown(a, name) }
            guard let placeholder = o.placeholder else {
                guard inline == nil else { throw UsageError("--\(name) takes no value") }
                flags.insert(name)
                continue
            }
            let value: String
            if let inline {
                value = inline
            } else {
                // A value that looks like an option is taken for one left without its value.
                guard i < args.count, !args[i].hasPrefix("--") else {
                    throw UsageError("--\(name) needs a value (\(placeholder))")
                }
                value = args[i]
                i += 1
            }
            if !o.repeatable && options[name] != nil { throw UsageError("--\(name) given more than once") }
            options[name, default: []].append(value)
        }
        guard !helpRequested else { return }
        let missing = command.options.filter { $0.required && options[$0.name] == nil }
        if !missing.isEmpty {
            throw UsageError(
                "missing " + missing.map { "--\($0.name) \($0.placeholder ?? "")" }.joined(separator: ", "))
        }
        let most = command.operands.contains { $0.repeatable } ? Int.max : command.operands.count
        if positionals.count > most {
            let extra = positionals[most]
            throw UsageError(
                command.operands.isEmpty
                    ? "unexpected argument '\(extra)': prov \(command.name) takes options only (--name value)"
                    : "unexpected argument '\(extra)': prov \(command.name) takes "
                        + command.operands.map(\.name).joined(separator: " ") + " and options (--name value)")
        }
        let needed = command.operands.filter(\.required).count
        if positionals.count < needed {
            throw UsageError(
                "missing "
                    + command.operands[positionals.count...].filter(\.required).map(\.name)
                    .joined(separator: " "))
        }
    }

    private func unknown(_ typed: String, _ name: String) -> UsageError {
        let names = command.allOptions.map(\.name)
        if let near = Suggest.nearest(name, among: names) {
            return UsageError("unknown option \(typed) for prov \(command.name): did you mean --\(near)?")
        }
        return UsageError(
            "unknown option \(typed) for prov \(command.name): it takes "
                + names.filter { $0 != "help" }.map { "--\($0)" }.joined(separator: ", "))
    }

    /// The value of an option the declaration marks required (checked when parsing), or of any single-valued one.
    package func required(_ name: String) throws(UsageError) -> String {
        guard let v = options[name]?.first else { throw UsageError("missing --\(name)") }
        return v
    }

    package func optional(_ name: String) throws(UsageError) -> String? { options[name]?.first }

    package func all(_ name: String) -> [String] { options[name] ?? [] }

    package func flag(_ name: String) -> Bool { flags.contains(name) }

    package func integer(_ name: String, default def: Int) throws(UsageError) -> Int {
        guard let s = try optional(name) else { return def }
        guard let v = Int(s), v >= 0 else { throw UsageError("--\(name) must be a non-negative integer, got '\(s)'") }
        return v
    }
}
