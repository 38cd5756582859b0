import Foundation
import ProvCrypto
import ProvLedger
import ProvView

/// The view's routes on the API listener (Specs/protocol.md §6.4, Specs/api.yaml): read-only, for the company's
/// token and the auditor's. A subject is any of a person's refs (`ref:…`) or a raw identifier, pseudonymised at
/// once and never stored or logged; an unknown subject is an empty view, not an error.
extension Node {
    /// Answers a view route, or nil when `req` is none.
    func viewRoute(_ req: NodeRequest) -> NodeResponse? {
        guard req.method == "GET" || req.method == "HEAD" else { return nil }
        let parts = req.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        guard parts.count >= 2, parts[0] == "v1" else { return nil }
        let asksView =
            (parts.count == 4 && parts[1] == "subjects" && ["view", "timeline", "report"].contains(parts[3]))
            || (parts.count == 2 && (parts[1] == "permit" || parts[1] == "compliance"))
        guard view != nil || !asksView else {
            return .error(404, "this node keeps no customer view (its node.json sets \"view\": false)")
        }
        do throws(ViewError) {
            switch (parts.count, parts[1]) {
            case (4, "subjects"):
                guard let subject = NodeRequest.percentDecoded(Substring(parts[2]).utf8[...], plusIsSpace: false),
                    !subject.isEmpty
                else {
                    throw ViewError(
                        .badParameter, "parameter 'subject': not a percent-encoded identifier or ref",
                        parameter: "subject")
                }
                switch parts[3] {
                case "view":
                    let v = try view!.view(subject: subject, at: try time(req, "at"))
                    return answer(req, v.json, v.table)
                case "timeline":
                    let limit = try integer(req, "limit") ?? 100
                    let t = try view!.timeline(subject: subject, limit: limit, before: req.parameter("before"))
                    return answer(req, t.json, t.table)
                case "report":
                    let report = try view!.report(
                        subject: subject, at: try time(req, "at"), source: HeldLogsSource(logs: logs))
                    if let accept = req.accept, accept.contains("text/html") {
                        return NodeResponse(
                            status: 200, contentType: "text/html; charset=utf-8",
                            headers: SubjectReport.pagePolicy.headers + [("Vary", "Accept")],
                            body: Array(report.html.utf8))
                    }
                    return .json(200, report.json)
                default:
                    return nil
                }
            case (2, "permit"):
                let p = try view!.permit(
                    subject: try required(req, "subject"), org: try required(req, "org"),
                    purpose: try required(req, "purpose"), channel: req.parameter("channel"), at: try time(req, "at"))
                // The answer in a header too, whatever the body's form: `prov permit` exits with it.
                return answer(req, p.json, p.table).with(header: ("Prov-Permit", p.allowed ? "allowed" : "denied"))
            case (2, "compliance"):
                let c = try view!.compliance(
                    org: try required(req, "org"), from: try time(req, "from"), to: try time(req, "to"))
                return answer(req, c.json, c.table)
            case (4, "entries"):
                guard logs[parts[2]] != nil else {
                    throw ViewError(.badParameter, "parameter 'org': no log of that name here", parameter: "org")
                }
                guard let seq = TileAddress.decimal(parts[3]) else {
                    throw ViewError(.badParameter, "parameter 'seq': not a whole number", parameter: "seq")
                }
                return try entryResponse(parts[2], seq)
            case (5, "entries") where parts[4] == "receipt.html":
                guard let seq = TileAddress.decimal(parts[3]) else {
                    throw ViewError(.badParameter, "parameter 'seq': not a whole number", parameter: "seq")
                }
                return try receiptPage(parts[2], seq)
            default:
                return nil
            }
        } catch {
            switch error.code {
            case .badParameter:
                metrics.reject("bad-parameter")
                return .error(
                    400, error.message, error.parameter.map { [JSONMember("parameter", .string($0))] } ?? [])
            default:
                // What failed (a path, a damaged record) is the operator's to read, in the log; the caller is told
                // that it failed, not the node's insides.
                log.error("a view query failed", ["error": error.message])
                return .error(500, "the view could not answer this query; the node's log says why")
            }
        }
    }

    /// JSON, or with `Accept: text/plain` the readable table `prov` prints (the same text offline and from a node).
    func answer(_ req: NodeRequest, _ json: @autoclosure () -> JSONValue, _ table: @autoclosure () -> String)
        -> NodeResponse
    {
        if let accept = req.accept, accept.contains("text/plain") {
            let t = table()
            return NodeResponse(
                status: 200, contentType: "text/plain; charset=utf-8",
                body: Array((t.hasSuffix("\n") ? t : t + "\n").utf8))
        }
        return .json(200, json())
    }

