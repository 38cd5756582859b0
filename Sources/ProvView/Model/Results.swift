import ProvCrypto
import ProvLedger

/// The entry that decided something, with both of its clocks (Specs/view.md §9).
public struct DecidingEntry: Sendable, Equatable {
    public var ref: EntryRef
    /// The consent event of the entry, when it is a consent.
    public var event: String?
    public var hlc: HLC
    public var occurredAt: UInt64

    public var skewMs: Int64 { Int64(bitPattern: hlc.wall &- occurredAt) }

    public var json: JSONValue {
        var m = [JSONMember("ref", Render.ref(ref))]
        if let event { m.append(JSONMember("event", .string(event))) }
        m += [
            JSONMember("hlc", .string(Render.hlc(hlc))), JSONMember("recordedAt", .string(Render.time(hlc.wall))),
            JSONMember("occurredAt", .string(Render.time(occurredAt))), JSONMember("skewMs", Render.number(skewMs)),
        ]
        return .object(m)
    }
}

/// `permit(subject, org, purpose, channel, at)`: may `org` process the person's data for `purpose` at `at`?
public struct PermitAnswer: Sendable, Equatable {
    public var allowed: Bool
    public var org: String
    public var purpose: String
    /// Echoed: format version 1 consents carry no channel scope, so it does not change the answer.
    public var channel: String?
    public var at: UInt64
    public var state: ConsentStatus
    /// The controller whose consent decided.
    public var controller: String?
    /// The consent entry that decided: the give or renew in force when allowed (or expired), otherwise the entry
    /// that set the state. Its receipt is fetched by this reference.
    public var decidedBy: DecidingEntry?
    public var expiresAt: UInt64?
    /// Recipients of the consent in force.
    public var recipients: [String]
    /// Why not, when denied.
    public var reason: String?
    public var frontier: Frontier

    public var json: JSONValue {
        .object([
            JSONMember("allowed", .bool(allowed)), JSONMember("org", .string(org)),
            JSONMember("purpose", .string(purpose)), JSONMember("channel", Render.optional(channel) { .string($0) }),
            JSONMember("at", .string(Render.time(at))), JSONMember("state", .string(state.rawValue)),
            JSONMember("controller", Render.optional(controller) { .string($0) }),
            JSONMember("decidedBy", decidedBy?.json ?? .null),
            JSONMember("expiresAt", Render.optional(expiresAt) { .string(Render.time($0)) }),
            JSONMember("recipients", Render.strings(recipients)),
            JSONMember("reason", Render.optional(reason) { .string($0) }), JSONMember("frontier", frontier.json),
        ])
    }

    public var table: String {
        var rows = [
            ["answer", allowed ? "ALLOWED" : "DENIED"], ["org", org], ["purpose", purpose],
            ["at", Render.time(at)], ["state", state.rawValue], ["controller", controller ?? "-"],
        ]
        if let d = decidedBy {
            rows.append(["decided by", "\(Render.refText(d.ref)) leaf \(d.ref.leaf.hex)"])
            rows.append(["recorded", "\(Render.time(d.hlc.wall)) (occurred \(Render.time(d.occurredAt)))"])
        }
        if let expiresAt { rows.append(["expires", Render.time(expiresAt)]) }
        if !recipients.isEmpty { rows.append(["recipients", recipients.joined(separator: ", ")]) }
        if let reason { rows.append(["reason", reason]) }
        return Render.table(["FIELD", "VALUE"], rows)
    }
}

/// The consent state of one (controller, purpose) for the person.
public struct ConsentState: Sendable, Equatable {
    public var controller: String
    public var purpose: String
    /// At the view's `at`: `expired` once a given or renewed consent's `expiresAt` has passed.
    public var state: ConsentStatus
    /// As the events left it, before expiry is evaluated: what the view digest holds when no `at` was asked for.
    public var recorded: ConsentStatus
    /// The entry that set the state (the give or renew for given, renewed and expired).
    public var decidedBy: DecidingEntry
    /// The give or renew in force, for given, renewed and expired.
    public var grant: EntryRef?
    public var expiresAt: UInt64?
    public var recipients: [String]
    /// Consent events for this controller and purpose that changed the state, and that left it as it was.
    public var eventsApplied: Int
    public var eventsIgnored: Int

