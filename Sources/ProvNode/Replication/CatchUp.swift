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
    /// Bytes of records per chunk at most: `chunk` entries of the largest size before the entry asked for, then the
    /// rest of the group that holds it (at most `LogStore.maxGroupBytes`, Specs/format.md §10.9). An owner's chunk
    /// never holds more; past it the source is refused, so no member makes a node hold 64 GiB of one group.
    static let maxChunkBytes = Int(chunk) * (SegmentFormat.headerSize + Entry.maxSize) + LogStore.maxGroupBytes

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

    /// The source's checkpoint of `member`'s log at `path` (`checkpoint`, `checkpoints/<N>`) over `link`, checked
    /// against the owner's key and stripped of every other signature line; nil when the source holds none.
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
    ///
    /// One thread fetches ahead of the checks, across chunk boundaries (`ChunkFetch`): the next chunk's end and
    /// first bundles are on their way while this chunk is checked and committed.
    func run(to goal: SignedCheckpoint, commit: (SignedCheckpoint) throws(LedgerError) -> Void) throws {
        guard replica.pendingSize < goal.checkpoint.size, !stopping() else { return }
        let fetch = ChunkFetch(
            log: log, member: member, from: replica.pendingSize, to: goal, auditor: replica.auditor, over: link)
        defer { fetch.finish() }
        while replica.pendingSize < goal.checkpoint.size && !stopping() {
            guard case .chunk(let chunkEnd, let tiles) = try fetch.next() else {
                throw LedgerError(.io, "catch-up: the fetch lost its place")
            }
            for t in tiles {
                guard case .bundle(let r, let split) = try fetch.next() else {
                    throw LedgerError(.io, "catch-up: the fetch lost its place")
                }
                guard r.status == 200 else {
                    throw SourceMisbehaved(
                        log: log, reason: "GET \(t) answered \(r.status) though its checkpoint covers it")
                }
                do {
                    let (ranges, audited) = try split.get()
                    try r.body.withUnsafeBytes { b in
                        try replica.add(
                            ranges.map { UnsafeRawBufferPointer(rebasing: b[$0]) }, audited: audited, known: known)
                    }
                } catch let e as LedgerError {
                    throw SourceMisbehaved(log: log, reason: "\(t): \(e.message)")
                }
                // What is held before a checkpoint covers it is bounded in bytes too (Specs/protocol.md §5.2).
                guard replica.pendingBytes <= Self.maxChunkBytes else {
                    throw SourceMisbehaved(
                        log: log,
                        reason: "the chunk ending at \(chunkEnd.checkpoint.size) holds more than "
                            + "\(Self.maxChunkBytes) bytes of records, more than an owner's chunk can")
                }
            }
            do { try commit(chunkEnd) } catch {
                if error.code == .verificationFailed { throw SourceMisbehaved(log: log, reason: error.message) }
                throw error
            }
        }
    }

    /// The chunk after the copy's first `m` entries on the way to `goal`: its end (the source's stored checkpoint
    /// at or past `m + chunk`, when it lies within the goal, else the goal) and the bundles that cover it.
    static func nextChunk(
        after m: UInt64, to goal: SignedCheckpoint, of member: Consortium.Member, over link: PeerLink
    ) throws -> (end: SignedCheckpoint, tiles: [TileAddress]) {
        let want = min(goal.checkpoint.size, m + chunk)
        var chunkEnd = goal
        if want < goal.checkpoint.size, let cp = try fetchCheckpoint("checkpoints/\(want)", of: member, over: link),
            cp.checkpoint.size >= want, cp.checkpoint.size <= goal.checkpoint.size
        {
            chunkEnd = cp
        }
        let c = chunkEnd.checkpoint.size
        // A chunk is held in memory until it is committed: a checkpoint that ends past the bound (an owner that
        // signs a huge group, or claims a size it never wrote) is refused rather than followed.
        guard c - m <= maxChunk else {
            throw SourceMisbehaved(
                log: member.org,
                reason: "the next checkpoint it serves is \(c - m) entries ahead, more than \(maxChunk) per chunk")
        }
        // (c / 256 rounded up without c + 255, which could overflow.)
        let lastBundle = c / 256 + (c % 256 == 0 ? 0 : 1)
        let tiles = stride(from: m / 256, to: lastBundle, by: 1).map {
            TileAddress(level: nil, index: $0, width: Int(min(256, c - $0 * 256)))
        }
        return (chunkEnd, tiles)
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

/// Fetches a catch-up's chunks over one link on its own thread, a few answers ahead of the checks and across chunk
/// boundaries: for each chunk its end (`CatchUp.nextChunk`), then its bundles, in order.
///
/// `@unchecked Sendable`: every mutable field is guarded by `cond`; the link is used by the fetch thread only,
/// until `finish` returns.
final class ChunkFetch: @unchecked Sendable {
    enum Piece {
        case chunk(end: SignedCheckpoint, tiles: [TileAddress])
        /// A bundle as served, and for a `200`, where its entries the copy lacks lie in it and their audits, or
        /// why it does not split into the entries its address promises.
        case bundle(PeerResponse, Result<(ranges: [Range<Int>], audited: [ReplicaWriter.Audited]), LedgerError>)
    }

    private let cond = NSCondition()
    private var ready: [Result<Piece, any Error>] = []
    private var stopped = false
    private var done = false
    /// Bundles fetched ahead of the checks, at most.
    static let ahead = 8

    init(
        log: String, member: Consortium.Member, from start: UInt64, to goal: SignedCheckpoint,
        auditor: ReplicaWriter.Auditor, over link: PeerLink
    ) {
        // It runs until the goal, an answer that ends the catch-up, or `finish` (the reader stopped, for any
        // reason: the reader alone decides when to stop, between chunks).
        let t = Thread { [self] in
            defer {
                cond.lock()
                done = true
                cond.broadcast()
                cond.unlock()
            }
            var m = start
            while m < goal.checkpoint.size {
                let chunk = Result { try CatchUp.nextChunk(after: m, to: goal, of: member, over: link) }
                guard put(chunk.map { .chunk(end: $0.end, tiles: $0.tiles) }), case .success(let next) = chunk
                else { return }
                for t in next.tiles {
                    let r = Result { try link.request("GET", "/logs/\(log)/\(t)", body: nil, contentType: nil) }
                    let piece = r.map { Piece.bundle($0, Self.split($0, t, from: m, auditor)) }
                    // A bundle that is not there or does not split ends the catch-up: nothing more is fetched.
                    guard put(piece), case .success(.bundle(let answer, .success)) = piece, answer.status == 200 else {
                        return
                    }
                }
                m = next.end.checkpoint.size
            }
        }
        t.name = "provd-fetch"
        t.start()
    }

    /// The entries of bundle `t` at or past `m` (by their places in the body) and their audits, on this thread and
    /// the cores it can have, while the reader checks the bundles before it against the chain.
    static func split(_ r: PeerResponse, _ t: TileAddress, from m: UInt64, _ auditor: ReplicaWriter.Auditor)
        -> Result<(ranges: [Range<Int>], audited: [ReplicaWriter.Audited]), LedgerError>
    {
        guard r.status == 200 else { return .success(([], [])) }
        do {
            return .success(
                try r.body.withUnsafeBytes { b in
                    var ranges: [Range<Int>] = []
                    var entries: [UnsafeRawBufferPointer] = []
                    ranges.reserveCapacity(t.width)
                    entries.reserveCapacity(t.width)
                    try CatchUp.forEachEntry(b, first: t.index * 256, expected: t.width) { seq, raw in
                        guard seq >= m else { return }
                        let lo = raw.baseAddress.map { $0 - b.baseAddress! } ?? 0
                        ranges.append(lo..<(lo + raw.count))
                        entries.append(raw)
                    }
                    return (ranges, auditor.audit(entries))
                })
        } catch let e as LedgerError {
            return .failure(e)
        } catch {
            return .failure(LedgerError(.verificationFailed, "the bundle does not split into entries"))
        }
    }

    /// Hands a piece to the reader once it has room; false when the reader is done with the fetch.
    private func put(_ piece: Result<Piece, any Error>) -> Bool {
        cond.lock()
        defer { cond.unlock() }
        while ready.count >= Self.ahead && !stopped { cond.wait() }
        guard !stopped else { return false }
        ready.append(piece)
        cond.broadcast()
        return true
    }

    /// The next piece, in order (throws what fetching it threw).
    func next() throws -> Piece {
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