    func required(_ req: NodeRequest, _ name: String) throws(ViewError) -> String {
        guard let v = req.parameter(name), !v.isEmpty else {
            throw ViewError(.badParameter, "parameter '\(name)': missing", parameter: name)
        }
        return v
    }

    func integer(_ req: NodeRequest, _ name: String) throws(ViewError) -> Int? {
        guard let v = req.parameter(name) else { return nil }
        guard let n = Int(v) else {
            throw ViewError(.badParameter, "parameter '\(name)': not a whole number", parameter: name)
        }
        return n
    }

    /// A time parameter: RFC 3339 (`2026-11-24T10:00:00Z`) or milliseconds since 1970.
    func time(_ req: NodeRequest, _ name: String) throws(ViewError) -> UInt64? {
        guard let v = req.parameter(name) else { return nil }
        if let ms = UInt64(v) {
            // The same range as the RFC 3339 form (years 1970–9999).
            guard ms < Timestamp.end else {
                throw ViewError(.badParameter, "parameter '\(name)': past the year 9999", parameter: name)
            }
            return ms
        }
        guard let t = Timestamp.parse(v) else {
            throw ViewError(
                .badParameter, "parameter '\(name)': not an RFC 3339 time or milliseconds since 1970", parameter: name)
        }
        return t
    }

    /// `GET /v1/entries/{org}/{seq}`: the entry as JSON and its receipt (C2SP tlog-proof@v1) against the newest
    /// checkpoint held here that covers it, with the cosignatures known for it.
    func entryResponse(_ org: String, _ seq: UInt64) throws(ViewError) -> NodeResponse {
        guard let held = logs[org] else { throw ViewError(.badParameter, "parameter 'org': unknown", parameter: "org") }
        do {
            let r = try receipt(held, seq)
            let entry = try Entry.decode(r.entry)
            return .json(
                200,
                .object([
                    JSONMember("org", .string(org)), JSONMember("seq", .number(String(seq))),
                    JSONMember("leafHash", .string(Merkle.leafHash(r.entry).hex)), JSONMember("entry", entry.json),
                    JSONMember("receipt", .string(r.serialized)),
                ]))
        } catch let e as ViewError {
            throw e
        } catch let e as LedgerError {
            // The entry is under a checkpoint here but cannot be read: the node's fault, not the caller's.
            throw ViewError(.source, "\(org) seq \(seq): \(e.message)")
        } catch {
            throw ViewError(.source, "\(error)")
        }
    }

    /// `GET /v1/entries/{org}/{seq}/receipt.html`: the consent receipt page of a consent entry (Specs/view.md §8.6),
    /// against the same checkpoint as `GET /v1/entries/{org}/{seq}`'s receipt, with the cosignatures known for it.
    func receiptPage(_ org: String, _ seq: UInt64) throws(ViewError) -> NodeResponse {
        guard let held = logs[org] else {
            throw ViewError(.badParameter, "parameter 'org': no log of that name here", parameter: "org")
        }
        let r: Receipt
        do { r = try receipt(held, seq) } catch let e as ViewError {
            throw e
        } catch let e as LedgerError {
            throw ViewError(.source, "\(org) seq \(seq): \(e.message)")
        } catch {
            throw ViewError(.source, "\(error)")
        }
        let page = try ConsentReceiptPage(consortium: consortium, receipt: r)
        return NodeResponse(
            status: 200, contentType: "text/html; charset=utf-8", headers: ConsentReceiptPage.pagePolicy.headers,
            body: Array(page.html.utf8))
    }

    /// A receipt for entry `seq` of a log held here: the own log's newest cosigned checkpoint when it covers the
    /// entry, else the latest checkpoint (with this node's cosignature for a copy).
    func receipt(_ held: HeldLog, _ seq: UInt64) throws -> Receipt {
        var cp: SignedCheckpoint
        if held.isOwn, let c = held.latestCosigned, seq < c.checkpoint.size {
            cp = c
        } else {
            guard let served = servedCheckpoint(held), seq < served.checkpoint.size else {
                throw ViewError(
                    .badParameter, "parameter 'seq': \(held.org) has no entry \(seq) under a checkpoint here",
                    parameter: "seq")
            }
            cp = served
        }
        let size = cp.checkpoint.size
        return try held.read { store throws(LedgerError) -> Receipt in
            Receipt(
                entry: try store.entryBytes(seq), index: seq, proof: try store.inclusionProof(index: seq, size: size),
                checkpoint: cp)
        }
    }
}
