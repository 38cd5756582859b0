#if canImport(Glibc)
    import Glibc
#endif

/// The kinds of entry of format version 1 (Specs/format.md §3, §4): the one table by which the ledger, the
/// verifier and the view name, number and read kinds. The name is what an entry's `kind` holds; the number
/// (`code`) is what compact stores keep.
public enum EntryKind: RawRepresentable, Hashable, Sendable, CaseIterable, Comparable {
    case consent, interaction, share, link, unlink
    /// Only `deps`: what its writer had verified of other logs (Specs/format.md §4.4). It names no subject.
    case heads

    /// The name, as bytes in the binary: the one place the names are written.
    var staticName: StaticString {
        switch self {
        case .consent: "consent"
        case .interaction: "interaction"
        case .share: "share"
        case .link: "link"
        case .unlink: "unlink"
        case .heads: "heads"
        }
    }

    /// The name, as an entry's `kind` holds it.
    public var rawValue: String { staticName.description }

    public init?(rawValue: String) {
        var name = rawValue
        guard let kind = name.withUTF8({ EntryKind(name: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = kind
    }

    /// The kind's number: its position in this table, 0 (`consent`) to 5 (`heads`).
    public var code: UInt8 {
        switch self {
        case .consent: 0
        case .interaction: 1
        case .share: 2
        case .link: 3
        case .unlink: 4
        case .heads: 5
        }
    }

    /// The kind numbered `code`, nil past the table.
    public init?(code: UInt8) {
        switch code {
        case 0: self = .consent
        case 1: self = .interaction
        case 2: self = .share
        case 3: self = .link
        case 4: self = .unlink
        case 5: self = .heads
        default: return nil
        }
    }

    /// The kind whose name is the UTF-8 bytes `name`, as an entry's `kind` holds it; nil for any other text.
    @inline(__always)
    package init?(name: UnsafeRawBufferPointer) {
        for kind in Self.table
        where kind.staticName.utf8CodeUnitCount == name.count
            && memcmp(kind.staticName.utf8Start, name.baseAddress!, name.count) == 0
        {
            self = kind
            return
        }
        return nil
    }

    private static let table = allCases

    public static func < (a: EntryKind, b: EntryKind) -> Bool { a.code < b.code }

    // By number: the `==` of `RawRepresentable` would compare names.
    public static func == (a: EntryKind, b: EntryKind) -> Bool { a.code == b.code }

    public func hash(into h: inout Hasher) { h.combine(code) }

    /// "a consent", "an interaction": for messages naming an entry of this kind.
    package var withArticle: String { ("aeiou".contains(rawValue.first!) ? "an " : "a ") + rawValue }

    /// Whether the body names subjects: every kind but `heads`.
    package var hasSubjects: Bool { self != .heads }

    /// The keys a body of this kind may hold (Specs/format.md §4.1–§4.4), as `FieldKey` bits.
    var bodyKeys: UInt64 {
        switch self {
        case .consent: Self.consentKeys
        case .interaction: Self.interactionKeys
        case .share: Self.shareKeys
        case .link, .unlink: Self.linkKeys
        case .heads: FieldKey.occurredAt.bit
        }
    }

    /// The keys a body of this kind must hold, in the order a missing one is reported.
    var requiredKeys: [FieldKey] {
        switch self {
        case .consent: Self.consentRequired
        case .interaction: Self.interactionRequired
        case .share: Self.shareRequired
        case .link, .unlink: Self.linkRequired
        case .heads: Self.headsRequired
        }
    }

    /// `requiredKeys` as `FieldKey` bits.
    var requiredBits: UInt64 {
        switch self {
        case .consent: Self.consentRequiredBits
        case .interaction: Self.interactionRequiredBits
        case .share: Self.shareRequiredBits
        case .link, .unlink: Self.linkRequiredBits
        case .heads: FieldKey.occurredAt.bit
        }
    }

    private static let consentKeys = FieldKey.mask([
        .subject, .event, .purposes, .controllers, .recipients, .channel, .method, .legalBasis, .notice, .occurredAt,
        .expiresAt, .evidence,
    ])
    private static let interactionKeys = FieldKey.mask([
        .subject, .channel, .interaction, .purposes, .legalBasis, .agent, .occurredAt, .consentRef, .derivedFrom,
        .detail,
    ])
    private static let shareKeys = FieldKey.mask([
        .subject, .recipient, .purposes, .dataCategories, .occurredAt, .derivedFrom,
    ])
    private static let linkKeys = FieldKey.mask([.subjects, .evidence, .occurredAt])

    private static let consentRequired: [FieldKey] = [
        .subject, .event, .purposes, .controllers, .channel, .method, .legalBasis, .occurredAt,
    ]
    private static let interactionRequired: [FieldKey] = [
        .subject, .channel, .interaction, .purposes, .legalBasis, .agent, .occurredAt,
    ]
    private static let shareRequired: [FieldKey] = [.subject, .recipient, .purposes, .dataCategories, .occurredAt]
    private static let linkRequired: [FieldKey] = [.subjects, .occurredAt]
    private static let headsRequired: [FieldKey] = [.occurredAt]
    private static let consentRequiredBits = FieldKey.mask(consentRequired)
    private static let interactionRequiredBits = FieldKey.mask(interactionRequired)
    private static let shareRequiredBits = FieldKey.mask(shareRequired)
    private static let linkRequiredBits = FieldKey.mask(linkRequired)
}
