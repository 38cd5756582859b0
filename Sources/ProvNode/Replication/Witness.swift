import Dispatch
import Foundation
import ProvCrypto
import ProvLedger
import Synchronization

/// `POST /add-checkpoint` (C2SP tlog-witness, Specs/protocol.md §4): a peer tells this node of a newer
/// checkpoint of some log. The node checks the owner's signature and the consistency proof from the size it
/// holds, pulls and verifies the missing entries, and only then answers with its cosignature: a cosignature
/// from this node means it holds and verified that history.
extension Node {
    /// How long an `add-checkpoint` waits for the entries it announced before answering 503.
    static let addCheckpointWait: Double = 10

    func addCheckpoint(_ body: [UInt8], from caller: String, respond: @escaping @Sendable (NodeResponse) -> Void) {
        let req: AddCheckpoint
        do { req = try AddCheckpoint(parsing: body) } catch {
            metrics.reject("bad-request")
            return respond(.error(400, error.message))
        }
        let cp = req.checkpoint
        guard let member = consortium.member(origin: cp.checkpoint.origin), let held = logs[member.org] else {
            metrics.reject("unknown-log")
            return respond(.error(404, "no log of consortium \(consortium.name) has that origin"))
        }
        if let why = member.signatureFailure(cp) {
            metrics.reject("bad-signature")
            log.warn("add-checkpoint with a bad signature", ["peer": caller, "log": member.org, "reason": why])
            return respond(.error(403, "\(member.org): \(why)"))
        }
        if cp.checkpoint.size == 0 && cp.checkpoint.root != Merkle.emptyRoot {
            metrics.reject("bad-request")
            return respond(.error(422, "a checkpoint of size 0 must have the empty tree's root"))
        }
        if let f = held.frozen {
            // Said once, when the copy froze; the sender backs off on `frozen`.
            metrics.reject("frozen")
            return respond(
                .error(
                    422, "log \(member.org) is frozen here after equivocation (\(f))",
                    [JSONMember("frozen", .bool(true))]))
        }
        let h = held.head
        // A validly signed checkpoint of a size held here is checked against the tree held here, whatever else the
        // request says: the node's own proof, never the sender's, decides whether it is a fork.
        if cp.checkpoint.size <= h.size {
            let conflict: Evidence?
            do { conflict = try self.conflict(held, cp) } catch {
                log.error("cannot read a log to check a checkpoint", ["log": held.org, "error": error.message])
                return respond(.error(500, "log \(held.org): stored data cannot be read"))
            }
            if let conflict {
                equivocation(held, conflict, source: caller)
                return respond(
                    .error(
                        422, "\(member.org): this checkpoint conflicts with the history held here; evidence is kept",
                        [JSONMember("frozen", .bool(!held.isOwn))]))
            }
        }
        guard req.old <= cp.checkpoint.size else {
            metrics.reject("bad-request")
            return respond(.error(400, "old size \(req.old) is above the checkpoint's size \(cp.checkpoint.size)"))
        }
        guard req.old == h.size else {
            // The sender's idea of what this node holds is out of date: tell it (tlog-witness 409).
            return respond(
                NodeResponse(status: 409, contentType: "text/x.tlog.size", body: Array("\(h.size)\n".utf8)))
        }
        if cp.checkpoint.size == h.size {
            guard req.proof.isEmpty else {
                metrics.reject("bad-proof")
                return respond(.error(422, "a consistency proof between equal sizes must be empty"))
            }
            return respond(cosignature(cp))
        }
        let oldRoot = h.checkpoint?.checkpoint.root ?? Merkle.emptyRoot
        if let why = Merkle.consistencyFailure(
            oldSize: req.old, newSize: cp.checkpoint.size, oldRoot: oldRoot, newRoot: cp.checkpoint.root,
            proof: req.proof)
        {
            // The sender's proof: not evidence of anything but a bad request. A real fork shows when the entries are
            // pulled and checked here.
            metrics.reject("bad-proof")
            log.warn(
                "add-checkpoint with a consistency proof that does not verify",
                ["peer": caller, "log": member.org, "reason": why])
            return respond(.error(422, "consistency proof from \(req.old) to \(cp.checkpoint.size): \(why)"))
        }
        if held.isOwn {
            // A history of this node's own log that it does not hold, under its own key: lost data or a stolen key.
            log.error(
                "a peer holds a longer history of this node's own log, signed with its key",
                ["peer": caller, "size": "\(cp.checkpoint.size)", "held": "\(h.size)"])
            return respond(.error(422, "this node does not hold that history of its own log"))
        }
        // Consistent and ahead: fetch the entries, then cosign.
        let answered = Atomic<Bool>(false)
        let once: @Sendable (NodeResponse) -> Void = { r in
            if !answered.exchange(true, ordering: .acquiringAndReleasing) { respond(r) }
        }
        held.whenSize(cp.checkpoint.size) { [self] ok in
            once(
                ok ? cosignature(cp) : .error(503, "the entries up to \(cp.checkpoint.size) could not be obtained yet"))
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.addCheckpointWait) {
            once(
                .error(503, "timed out fetching the entries up to \(cp.checkpoint.size)").with(
                    header: ("Retry-After", "1")))
        }
        let worker = workers[caller] ?? workers.values.first
        guard let worker else {
            return once(.error(503, "this node has no peer to fetch the entries from"))
        }
        // What a copy stores under it is the owner's signature lines only (Specs/protocol.md §5.2).
        var owned = cp
        owned.note.signatures = member.ownerLines(cp)
        worker.wantPull(member.org, owned)
    }

