import Dispatch
import Foundation
import ProvCrypto
import ProvLedger

/// Brings a copy of one log up to a checkpoint its owner signed, from one source that serves the log's tlog-tiles
/// (a peer, a node's API, a static export): chunk by chunk, each ending at a checkpoint the source stores
/// (`checkpoints/<N>`), its entries fetched as entry bundles a few requests ahead and checked as `prov verify`
/// checks them, and committed only under the owner's signature (Specs/protocol.md §5.2). Used by a node's puller
/// and by `prov fetch`.
struct CatchUp {
    /// Entries per chunk asked for: a chunk is one group commit, under a checkpoint the source stores.
    static let chunk: UInt64 = 32_768
    /// Entries per chunk at most, when the owner's checkpoints are further apart than `chunk`: its groups are
    /// at most `LogStore.maxGroupEntries`.
    static let maxChunk = UInt64(LogStore.maxGroupEntries)

    /// The source served something that does not verify (or was not there though its checkpoint covers it).
    struct SourceMisbehaved: Error, CustomStringConvertible {
        var log: String
        var reason: String
        var description: String { "\(log): \(reason)" }
    }

    /// The log, by org.
    let log: String
    let member: Consortium.Member
    let replica: ReplicaWriter
    let link: PeerLink
    /// What is known of committed entries of the logs held beside this copy (this one included), for the checks of
    /// references between logs.
    let known: (String, UInt64) -> KnownEntry?
    let stopping: () -> Bool

    /// The source's checkpoint of the log at `path` (`checkpoint`, `checkpoints/<N>`), checked against the owner's
    /// key and stripped of every other signature line; nil when the source holds none.
    func fetchCheckpoint(_ path: String) throws -> SignedCheckpoint? {
        try Self.fetchCheckpoint(path, of: member, over: link)
    }

    /// As `fetchCheckpoint(_:)`, for `member`'s log over `link`.
    static func fetchCheckpoint(_ path: String, of member: Consortium.Member, over link: PeerLink) throws
        -> SignedCheckpoint?
    {
        let log = member.org
        let r = try link.request("GET", "/logs/\(log)/\(path)", body: nil, contentType: nil)
        if r.status == 404 { return nil }
        guard r.status == 200 else {
            throw SourceMisbehaved(log: log, reason: "GET \(path) answered \(r.status)")
        }
        let cp: SignedCheckpoint
        do { cp = try SignedCheckpoint(parsing: String(decoding: r.body, as: UTF8.self)) } catch {
            throw SourceMisbehaved(log: log, reason: "its \(path) does not parse: \(error.message)")
        }
        if let why = member.signatureFailure(cp) {
            throw SourceMisbehaved(log: log, reason: "its \(path): \(why)")
        }
        // Keep only the owner's signature lines (Specs/protocol.md §5.2): cosignature lines are the source's own
        // business.
        var stored = cp
        stored.note.signatures = member.ownerLines(cp)
        return stored
    }

