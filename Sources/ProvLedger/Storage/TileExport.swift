import Foundation
import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// A log written out as static C2SP tlog-tiles (Specs/protocol.md §7): files any web server, object store or CDN
/// serves, which any tlog-tiles client (and `prov fetch --url`) reads and verifies. Under `<out>/<org>/`:
///
/// - `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`, as a node serves them;
/// - `checkpoints/<S>`: stored checkpoints the owner signed, the first at or past each multiple of 32,768 entries,
///   and `checkpoints/index`, their sizes one per line: where a reader ends its chunks (memory flat in the size);
/// - `checkpoint`: the latest checkpoint, with the cosignatures that verify, written last.
///
/// Full tiles and bundles never change, so a re-run writes only what is new: the next full tiles, the new partial
/// ones, the new chunk checkpoints, and the checkpoint. Every file is written to a temporary name and renamed.
package struct TileExport {
    /// Entries between chunk checkpoints (as a node's catch-up asks for them).
    package static let chunk: UInt64 = 32_768

    package struct Counts: Sendable {
        package var written = 0
        package var kept = 0
        package var size: UInt64 = 0
    }

    let store: LogStore
    let member: Consortium.Member
    let folder: String
    /// The folders made or checked this run.
    private let madeFolders = MadeFolders()

    private final class MadeFolders {
        var known: Set<String> = []
    }

    package init(store: LogStore, member: Consortium.Member, folder: String) {
        self.store = store
        self.member = member
        self.folder = folder
    }

    /// Writes what is missing; `checkpoint` is what `<org>/checkpoint` gets (the latest, perhaps with cosignatures;
    /// `checkpoints/<S>` get the owner's lines only). A stored checkpoint that does not verify against the member's
    /// keys, or one that does not end where the log says, stops the export with `.verificationFailed`: nothing is
    /// published that a reader would refuse, and a damaged log cannot send it round in circles.
    package func run(checkpoint: SignedCheckpoint, progress: ((UInt64) -> Void)? = nil) throws(LedgerError) -> Counts {
        let size = checkpoint.checkpoint.size
        guard size <= store.size else {
            throw LedgerError(.io, "log \(store.org): the checkpoint covers more than the log holds")
        }
        if let why = member.signatureFailure(checkpoint) {
            throw LedgerError(.verificationFailed, "log \(store.org): the checkpoint at size \(size): \(why)")
        }
        var counts = Counts(size: size)
        // Entry bundles, then the tiles of each level: a level-L tile is 256 hashes of that level.
        try tiles(level: nil, hashes: size, &counts, progress: progress)
        var level = 0
        while size >> UInt64(8 * level) > 0 {
            try tiles(level: level, hashes: size >> UInt64(8 * level), &counts, progress: nil)
            level += 1
        }
        var sizes: [UInt64] = []
        var want = Self.chunk
        while want < size {
            guard var cp = try store.checkpoint(atLeast: want), cp.checkpoint.size < size else { break }
            let s = cp.checkpoint.size
            // The checkpoint closing the group that holds entry want − 1 ends at or past `want`: one that ends
            // before it is a damaged log (and would have this loop ask for `want` for ever).
            guard s >= want else {
                throw LedgerError(
                    .verificationFailed,
                    "log \(store.org): the checkpoint stored after entry \(want - 1) is for size \(s): the log is damaged"
                )
            }
            if let why = member.signatureFailure(cp) {
                throw LedgerError(
                    .verificationFailed, "log \(store.org): the stored checkpoint at size \(s): \(why)")
            }
            cp.note.signatures = member.ownerLines(cp)
            if sizes.last != s {
                sizes.append(s)
                try write("checkpoints/\(s)", Array(cp.serialized.utf8), immutable: true, &counts)
            }
            want = (s / Self.chunk + 1) * Self.chunk
        }
        sizes.append(size)
        var owned = checkpoint
        owned.note.signatures = member.ownerLines(checkpoint)
        try write("checkpoints/\(size)", Array(owned.serialized.utf8), immutable: false, &counts)
        try write("checkpoints/index", Array(sizes.map { "\($0)\n" }.joined().utf8), immutable: false, &counts)
        try write("checkpoint", Array(checkpoint.serialized.utf8), immutable: false, &counts)
        return counts
    }

    /// The full tiles (or bundles) of a level holding `hashes` hashes (entries), and its partial right edge. A file
    /// already there is kept only when it holds exactly what the log serves at that address: one left by an export
    /// of another history, or damaged, is written again.
    private func tiles(level: Int?, hashes: UInt64, _ counts: inout Counts, progress: ((UInt64) -> Void)?)
        throws(LedgerError)
    {
        let full = hashes / 256
        let rest = Int(hashes % 256)
        for i in 0..<(full + (rest > 0 ? 1 : 0)) {
            let t = TileAddress(level: level, index: i, width: i < full ? 256 : rest)
            if level != nil || i % 64 == 0 { progress?(i * 256) }
            let bytes = try store.tile(t)
            if (try? FileHandleFD.readIfPresent(folder + "/" + t.description, maxSize: 256 * 65_537)) == bytes {
                counts.kept += 1
                continue
            }
            try write(t.description, bytes, immutable: true, &counts)
        }
    }

    /// The folders from `folder` down to the one that holds `name`, each made if missing and checked to be a folder,
    /// not a link to one: the output may be a web root others write to, and a link planted in it (`<out>/<org>` or
    /// `tile/0` pointing elsewhere) must not send the export's files outside it. Each is checked once a run.
    private func makeFolders(for name: String) throws(LedgerError) {
        var path = folder
        var parts = name.split(separator: "/").map(String.init)
        parts.removeLast()
        for p in [""] + parts {
            if !p.isEmpty { path += "/" + p }
            guard !madeFolders.known.contains(path) else { continue }
            if p.isEmpty {
                // `--out` itself is the operator's choice (it may be a link they made); what is below it is checked.
                let out = FileHandleFD.parent(of: path)
                do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
                    throw LedgerError(.io, "cannot create \(out): \(error.localizedDescription)")
                }
            }
            try FileHandleFD.makeDirectory(path, mode: nil)
            madeFolders.known.insert(path)
        }
    }

    /// Writes one file. Tiles and bundles are not synced one by one (a re-run checks them and writes a damaged one
    /// again); checkpoints are.
    private func write(_ name: String, _ bytes: [UInt8], immutable: Bool, _ counts: inout Counts) throws(LedgerError) {
        let path = folder + "/" + name
        let isTile = name.hasPrefix("tile/")
        if immutable, !isTile, let old = try? FileHandleFD.readIfPresent(path, maxSize: SignedNote.maxSize),
            let text = String(validating: old, as: UTF8.self), (try? SignedCheckpoint(parsing: text)) != nil
        {
            counts.kept += 1
            return
        }
        try makeFolders(for: name)
        try FileHandleFD.replaceAtomically(path, bytes, durable: !isTile)
        counts.written += 1
    }
}
