import Foundation
import ProvCrypto
import ProvLedger
import ProvNet

/// `prov fetch` (Specs/protocol.md §7.2): copies or updates every log a source holds into a local data directory,
/// verifying every entry against the owner's signed checkpoints exactly as a node's catch-up does, a chunk at a
/// time (memory flat in the log's size; an interrupted run keeps every chunk it committed, so the next one resumes).
///
/// The data directory is the auditor's **trust state**: the copy of each log it holds ends at the newest checkpoint
/// it verified. Every later run, against any node or mirror, checks the source against it: a source that serves a
/// history which does not extend what was verified before (a fork between runs, or between two sources) ends in
/// evidence kept in the data directory's `evidence` folder; one that serves less than was verified before (a
/// rollback) is a failure too.
public struct RemoteCopy {
    /// Where the logs come from.
    public enum Source: Sendable {
        /// A node's API (`http://HOST:PORT`), with its app or auditor token.
        case node(address: String, token: String)
        /// A static export (`prov tiles export`) served over HTTP, from `http://HOST:PORT/PATH`.
        case tiles(url: String)
    }

    /// What became of one log.
    public struct Result: Sendable {
        public enum Outcome: Sendable, Equatable {
            /// Entries `from..<to` fetched and verified.
            case fetched(from: UInt64, to: UInt64)
            case upToDate(UInt64)
            /// The source holds no checkpoint of this log.
            case absent
            /// The source serves a smaller history that agrees with what is held: a stale copy or a rollback.
            case rolledBack(served: UInt64, held: UInt64)
            /// The source serves a history that conflicts with what was verified before; evidence kept.
            case forked(description: String, evidence: String)
            /// The source served something that does not verify; nothing of it was kept.
            case failed(String)
        }

        public var org: String
        public var outcome: Outcome
        public var size: UInt64
        public var root: SHA256Digest?

        public var failed: Bool {
            switch outcome {
            case .rolledBack, .forked, .failed: true
            default: false
            }
        }
    }

    public let consortium: Consortium
    public let dataDirectory: String
    public let source: Source
    /// Called with (org, entries held so far) as a log grows.
    public var progress: (@Sendable (String, UInt64) -> Void)?

    public init(consortium: Consortium, dataDirectory: String, source: Source) {
        self.consortium = consortium
        self.dataDirectory = dataDirectory
        self.source = source
    }

    /// Fetches every member's log, in descriptor order. Throws only when the source cannot be reached at all or
    /// the data directory cannot be written; what a log's source served wrong is in its result.
    public func run() throws -> [Result] {
        let link = try makeLink()
        defer { link.close() }
        var stores: [String: LogStore] = [:]
        defer { for s in stores.values { s.close() } }
        for m in consortium.members {
            stores[m.org] = try LogStore(
                dataDirectory: dataDirectory, consortium: consortium.name, org: m.org, writable: true,
                verifyingWith: consortium, log: { _ in })
        }
        var results: [Result] = []
        for m in consortium.members {
            results.append(try fetch(m, store: stores[m.org]!, stores: stores, link: link))
        }
        return results
    }

