import Dispatch
import Foundation
import ProvLedger
import Synchronization

/// Structured log lines on stderr, in the core's format: `provd: <level>: <message> key=value …` for a person on
/// a terminal, one JSON object per line (`{"ts","level","msg",…}`) for a log collector otherwise.
public struct NodeLog: Sendable {
    public enum Format: String, Sendable { case text, json }
    public let format: Format
    let sink: @Sendable (String) -> Void
    /// Repeated lines of one kind, summarised: what a flood of bad requests or a broken peer can make the node
    /// write is bounded (Specs/protocol.md §6.3).
    let throttle: LogThrottle

    public init(format: Format, sink: @escaping @Sendable (String) -> Void) {
        self.format = format
        self.sink = sink
        throttle = LogThrottle { kind, level, count, seconds in
            Self.write(
                format, sink, level, "\(count) more like this in the last \(seconds) s, not written: \(kind)",
                ["suppressed": "\(count)"])
        }
    }

    /// A log that writes to stderr, as text on a terminal and JSON otherwise (or as `format` says).
    public static func standardError(format: Format? = nil) -> NodeLog {
        NodeLog(format: format ?? (isatty(2) != 0 ? .text : .json)) { line in
            var l = line + "\n"
            l.withUTF8 { b in _ = Glibc.write(2, b.baseAddress!, b.count) }
        }
    }

    public static let silent = NodeLog(format: .json) { _ in }

    /// Info lines are written as they come unless `limited` names their kind (lines a client or peer can cause
    /// at will). Warnings and errors are always limited, by `kind`, or else by their message.
    public func info(_ msg: String, _ fields: KeyValuePairs<String, String> = [:], limited: String? = nil) {
        emit("info", msg, fields, limited: limited)
    }
    public func warn(_ msg: String, _ fields: KeyValuePairs<String, String> = [:], kind: String? = nil) {
        emit("warn", msg, fields, limited: kind ?? msg)
    }
    public func error(_ msg: String, _ fields: KeyValuePairs<String, String> = [:], kind: String? = nil) {
        emit("error", msg, fields, limited: kind ?? msg)
    }

    /// Lines not written so far, by kind (for `/metrics`).
    var suppressed: [String: UInt64] { throttle.suppressedTotals }

    func emit(_ level: String, _ msg: String, _ fields: KeyValuePairs<String, String>, limited kind: String?) {
        if let kind, !throttle.admit(kind, level: level) { return }
        Self.write(format, sink, level, msg, fields)
    }

    private static func write(
        _ format: Format, _ sink: @Sendable (String) -> Void, _ level: String, _ msg: String,
        _ fields: KeyValuePairs<String, String>
    ) {
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

/// Counts log lines by kind: the first `burst` of a kind in each `interval` are written, the rest only counted,
/// and one line per kind says how many were left out once the interval is over.
final class LogThrottle: Sendable {
    static let interval = 10
    static let burst = 5

    private struct Window {
        var start: UInt64
        var written = 0
        var suppressed: UInt64 = 0
        var level: String
    }

    private struct State {
        var windows: [String: Window] = [:]
        var totals: [String: UInt64] = [:]
    }

    private let state = Mutex(State())
    /// Set once in init; its handler only reads `state` through the lock.
    private nonisolated(unsafe) let timer: DispatchSourceTimer

    /// Writes the summaries through `summary` (kind, level, count, seconds) as each interval ends.
    init(summary: @escaping @Sendable (String, String, UInt64, Int) -> Void) {
        timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
        timer.schedule(deadline: .now() + .seconds(Self.interval), repeating: .seconds(Self.interval))
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            for (kind, w) in self.closeWindows() { summary(kind, w.level, w.suppressed, Self.interval) }
        }
        timer.resume()
    }

    deinit { timer.cancel() }

    private static var now: UInt64 { DispatchTime.now().uptimeNanoseconds / 1_000_000_000 }

    /// Whether a line of `kind` is written now.
    func admit(_ kind: String, level: String) -> Bool {
        let now = Self.now
        return state.withLock { s in
            var w = s.windows[kind] ?? Window(start: now, level: level)
            defer { s.windows[kind] = w }
            if w.written < Self.burst {
                w.written += 1
                return true
            }
            w.suppressed += 1
            s.totals[kind, default: 0] += 1
            return false
        }
    }

    /// Ends the windows that are over; returns those that left lines out.
    private func closeWindows() -> [(String, Window)] {
        let now = Self.now
        return state.withLock { s in
            var out: [(String, Window)] = []
            for (kind, w) in s.windows where now >= w.start + UInt64(Self.interval) {
                if w.suppressed > 0 { out.append((kind, w)) }
                s.windows[kind] = nil
            }
            return out.sorted { $0.0 < $1.0 }
        }
    }

    var suppressedTotals: [String: UInt64] { state.withLock { $0.totals } }
}