    /// This node's cosignature line on `cp`.
    func cosignature(_ cp: SignedCheckpoint) -> NodeResponse {
        do {
            let sig = try signer.cosign(checkpointText: cp.checkpoint.text, time: UInt64(Date().timeIntervalSince1970))
            return NodeResponse(
                status: 200, contentType: "text/plain; charset=utf-8", body: Array((sig.line + "\n").utf8))
        } catch {
            return .error(500, "cannot cosign: \(error)")
        }
    }

    /// A validly signed checkpoint of `held`'s log of at most the size held here, checked against the tree held
    /// here: evidence when it is not that tree's prefix (or root), made from what this node holds; nil when they
    /// agree.
    func conflict(_ held: HeldLog, _ theirs: SignedCheckpoint) throws(LedgerError) -> Evidence? {
        try held.read { store throws(LedgerError) in try store.conflict(with: theirs) }
    }

    /// Pieces of evidence kept per log at most: one proves the fork; a log's owner can sign as many conflicting
    /// pairs as it likes, and past this they are neither stored nor passed on (Specs/protocol.md §4.4).
    static let maxEvidencePerLog = 8

    /// Evidence this node made or received: checked once more, kept in the evidence folder, and the copy of that
    /// log frozen at what it holds. The node's own log is never frozen on evidence (it stops in other ways).
    /// Returns whether it was new and kept.
    @discardableResult
    func equivocation(_ held: HeldLog, _ evidence: Evidence, source: String) -> Bool {
        guard case .success(let proven) = evidence.verify(consortium: consortium) else {
            log.error("evidence that does not verify was not kept", ["log": held.org, "peer": source])
            return false
        }
        let name = evidence.fileName(org: held.org)
        let (known, enough) = keptEvidence.withLock { kept in
            (kept[name] != nil, kept.values.filter { $0.org == held.org }.count >= Self.maxEvidencePerLog)
        }
        if known { return false }
        if enough {
            log.warn(
                "more evidence against a log that is proven to have forked was not kept",
                ["log": held.org, "peer": source, "kept": "\(Self.maxEvidencePerLog)"], kind: "evidence-enough")
            return false
        }
        let file: String
        do { file = try EvidenceFolder.store(evidence, org: held.org, dataDirectory: config.dataDirectory) } catch {
            log.error("cannot keep equivocation evidence", ["log": held.org, "error": error.message])
            file = "(not kept: \(error.message))"
        }
        guard
            keptEvidence.withLock({
                $0.updateValue(.init(org: held.org, proven: proven, evidence: evidence), forKey: name)
            }) == nil
        else { return false }  // held already: said and passed on when it came first
        gossip(name, except: source)
        metrics.reject("equivocation")
        if held.isOwn {
            log.error(
                "equivocation: this node's own key signed a history this node does not hold",
                ["log": held.org, "peer": source, "proven": proven.description, "evidence": file])
            stopWriting(
                "this node's key signed another history of its log (\(proven.description); evidence \(file)): "
                    + "appending is stopped until an operator acts (Nodes/README.md, 'When a node's key signed "
                    + "another history')")
            return true
        }
        guard held.frozen == nil else { return true }
        held.freeze(file)
        held.cancelWaiters()
        log.error(
            "equivocation: two signed checkpoints of one log disagree; the copy is frozen at what it holds",
            ["log": held.org, "peer": source, "proven": proven.description, "evidence": file])
        return true
    }
}

