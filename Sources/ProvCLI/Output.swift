import Foundation
import ProvLedger
import ProvTools
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How `prov` writes: results on standard output, diagnostics on standard error as text or JSON lines.
extension Prov {
    /// The format of standard error: `prov: <level>: <message>` lines for a person, or one JSON object per line
    /// (`{"ts","level","msg"}`) for a log collector. The same names and values as `provd`'s.
    package enum LogFormat: String, Sendable {
        case text, json
    }

    /// JSON lines on standard error: by default when it is not a terminal; `--log-format` and `PROV_LOG_FORMAT`
    /// decide otherwise.
    static let jsonLogs = Atomic<Bool>(isatty(2) == 0)

    static var logFormat: LogFormat {
        get { jsonLogs.load(ordering: .relaxed) ? .json : .text }
        set { jsonLogs.store(newValue == .json, ordering: .relaxed) }
    }

    /// Parses a `--log-format` or `PROV_LOG_FORMAT` value.
    static func logFormat(_ value: String, from source: String) throws(UsageError) -> LogFormat {
        guard let f = LogFormat(rawValue: value) else {
            throw UsageError("\(source) takes text or json, got '\(value.prefix(40))'")
        }
        return f
    }

    static func out(_ s: String) { write(1, s + "\n") }

    static func err(_ s: String) { write(2, s + "\n") }

    /// One JSON object on standard output: the `--json` result of a command.
    static func outJSON(_ members: [JSONMember]) { out(JSONValue.object(members).prettySerialized) }

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
                    let e = n < 0 ? errno : EIO
                    if fd == 1 && e != EPIPE { outputFailed.store(e, ordering: .relaxed) }
                    return
                }
                done += n
            }
        }
    }

    /// Set when standard output could not be written (other than a closed pipe): the command then exits 2.
    /// The errno of a failed write to standard output (0: none failed).
    static let outputFailed = Atomic<Int32>(0)

    /// A diagnostic on standard error, in the chosen format: `prov: <level>: <message>` (and a line per field,
    /// `<key>: <value>`), or one JSON object `{"ts","level","msg",<fields>}`.
    static func log(_ level: String, _ msg: String, _ fields: KeyValuePairs<String, String> = [:]) {
        guard logFormat == .json else {
            err("prov: \(level == "warn" ? "warning" : level): \(msg)")
            for (k, v) in fields { err("\(k): \(v)") }
            return
        }
        let v = JSONValue.object(
            [
                JSONMember("ts", .string(Timestamp.format(UInt64(Date().timeIntervalSince1970 * 1000)))),
                JSONMember("level", .string(level)), JSONMember("msg", .string(msg)),
            ] + fields.map { JSONMember($0.key, .string($0.value)) })
        err(v.serialized)
    }
}

extension Prov {
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
}

extension ProgressLine {
    /// A progress line on standard error when `enabled` (it is a terminal) and diagnostics are text lines; else silent.
    convenience init(enabled: Bool) {
        guard enabled && Prov.logFormat == .text else {
            self.init(nil)
            return
        }
        self.init { Prov.write(2, $0) }
    }
}
