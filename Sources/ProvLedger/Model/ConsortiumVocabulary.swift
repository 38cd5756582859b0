/// The words a consortium agrees on for what its members record: interaction types, notice ids, and the names
/// of the software and device agents that act for its members (Specs/format.md §9.1). They are declared in the
/// consortium descriptor, so that nothing free-form reaches the ledger and every company uses the same words in
/// the shared view. A person who acts for a company is not named here: a person's agent id is a keyed pseudonym
/// (§5.4).
public struct ConsortiumVocabulary: Sendable, Equatable {
    /// Interaction types (`interaction` of an interaction entry), ascending.
    public let interactions: [String]
    /// Notice ids (`notice.id` of a consent entry), ascending.
    public let notices: [String]
    /// Names of software agents (`agent.id` when `agent.kind` is `software`), ascending.
    public let softwareAgents: [String]
    /// Names of device agents (`agent.id` when `agent.kind` is `device`), ascending.
    public let deviceAgents: [String]

    private let interactionSet: Set<String>
    private let noticeSet: Set<String>
    private let softwareSet: Set<String>
    private let deviceSet: Set<String>

    /// At most this many codes in one list.
    public static let maxCodes = 256

    public init(interactions: [String], notices: [String], softwareAgents: [String], deviceAgents: [String])
        throws(LedgerError)
    {
        func check(_ list: [String], _ name: String) throws(LedgerError) -> [String] {
            guard list.count <= Self.maxCodes else {
                throw LedgerError(.config, "vocabulary.\(name): more than \(Self.maxCodes) codes")
            }
            for (i, c) in list.enumerated() where !Vocabulary.isCode(c) {
                throw LedgerError(
                    .config,
                    "vocabulary.\(name)[\(i)]: \(LedgerError.shown(c)) is not a code: 1-64 of a-z 0-9 . _ -, "
                        + "starting with a letter")
            }
            let sorted = list.sorted()
            for i in sorted.indices.dropFirst() where sorted[i] == sorted[i - 1] {
                throw LedgerError(.config, "vocabulary.\(name): lists \(LedgerError.shown(sorted[i])) twice")
            }
            return sorted
        }
        self.interactions = try check(interactions, "interactions")
        self.notices = try check(notices, "notices")
        self.softwareAgents = try check(softwareAgents, "agents.software")
        self.deviceAgents = try check(deviceAgents, "agents.device")
        interactionSet = Set(self.interactions)
        noticeSet = Set(self.notices)
        softwareSet = Set(self.softwareAgents)
        deviceSet = Set(self.deviceAgents)
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.interactions == b.interactions && a.notices == b.notices && a.softwareAgents == b.softwareAgents
            && a.deviceAgents == b.deviceAgents
    }

    public func isInteraction(_ code: String) -> Bool { interactionSet.contains(code) }

    public func isNotice(_ code: String) -> Bool { noticeSet.contains(code) }

    /// Whether `name` is a declared agent of `kind` (`software` or `device`; no person is named).
    public func isAgent(_ name: String, kind: String) -> Bool {
        switch kind {
        case "software": softwareSet.contains(name)
        case "device": deviceSet.contains(name)
        default: false
        }
    }

    /// The declared names of agents of `kind`.
    public func agents(kind: String) -> [String] {
        kind == "software" ? softwareAgents : kind == "device" ? deviceAgents : []
    }

    /// What `prov consortium init` writes when no vocabulary is given: the interactions, notices and agents of
    /// companies that share customers across contact centre, web, app, e-mail, store and device channels.
    public static let standard = try! ConsortiumVocabulary(
        interactions: [
            "account-update", "activity-sync", "appointment", "bot-session", "card-payment", "chat-answer",
            "complaint", "delivery-update", "login", "marketing-email", "marketing-sms", "newsletter", "order-update",
            "product-recommendation", "purchase", "refund", "retention-call", "return", "sales-call",
            "service-notice", "support-call", "survey", "telemetry-upload", "web-visit",
        ],
        notices: ["cookie-notice", "data-sharing-notice", "marketing-notice", "privacy", "terms"],
        softwareAgents: [
            "ai-assistant", "chatbot", "core-banking", "crm", "ivr", "mailer", "mobile-app", "recommender",
            "sms-gateway",
            "web-shop",
        ],
        deviceAgents: ["iot-gateway", "kiosk", "payment-terminal", "store-till", "thermostat", "wearable"])

    // MARK: JSON

    /// `{"interactions": [...], "notices": [...], "agents": {"software": [...], "device": [...]}}`, lists
    /// ascending.
    public var json: JSONValue {
        func list(_ l: [String]) -> JSONValue { .array(l.map { .string($0) }) }
        return .object([
            JSONMember("interactions", list(interactions)), JSONMember("notices", list(notices)),
            JSONMember(
                "agents",
                .object([JSONMember("software", list(softwareAgents)), JSONMember("device", list(deviceAgents))])),
        ])
    }

    /// Parses a vocabulary file (`prov consortium init --vocabulary FILE`): one JSON object of the form of the
    /// descriptor's `vocabulary`. Errors start with `source`.
    public init(parsing bytes: [UInt8], source: String) throws(LedgerError) {
        let json: JSONValue
        do { json = try JSON.parse(bytes) } catch {
            throw LedgerError(.config, "\(source): not valid JSON: \(error.located(in: bytes))")
        }
        do { try self.init(json: json) } catch { throw LedgerError(.config, "\(source): \(error.message)") }
    }

    /// Reads the vocabulary object; every field is required and no other is allowed. `path` names the object in
    /// messages (`vocabulary` in a descriptor).
    public init(json: JSONValue, path: String = "vocabulary") throws(LedgerError) {
        func bad(_ what: String) -> LedgerError { LedgerError(.config, "\(path)\(what)") }
        func object(_ v: JSONValue?, _ name: String, keys: [String]) throws(LedgerError) -> JSONValue {
            guard let v, let fields = v.objectValue else {
                throw bad("\(name) must be an object with \(keys.joined(separator: ", "))")
            }
            for f in fields where !keys.contains(f.key) {
                throw bad("\(name): unknown field \(LedgerError.shown(f.key))")
            }
            return v
        }
        func list(_ v: JSONValue, _ key: String, _ name: String) throws(LedgerError) -> [String] {
            guard let items = v[key]?.arrayValue else { throw bad("\(name): missing or not an array of codes") }
            var out: [String] = []
            for (i, item) in items.enumerated() {
                guard let s = item.stringValue else { throw bad("\(name)[\(i)]: must be a string") }
                out.append(s)
            }
            return out
        }
        let top = try object(json, "", keys: ["interactions", "notices", "agents"])
        let agents = try object(top["agents"], ".agents", keys: ["software", "device"])
        do {
            try self.init(
                interactions: try list(top, "interactions", ".interactions"),
                notices: try list(top, "notices", ".notices"),
                softwareAgents: try list(agents, "software", ".agents.software"),
                deviceAgents: try list(agents, "device", ".agents.device"))
        } catch {
            // The initialiser names the list from `vocabulary.`: keep the caller's path.
            throw LedgerError(.config, path + error.message.dropFirst("vocabulary".count))
        }
    }
}