    public var json: JSONValue {
        .object([
            JSONMember("controller", .string(controller)), JSONMember("purpose", .string(purpose)),
            JSONMember("state", .string(state.rawValue)), JSONMember("recorded", .string(recorded.rawValue)),
            JSONMember("decidedBy", decidedBy.json), JSONMember("grant", Render.optional(grant, Render.ref)),
            JSONMember("expiresAt", Render.optional(expiresAt) { .string(Render.time($0)) }),
            JSONMember("recipients", Render.strings(recipients)),
            JSONMember("eventsApplied", Render.number(eventsApplied)),
            JSONMember("eventsIgnored", Render.number(eventsIgnored)),
        ])
    }
}

/// One entry of the person's timeline.
public struct TimelineItem: Sendable, Equatable {
    public var facts: EntryFacts
    /// The company's name in the descriptor.
    public var company: String
    /// Shares of the person's data that name this entry in `derivedFrom`.
    public var sharedIn: [EntryRef]

    public var json: JSONValue {
        var m = facts.json(company: company)
        if !sharedIn.isEmpty { m.append(JSONMember("sharedIn", .array(sharedIn.map(Render.ref)))) }
        return .object(m)
    }

    /// When it happened (what the company asserts), then when its log recorded it: the timeline is ordered by the
    /// second (Specs/view.md §4.5), so a late entry shows an older HAPPENED among newer ones.
    var row: [String] {
        [
            Render.time(facts.occurredAt), Render.time(facts.hlc.wall), facts.org, facts.channel ?? "-",
            facts.kind.rawValue, facts.summary, Render.refText(facts.ref),
        ]
    }

    static let header = ["HAPPENED", "RECORDED", "COMPANY", "CHANNEL", "KIND", "WHAT", "ENTRY"]
}

/// A position in a timeline: items strictly older than it follow. Text form `<wall>.<counter>.<org>.<seq>`, or an
/// RFC 3339 time (items recorded before it).
public struct TimelineCursor: Sendable, Equatable, CustomStringConvertible {
    public var hlc: HLC
    public var org: String
    public var seq: UInt64

    public init(hlc: HLC, org: String, seq: UInt64) {
        self.hlc = hlc
        self.org = org
        self.seq = seq
    }

    public var description: String { "\(hlc.wall).\(hlc.counter).\(org).\(seq)" }

    /// Parses the text form; nil when it is neither form.
    public init?(_ text: String) {
        if let t = Timestamp.parse(text) {
            self.init(hlc: HLC(wall: t, counter: 0), org: "", seq: 0)
            return
        }
        let p = text.split(separator: ".", omittingEmptySubsequences: false)
        guard p.count == 4, let w = UInt64(p[0]), let c = UInt64(p[1]), let s = UInt64(p[3]), !p[2].isEmpty else {
            return nil
        }
        self.init(hlc: HLC(wall: w, counter: c), org: String(p[2]), seq: s)
    }
}

/// A page of the timeline, newest first.
public struct TimelinePage: Sendable, Equatable {
    public var refs: [String]
    public var items: [TimelineItem]
    /// Where the next page starts, when there is one.
    public var next: TimelineCursor?
    /// Items of the whole timeline.
    public var total: Int
    public var frontier: Frontier

    public var json: JSONValue {
        .object([
            JSONMember("refs", Render.strings(refs)), JSONMember("total", Render.number(total)),
            JSONMember("items", .array(items.map(\.json))),
            JSONMember("next", Render.optional(next) { .string($0.description) }),
            JSONMember("frontier", frontier.json),
        ])
    }

    public var table: String {
        Render.table(TimelineItem.header, items.map(\.row))
            + (next.map { "more: --before \($0)\n" } ?? "")
    }
}

