import Foundation
import ProvCrypto
import ProvLedger
import ProvView

/// The shared customer view inside the node (Specs/view.md): built from the logs on disk when the node opens
/// (no signature is checked twice: the builder reads stored leaf hashes and checks each log's checkpoint), then
/// fed every group the node commits, its own and the copies', after the group's fsync.
extension Node {
    /// Builds the view of every log held, as the node opens.
    static func buildView(
        dataDirectory: String, consortium: Consortium, linkKey: LinkKey, logs: [String: HeldLog], log: NodeLog
    ) throws(LedgerError) -> ViewIndex {
        let built: OfflineView
        do { built = try ViewIndex.build(dataDirectory: dataDirectory, consortium: consortium, linkKey: linkKey) } catch
        {
            throw LedgerError(.io, "cannot build the view from \(dataDirectory): \(error.message)")
        }
        for (org, reason) in built.excluded {
            log.error("a log is left out of the view", ["log": org, "reason": reason])
        }
        // The view must start where each log is: what the builder read is what the stores hold.
        for (org, held) in logs {
            let size = held.head.size
            let viewed = built.index.frontier.logs.first { $0.org == org }?.size ?? 0
            guard viewed == size || built.excluded.contains(where: { $0.org == org }) else {
                throw LedgerError(
                    .io, "the view of \(org) holds \(viewed) entries but the log holds \(size); run prov verify")
            }
        }
        return built.index
    }

    /// Feeds the view a committed group of a copy on the view's own queue: a catch-up goes on verifying and
    /// storing the next chunk meanwhile (on the other core). Groups of one log arrive in order.
    func feedViewLater(_ org: String, _ group: GroupEntries, _ checkpoint: SignedCheckpoint) {
        guard view != nil else { return }
        viewQueue.async { [self] in feedView(org, group, checkpoint) }
    }

    /// Feeds the view the entries of a committed group and the checkpoint that closes it.
    func feedView(_ org: String, _ group: GroupEntries, _ checkpoint: SignedCheckpoint) {
        guard let view else { return }
        // A view built again from the data directory (a new version of the descriptor) may hold the group already.
        if let held = view.frontier.logs.first(where: { $0.org == org }), held.size >= checkpoint.checkpoint.size {
            return
        }
        do {
            try group.forEach { seq, leaf, bytes in try view.ingest(org: org, seq: seq, leaf: leaf, entryBytes: bytes) }
            try view.commit(org: org, size: checkpoint.checkpoint.size, checkpoint: checkpoint)
        } catch {
            log.error("the view could not take a committed group", ["log": org, "error": "\(error)"])
        }
    }
}

/// Entry bytes for receipts and reports, from the logs the node holds.
struct HeldLogsSource: EntrySource {
    let logs: [String: HeldLog]

    func entryBytes(org: String, seq: UInt64) throws -> [UInt8] {
        guard let held = logs[org] else { throw LedgerError(.io, "no log \(org) here") }
        return try held.read { store throws(LedgerError) in try store.entryBytes(seq) }
    }
}
