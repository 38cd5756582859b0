import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The `quarantine` folder of a data directory (Specs/format.md §10.13): copies of other members' logs that a node
/// found damaged when it opened them, set aside as they were (for an operator to look at) so that the copy can be
/// fetched again from the peers. A node's own log is never set aside: damage to it stops the node. `quarantine` is
/// no member's org id, and `prov verify` does not take the folder for a log.
package enum Quarantine {
    package static let name = "quarantine"

    package static func path(in dataDirectory: String) -> String { dataDirectory + "/" + name }

    /// Whether a copy that failed to open with `error` is set aside: damage to what it holds, not another process
    /// holding its lock, and not a configuration mistake that another copy would meet again.
    package static func applies(to error: LedgerError) -> Bool {
        switch error.code {
        case .locked, .config, .invalidEvent: false
        case .io, .invalidEntry, .verificationFailed: true
        }
    }

    /// Moves the folder of `org`'s copy (whatever is in its place: a folder, a link, a file) to
    /// `quarantine/<org>-<UTC time>` without reading it, and makes the move durable. Returns the new path.
    package static func setAside(org: String, dataDirectory: String, now: Date = Date()) throws(LedgerError) -> String {
        let folder = path(in: dataDirectory)
        _ = try FileHandleFD.makeDirectory(folder, mode: 0o755)
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let stamp = f.string(from: now)
        var target = "\(folder)/\(org)-\(stamp)"
        var n = 1
        while FileHandleFD.kind(of: target) != nil {
            n += 1
            target = "\(folder)/\(org)-\(stamp)-\(n)"
        }
        let source = dataDirectory + "/" + org
        guard rename(source, target) == 0 else { throw FileHandleFD.error("cannot move \(source) to", target) }
        try FileHandleFD.syncDirectory(folder)
        try FileHandleFD.syncDirectory(dataDirectory)
        return target
    }

    /// The copies set aside in `dataDirectory`, oldest name first (none when there is no folder).
    package static func list(dataDirectory: String) -> [String] {
        let folder = path(in: dataDirectory)
        guard FileHandleFD.kind(of: folder) == S_IFDIR, let names = try? FileHandleFD.list(directory: folder) else {
            return []
        }
        return names.filter { !$0.hasPrefix(".") }.sorted().map { folder + "/" + $0 }
    }
}
