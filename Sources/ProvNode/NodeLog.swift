import Foundation
import ProvLedger

/// Structured log lines on stderr, in the core's format: `provd: <level>: <message> key=value …` for a person on
/// a terminal, one JSON object per line (`{"ts","level","msg",…}`) for a log collector otherwise.
public struct NodeLog: Sendable {
    public enum Format: String, Sendable { case text, json }
    public let format: Format
    let sink: @Sendable (String) -> Void

    public init(format: Format, sink: @escaping @Sendable (String) -> Void) {
        self.format = format
        self.sink = sink
    }

    /// A log that writes to stderr, as text on a terminal and JSON otherwise (or as `format` says).
    public static func standardError(format: Format? = nil) -> NodeLog {
        NodeLog(format: format ?? (isatty(2) != 0 ? .text : .json)) { line in
            var l = line + "\n"
            l.withUTF8 { b in _ = write(2, b.baseAddress!, b.count) }
        }
    }

    public static let silent = NodeLog(format: .json) { _ in }

    public func info(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { emit("info", msg, fields) }
    public func warn(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { emit("warn", msg, fields) }
    public func error(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { emit("error", msg, fields) }

    func emit(_ level: String, _ msg: String, _ fields: KeyValuePairs<String, String>) {
        switch format {
        case .text:
            var s = "provd: \(level == "warn" ? "warning" : level): \(msg)"
            for (k, v) in fields { s += " \(k)=\(v)" }
            sink(s)
        case .json:
            var members = [
                JSONMember("ts", .string(Timestamp.format(UInt64(Date().timeIntervalSince1970 * 1000)))),
                JSONMember("level", .string(level)), JSONMember("msg", .string(msg)),
            ]
            for (k, v) in fields { members.append(JSONMember(k, .string(v))) }
            sink(JSONValue.object(members).serialized)
        }
    }
}
