import Foundation
import ProvCrypto

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
        var others: [String: LogStore] = [:]
        let store = self.store
        let dataDirectory = self.dataDirectory
        let consortiumName = consortium.name
        let resolve: (String, UInt64) -> ReferencedEntry? = { org, seq in
            if org == own {
                if seq < storeSize {
                    guard let leaf = try? store.leafHash(seq), let e = try? store.entry(seq) else { return nil }
                    return ReferencedEntry(leaf: leaf, kind: e.body.kind, subjects: e.body.subjects)
                }
                return unacknowledged.entry(seq)
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
        let parser = EventParser(consortium: consortium, org: own, linkKey: linkKey, resolve: resolve)
        let (deps, citedHLC) = heads(cited: store.state.cited)
        var first = true
        var line = firstLine - 1
        let bytes = input
        // A UTF-8 byte order mark at the start of the input (an editor's) is skipped (Specs/events.md §1).
        var start = firstLine == 1 && bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        while start < bytes.count {
            line += 1
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            defer { start = end + 1 }
            let text = UnsafeRawBufferPointer(rebasing: bytes[start..<lineEnd])
            if text.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            let body: EntryBody
            do throws(LedgerError) {
                guard text.count <= Self.maxLineBytes else {
                    throw LedgerError(.invalidEvent, "line \(line): longer than \(Self.maxLineBytes) bytes")
                }
                let value: JSONValue
                do { value = try JSON.parse(text, maxDepth: 8, maxSize: Self.maxLineBytes) } catch {
                    // "unexpected character" shows a byte: never one of binary input (a key file given as input).
                    if error.code == .unexpectedCharacter && !FileKind.isText(text) {
                        throw LedgerError(.invalidEvent, "line \(line): binary data, not a JSON event")
                    }
                    // An object or array left open at the end of its line: pretty-printed JSON, one event over
                    // many lines.
                    let spread = error.code == .unexpectedEnd && error.reason.hasPrefix("input ends inside")
                    throw LedgerError(
                        .invalidEvent,
                        "line \(line): not valid JSON: \(error)"
                            + (spread ? "; each event must be on one line: JSON Lines" : ""))
                }
                do { body = try parser.parse(value) } catch {
                    let array = value.arrayValue != nil
                    throw LedgerError(
                        .invalidEvent,
                        "line \(line): \(error.message)"
                            + (array ? "; give one event per line (JSON Lines), not an array of events" : ""))
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
