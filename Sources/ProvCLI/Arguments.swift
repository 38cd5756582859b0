/// A usage error: exit code 2 and the command's usage line.
public struct UsageError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(_ message: String) { self.message = message }
}

/// Parsed command-line arguments: `--name value` options (repeatable), `--flag` switches and positionals.
/// Deliberately small: every option a command accepts is declared, anything else is a usage error.
public struct Arguments {
    public private(set) var options: [String: [String]] = [:]
    public private(set) var flags: Set<String> = []
    public private(set) var positionals: [String] = []

    /// Parses `args` given the option names that take a value, the switches, and how many positionals the
    /// command takes at most (an argument left over, such as a file given without its option, is a usage error).
    public init(
        _ args: [String], options valued: Set<String>, flags switches: Set<String> = [], positionals most: Int = 0
    ) throws(UsageError) {
        var i = 0
        while i < args.count {
            let a = args[i]
            if a == "--" {
                positionals += args[(i + 1)...]
                break
            }
            if a.hasPrefix("--") {
                var name = String(a.dropFirst(2))
                var inline: String?
                if let eq = name.firstIndex(of: "=") {
                    inline = String(name[name.index(after: eq)...])
                    name = String(name[..<eq])
                }
                if valued.contains(name) {
                    if let inline {
                        options[name, default: []].append(inline)
                    } else {
                        guard i + 1 < args.count else { throw UsageError("option --\(name) needs a value") }
                        options[name, default: []].append(args[i + 1])
                        i += 1
                    }
                } else if switches.contains(name) && inline == nil {
                    flags.insert(name)
                } else {
                    throw UsageError("unknown option --\(name)")
                }
            } else {
                positionals.append(a)
            }
            i += 1
        }
        if positionals.count > most {
            throw UsageError("unexpected argument '\(positionals[most])' (options are written --name value)")
        }
    }

    /// The single value of a required option.
    public func required(_ name: String) throws(UsageError) -> String {
        guard let v = options[name], !v.isEmpty else { throw UsageError("missing --\(name)") }
        guard v.count == 1 else { throw UsageError("--\(name) given more than once") }
        return v[0]
    }

    public func optional(_ name: String) throws(UsageError) -> String? {
        guard let v = options[name] else { return nil }
        guard v.count == 1 else { throw UsageError("--\(name) given more than once") }
        return v[0]
    }

    public func all(_ name: String) -> [String] { options[name] ?? [] }

    public func integer(_ name: String, default def: Int) throws(UsageError) -> Int {
        guard let s = try optional(name) else { return def }
        guard let v = Int(s), v >= 0 else { throw UsageError("--\(name) must be a non-negative integer, got '\(s)'") }
        return v
    }
}