    private func fetch(
        _ member: Consortium.Member, store: LogStore, stores: [String: LogStore], link: PeerLink
    ) throws -> Result {
        var result = Result(org: member.org, outcome: .absent, size: store.size, root: store.latest?.checkpoint.root)
        let served: SignedCheckpoint?
        do { served = try CatchUp.fetchCheckpoint("checkpoint", of: member, over: link) } catch let e
            as CatchUp.SourceMisbehaved
        {
            result.outcome = .failed(e.reason)
            return result
        }
        guard let served else {
            // A source that holds none of a log this copy holds entries of hides all of it: a rollback to nothing.
            if store.size > 0 { result.outcome = .rolledBack(served: 0, held: store.size) }
            return result
        }
        let held = store.size
        if served.checkpoint.size <= held {
            if let evidence = try store.conflict(with: served) {
                let path = try EvidenceFolder.store(evidence, org: member.org, dataDirectory: dataDirectory)
                let what = (try? evidence.verify(consortium: consortium).get().description) ?? "a conflicting history"
                result.outcome = .forked(description: what, evidence: path)
            } else if served.checkpoint.size < held {
                result.outcome = .rolledBack(served: served.checkpoint.size, held: held)
            } else {
                result.outcome = .upToDate(held)
            }
            return result
        }
        // A larger history must begin with the one verified here: the source's root at the held size, joined to
        // its checkpoint by a consistency proof from its own tiles, is checked before any entry is fetched.
        if held > 0 {
            guard let ours = store.latest, ours.checkpoint.size == held else {
                throw LedgerError(.io, "log \(member.org): the copy's size and its latest checkpoint disagree")
            }
            let tiles = SourceTiles(org: member.org, size: served.checkpoint.size, link: link)
            let prefixRoot: SHA256Digest
            let proof: [SHA256Digest]
            do {
                prefixRoot = try Merkle.root(of: 0..<held, in: tiles)
                proof = try Merkle.consistencyProof(old: held, new: served.checkpoint.size, in: tiles)
            } catch let e as CatchUp.SourceMisbehaved {
                result.outcome = .failed(e.reason)
                return result
            }
            if let why = Merkle.consistencyFailure(
                oldSize: held, newSize: served.checkpoint.size, oldRoot: prefixRoot, newRoot: served.checkpoint.root,
                proof: proof)
            {
                result.outcome = .failed(
                    "its tiles do not join its checkpoint of size \(served.checkpoint.size): \(why)")
                return result
            }
            if prefixRoot != ours.checkpoint.root {
                let evidence = Evidence(ours, served, prefixRoot: prefixRoot, proof: proof)
                guard case .success(let proven) = evidence.verify(consortium: consortium) else {
                    result.outcome = .failed("its history does not begin with the \(held) entries verified here")
                    return result
                }
                let path = try EvidenceFolder.store(evidence, org: member.org, dataDirectory: dataDirectory)
                result.outcome = .forked(description: proven.description, evidence: path)
                return result
            }
        }
        let replica = try ReplicaWriter(store: store, consortium: consortium)
        let org = member.org
        let progress = self.progress
        let catchUp = CatchUp(
            log: org, member: member, replica: replica, link: link,
            known: { o, s in stores[o]?.knownEntry(s) }, stopping: { false })
        // Each chunk's fsync runs while the next chunk is fetched and checked; a chunk counts once synced, in order.
        let pipeline = FsyncPipeline<Void>(
            acknowledge: { w, _ throws(LedgerError) in
                _ = try replica.acknowledge(w)
                progress?(org, store.size)
            }, fail: { store.fail($0) })
        do {
            try catchUp.run(to: served) { cp throws(LedgerError) in
                try pipeline.submit { () throws(LedgerError) in (try replica.write(cp, deferringData: true), ()) }
            }
            try pipeline.flush()
            result.outcome = .fetched(from: held, to: store.size)
        } catch let e as CatchUp.SourceMisbehaved {
            // The chunks checked and written before the source misbehaved still count.
            try pipeline.flush()
            replica.reset()
            result.outcome = .failed(e.reason)
        }
        result.size = store.size
        result.root = store.latest?.checkpoint.root
        return result
    }

    private func makeLink() throws -> PeerLink {
        switch source {
        case .node(let address, let token): try APILink(address: address, token: token)
        case .tiles(let url): try TilesLink(url: url)
        }
    }
}

/// The Merkle tiles a source serves for its tree of `size` leaves of one log (C2SP tlog-tiles), as a subtree hash
/// source: a perfect subtree of 2^h leaves is the root of the 2^(h mod 8) hashes of tile level ⌊h/8⌋ that cover it,
/// all in one tile. Nothing read here is trusted: what is computed from it is checked against the source's signed
/// checkpoint before it is used. Each tile is fetched once; a partial tile the source no longer serves is read from
/// the full tile that replaced it (C2SP tlog-tiles lets a mirror delete partial tiles). Throws
/// `CatchUp.SourceMisbehaved` for an answer that is wrong, and what the link threw when the source cannot be reached.
final class SourceTiles: SubtreeHashSource {
    typealias Failure = any Error
    let org: String
    let size: UInt64
    let link: PeerLink
    private var tiles: [TileAddress: [SHA256Digest]] = [:]

    init(org: String, size: UInt64, link: PeerLink) {
        self.org = org
        self.size = size
        self.link = link
    }

    func hash(ofPerfectSubtree range: Range<UInt64>) throws -> SHA256Digest? {
        let (level, covering) = TileAddress.covering(perfectSubtree: range)
        let shift = UInt64(8 * level)
        // Level `level` of the tree of `size` has size >> shift hashes; the tile holding `covering` is full unless
        // it is the last.
        let index = covering.lowerBound / 256
        let width = Int(min(256, (size >> shift) - index * 256))
        let hashes = try tile(TileAddress(level: level, index: index, width: width))
        let first = Int(covering.lowerBound - index * 256)
        return Merkle.root(hashes[first..<(first + covering.count)])
    }

    private func tile(_ t: TileAddress) throws -> [SHA256Digest] {
        if let known = tiles[t] { return known }
        var r = try link.request("GET", "/logs/\(org)/\(t)", body: nil, contentType: nil)
        var read = t
        if r.status == 404 && t.width < 256 {
            read = TileAddress(level: t.level, index: t.index)
            r = try link.request("GET", "/logs/\(org)/\(read)", body: nil, contentType: nil)
        }
        guard r.status == 200 else {
            throw CatchUp.SourceMisbehaved(
                log: org, reason: "GET \(read) answered \(r.status) though its checkpoint covers it")
        }
        guard r.body.count == 32 * read.width else {
            throw CatchUp.SourceMisbehaved(
                log: org, reason: "\(read) holds \(r.body.count) bytes, not \(32 * read.width)")
        }
        let hashes = stride(from: 0, to: 32 * t.width, by: 32).map { SHA256Digest(bytes: r.body[$0..<($0 + 32)])! }
        tiles[t] = hashes
        return hashes
    }
}

