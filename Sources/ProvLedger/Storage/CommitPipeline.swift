import Dispatch
import ProvCrypto

/// Group commit with the fsync of one group overlapped with building the next: at 1,000 entries a group the
/// fsync costs about as much as building, so overlapping nearly doubles throughput. Acknowledgements still come
/// only after each group's fsync, in order, through `acknowledged`: also those of a group whose fsync completed
/// before the next group failed to be written, since its entries are committed.
public final class PipelinedCommitter {
    public let store: LogStore
    let signer: NoteSigner
    private let pipeline: FsyncPipeline<Void>

    /// `acknowledged` gets each group's seqs and leaf hashes once the group is durable.
    public init(
        store: LogStore, signer: NoteSigner,
        acknowledged: @escaping ([(seq: UInt64, leaf: SHA256Digest)]) -> Void
    ) {
        self.store = store
        self.signer = signer
        pipeline = FsyncPipeline(
            acknowledge: { w, _ throws(LedgerError) in
                let acks = try store.acknowledge(w)
                if !acks.isEmpty { acknowledged(acks) }
            }, fail: { store.fail($0) })
    }

    /// Writes `group`, then waits for the previous group's fsync and acknowledges it, then starts this group's
    /// fsync in the background. When `group` cannot be written, the previous group is still waited for and
    /// acknowledged before the error is thrown.
    public func submit(_ group: PendingGroup) throws(LedgerError) {
        try pipeline.submit { () throws(LedgerError) in (try store.write(group, signer: signer), ()) }
    }

    /// Waits for the last group's fsync and acknowledges it.
    public func flush() throws(LedgerError) { try pipeline.flush() }
}

/// The ordering of a pipelined commit, for any writer of a log: a group is written (`submit`'s closure), the
/// previous group's fsync is awaited and that group acknowledged, then this group's write-out and fsync start
/// on a queue of their own. Groups count in order and only after their fsync; a failed fsync fails the log
/// (`fail`) and is thrown. Used by one thread.
public final class FsyncPipeline<Extra> {
    private let acknowledge: (LogStore.WrittenGroup, Extra) throws(LedgerError) -> Void
    private let fail: (LedgerError) -> Void
    private let queue = DispatchQueue(label: "prov.group-commit.fsync")
    private var inFlight: (group: LogStore.WrittenGroup, extra: Extra, done: DispatchGroup, error: ErrorBox)?

    final class ErrorBox: @unchecked Sendable {
        // Written by the fsync queue before `done.leave()`, read after `done.wait()`.
        var error: LedgerError?
    }

    /// `acknowledge` makes a synced group count (with what `submit`'s closure returned beside it); `fail` marks
    /// the log failed after a failed fsync.
    public init(
        acknowledge: @escaping (LogStore.WrittenGroup, Extra) throws(LedgerError) -> Void,
        fail: @escaping (LedgerError) -> Void
    ) {
        self.acknowledge = acknowledge
        self.fail = fail
    }

    /// Writes a group with `write`; when it cannot, the group before it is still finished before the error is
    /// thrown.
    public func submit(_ write: () throws(LedgerError) -> (LogStore.WrittenGroup, Extra)) throws(LedgerError) {
        let written: (LogStore.WrittenGroup, Extra)
        do throws(LedgerError) { written = try write() } catch {
            try flush()
            throw error
        }
        try flush()
        let done = DispatchGroup()
        let box = ErrorBox()
        done.enter()
        let w = written.0
        queue.async {
            do throws(LedgerError) { try LogStore.sync(w) } catch { box.error = error }
            done.leave()
        }
        inFlight = (written.0, written.1, done, box)
    }

    /// Waits for the last group's fsync and acknowledges it.
    public func flush() throws(LedgerError) {
        guard let f = inFlight else { return }
        inFlight = nil
        f.done.wait()
        if let e = f.error.error {
            fail(e)
            throw e
        }
        try acknowledge(f.group, f.extra)
    }
}
