import ProvCrypto
import ProvLedger

/// Words a customer reads in the report. The report's script (ReportScript.swift) formats the same values the
/// same way, to compare what a row shows with what the signed entry says: change both together.
enum Labels {
    /// `dpv:DirectMarketing` → `Direct marketing`.
    static func code(_ c: String) -> String {
        let name = c.split(separator: ":", maxSplits: 1).last.map(String.init) ?? c
        var out = ""
        var previous: Character?
        for ch in name {
            if ch.isUppercase, let p = previous, p.isLowercase {
                out += " " + ch.lowercased()
            } else {
                out.append(ch)
            }
            previous = ch
        }
        return out
    }

    static func codes(_ l: [String]) -> String { l.isEmpty ? "—" : l.map(code).joined(separator: ", ") }

    static let channels: [String: String] = [
        "web": "Web", "app": "App", "email": "Email", "sms": "SMS", "voice": "Phone", "chat": "Chat",
        "social": "Social media", "store": "In store", "iot": "Device", "post": "Post",
    ]

    static func channel(_ c: String?) -> String { c.map { channels[$0] ?? $0 } ?? "—" }

    static let events: [String: String] = [
        "give": "Consent given", "withdraw": "Consent withdrawn", "refuse": "Consent refused",
        "request": "Consent requested", "renew": "Consent renewed", "revoke": "Consent revoked", "object": "Objection",
        "invalidate": "Consent invalidated",
    ]

    static let states: [ConsentStatus: String] = [
        .unknown: "Unknown", .requested: "Requested", .given: "Given", .refused: "Refused", .withdrawn: "Withdrawn",
        .revoked: "Revoked", .expired: "Expired", .renewed: "Renewed", .objected: "Objected",
        .invalidated: "Invalidated",
    ]

    /// `2026-11-24 12:00:00 UTC`, to the second.
    static func time(_ ms: UInt64) -> String {
        Timestamp.format(ms - ms % 1000).replacingOccurrences(of: "T", with: " ").replacingOccurrences(
            of: "Z", with: " UTC")
    }

    /// `7 seconds`, `3 minutes`: how long, for a customer.
    static func duration(_ ms: UInt64) -> String {
        func n(_ v: UInt64, _ unit: String) -> String { "\(v) \(unit)\(v == 1 ? "" : "s")" }
        if ms < 1000 { return "less than a second" }
        if ms < 120_000 { return n(ms / 1000, "second") }
        if ms < 7_200_000 { return n(ms / 60_000, "minute") }
        if ms < 172_800_000 { return n(ms / 3_600_000, "hour") }
        return n(ms / 86_400_000, "day")
    }

    /// Why a finding is what it is, in words for the customer.
    static func why(_ f: ComplianceFinding, _ c: Consortium) -> String {
        let who = company(f.interaction.org, c)
        let purpose = code(f.purpose ?? f.interaction.purposes.first ?? "").lowercased()
        let what: String
        switch f.cause ?? "" {
        case "withdrawn": what = "you had withdrawn your consent for \(purpose)"
        case "refused": what = "you had refused consent for \(purpose)"
        case "revoked": what = "the consent for \(purpose) had been revoked"
        case "expired": what = "your consent for \(purpose) had expired"
        case "objected": what = "you had objected to \(purpose)"
        case "invalidated": what = "the consent for \(purpose) had been invalidated"
        case "requested": what = "your consent for \(purpose) had been asked for but not given"
        case "not-recipient": what = "your consent for \(purpose) did not cover \(who)"
        default: what = "it had no consent from you for \(purpose)"
        }
        var s: String
        switch f.classification {
        case .lawful:
            s = "Your consent for \(codes(f.interaction.purposes).lowercased()) was in force."
        case .violation:
            s = "\(who) contacted you although its own records showed that \(what)."
        case .propagationLag:
            let when = f.lagMs.map { " \(duration($0)) earlier" } ?? " shortly before"
            s = "\(what.prefix(1).uppercased() + what.dropFirst())\(when), but the news had not yet reached \(who)."
        }
        let named = ref(f.interaction.consentRef)
        for flag in f.flags {
            switch flag.code {
            // Specs/view.md §8.5: for another person's consent the report cannot show this; the words say so.
            case "not-in-force" where f.flags.contains { $0.code == "other-person" }:
                s +=
                    " The consent it named (\(named)) was no longer in force, as the report says (a report "
                    + "cannot show this for another person's consent)."
            case "not-in-force": s += " The consent it named (\(named)) was no longer in force."
            case "other-person": s += " The consent it named (\(named)) is about another person."
            case "other-purpose": s += " The consent it named (\(named)) is for other purposes."
            case "not-for-actor": s += " The consent it named (\(named)) does not cover \(who)."
            case "unresolved": s += " The consent it named (\(named)) is not in the logs this report covers."
            default: s += " What it named as consent (\(named)) is not a consent entry that matches."
            }
        }
        return s
    }