/// A node's read API (`/logs/<org>/…`) with a bearer token, as a source of logs.
final class APILink: PeerLink, @unchecked Sendable {
    // Used by one thread at a time (the fetch), as every PeerLink.
    let client: HTTPClient
    let token: String

    init(address: String, token: String) throws {
        var c = HTTPClientConfiguration()
        c.readTimeout = .seconds(60)
        client = try HTTPClient(address: RemoteCopy.hostPort(address), configuration: c)
        self.token = token
    }

    func request(_ method: String, _ path: String, body: [UInt8]?, contentType: String?) throws -> PeerResponse {
        let r = try client.send(
            method: method, target: path, headers: ["Authorization": "Bearer \(token)"], body: body ?? [],
            maxBodyBytes: PeerResponse.maxBody(path))
        if r.status == 401 { throw LedgerError(.config, "the node refused the token (401)") }
        return PeerResponse(status: r.status, contentType: r.headers["Content-Type"], body: r.body)
    }

    func close() { client.close() }
    func interrupt() { client.shutdown() }
}

/// A static export (`prov tiles export`) over plain HTTP as a source of logs: `/logs/<org>/X` is `<base>/<org>/X`,
/// and the stored checkpoint at or past N (`checkpoints/<N>`) is found through `checkpoints/index`, a hint only:
/// every checkpoint fetched is verified like any other.
final class TilesLink: PeerLink, @unchecked Sendable {
    // Used by one thread at a time (the fetch); `indexes` caches what that thread read.
    let client: HTTPClient
    let prefix: String
    private var indexes: [String: [UInt64]] = [:]

    init(url: String) throws {
        guard url.hasPrefix("http://") else {
            throw LedgerError(.config, "--url takes http://HOST:PORT/PATH (a static export served over HTTP)")
        }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var path = String(rest[slash...])
        while path.hasSuffix("/") { path.removeLast() }
        prefix = path
        var c = HTTPClientConfiguration()
        c.readTimeout = .seconds(60)
        client = try HTTPClient(address: String(rest[..<slash]), configuration: c)
    }

    func request(_ method: String, _ path: String, body: [UInt8]?, contentType: String?) throws -> PeerResponse {
        guard path.hasPrefix("/logs/") else { return PeerResponse(status: 404, contentType: nil, body: []) }
        let parts = path.dropFirst("/logs/".count).split(separator: "/", maxSplits: 1)
        guard parts.count == 2 else { return PeerResponse(status: 404, contentType: nil, body: []) }
        let org = String(parts[0])
        var rest = String(parts[1])
        if rest.hasPrefix("checkpoints/"), let n = UInt64(rest.dropFirst("checkpoints/".count)) {
            guard let size = try index(org).first(where: { $0 >= n }) else {
                return PeerResponse(status: 404, contentType: nil, body: [])
            }
            rest = "checkpoints/\(size)"
        }
        let r = try client.send(
            method: method, target: "\(prefix)/\(org)/\(rest)", headers: [:], body: body ?? [],
            maxBodyBytes: PeerResponse.maxBody(path))
        return PeerResponse(status: r.status, contentType: r.headers["Content-Type"], body: r.body)
    }

    /// The sizes `checkpoints/index` lists for `org`, ascending (empty when there is none or it does not parse).
    private func index(_ org: String) throws -> [UInt64] {
        if let known = indexes[org] { return known }
        // A hint of at most 1 MiB (some 95,000 chunk ends): a larger one is ignored, as one that does not parse.
        let r: HTTPResponse?
        do {
            r = try client.send(
                method: "GET", target: "\(prefix)/\(org)/checkpoints/index", headers: [:], body: [],
                maxBodyBytes: 1 << 20)
        } catch let e as NetError where e.code == .bodyTooLarge {
            r = nil
        }
        let sizes =
            r?.status == 200
            ? String(decoding: r!.body, as: UTF8.self).split(separator: "\n").compactMap {
                TileAddress.decimal($0)
            }.sorted() : []
        indexes[org] = sizes
        return sizes
    }

    func close() { client.close() }
    func interrupt() { client.shutdown() }
}

extension RemoteCopy {
    /// `http://HOST:PORT` or `HOST:PORT` to `HOST:PORT`.
    static func hostPort(_ address: String) -> String {
        var a = address
        if a.hasPrefix("http://") { a.removeFirst("http://".count) }
        while a.hasSuffix("/") { a.removeLast() }
        return a
    }
}
