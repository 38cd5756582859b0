import Foundation
import Synchronization

/// The node's counters, exported in the Prometheus text format at `GET /metrics` (Specs/protocol.md §6).
final class Metrics: Sendable {
    let appends = Atomic<UInt64>(0)
    let groupCommits = Atomic<UInt64>(0)
    let entriesReplicated = Atomic<UInt64>(0)
    let pushes = Atomic<UInt64>(0)
    let pulls = Atomic<UInt64>(0)
    /// Group commit latency histogram (seconds), from the first request taken to the acknowledgement.
    static let buckets: [Double] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1]
    private let histogram = Mutex<(counts: [UInt64], sum: Double, count: UInt64)>(
        ([UInt64](repeating: 0, count: 11), 0, 0))
    private let rejected = Mutex<[String: UInt64]>([:])

    func observeCommit(seconds: Double) {
        histogram.withLock { h in
            let i = Self.buckets.firstIndex { seconds <= $0 } ?? Self.buckets.count
            h.counts[i] += 1
            h.sum += seconds
            h.count += 1
        }
    }

    /// A Prometheus label value: backslash, double quote and newline escaped.
    static func label(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    func reject(_ reason: String) { rejected.withLock { $0[reason, default: 0] += 1 } }

    var rejections: [String: UInt64] { rejected.withLock { $0 } }

    /// The exposition text. `logs` gives per log (org) its size and the newest size seen signed anywhere.
    func exposition(
        org: String, logs: [(org: String, size: UInt64, seen: UInt64)], peers: [(org: String, connected: Bool)],
        transport: [String: UInt64], suppressedLogLines: [String: UInt64] = [:], evidence: [String: UInt64] = [:],
        writing: Bool = true, failing: Set<String> = []
    ) -> String {
        var s = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            s += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { s += "\(name)\(labels) \(value)\n" }
        }
        metric(
            "prov_appends_total", "counter", "Entries appended to this node's own log.",
            [("", "\(appends.load(ordering: .relaxed))")])
        metric(
            "prov_group_commits_total", "counter", "Group commits of this node's own log.",
            [("", "\(groupCommits.load(ordering: .relaxed))")])
        let h = histogram.withLock { $0 }
        s += "# HELP prov_group_commit_seconds Time from taking a group's first request to its acknowledgement.\n"
        s += "# TYPE prov_group_commit_seconds histogram\n"
        var cumulative: UInt64 = 0
        for (i, b) in Self.buckets.enumerated() {
            cumulative += h.counts[i]
            s += "prov_group_commit_seconds_bucket{le=\"\(b)\"} \(cumulative)\n"
        }
        s += "prov_group_commit_seconds_bucket{le=\"+Inf\"} \(h.count)\n"
        s += "prov_group_commit_seconds_sum \(h.sum)\nprov_group_commit_seconds_count \(h.count)\n"
        metric(
            "prov_log_size", "gauge", "Entries of each log held here, covered by a verified signed checkpoint.",
            logs.map { ("{log=\"\($0.org)\"}", "\($0.size)") })
        metric(
            "prov_log_lag_entries", "gauge", "Entries of each log signed by its owner but not yet held here.",
            logs.map { ("{log=\"\($0.org)\"}", "\($0.seen > $0.size ? $0.seen - $0.size : 0)") })
        metric(
            "prov_entries_replicated_total", "counter", "Entries of other logs verified and stored here.",
            [("", "\(entriesReplicated.load(ordering: .relaxed))")])
        metric(
            "prov_pushes_total", "counter", "add-checkpoint requests sent.",
            [("", "\(pushes.load(ordering: .relaxed))")])
        metric(
            "prov_pulls_total", "counter", "Catch-ups that stored entries.", [("", "\(pulls.load(ordering: .relaxed))")]
        )
        metric(
            "prov_peers_connected", "gauge", "Peers whose last exchange succeeded.",
            [("", "\(peers.filter(\.connected).count)")])
        metric(
            "prov_peer_up", "gauge", "1 when the peer's last exchange succeeded.",
            peers.map { ("{peer=\"\($0.org)\"}", $0.connected ? "1" : "0") })
        var reasons = rejections
        for (k, v) in transport { reasons[k, default: 0] += v }
        metric(
            "prov_rejected_requests_total", "counter", "Requests refused, by reason.",
            reasons.sorted { $0.key < $1.key }.map { ("{reason=\"\($0.key)\"}", "\($0.value)") })
        metric(
            "prov_log_lines_suppressed_total", "counter",
            "Log lines not written because more of their kind came within the interval (a summary line says so).",
            suppressedLogLines.sorted { $0.key < $1.key }.map { ("{kind=\"\(Self.label($0.key))\"}", "\($0.value)") })
        metric(
            "prov_equivocation_evidence", "gauge",
            "Pieces of equivocation evidence held against each log (checked; Specs/protocol.md §4.3).",
            logs.map { ("{log=\"\($0.org)\"}", "\(evidence[$0.org] ?? 0)") })
        metric(
            "prov_own_log_writing", "gauge", "1 while the own log takes entries, 0 once appending was stopped.",
            [("", writing ? "1" : "0")])
        metric(
            "prov_log_write_failing", "gauge",
            "1 while a log held here cannot be written (a write or fsync failed; retried until one succeeds).",
            logs.map { ("{log=\"\($0.org)\"}", failing.contains($0.org) ? "1" : "0") })
        _ = org
        return s
    }
}