/// How an interaction relying on consent stands (Specs/view.md §7).
public enum ComplianceClass: String, Sendable, CaseIterable {
    case lawful
    /// The acting company's own frontier already showed no valid consent.
    case violation
    /// A withdrawal (or refusal, objection...) existed earlier by `hlc`, but the acting company had not seen it.
    case propagationLag = "propagation-lag"
}

/// A problem with an interaction's `consentRef` (Specs/view.md §7.3).
public struct ConsentRefFlag: Sendable, Equatable {
    /// `unresolved`, `leaf-mismatch`, `not-consent`, `other-person`, `other-purpose`, `not-for-actor`,
    /// `not-in-force`.
    public var code: String
    public var detail: String

    public var json: JSONValue { .object([JSONMember("code", .string(code)), JSONMember("detail", .string(detail))]) }
}

/// One interaction, classified.
public struct ComplianceFinding: Sendable, Equatable {
    public var interaction: EntryFacts
    public var classification: ComplianceClass
    /// The purpose that decided a violation or lag.
    public var purpose: String?
    public var reason: String
    /// What the acting company's consent was missing, for a violation or lag: `withdrawn`, `refused`, `revoked`,
    /// `expired`, `objected`, `invalidated`, `requested`, `no-consent` or `not-recipient`.
    public var cause: String?
    /// For a propagation lag: ms from the deciding entry (the withdrawal) to the interaction, by `hlc`.
    public var lagMs: UInt64?
    /// For a propagation lag: ms from the deciding entry until the acting company first cited it, if it has.
    public var seenAfterMs: UInt64?
    /// The entries that decide the classification: the consent relied on, or the withdrawal (refusal, objection,
    /// expired grant) that made it a violation or lag.
    public var deciding: [DecidingEntry]
    public var flags: [ConsentRefFlag]

    public var json: JSONValue {
        .object([
            JSONMember("interaction", Render.ref(interaction.ref)), JSONMember("org", .string(interaction.org)),
            JSONMember("onBehalfOf", Render.optional(interaction.agent?.onBehalfOf) { .string($0) }),
            JSONMember("subject", .string(SubjectRef.text(interaction.subjects[0]))),
            JSONMember("channel", Render.optional(interaction.channel) { .string($0) }),
            JSONMember("purposes", Render.strings(interaction.purposes)),
            JSONMember("legalBasis", Render.optional(interaction.legalBasis) { .string($0) }),
            JSONMember("hlc", .string(Render.hlc(interaction.hlc))),
            JSONMember("occurredAt", .string(Render.time(interaction.occurredAt))),
            JSONMember("classification", .string(classification.rawValue)),
            JSONMember("purpose", Render.optional(purpose) { .string($0) }), JSONMember("reason", .string(reason)),
            JSONMember("cause", Render.optional(cause) { .string($0) }),
            JSONMember("lagMs", Render.optional(lagMs) { Render.number($0) }),
            JSONMember("seenAfterMs", Render.optional(seenAfterMs) { Render.number($0) }),
            JSONMember("deciding", .array(deciding.map(\.json))), JSONMember("flags", .array(flags.map(\.json))),
        ])
    }

    var row: [String] {
        [
            Render.refText(interaction.ref), Render.time(interaction.hlc.wall), classification.rawValue,
            lagMs.map { "\($0) ms" } ?? "-", deciding.map { Render.refText($0.ref) }.joined(separator: " "),
            (flags.map(\.code) + [reason]).joined(separator: "; "),
        ]
    }

    static let header = ["INTERACTION", "RECORDED", "CLASS", "LAG", "DECIDED BY", "WHY"]
}

/// `compliance(org, from, to)`: the interactions of one company in a time range, across all subjects.
public struct ComplianceReport: Sendable, Equatable {
    public var org: String
    public var from: UInt64?
    public var to: UInt64?
    /// Interactions of `org` recorded in the range.
    public var interactions: Int
    /// Of those, the ones checked against consent (Specs/view.md §7.2, "listed": they relied on consent, met an
    /// objection, or named a consent), each classified: `checked == lawful + violations + propagationLags`.
    public var checked: Int
    public var lawful: Int
    public var violations: Int
    public var propagationLags: Int
    /// Violations, propagation lags, and interactions whose consentRef is flagged, oldest first.
    public var findings: [ComplianceFinding]
    public var frontier: Frontier

