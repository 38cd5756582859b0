import ProvCrypto
import ProvLedger

/// What the view reads of one entry: the fields the ledger's reader (`EntryFields`) finds in its canonical bytes,
/// which has also applied the ledger's entry rules (`EntryRules.check`), so the view accepts exactly the entries
/// `Entry.decode` accepts and reads the same values from them. Numbers, digests and codes by value, texts and
/// lists as spans of the buffer: decoding allocates nothing. With them, the hashes the index interns them by,
/// computed where the entry is decoded (on every core, for the offline build) so that inserting (on one) only
/// probes.
struct DecodedEntry {
    var fields: EntryFields
    var subjectHash: UInt32 = 0
    var secondSubjectHash: UInt32 = 0
    var interactionHash: UInt32 = 0
    var agentIDHash: UInt32 = 0
    /// Hashes of the lists' encodings (a list is interned as one key).
    var purposesHash: UInt32 = 0
    var controllersHash: UInt32 = 0
    var recipientsHash: UInt32 = 0
    var dataCategoriesHash: UInt32 = 0

    var kind: EntryKind { fields.kind }

    /// Decodes the entry in `raw`, which lies inside the buffer starting at `base`; spans are offsets from `base`.
    init(reading raw: UnsafeRawBufferPointer, base: UnsafeRawPointer) throws(ViewError) {
        do throws(LedgerError) {
            fields = try EntryFields(reading: raw, base: base)
            try EntryRules.check(fields, base)
            try fields.checkEnd(raw)
        } catch {
            throw ViewError(.invalidEntry, error.message)
        }
        let f = fields
        func hash(_ s: ByteSpan) -> UInt32 { Interner.hash(s.bytes(base)) }
        func hash(_ l: ListSpan) -> UInt32 { Interner.hash(l.encoding.bytes(base)) }
        switch f.kind {
        case .consent:
            subjectHash = SubjectTable.hash(f.subject)
            purposesHash = hash(f.purposes)
            controllersHash = hash(f.controllers)
            if f.has(.recipients) { recipientsHash = hash(f.recipients) }
        case .interaction:
            subjectHash = SubjectTable.hash(f.subject)
            purposesHash = hash(f.purposes)
            interactionHash = hash(f.interaction)
            if !f.agentIsRef { agentIDHash = hash(f.agentID) }
        case .share:
            subjectHash = SubjectTable.hash(f.subject)
            purposesHash = hash(f.purposes)
            dataCategoriesHash = hash(f.dataCategories)
        case .link, .unlink:
            subjectHash = SubjectTable.hash(f.subject)
            secondSubjectHash = SubjectTable.hash(f.secondSubject)
        case .heads:
            break
        }
    }
}
