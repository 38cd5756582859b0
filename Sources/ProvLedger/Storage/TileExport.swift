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
    let folder: String

    package init(store: LogStore, folder: String) {
        self.store = store
        self.folder = folder
    }

    /// Writes what is missing; `checkpoint` is what `<org>/checkpoint` gets (the latest, perhaps with cosignatures).
    package func run(checkpoint: SignedCheckpoint, progress: ((UInt64) -> Void)? = nil) throws(LedgerError) -> Counts {
        let size = checkpoint.checkpoint.size
        guard size <= store.size else {
            throw LedgerError(.io, "log \(store.org): the checkpoint covers more than the log holds")
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
            guard let cp = try store.checkpoint(atLeast: want), cp.checkpoint.size < size else { break }
            if sizes.last != cp.checkpoint.size {
                sizes.append(cp.checkpoint.size)
                try write("checkpoints/\(cp.checkpoint.size)", Array(cp.serialized.utf8), immutable: true, &counts)
            }
            want = (cp.checkpoint.size / Self.chunk + 1) * Self.chunk
        }
        sizes.append(size)
        try write("checkpoints/\(size)", Array(checkpoint.serialized.utf8), immutable: false, &counts)
        try write("checkpoints/index", Array(sizes.map { "\($0)\n" }.joined().utf8), immutable: false, &counts)
        try write("checkpoint", Array(checkpoint.serialized.utf8), immutable: false, &counts)
        return counts
    }

    /// The full tiles (or bundles) of a level holding `hashes` hashes (entries), and its partial right edge.
    private func tiles(level: Int?, hashes: UInt64, _ counts: inout Counts, progress: ((UInt64) -> Void)?)
        throws(LedgerError)
    {
        let full = hashes / 256
        for i in 0..<full {
            let t = TileAddress(level: level, index: i, width: 256)
            if level != nil || i % 64 == 0 { progress?(i * 256) }
            if try wholeFile(t) {
                counts.kept += 1
                continue
            }
            try write(t.description, try store.tile(t), immutable: true, &counts)
        }
        let rest = Int(hashes % 256)
        if rest > 0 {
            let t = TileAddress(level: level, index: full, width: rest)
            if try wholeFile(t) {
                counts.kept += 1
            } else {
                try write(t.description, try store.tile(t), immutable: true, &counts)
            }
        }
    }

    /// Whether the file of tile `t` is there and whole (a tile: 32 bytes per hash; a bundle: exactly its entries).
    private func wholeFile(_ t: TileAddress) throws(LedgerError) -> Bool {
        guard let bytes = try FileHandleFD.readIfPresent(folder + "/" + t.description, maxSize: 256 * 65_537) else {
            return false
        }
        guard t.level == nil else { return bytes.count == t.width * 32 }
        var at = 0
        var n = 0
        while at + 2 <= bytes.count {
            at += 2 + (Int(bytes[at]) << 8 | Int(bytes[at + 1]))
            n += 1
        }
        return at == bytes.count && n == t.width
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
        let parent = FileHandleFD.parent(of: path)
        do { try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) } catch {
            throw LedgerError(.io, "cannot create \(parent): \(error.localizedDescription)")
        }
        try FileHandleFD.replaceAtomically(path, bytes, durable: !isTile)
        counts.written += 1
    }
}