    public var json: JSONValue {
        .object([
            JSONMember("org", .string(org)), JSONMember("from", Render.optional(from) { .string(Render.time($0)) }),
            JSONMember("to", Render.optional(to) { .string(Render.time($0)) }),
            JSONMember("interactions", Render.number(interactions)), JSONMember("checked", Render.number(checked)),
            JSONMember("lawful", Render.number(lawful)),
            JSONMember("violations", Render.number(violations)),
            JSONMember("propagationLags", Render.number(propagationLags)),
            JSONMember("findings", .array(findings.map(\.json))), JSONMember("frontier", frontier.json),
        ])
    }

    public var table: String {
        "\(org): \(Phrase.count(interactions, "interaction")), \(checked) checked against consent: \(lawful) lawful, "
            + "\(Phrase.count(violations, "violation")), \(Phrase.count(propagationLags, "propagation lag"))\n"
            + Render.table(ComplianceFinding.header, findings.map(\.row))
    }
}

/// An identity edge: the last link or unlink between two refs of the person, which decides it.
public struct IdentityLink: Sendable, Equatable {
    public var refs: [SHA256Digest]
    public var linked: Bool
    public var decidedBy: DecidingEntry

    public var json: JSONValue {
        .object([
            JSONMember("refs", .array(refs.map { .string(SubjectRef.text($0)) })), JSONMember("linked", .bool(linked)),
            JSONMember("decidedBy", decidedBy.json),
        ])
    }
}

/// Everything the view holds about one person, at one frontier (Specs/view.md §6).
public struct SubjectView: Sendable, Equatable {
    /// The person's refs (the queried one and every ref linked to it), ascending.
    public var refs: [SHA256Digest]
    public var links: [IdentityLink]
    /// Ascending by controller, then purpose.
    public var consents: [ConsentState]
    /// Newest first.
    public var timeline: [TimelineItem]
    /// Interactions relying on consent (and any an objection applied to), newest first.
    public var compliance: [ComplianceFinding]
    public var frontier: Frontier
    /// The time expiry was evaluated at.
    public var at: UInt64
    /// Whether `at` was asked for: only then is it part of the digest.
    public var atGiven: Bool
    public var digest: SHA256Digest

    public var json: JSONValue {
        .object([
            JSONMember("refs", .array(refs.map { .string(SubjectRef.text($0)) })),
            JSONMember("at", .string(Render.time(at))), JSONMember("atGiven", .bool(atGiven)),
            JSONMember("digest", .string(digest.hex)), JSONMember("frontier", frontier.json),
            JSONMember("links", .array(links.map(\.json))), JSONMember("consents", .array(consents.map(\.json))),
            JSONMember("timeline", .array(timeline.map(\.json))),
            JSONMember("compliance", .array(compliance.map(\.json))),
        ])
    }

    public var table: String {
        var s = "person: \(refs.map(SubjectRef.text).joined(separator: ", "))\n"
        s += "view digest \(digest.hex) at \(Render.time(at))\(atGiven ? "" : " (not part of the digest)")\n\n"
        s += "CONSENT\n"
        s += Render.table(
            ["CONTROLLER", "PURPOSE", "STATE", "SINCE", "EXPIRES", "RECIPIENTS", "ENTRY"],
            consents.map {
                [
                    $0.controller, $0.purpose, $0.state.rawValue, Render.time($0.decidedBy.hlc.wall),
                    $0.expiresAt.map(Render.time) ?? "-", $0.recipients.joined(separator: ",").nonEmpty ?? "-",
                    Render.refText($0.decidedBy.ref),
                ]
            })
        s += "\nTIMELINE (newest first)\n" + Render.table(TimelineItem.header, timeline.map(\.row))
        s += "\nCOMPLIANCE\n" + Render.table(ComplianceFinding.header, compliance.map(\.row))
        return s
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
