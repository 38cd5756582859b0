import Foundation
import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// The append path of a node: JSON Lines in, validated and pseudonymised entries out, appended durably as one
/// group commit, or nothing at all if any line is bad.
public final class Ingestor {
    public let consortium: Consortium
    public let signer: NoteSigner
    public let store: LogStore
    public let dataDirectory: String
    let linkKey: LinkKey
    /// Maximum bytes of one input line.
    public static let maxLineBytes = 64 * 1024

    public init(
        dataDirectory: String, consortium: Consortium, signer: NoteSigner, linkKey: LinkKey,
        log: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    ) throws(LedgerError) {
        let member = try Self.checkKeys(consortium: consortium, signer: signer, linkKey: linkKey)
        self.consortium = consortium
        self.signer = signer
        self.linkKey = linkKey
        self.dataDirectory = dataDirectory
        self.store = try LogStore(
            dataDirectory: dataDirectory, consortium: consortium.name, org: member.org, writable: true,
            verifyingWith: consortium, log: log)
    }

    /// Checks the keys an ingestor would be given, before anything is read or opened: the signing key must be a
    /// member's, and the linking key the consortium's. Returns the member.
    @discardableResult
    public static func checkKeys(
        consortium: Consortium, signer: NoteSigner, linkKey: LinkKey
    ) throws(LedgerError) -> Consortium.Member {
        guard let member = consortium.member(origin: signer.name) else {
            throw LedgerError(
                .config, "the signing key is for '\(signer.name)', which is not a log of consortium \(consortium.name)")
        }
        guard member.key.publicKey == signer.verifierKey.publicKey else {
            throw LedgerError(
                .config, "the signing key does not match the verifier key of \(member.org) in the consortium descriptor"
            )
        }
        // A wrong linking key would give every customer other refs than the consortium's, for good: the log is
        // append-only. Its fingerprint must be the descriptor's (Specs/format.md §9.2).
        if let why = consortium.linkKeyMismatch(linkKey) { throw LedgerError(.config, why) }
        return member
    }

    /// Entries prepared here that the store has not acknowledged yet (a pipelined commit writes the next group
    /// during the previous one's fsync): references into them resolve from here.
    private let unacknowledged = UnacknowledgedEntries()

    /// Inputs of at least this many lines are parsed on every core (each line's JSON, validation and
    /// pseudonymisation are independent); the entries are then added to the group in line order on this thread.
    static let parallelLines = 256

    /// Parses every line of `input` into one pending group. Throws on the first bad line and nothing is
    /// written, unless `onBadLine` is given: then a bad line is reported to it and left out, and the good
    /// lines make the group. Line numbers in errors start at `firstLine`.
    public func prepare(
        _ input: UnsafeRawBufferPointer, now: UInt64, firstLine: Int = 1, onBadLine: ((LedgerError) -> Void)? = nil
    ) throws(LedgerError) -> PendingGroup {
        var group = store.beginGroup(now: now)
        let own = store.org
        let storeSize = store.size
        // Entries of this group so far are kept there too, apart from `group`, so that reading them does not
        // copy the group's buffers.
        let unacknowledged = self.unacknowledged
        unacknowledged.begin(at: group.startSize, acknowledged: storeSize)
        let lines = Self.lines(of: input, firstLine: firstLine)
        // Lines parsed ahead on every core: nil where a line refers to an entry of this very input (parsed below,
        // in order, once that entry is in the group).
        var ahead: [Result<EntryBody, LedgerError>?] = []
        if lines.count >= Self.parallelLines && ProcessInfo.processInfo.activeProcessorCount > 1 {
            ahead = parseAhead(input, lines, storeSize: storeSize, groupStart: group.startSize)
        }
        let parser = EventParser(
            consortium: consortium, org: own, linkKey: linkKey,
            resolve: resolver(storeSize: storeSize, lock: nil) { seq in unacknowledged.entry(seq) })
        let (deps, citedHLC) = heads(cited: store.state.cited)
        var first = true
        for (i, l) in lines.enumerated() {
            let body: EntryBody
            do throws(LedgerError) {
                if i < ahead.count, let parsed = ahead[i] {
                    body = try parsed.get()
                } else {
                    body = try Self.parse(UnsafeRawBufferPointer(rebasing: input[l.range]), line: l.number, parser)
                }
            } catch {
                guard let onBadLine else { throw error }
                onBadLine(error)
                continue
            }
            let added = group.add(body, deps: first ? deps : [], citedHLC: first ? citedHLC : nil)
            unacknowledged.add(leaf: added.leaf, body: body)
            first = false
        }
        unacknowledged.keepBuiltGroup()
        return group
    }