    static let classes: [ComplianceClass: String] = [
        .lawful: "Lawful", .violation: "Violation", .propagationLag: "Propagation lag",
    ]

    /// What the acting company had seen when it acted (Specs/view.md §8.5), in words for the customer.
    static func seen(_ f: ComplianceFinding, _ k: Knowledge?, _ c: Consortium) -> String {
        let knew = k?.knew ?? []
        var s =
            knew.isEmpty
            ? "It had cited none of the other companies’ records."
            : "It had seen "
                + knew.map { "\(company($0.org, c))’s records up to \($0.org)/\($0.seq) (cited in \(ref($0.by.ref)))" }
                .joined(separator: "; ") + "."
        if f.classification == .violation || f.lagMs != nil, let w = f.deciding.first?.ref, w.org != f.interaction.org {
            if let by = k?.seenBy {
                s +=
                    f.classification == .violation
                    ? " Its record \(ref(by.ref)) already cited \(ref(w))."
                    : " Its record \(ref(by.ref)) first cited \(ref(w)), \(duration(f.seenAfterMs ?? 0)) after \(ref(w)) "
                        + "was recorded."
            } else {
                s += " None of its records cites \(ref(w)) yet."
            }
        }
        return s
    }

    /// ISO/IEC TS 27560 collection methods (Specs/events.md §5.3), in words.
    static let methods: [String: String] = [
        "api": "Through the company’s systems", "app-toggle": "A switch in the app", "checkbox": "A tick box",
        "cookie-banner": "A cookie banner", "device-setting": "A device setting",
        "double-opt-in": "Confirmed twice (double opt-in)", "email-link": "A link in an e-mail",
        "in-person": "In person",
        "ivr": "An automated phone menu", "preference-centre": "A preference centre",
        "signed-paper": "A signed paper form", "sms-keyword": "A keyword sent by text message", "verbal": "Spoken",
        "web-form": "A web form",
    ]

    static func company(_ org: String, _ c: Consortium) -> String { c.member(org)?.name ?? org }

    static func companies(_ orgs: [String], _ c: Consortium) -> String {
        orgs.isEmpty ? "—" : orgs.map { company($0, c) }.joined(separator: ", ")
    }

    /// What an entry records, in a few words.
    static func what(_ f: EntryFacts, _ c: Consortium) -> String {
        switch f.kind {
        case .consent: return "\(events[f.event ?? ""] ?? f.event ?? "") — \(codes(f.purposes))"
        case .interaction: return "\(f.interaction ?? "") — \(codes(f.purposes))"
        case .share:
            return "Data shared with \(company(f.recipient ?? "", c)) — \(codes(f.dataCategories))"
        case .link: return "Identifiers linked"
        case .unlink: return "Identifiers unlinked"
        case .heads: return "What the company had seen of the others"
        }
    }

    static func agent(_ f: EntryFacts, _ c: Consortium) -> String {
        guard let a = f.agent else { return "—" }
        return "\(a.kind) \(a.id)" + (a.onBehalfOf.map { " for \(company($0, c))" } ?? "")
    }

    static func ref(_ r: EntryRef?) -> String { r.map { "\($0.org)/\($0.seq)" } ?? "—" }
}
