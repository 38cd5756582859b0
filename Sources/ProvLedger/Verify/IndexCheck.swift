import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// Compares the index file's records (leaf hash and record offset, Specs/format.md §10.6) with the entries: a
/// stale index is worth a warning, since receipts are built from it.
struct IndexCheck {
    let file: FileHandleFD?
    var buffer: [UInt8] = []
    var bufferStart: UInt64 = 0
    var count: UInt64 = 0
    /// The file's size when it is not a whole number of records.
    var ragged: Int?
    var reported = false

    /// No index (nil) is no check. An index that is a link, a FIFO or anything but a regular file is refused;
    /// one that cannot be read is not checked.
    init(path: String?) throws(LedgerError) {
        guard let path else {
            file = nil
            return
        }
        try FileHandleFD.expect(path, is: .regularFile)
        file = (try? FileHandleFD.openIfPresent(path, flags: O_RDONLY)) ?? nil
        let bytes = (try? file?.size ?? 0) ?? 0
        count = UInt64(bytes / SegmentFormat.indexRecordSize)
        if bytes % SegmentFormat.indexRecordSize != 0 { ragged = bytes }
    }

    mutating func check(_ seq: UInt64, _ leaf: SHA256Digest, offset: Int) -> String? {
        guard let file, !reported, seq < count else { return nil }
        let per = UInt64(SegmentFormat.indexRecordSize)
        if seq < bufferStart || seq >= bufferStart + UInt64(buffer.count) / per {
            bufferStart = seq
            buffer = (try? file.read(count: 65536 * Int(per), at: Int(seq * per))) ?? []
        }
        let i = Int((seq - bufferStart) * per)
        guard i + Int(per) <= buffer.count else { return nil }
        let (stored, storedOffset) = buffer.withUnsafeBytes { b in
            (
                SHA256Digest(copying: b.baseAddress! + i),
                UInt64(littleEndian: b.loadUnaligned(fromByteOffset: i + 32, as: UInt64.self))
            )
        }
        if stored != leaf || storedOffset != UInt64(offset) {
            reported = true
            return
                "index file disagrees with the entries at seq \(seq); receipts from it would not verify (the writer rebuilds it on open)"
        }
        return nil
    }

    func finish(_ committed: UInt64) -> [String] {
        var out: [String] = []
        if let ragged {
            out.append(
                "index file is \(ragged) bytes, not a whole number of \(SegmentFormat.indexRecordSize)-byte records "
                    + "(a torn write); the writer cuts it on open")
        }
        if !reported && count > committed {
            out.append(
                "index file lists \(Phrase.count(count, "entry", "entries")), more than the \(committed) the "
                    + "checkpoints cover")
        }
        return out
    }
}