    /// The lines of `input` that hold something: their numbers (from `firstLine`) and byte ranges, without the
    /// line end. A UTF-8 byte order mark at the start of the input (an editor's) is skipped (Specs/events.md §1).
    static func lines(of bytes: UnsafeRawBufferPointer, firstLine: Int) -> [(number: Int, range: Range<Int>)] {
        var out: [(number: Int, range: Range<Int>)] = []
        var line = firstLine - 1
        var start = firstLine == 1 && bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        while start < bytes.count {
            line += 1
            let base = bytes.baseAddress!
            let end = memchr(base + start, 0x0A, bytes.count - start).map { UnsafeRawPointer($0) - base } ?? bytes.count
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            if !bytes[start..<lineEnd].allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { out.append((line, start..<lineEnd)) }
            start = end + 1
        }
        return out
    }

    /// One input line as an entry body, or the error that names the line.
    static func parse(_ text: UnsafeRawBufferPointer, line: Int, _ parser: EventParser) throws(LedgerError)
        -> EntryBody
    {
        guard text.count <= maxLineBytes else {
            throw LedgerError(.invalidEvent, "line \(line): longer than \(maxLineBytes) bytes")
        }
        let value: JSONValue
        do { value = try JSON.parse(text, maxDepth: 8, maxSize: maxLineBytes) } catch {
            // "unexpected character" shows a byte: never one of binary input (a key file given as input).
            if error.code == .unexpectedCharacter && !FileKind.isText(text) {
                throw LedgerError(.invalidEvent, "line \(line): binary data, not a JSON event")
            }
            // An object or array left open at the end of its line: pretty-printed JSON, one event over many lines.
            let spread = error.code == .unexpectedEnd && error.reason.hasPrefix("input ends inside")
            throw LedgerError(
                .invalidEvent,
                "line \(line): not valid JSON: \(error)"
                    + (spread ? "; each event must be on one line: JSON Lines" : ""))
        }
        do { return try parser.parse(value) } catch {
            let array = value.arrayValue != nil
            throw LedgerError(
                .invalidEvent,
                "line \(line): \(error.message)"
                    + (array ? "; give one event per line (JSON Lines), not an array of events" : ""))
        }
    }

