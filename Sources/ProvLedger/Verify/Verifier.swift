import Dispatch
import Foundation
import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// What an audit of one log found.
public struct LogAudit: Sendable {
    public var org: String
    public var entries: UInt64 = 0
    public var checkpoints = 0
    public var latest: Checkpoint?
    /// The first inconsistency found; the audit of this log stops there.
    public var failure: String?
    /// The failure is that the log could not be read (permissions, I/O), not that it is wrong.
    public var failureIsIO = false
    /// Things worth knowing that are not tampering: an unfinished group commit after a crash, a stale index.
    public var warnings: [String] = []
    /// Roots recomputed at each stored checkpoint's size.
    var roots: [UInt64: SHA256Digest] = [:]
    /// References (`deps`, `consentRef`, `derivedFrom`) whose cited leaf hash was compared with the cited entry.
    public var referencesChecked = 0
    /// Leaf hashes and clocks of the entries, while the logs of a directory are cross-checked.
    var leaves: [SHA256Digest] = []
    var hlcs: [HLC] = []
    var kinds: [UInt8] = []
    /// References to other logs, with the citing entry's clock, checked once every log of the directory is verified.
    var foreignRefs: [(seq: UInt64, hlc: HLC, field: String, ref: EntryRef)] = []
    public var ok: Bool { failure == nil }
}

/// Audits logs in a data directory against the consortium keys without trusting anything else in it: every
/// entry is decoded canonically and validated, the hash chain and clocks are followed, every stored checkpoint's
/// root is recomputed and its signature checked, and the newest checkpoint the directory claims must be covered
/// (Specs/format.md §Verification).
public struct Verifier {
    public let consortium: Consortium
    /// Checkpoints the auditor obtained elsewhere (earlier audits, receipts, other nodes): each must match.
    public var trustedCheckpoints: [SignedCheckpoint] = []
    /// Called with (org, entries so far) now and then.
    public var progress: ((String, UInt64) -> Void)?

    public init(consortium: Consortium) { self.consortium = consortium }