// MARK: Evidence that travels (Specs/protocol.md §4.4)

extension Node {
    /// A piece of evidence this node holds, checked.
    struct KeptEvidence: Sendable {
        var org: String
        var proven: Evidence.Proven
        var evidence: Evidence
    }

    /// `POST /evidence` on the peer listener: a member passes on evidence it holds. It is checked here against the
    /// descriptor before anything is done with it; proven evidence is kept, acted on and passed on.
    func receiveEvidence(_ body: [UInt8], from caller: String) -> NodeResponse {
        let evidence: Evidence
        do { evidence = try Evidence(parsing: body) } catch {
            metrics.reject("bad-request")
            return .error(400, error.message)
        }
        let proven: Evidence.Proven
        switch evidence.verify(consortium: consortium) {
        case .success(let p): proven = p
        case .failure(let e):
            metrics.reject("bad-evidence")
            log.warn(
                "a peer sent evidence that proves nothing; nothing was done", ["peer": caller, "reason": e.message])
            return .error(422, e.message)
        }
        guard let held = logs[proven.org] else { return .error(404, "this node holds no log by that name") }
        let new = equivocation(held, evidence, source: caller)
        return .json(200, .object([JSONMember("proven", .string(proven.description)), JSONMember("new", .bool(new))]))
    }

    /// Tells every peer but `source` of evidence `name`.
    func gossip(_ name: String, except source: String? = nil) {
        for (org, w) in workers where org != source { w.wantEvidence(name) }
    }

    /// The evidence held, for pushes: its bytes by name.
    func evidenceBytes(_ name: String) -> [UInt8]? { keptEvidence.withLock { $0[name]?.evidence.serialized } }

    /// `GET /v1/evidence`: every piece of evidence held here, proven.
    func evidenceList() -> JSONValue {
        let kept = keptEvidence.withLock { $0 }
        return .object([
            JSONMember(
                "evidence",
                .array(
                    kept.keys.sorted().map { name in
                        let k = kept[name]!
                        return .object([
                            JSONMember("name", .string(name)), JSONMember("log", .string(k.org)),
                            JSONMember(
                                "sizes", .array([k.proven.firstSize, k.proven.secondSize].map { .number(String($0)) })),
                            JSONMember("proven", .string(k.proven.description)),
                        ])
                    }))
        ])
    }

    /// `GET /v1/evidence/<name>`: one piece, as kept (anyone checks it with `prov verify-evidence`).
    func evidenceFile(_ name: String) -> NodeResponse {
        guard let bytes = evidenceBytes(name) else {
            metrics.reject("not-found")
            return .error(404, "no evidence of that name here")
        }
        return NodeResponse(status: 200, contentType: "application/json", body: bytes)
    }
}