    /// Extends the copy chunk by chunk up to `goal` (validly signed by the owner, larger than the copy), each chunk
    /// checked entry by entry and handed to `commit` under the checkpoint that ends it. Stops early, between
    /// chunks, when `stopping` says so. Throws `SourceMisbehaved` for anything the source served wrong.
    func run(to goal: SignedCheckpoint, commit: (SignedCheckpoint) throws(LedgerError) -> Void) throws {
        while replica.pendingSize < goal.checkpoint.size && !stopping() {
            let m = replica.pendingSize
            let want = min(goal.checkpoint.size, m + Self.chunk)
            var chunkEnd = goal
            if want < goal.checkpoint.size, let cp = try fetchCheckpoint("checkpoints/\(want)"),
                cp.checkpoint.size >= want, cp.checkpoint.size <= goal.checkpoint.size
            {
                chunkEnd = cp
            }
            let c = chunkEnd.checkpoint.size
            // A chunk is held in memory until it is committed: a checkpoint that ends past the bound (an owner
            // that signs a huge group, or claims a size it never wrote) is refused rather than followed.
            guard c - m <= Self.maxChunk else {
                throw SourceMisbehaved(
                    log: log,
                    reason:
                        "the next checkpoint it serves is \(c - m) entries ahead, more than \(Self.maxChunk) per chunk")
            }
            // The next bundles are fetched while this one is checked: the link belongs to the fetcher until
            // it ends, which `finish` waits for. (c / 256 rounded up without c + 255, which could overflow.)
            let lastBundle = c / 256 + (c % 256 == 0 ? 0 : 1)
            let tiles = stride(from: m / 256, to: lastBundle, by: 1).map {
                TileAddress(level: nil, index: $0, width: Int(min(256, c - $0 * 256)))
            }
            let fetch = BundleFetch(tiles.map { "/logs/\(log)/\($0)" }, over: link)
            defer { fetch.finish() }
            for t in tiles {
                let r = try fetch.next()
                guard r.status == 200 else {
                    throw SourceMisbehaved(
                        log: log, reason: "GET \(t) answered \(r.status) though its checkpoint covers it")
                }
                do {
                    try r.body.withUnsafeBytes { b in
                        var entries: [UnsafeRawBufferPointer] = []
                        entries.reserveCapacity(t.width)
                        try Self.forEachEntry(b, first: t.index * 256, expected: t.width) { seq, raw in
                            if seq >= m { entries.append(raw) }
                        }
                        try replica.add(bundle: entries, known: known)
                    }
                } catch let e as LedgerError {
                    throw SourceMisbehaved(log: log, reason: "\(t): \(e.message)")
                }
            }
            fetch.finish()
            do { try commit(chunkEnd) } catch {
                if error.code == .verificationFailed { throw SourceMisbehaved(log: log, reason: error.message) }
                throw error
            }
        }
    }

    /// Splits an entry bundle (uint16 length-prefixed entries); it must hold exactly `expected` entries.
    static func forEachEntry(
        _ b: UnsafeRawBufferPointer, first: UInt64, expected: Int,
        _ body: (UInt64, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        do {
            var at = 0
            var n = 0
            while at < b.count {
                guard at + 2 <= b.count else {
                    throw LedgerError(.verificationFailed, "entry bundle ends inside a length prefix")
                }
                let len = Int(b[at]) << 8 | Int(b[at + 1])
                guard at + 2 + len <= b.count else {
                    throw LedgerError(.verificationFailed, "entry bundle ends inside entry \(first + UInt64(n))")
                }
                guard n < expected else {
                    throw LedgerError(.verificationFailed, "entry bundle holds more than \(expected) entries")
                }
                try body(first + UInt64(n), UnsafeRawBufferPointer(rebasing: b[(at + 2)..<(at + 2 + len)]))
                at += 2 + len
                n += 1
            }
            guard n == expected else {
                throw LedgerError(.verificationFailed, "entry bundle holds \(n) entries, not \(expected)")
            }
        }
    }
}

/// Fetches a list of paths over one link on its own thread, a few ahead of the reader, in order.
///
/// `@unchecked Sendable`: every mutable field is guarded by `cond`; the link is used by the fetch thread only,
/// until `finish` returns.
final class BundleFetch: @unchecked Sendable {
    private let cond = NSCondition()
    private var ready: [Result<PeerResponse, any Error>] = []
    private var stopped = false
    private var done = false
    static let ahead = 8

    init(_ paths: [String], over link: PeerLink) {
        let t = Thread { [self] in
            for p in paths {
                cond.lock()
                while ready.count >= Self.ahead && !stopped { cond.wait() }
                let stop = stopped
                cond.unlock()
                if stop { break }
                let r = Result { try link.request("GET", p, body: nil, contentType: nil) }
                cond.lock()
                ready.append(r)
                cond.broadcast()
                cond.unlock()
                if case .failure = r { break }
            }
            cond.lock()
            done = true
            cond.broadcast()
            cond.unlock()
        }
        t.name = "provd-fetch"
        t.start()
    }

    /// The next answer, in the order of the paths (throws what fetching it threw).
    func next() throws -> PeerResponse {
        cond.lock()
        defer { cond.unlock() }
        while ready.isEmpty && !done { cond.wait() }
        guard !ready.isEmpty else { throw LedgerError(.io, "bundle fetch ended early") }
        let r = ready.removeFirst()
        cond.broadcast()
        return try r.get()
    }

    /// Stops fetching and waits until the fetch thread has let go of the link.
    func finish() {
        cond.lock()
        stopped = true
        cond.broadcast()
        while !done { cond.wait() }
        cond.unlock()
    }
}
