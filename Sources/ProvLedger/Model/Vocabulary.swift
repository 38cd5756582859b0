import Glibc

/// The codes an entry may carry. An unknown code is an invalid event at input and an invalid entry in an audit, so
/// every node reads every log the same way. Specs/events.md lists the same tables.
package enum Vocabulary {
    /// Consent events (ISO/IEC TS 27560 consent status changes).
    package static let consentEvents: Set<String> = [
        "request", "give", "refuse", "withdraw", "revoke", "renew", "object", "invalidate",
    ]

    /// Interaction channels.
    package static let channels: Set<String> = [
        "voice", "web", "app", "email", "sms", "chat", "social", "store", "iot", "post",
    ]

    /// How consent was collected (ISO/IEC TS 27560 "collection method").
    package static let collectionMethods: Set<String> = [
        "web-form", "app-toggle", "checkbox", "verbal", "ivr", "signed-paper", "email-link", "sms-keyword",
        "in-person", "device-setting", "api", "preference-centre", "cookie-banner", "double-opt-in",
    ]

    /// Agent kinds (W3C PROV agent types).
    package static let agentKinds: Set<String> = ["person", "software", "device"]

    /// W3C DPV purposes (https://w3id.org/dpv#Purpose) accepted by format version 1.
    package static let purposes: Set<String> = [
        "dpv:AccountManagement", "dpv:Advertising", "dpv:CommunicationManagement", "dpv:CustomerCare",
        "dpv:CustomerClaimsManagement", "dpv:CustomerManagement", "dpv:CustomerOrderManagement",
        "dpv:CustomerRelationshipManagement", "dpv:CustomerSolvencyMonitoring", "dpv:DirectMarketing",
        "dpv:EnforceSecurity", "dpv:FraudPreventionAndDetection", "dpv:IdentityVerification",
        "dpv:ImproveExistingProductsAndServices", "dpv:LegalCompliance", "dpv:Marketing", "dpv:PaymentManagement",
        "dpv:Personalisation", "dpv:PersonalisedAdvertising", "dpv:PublicRelations",
        "dpv:RequestedServiceProvision", "dpv:ResearchAndDevelopment", "dpv:SellProducts",
        "dpv:ServiceOptimisation", "dpv:ServicePersonalisation", "dpv:ServiceProvision",
        "dpv:ServiceUsageAnalytics", "dpv:SocialMediaMarketing",
    ]

    /// W3C DPV legal bases (https://w3id.org/dpv#LegalBasis).
    package static let legalBases: Set<String> = [
        "dpv:Consent", "dpv:Contract", "dpv:LegalObligation", "dpv:LegitimateInterest", "dpv:VitalInterest",
        "dpv:PublicInterest", "dpv:OfficialAuthorityOfController",
    ]

    /// W3C DPV personal data categories; `dpv:` and the personal-data extension's `pd:` prefix are both accepted.
    package static let dataCategories: Set<String> = {
        let names = [
            "Contact", "EmailAddress", "TelephoneNumber", "Name", "Address", "Location", "Financial", "Identifying",
            "Preference", "Behavioral", "Transactional", "PurchasesAndSpendingHabit", "DeviceBased",
            "Demographic", "CommunicationsMetadata", "PaymentCard", "Age",
        ]
        return Set(names.map { "dpv:\($0)" } + names.map { "pd:\($0)" })
    }()

    /// ` (one of a, b, c)`: the codes a field takes, for the message that refuses another (they are public).
    package static func listing(_ codes: Set<String>) -> String {
        if codes == dataCategories {
            let names = codes.filter { $0.hasPrefix("dpv:") }.map { $0.dropFirst(4) }.sorted()
            return " (dpv: or pd: and one of \(names.joined(separator: ", ")))"
        }
        return " (one of \(codes.sorted().joined(separator: ", ")))"
    }

    /// An org id: 1–32 of `a-z 0-9 -`, starting with a letter or digit.
    package static func isOrgID(_ s: String) -> Bool {
        let u = s.utf8
        guard (1...32).contains(u.count), let first = u.first, first != UInt8(ascii: "-") else { return false }
        return u.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
    }

    /// `isOrgID` of UTF-8 bytes.
    package static func isOrgID(_ u: UnsafeRawBufferPointer) -> Bool {
        guard (1...32).contains(u.count), u[0] != UInt8(ascii: "-") else { return false }
        return u.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
    }

    /// A consortium name: 1–64 of `a-z 0-9 . -`, starting with a letter or digit.
    package static func isConsortiumName(_ s: String) -> Bool {
        let u = s.utf8
        guard (1...64).contains(u.count), let first = u.first, isLowerAlnum(first) else { return false }
        return u.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
    }

    /// A code of a consortium vocabulary (an interaction type, a notice id, a software or device agent's name):
    /// 1–64 of `a-z 0-9 . _ -`, starting with a letter (Specs/format.md §4.6).
    package static func isCode(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { isCode(UnsafeRawBufferPointer($0)) }
    }

    package static func isCode(_ u: UnsafeRawBufferPointer) -> Bool {
        guard (1...64).contains(u.count), u[0] >= UInt8(ascii: "a") && u[0] <= UInt8(ascii: "z") else { return false }
        return u.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") || $0 == 0x5f }
    }

    /// A notice version: 1 to 4 groups of 1 to 4 digits, separated by dots (`7`, `2.1`, `2026.11.24`). Short runs
    /// of digits and nothing else, so no name, e-mail address or unbroken phone number fits (Specs/format.md §4.1).
    package static func isNoticeVersion(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { isNoticeVersion(UnsafeRawBufferPointer($0)) }
    }

    package static func isNoticeVersion(_ u: UnsafeRawBufferPointer) -> Bool {
        var groups = 1
        var run = 0
        for b in u {
            if b == UInt8(ascii: ".") {
                guard run > 0, groups < 4 else { return false }
                groups += 1
                run = 0
            } else {
                guard b >= 0x30 && b <= 0x39, run < 4 else { return false }
                run += 1
            }
        }
        return run > 0
    }

    /// An employee id as a company gives it for a person agent, before it is pseudonymised: 1–64 of
    /// `A-Z a-z 0-9 . _ -`, case kept (Specs/events.md §4.1).
    package static func isEmployeeID(_ s: some StringProtocol) -> Bool {
        (1...64).contains(s.utf8.count)
            && s.utf8.allSatisfy {
                ($0 >= 0x41 && $0 <= 0x5a) || isLowerAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".")
                    || $0 == 0x5f
            }
    }

    @inline(__always) static func isLowerAlnum(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }

    package static let consentEventTable = CodeTable(consentEvents)
    package static let channelTable = CodeTable(channels)
    package static let methodTable = CodeTable(collectionMethods)
    package static let agentKindTable = CodeTable(agentKinds)
    package static let purposeTable = CodeTable(purposes)
    package static let legalBasisTable = CodeTable(legalBases)
    package static let dataCategoryTable = CodeTable(dataCategories)

    /// The number of `dpv:Consent` in `legalBasisTable`: the legal basis that needs a `consentRef` (§4.2).
    package static let consentBasis = legalBasisTable.number("dpv:Consent")!
    /// The numbers of the agent kinds in `agentKindTable`.
    package static let personAgent = agentKindTable.number("person")!
    package static let softwareAgent = agentKindTable.number("software")!

    /// The offset of the '/' of a log origin `<consortium>/<org>` in its UTF-8 bytes, if the origin is well formed.
    package static func originSlash(_ u: UnsafeRawBufferPointer) -> Int? {
        guard let slash = u.firstIndex(of: UInt8(ascii: "/")) else { return nil }
        let name = u[..<slash]
        let org = u[(slash + 1)...]
        guard (1...64).contains(name.count), let n0 = name.first, isLowerAlnum(n0),
            name.allSatisfy({ isLowerAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }),
            (1...32).contains(org.count), let o0 = org.first, o0 != UInt8(ascii: "-"),
            org.allSatisfy({ isLowerAlnum($0) || $0 == UInt8(ascii: "-") })
        else { return nil }
        return slash
    }
}

