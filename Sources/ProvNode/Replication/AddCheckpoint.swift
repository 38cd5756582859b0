import Foundation
import ProvCrypto
import ProvLedger

/// The body of a C2SP tlog-witness `add-checkpoint` request: `old <size>`, up to 63 consistency proof hashes
/// (base64, one per line), an empty line, and the signed checkpoint note (Specs/protocol.md §4).
package struct AddCheckpoint: Sendable, Equatable {
    package var old: UInt64
    package var proof: [SHA256Digest]
    package var checkpoint: SignedCheckpoint

    package var serialized: [UInt8] {
        var s = "old \(old)\n"
        for h in proof { s += h.base64 + "\n" }
        return Array((s + "\n" + checkpoint.serialized).utf8)
    }

    /// The largest body: the `old` line, 63 proof lines and a signed note.
    package static let maxBodySize = SignedNote.maxSize + 64 * 46

    /// Parses a request body; the error is the reason for a 400 answer (it never quotes the body).
    package init(parsing body: [UInt8]) throws(LedgerError) {
        func bad(_ why: String) -> LedgerError { LedgerError(.invalidEntry, "add-checkpoint: \(why)") }
        guard body.count <= Self.maxBodySize else { throw bad("body too large") }
        guard let text = String(validating: body, as: UTF8.self) else { throw bad("body is not UTF-8") }
        guard let blank = text.range(of: "\n\n") else { throw bad("no empty line before the checkpoint") }
        let head = text[..<blank.lowerBound].split(separator: "\n", omittingEmptySubsequences: false)
        guard let first = head.first, first.hasPrefix("old "), let old = TileAddress.decimal(first.dropFirst(4)) else {
            throw bad("the first line must be 'old <size>' in canonical decimal")
        }
        guard head.count - 1 <= 63 else { throw bad("more than 63 consistency proof lines") }
        var proof: [SHA256Digest] = []
        for line in head.dropFirst() {
            guard line.utf8.count == 44, let d = Data(base64Encoded: String(line)), d.count == 32,
                Data(d).base64EncodedString() == line
            else { throw bad("a consistency proof line is not the base64 of a 32-byte hash") }
            proof.append(SHA256Digest(bytes: d)!)
        }
        let note = String(text[blank.upperBound...])
        do { checkpoint = try SignedCheckpoint(parsing: note) } catch { throw bad(error.message) }
        self.old = old
        self.proof = proof
    }

    package init(old: UInt64, proof: [SHA256Digest], checkpoint: SignedCheckpoint) {
        self.old = old
        self.proof = proof
        self.checkpoint = checkpoint
    }
}

/// Cosignature lines in an `add-checkpoint` answer: the first line by one of `member`'s trusted keys (as a
/// cosigner: its current key, or one rotated away, which a node presents until it restarts) that verifies over `cp`.
func verifiedCosignatures(_ body: [UInt8], by member: Consortium.Member, for cp: Checkpoint) -> [NoteSignature] {
    guard let text = String(validating: body, as: UTF8.self) else { return [] }
    // The answer is signature lines only: read them as the signature block of a note over the checkpoint text.
    guard let note = try? SignedNote(parsing: cp.text + "\n" + text) else { return [] }
    return member.verifiedCosignature(SignedCheckpoint(checkpoint: cp, note: note)).map { [$0] } ?? []
}
