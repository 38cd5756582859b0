import ProvCrypto

extension Entry {
    /// A readable JSON rendering (not canonical; the CBOR bytes are): refs as `ref:…`, times as RFC 3339.
    public var json: JSONValue {
        func ref(_ r: EntryRef) -> JSONValue {
            .object([
                JSONMember("org", .string(r.org)), JSONMember("seq", .number(String(r.seq))),
                JSONMember("leaf", .string(r.leaf.hex)),
            ])
        }
        func strings(_ l: [String]) -> JSONValue { .array(l.map { .string($0) }) }
        func time(_ t: UInt64) -> JSONValue { .string(Timestamp.format(t)) }
        var body: [JSONMember] = []
        switch self.body {
        case .consent(let b):
            body = [
                JSONMember("subject", .string(SubjectRef.text(b.subject))), JSONMember("event", .string(b.event)),
                JSONMember("purposes", strings(b.purposes)), JSONMember("controllers", strings(b.controllers)),
            ]
            if !b.recipients.isEmpty { body.append(JSONMember("recipients", strings(b.recipients))) }
            body += [
                JSONMember("channel", .string(b.channel)), JSONMember("method", .string(b.method)),
                JSONMember("legalBasis", .string(b.legalBasis)),
            ]
            if let n = b.notice {
                body.append(
                    JSONMember(
                        "notice",
                        .object([
                            JSONMember("id", .string(n.id)), JSONMember("version", .string(n.version)),
                            JSONMember("sha256", .string(n.sha256.hex)),
                        ])))
            }
            body.append(JSONMember("occurredAt", time(b.occurredAt)))
            if let x = b.expiresAt { body.append(JSONMember("expiresAt", time(x))) }
            if let e = b.evidence { body.append(JSONMember("evidence", .string(e.hex))) }
        case .interaction(let b):
            var agent = [
                JSONMember("id", .string(b.agent.id.description)), JSONMember("kind", .string(b.agent.kind)),
            ]
            if let o = b.agent.onBehalfOf { agent.append(JSONMember("onBehalfOf", .string(o))) }
            body = [
                JSONMember("subject", .string(SubjectRef.text(b.subject))), JSONMember("channel", .string(b.channel)),
                JSONMember("interaction", .string(b.interaction)), JSONMember("purposes", strings(b.purposes)),
                JSONMember("legalBasis", .string(b.legalBasis)), JSONMember("agent", .object(agent)),
                JSONMember("occurredAt", time(b.occurredAt)),
            ]
            if let c = b.consentRef { body.append(JSONMember("consentRef", ref(c))) }
            if !b.derivedFrom.isEmpty { body.append(JSONMember("derivedFrom", .array(b.derivedFrom.map(ref)))) }
            if let d = b.detail { body.append(JSONMember("detail", .string(d.hex))) }
        case .share(let b):
            body = [
                JSONMember("subject", .string(SubjectRef.text(b.subject))),
                JSONMember("recipient", .string(b.recipient)),
                JSONMember("purposes", strings(b.purposes)), JSONMember("dataCategories", strings(b.dataCategories)),
                JSONMember("occurredAt", time(b.occurredAt)),
            ]
            if !b.derivedFrom.isEmpty { body.append(JSONMember("derivedFrom", .array(b.derivedFrom.map(ref)))) }
        case .link(let b), .unlink(let b):
            body = [JSONMember("subjects", .array(b.subjects.map { .string(SubjectRef.text($0)) }))]
            if let e = b.evidence { body.append(JSONMember("evidence", .string(e.hex))) }
            body.append(JSONMember("occurredAt", time(b.occurredAt)))
        case .heads(let b):
            body = [JSONMember("occurredAt", time(b.occurredAt))]
        }
        return .object([
            JSONMember("log", .string(log)), JSONMember("seq", .number(String(seq))),
            JSONMember("prev", .string(prev.hex)),
            JSONMember("hlc", .array([.number(String(hlc.wall)), .number(String(hlc.counter))])),
            JSONMember("deps", .array(deps.map(ref))), JSONMember("kind", .string(self.body.kind.rawValue)),
            JSONMember("body", .object(body)),
        ])
    }
}