/// A vocabulary looked up by raw UTF-8 bytes without allocating: an open-addressing table keyed by FNV-1a of the
/// bytes. A code's number is its position in `codes` (ascending bytewise, the order Specs/format.md §4.6 lists
/// them in), so that a reader can keep a code as a small number and name it again from the table.
package struct CodeTable: Sendable {
    /// The codes, ascending; a code's number is its index here.
    package let codes: [String]
    /// Each slot: the hash, the code's bytes in `text`, and its number; `number` is -1 in an empty slot. Plain
    /// values, so a probe touches no reference count.
    private let slots: [(hash: UInt64, start: Int32, count: Int32, number: Int32)]
    private let text: [UInt8]
    private let mask: Int

    package init(_ codes: Set<String>) {
        let sorted = codes.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var size = 16
        while size < sorted.count * 4 { size *= 2 }
        var slots = [(hash: UInt64, start: Int32, count: Int32, number: Int32)](
            repeating: (0, 0, 0, -1), count: size)
        var text: [UInt8] = []
        for (n, c) in sorted.enumerated() {
            let bytes = Array(c.utf8)
            let h = bytes.withUnsafeBytes { Self.hash($0) }
            var i = Int(truncatingIfNeeded: h) & (size - 1)
            while slots[i].number >= 0 { i = (i + 1) & (size - 1) }
            slots[i] = (h, Int32(text.count), Int32(bytes.count), Int32(n))
            text += bytes
        }
        self.codes = sorted
        self.slots = slots
        self.text = text
        self.mask = size - 1
    }

    @inline(__always)
    static func hash(_ raw: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in raw { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    /// The number of the code whose UTF-8 bytes are `raw`, or nil when it is not in the table.
    @inline(__always)
    package func number(_ raw: UnsafeRawBufferPointer) -> Int? {
        let h = Self.hash(raw)
        return slots.withUnsafeBufferPointer { slots in
            text.withUnsafeBytes { text in
                var i = Int(truncatingIfNeeded: h) & mask
                while slots[i].number >= 0 {
                    let e = slots[i]
                    if e.hash == h && Int(e.count) == raw.count
                        && (raw.count == 0
                            || memcmp(text.baseAddress! + Int(e.start), raw.baseAddress!, raw.count) == 0)
                    {
                        return Int(e.number)
                    }
                    i = (i + 1) & mask
                }
                return nil
            }
        }
    }

    /// The table's own string for the code whose UTF-8 bytes are `raw` (shared, not allocated), or nil.
    package func lookup(_ raw: UnsafeRawBufferPointer) -> String? { number(raw).map { codes[$0] } }

    /// The number of `code`, or nil.
    package func number(_ code: String) -> Int? {
        var c = code
        return c.withUTF8 { number(UnsafeRawBufferPointer($0)) }
    }
}