    /// Parses `lines` on every core, each worker with its own parser. A line that refers to an entry of this
    /// input (seq at or past `groupStart` of the own log) is left nil, to be parsed in order.
    private func parseAhead(
        _ input: UnsafeRawBufferPointer, _ lines: [(number: Int, range: Range<Int>)], storeSize: UInt64,
        groupStart: UInt64
    ) -> [Result<EntryBody, LedgerError>?] {
        // Everything a worker touches is its own (its parser, its flag, its slice of the results), or read-only
        // while the workers run (the input, the unacknowledged entries, the store under `lock`).
        final class Work: @unchecked Sendable {
            let results: UnsafeMutableBufferPointer<Result<EntryBody, LedgerError>?>
            var parsers: [EventParser] = []
            let pending: UnsafeMutableBufferPointer<Bool>
            init(lines: Int, workers: Int) {
                results = .allocate(capacity: lines)
                results.initialize(repeating: nil)
                pending = .allocate(capacity: workers)
                pending.initialize(repeating: false)
            }
            deinit {
                results.deinitialize()
                results.deallocate()
                pending.deallocate()
            }
        }
        let workers = min(ProcessInfo.processInfo.activeProcessorCount, 8)
        let work = Work(lines: lines.count, workers: workers)
        let lock = NSLock()
        let unacknowledged = self.unacknowledged
        let own = store.org
        // The parsers' resolvers capture the flags, not `work`, which holds the parsers: a cycle would keep every
        // group's parsed events alive.
        let pending = work.pending
        for w in 0..<workers {
            let earlier = resolver(storeSize: storeSize, lock: lock) { seq in unacknowledged.entry(seq) }
            work.parsers.append(
                EventParser(consortium: consortium, org: own, linkKey: linkKey) { org, seq in
                    if org == own && seq >= groupStart {
                        pending[w] = true
                        return nil
                    }
                    return earlier(org, seq)
                })
        }
        nonisolated(unsafe) let bytes = input
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let parser = work.parsers[w]
            for i in (lines.count * w / workers)..<(lines.count * (w + 1) / workers) {
                work.pending[w] = false
                let l = lines[i]
                do throws(LedgerError) {
                    work.results[i] = .success(
                        try Self.parse(UnsafeRawBufferPointer(rebasing: bytes[l.range]), line: l.number, parser))
                } catch {
                    work.results[i] = work.pending[w] ? nil : .failure(error)
                }
            }
        }
        return Array(work.results)
    }

    /// Looks up entries that events refer to: the own log's committed entries (under `lock` when given, for
    /// readers on several threads), its entries written and not yet acknowledged (`unacknowledged`), and the other
    /// logs of the data directory (each opened once per resolver).
    private func resolver(
        storeSize: UInt64, lock: NSLock?, unacknowledged: @escaping (UInt64) -> ReferencedEntry?
    ) -> (String, UInt64) -> ReferencedEntry? {
        var others: [String: LogStore] = [:]
        let store = self.store
        let own = store.org
        let dataDirectory = self.dataDirectory
        let consortiumName = consortium.name
        return { org, seq in
            if org == own {
                guard seq < storeSize else { return unacknowledged(seq) }
                lock?.lock()
                defer { lock?.unlock() }
                guard let leaf = try? store.leafHash(seq), let e = try? store.entry(seq) else { return nil }
                return ReferencedEntry(leaf: leaf, kind: e.body.kind, subjects: e.body.subjects)
            }
            if others[org] == nil {
                others[org] = try? LogStore(
                    dataDirectory: dataDirectory, consortium: consortiumName, org: org, writable: false, log: { _ in })
            }
            guard let s = others[org], seq < s.size, let leaf = try? s.leafHash(seq), let e = try? s.entry(seq) else {
                return nil
            }
            return ReferencedEntry(leaf: leaf, kind: e.body.kind, subjects: e.body.subjects)
        }
    }

    /// The heads of the other logs in this data directory that moved since this log last cited them, each
    /// checked against its signed checkpoint: the `deps` of the next entry (DESIGN.md: causal frontier).
    func heads(cited: [String: UInt64]) -> ([EntryRef], HLC?) {
        var deps: [EntryRef] = []
        var maxHLC: HLC?
        let folders = (try? Verifier.logFolders(in: dataDirectory)) ?? []
        for org in folders where org != store.org {
            guard let member = consortium.member(org),
                let other = try? LogStore(
                    dataDirectory: dataDirectory, consortium: consortium.name, org: org, writable: false, log: { _ in }),
                let cp = other.latest, member.signatureFailure(cp) == nil, cp.checkpoint.size > 0
            else { continue }
            let head = cp.checkpoint.size - 1
            if let c = cited[org], c >= head { continue }
            guard let leaf = try? other.leafHash(head), let e = try? other.entry(head) else { continue }
            deps.append(EntryRef(org: org, seq: head, leaf: leaf))
            maxHLC = max(maxHLC ?? e.hlc, e.hlc)
        }
        return (deps.sorted { $0.org < $1.org }, maxHLC)
    }

    /// Parses all of `input`, then appends it in one group commit. Returns the new entries' seqs and leaf hashes.
    public func append(_ input: [UInt8], now: UInt64 = Ingestor.now()) throws(LedgerError) -> [(
        seq: UInt64, leaf: SHA256Digest
    )] {
        let group = try withRawBytes(input) { raw throws(LedgerError) in try prepare(raw, now: now) }
        return try store.commit(group, signer: signer)
    }

    /// Wall-clock milliseconds since the epoch.
    public static func now() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }
}