    /// The log folders of a data directory.
    public static func logFolders(in dataDirectory: String) throws(LedgerError) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dataDirectory) else {
            throw LedgerError(.io, "cannot read data directory \(dataDirectory)")
        }
        // Every folder is a log: one that cannot be read is reported, not skipped. So is anything in a folder's
        // place that is not a plain file (a link, a FIFO): it is never read through, and the log is not verified.
        return names.filter { name in
            !name.hasPrefix(".") && name != EvidenceFolder.name && name != ConsortiumFolder.name
                && name != Quarantine.name
                && FileHandleFD.kind(of: "\(dataDirectory)/\(name)").map { $0 != S_IFREG } ?? false
        }.sorted()
    }

    public func verify(dataDirectory: String) throws(LedgerError) -> [LogAudit] {
        let folders = try Self.logFolders(in: dataDirectory)
        guard !folders.isEmpty else {
            throw LedgerError(.io, "no logs in \(dataDirectory): it holds no <org> folders")
        }
        var audits = folders.map { verifyLog(directory: dataDirectory + "/" + $0, org: $0) }
        // A member the auditor kept a checkpoint for, with no log here, is audited as an empty log: the same
        // claim checks then find a rollback unless the checkpoint is of the empty tree.
        for m in consortium.members
        where !folders.contains(m.org) && trustedCheckpoints.contains(where: { $0.checkpoint.origin == m.origin }) {
            var a = LogAudit(org: m.org)
            a.warnings.append("no log folder for \(m.org) in \(dataDirectory)")
            do { try checkClaims(&a, member: m, directory: dataDirectory + "/" + m.org, claimText: nil) } catch {
                a.failure = error.message
            }
            audits.append(a)
        }
        Self.crossCheck(&audits)
        checkEvidence(&audits, dataDirectory: dataDirectory)
        return audits
    }

    /// Equivocation evidence kept in the data directory (Specs/format.md §10.12, §12.1 step 5): a piece that
    /// proves a company signed two histories fails that company's log, whatever its entries say; a file that
    /// proves nothing is a warning.
    func checkEvidence(_ audits: inout [LogAudit], dataDirectory: String) {
        let found = EvidenceFolder.read(dataDirectory: dataDirectory, consortium: consortium)
        for (path, reason) in found.ignored {
            let name = String(path.split(separator: "/").last ?? "")
            // Said with the first log's result: the folder belongs to no log.
            if !audits.isEmpty {
                audits[0].warnings.append("evidence folder: \(name) proves nothing and is ignored: \(reason)")
            }
        }
        for piece in found.proven {
            let name = String(piece.path.split(separator: "/").last ?? "")
            let why =
                "equivocation: \(piece.proven.description) (sizes \(piece.proven.firstSize) and "
                + "\(piece.proven.secondSize), evidence \(name))"
            if let i = audits.firstIndex(where: { $0.org == piece.proven.org }) {
                if audits[i].failure == nil { audits[i].failure = why }
            } else {
                var a = LogAudit(org: piece.proven.org)
                a.failure = why
                audits.append(a)
            }
        }
    }

    /// What is wrong with a reference, given the entry it names (its leaf hash, kind and clock), or nil: the
    /// leaf hash must match, a `consentRef` must name a consent, and an entry's clock is at least the clock of
    /// every head it cites in `deps` (DESIGN.md). The same rules hold within a log and between logs.
    static func referenceFailure(
        _ field: String, _ ref: EntryRef, citingHLC: HLC, leaf: SHA256Digest, kind: UInt8, hlc: HLC, sameLog: Bool
    ) -> String? {
        let named = "\(ref.org)/\(ref.seq)"
        guard leaf == ref.leaf else {
            return sameLog
                ? "\(field) cites \(named) with leaf \(ref.leaf.hex), but that entry's leaf is \(leaf.hex)"
                : "\(field) cites \(named) with leaf \(ref.leaf.hex), but \(named) here has leaf \(leaf.hex): one of the "
                    + "two logs is not what was cited"
        }
        if field == "consentRef" && kind != EntryKind.consent.code {
            return "consentRef cites \(named), which is "
                + "\(EntryKind(code: kind)?.withArticle ?? "an unknown") entry, not a consent entry"
        }
        if field == "deps" && citingHLC < hlc {
            return "hlc \(citingHLC) is behind hlc \(hlc) of \(named), which it cites in deps: its clock went back "
                + "past what it had seen"
        }
        return nil
    }

    /// Every reference from one log to another log of the directory must name that log's entry by its leaf
    /// hash: a mismatch means one of the two logs is not what was cited (a fork, or a false reference).
    /// References to logs that are absent, failed, or shorter here (a replica behind) are counted, not judged.
    static func crossCheck(_ audits: inout [LogAudit]) {
        var index: [String: Int] = [:]
        for (i, a) in audits.enumerated() { index[a.org] = i }
        for i in audits.indices where audits[i].failure == nil {
            var absent: [String: Int] = [:]
            var ahead: [String: Int] = [:]
            for (seq, hlc, field, ref) in audits[i].foreignRefs {
                guard let j = index[ref.org], audits[j].failure == nil else {
                    absent[ref.org, default: 0] += 1
                    continue
                }
                guard ref.seq < audits[j].entries else {
                    ahead[ref.org, default: 0] += 1
                    continue
                }
                let k = Int(ref.seq)
                if let why = Self.referenceFailure(
                    field, ref, citingHLC: hlc, leaf: audits[j].leaves[k], kind: audits[j].kinds[k],
                    hlc: audits[j].hlcs[k], sameLog: false)
                {
                    audits[i].failure = "\(audits[i].org) seq \(seq): \(why)"
                    break
                }
                audits[i].referencesChecked += 1
            }
            for (org, n) in absent.sorted(by: { $0.key < $1.key }) {
                audits[i].warnings.append(
                    "\(Phrase.count(n, "reference")) to \(org)'s log not checked: it is not in this directory or did "
                        + "not verify")
            }
            for (org, n) in ahead.sorted(by: { $0.key < $1.key }) {
                audits[i].warnings.append(
                    "\(Phrase.count(n, "reference")) to \(org) entries past the \(audits[index[org]!].entries) here "
                        + "not checked: "
                        + "this copy of \(org)'s log is behind what \(audits[i].org) saw, or was rolled back "
                        + "(verify it with --checkpoint and a newer checkpoint of \(org))")
            }
        }
        for i in audits.indices {
            audits[i].leaves = []
            audits[i].hlcs = []
            audits[i].kinds = []
            audits[i].foreignRefs = []
        }
    }

    public func verifyLog(directory: String, org: String) -> LogAudit {
        var audit = LogAudit(org: org)
        guard let member = consortium.member(org) else {
            audit.failure = "folder '\(org)' is not the log of any member of consortium \(consortium.name)"
            return audit
        }
        do {
            // The log folder, and its files below, are never read through a link (Specs/format.md §10.1).
            try FileHandleFD.expect(directory, is: .directory)
            // The log's own claim is read before its segments: a writer appending meanwhile only adds entries
            // after it, so a live log is never taken for a rolled-back one. A file that cannot be read is no
            // claim; a link or a FIFO in its place is not read at all.
            let claimPath = directory + "/checkpoint"
            try FileHandleFD.expect(claimPath, is: .regularFile)
            let claimText = ((try? FileHandleFD.openIfPresent(claimPath, flags: O_RDONLY)) ?? nil)
                .flatMap { try? $0.read(count: 1 << 16, at: 0) }.flatMap { String(bytes: $0, encoding: .utf8) }
            try LogScan(member: member, consortium: consortium, directory: directory, progress: progress).run(&audit)
            try checkClaims(&audit, member: member, directory: directory, claimText: claimText)
        } catch let e as LedgerError {
            audit.failure = e.message.hasPrefix(org) ? e.message : "\(org): \(e.message)"
            audit.failureIsIO = e.code == .io
        } catch {
            audit.failure = "\(org): \(error)"
            audit.failureIsIO = true
        }
        return audit
    }

    /// The newest checkpoint the directory claims (`checkpoint` file), and the auditor's own, must be covered by
    /// the entries and agree with the roots recomputed from them.
    private func checkClaims(
        _ audit: inout LogAudit, member: Consortium.Member, directory: String, claimText: String?
    ) throws(LedgerError) {
        var claims: [(String, SignedCheckpoint)] = []
        let path = directory + "/checkpoint"
        if let text = claimText {
            // The file is a copy of the newest checkpoint record, overwritten in place; one that does not parse
            // is a torn write (the writer rewrites it on open). One that parses must be signed and covered.
            if let cp = try? SignedCheckpoint(parsing: text) {
                claims.append(("the log's latest checkpoint file", cp))
            } else {
                audit.warnings.append("\(path) does not parse (a torn write?); not used as a claim")
            }
        }
        for t in trustedCheckpoints where t.checkpoint.origin == member.origin {
            claims.append(("a trusted checkpoint", t))
        }
        for (what, cp) in claims {
            if let why = member.signatureFailure(cp) {
                throw LedgerError(.verificationFailed, "\(member.org): \(what): \(why)")
            }
            let c = cp.checkpoint
            guard c.size <= audit.entries else {
                throw LedgerError(
                    .verificationFailed,
                    "\(member.org): rollback: \(what) covers \(Phrase.count(c.size, "entry", "entries")) but the log "
                        + "holds only \(audit.entries) verified: "
                        + Phrase.entries(audit.entries, through: c.size - 1, are: "missing"))
            }
            guard let root = audit.roots[c.size] ?? (c.size == 0 ? Merkle.emptyRoot : nil) else {
                audit.warnings.append("\(what) at size \(c.size) falls between stored checkpoints; not compared")
                continue
            }
            guard root == c.root else {
                throw LedgerError(
                    .verificationFailed,
                    "\(member.org): fork: \(what) for size \(c.size) has root \(c.root.base64), "
                        + "the entries give \(root.base64): two signed histories")
            }
        }
    }
}
