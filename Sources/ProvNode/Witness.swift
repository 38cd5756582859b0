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
        if let why = cp.signatureFailure(key: member.key) {
            metrics.reject("bad-signature")
            log.warn("add-checkpoint with a bad signature", ["peer": caller, "log": member.org, "reason": why])
            return respond(.error(403, "\(member.org): \(why)"))
        }
        guard req.old <= cp.checkpoint.size else {
            metrics.reject("bad-request")
            return respond(.error(400, "old size \(req.old) is above the checkpoint's size \(cp.checkpoint.size)"))
        }
        if cp.checkpoint.size == 0 && cp.checkpoint.root != Merkle.emptyRoot {
            return respond(.error(422, "a checkpoint of size 0 must have the empty tree's root"))
        }
        if let f = held.frozen {
            return respond(.error(422, "log \(member.org) is frozen here after equivocation: \(f)"))
        }
        let h = held.head
        guard req.old == h.size else {
            // The sender's idea of what this node holds is out of date: tell it (tlog-witness 409).
            return respond(
                NodeResponse(status: 409, contentType: "text/x.tlog.size", body: Array("\(h.size)\n".utf8)))
        }
        let oldRoot = h.checkpoint?.checkpoint.root ?? Merkle.emptyRoot
        if let why = Merkle.consistencyFailure(
            oldSize: req.old, newSize: cp.checkpoint.size, oldRoot: oldRoot, newRoot: cp.checkpoint.root,
            proof: req.proof)
        {
            if req.old == cp.checkpoint.size, let ours = h.checkpoint {
                equivocation(held, ours: ours, theirs: cp, source: caller, why: "two roots signed for size \(req.old)")
                return respond(.error(422, "\(member.org): two different roots signed for size \(req.old)"))
            }
            metrics.reject("bad-proof")
            log.warn(
                "add-checkpoint with a consistency proof that does not verify",
                ["peer": caller, "log": member.org, "reason": why])
            return respond(.error(422, "consistency proof from \(req.old) to \(cp.checkpoint.size): \(why)"))
        }
        if cp.checkpoint.size == h.size { return respond(cosignature(cp)) }
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
        worker.wantPull(member.org, cp)
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

    /// Two validly signed checkpoints of one log that cannot both be true: both are kept as evidence, the copy
    /// stops at what it holds, and the error is logged.
    func equivocation(_ held: HeldLog, ours: SignedCheckpoint, theirs: SignedCheckpoint, source: String, why: String) {
        guard held.frozen == nil else { return }
        let file = Evidence.store(
            directory: config.evidenceDirectory, org: held.org, ours: ours, theirs: theirs, why: why)
        held.freeze(file)
        held.cancelWaiters()
        metrics.reject("equivocation")
        log.error(
            "equivocation: two signed checkpoints of one log disagree; the copy is frozen at what it holds",
            ["log": held.org, "peer": source, "why": why, "evidence": file])
    }
}
