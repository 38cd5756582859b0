import Foundation
import ProvCrypto
import ProvLedger

/// `prov consortium propose`, `sign`, `apply` and `verify`: changing the consortium by quorum (Specs/format.md §9.5,
/// Specs/cli.md §4.7). A change is proposed from the newest version of the descriptor, signed by members one by one,
/// and applied once a quorum of the members of that version signed it; every version of the chain is checkable
/// offline against the one before.
extension Prov {
    static let consortiumCommands = [
        consortiumProposeCommand, consortiumSignCommand, consortiumApplyCommand, consortiumVerifyCommand,
    ]

    // MARK: propose

    static let consortiumProposeCommand = Command(
        "consortium propose",
        purpose: "Write a proposal to change the consortium: add or remove a member, change the threshold, rotate "
            + "or revoke a member's key.",
        options: [
            .value(
                "consortium", "FILE", "the consortium descriptor: the change is to its newest version", required: true),
            .value("add", "ORG=VKEY", "add a member: its org id and the verifier key its prov keygen printed"),
            .value("name", "NAME", "with --add: the new member's display name (default: its org id)"),
            .value("peer", "HOST:PORT", "with --add: its node's peer listener"),
            .value("api", "HOST:PORT", "with --add: its node's API"),
            .value("remove", "ORG", "remove a member: its log stays, frozen where each node holds it"),
            .value(
                "rotate", "ORG=VKEY",
                "replace a member's key as planned with this new key, which signs the checkpoints past --from-size"),
            .value(
                "revoke", "ORG=VKEY",
                "declare a member's key stolen: its checkpoints past --from-size are refused everywhere, and the log "
                    + "continues under this replacement key"),
            .value(
                "from-size", "N",
                "with --rotate or --revoke: the largest checkpoint size the old key still signs"),
            .value("threshold", "K", "the approvals every later change needs (a majority of the members at least)"),
            .value(
                "out", "PROPOSAL", "the proposal file to write; an existing file is never overwritten", required: true),
            .json,
        ],
        examples: [
            "prov consortium propose --consortium consortium.json --add telco=VKEY --name Telco --peer "
                + "10.0.0.4:7401 --api 10.0.0.4:7501 --out telco.proposal.json",
            "prov consortium propose --consortium consortium.json --rotate brand=VKEY --from-size 1200 --out "
                + "rotate.proposal.json",
        ],
        notes: [
            "Give exactly one change. The proposal names the consortium, the version it makes, the hash of the "
                + "version it changes and the change; members sign it with prov consortium sign, and prov "
                + "consortium apply makes the next version once a quorum of the current members signed. A rotation "
                + "also needs the member's own signature with its new key (sign --new-key); --from-size is then at "
                + "least the size from which its node signs with both keys (nextKey of its node.json, "
                + "Nodes/README.md)."
        ], run: consortiumPropose)

    static func consortiumPropose(_ args: Arguments) throws -> Int32 {
        let path = try args.required("consortium")
        let outPath = try args.required("out")
        let chain = try ConsortiumChain.load(path)
        let given = ["add", "remove", "rotate", "revoke", "threshold"].filter { args.all($0).count > 0 }
        guard given.count == 1 else {
            throw UsageError(
                given.isEmpty
                    ? "no change given: give one of --add, --remove, --rotate, --revoke, --threshold"
                    : "one change per proposal: \(given.map { "--\($0)" }.joined(separator: " and ")) given")
        }
        for o in ["name", "peer", "api"] where args.all(o).count > 0 && given[0] != "add" {
            throw UsageError("--\(o) goes with --add only")
        }
        let fromSize = try args.optional("from-size")
        if fromSize != nil && !["rotate", "revoke"].contains(given[0]) {
            throw UsageError("--from-size goes with --rotate or --revoke only")
        }
        func orgAndKey(_ option: String) throws -> (String, NoteVerifierKey) {
            let v = try args.required(option)
            let p = v.split(separator: "=", maxSplits: 1)
            if option == "revoke", p.count == 1, Vocabulary.isOrgID(v) {
                throw UsageError(
                    "--revoke takes ORG=VERIFIERKEY: the org and the replacement key its log goes on under past "
                        + "--from-size (made with prov keygen where the stolen key never was)")
            }
            guard p.count == 2, Vocabulary.isOrgID(String(p[0])) else {
                throw UsageError("--\(option) takes ORG=VERIFIERKEY, got '\(v.prefix(80))'")
            }
            do { return (String(p[0]), try NoteVerifierKey(parsing: String(p[1]))) } catch let e as CryptoError {
                throw UsageError("--\(option): \(e.reason)")
            }
        }
        func size() throws -> UInt64 {
            guard let s = fromSize else { throw UsageError("--\(given[0]) needs --from-size N") }
            guard let n = JSONValue.canonicalInteger(s) else {
                throw UsageError(
                    "--from-size takes a whole number from 0 to \(JSONValue.maxCanonicalInteger), got '\(s.prefix(30))'"
                )
            }
            return n
        }
        func address(_ o: String) throws -> String? {
            guard let a = try args.optional(o) else { return nil }
            guard Consortium.isAddress(a), a.contains(":") else {
                throw UsageError("--\(o) takes HOST:PORT, got '\(a.prefix(80))'")
            }
            return a
        }
        let change: ConsortiumChange
        switch given[0] {
        case "add":
            let (org, key) = try orgAndKey("add")
            let name = try args.optional("name") ?? org
            change = .add(org: org, name: name, key: key, peer: try address("peer"), api: try address("api"))
        case "remove": change = .remove(org: try args.required("remove"))
        case "rotate":
            let (org, key) = try orgAndKey("rotate")
            change = .rotate(org: org, key: key, fromSize: try size())
        case "revoke":
            let (org, key) = try orgAndKey("revoke")
            change = .revoke(org: org, key: key, fromSize: try size())
        default:
            guard let k = Int(try args.required("threshold")), k >= 1, k <= Consortium.maxMembers else {
                throw UsageError("--threshold takes a whole number from 1 to \(Consortium.maxMembers)")
            }
            change = .threshold(k)
        }
        let proposal: ConsortiumProposal
        do { proposal = try ConsortiumProposal(changing: chain, with: change) } catch {
            throw LedgerError(.config, "\(change.summary): \(error.message)")
        }
        try writeNew(outPath, proposal.json, what: "a proposal")
        let current = chain.current
        let members = current.currentMembers.map(\.org)
        if args.flag("json") {
            outJSON([
                JSONMember("proposal", .string(outPath)), JSONMember("consortium", .string(current.name)),
                JSONMember("version", .number(String(proposal.version))),
                JSONMember("previous", .string(proposal.previous.hex)), JSONMember("change", change.json),
                JSONMember("needed", .number(String(current.quorum))),
                JSONMember("members", .array(members.map { .string($0) })),
            ])
        } else {
            out(
                "wrote \(outPath): version \(proposal.version) of consortium \(current.name): \(change.summary); it "
                    + "needs \(current.quorum) approvals of \(members.joined(separator: ", ")) (prov consortium sign "
                    + "\(outPath) --key ORG.key)")
        }
        return 0
    }

    /// Writes a new file (never over an existing one), pretty JSON and a final LF.
    static func writeNew(_ path: String, _ json: JSONValue, what: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw LedgerError(.io, "\(path) exists: \(what) is not written over an existing file; remove it first")
        }
        do {
            try Data((json.prettySerialized + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw LedgerError(.io, "cannot write \(path): \(error.localizedDescription)")
        }
    }

    static func readProposal(_ path: String) throws -> ConsortiumProposal {
        try ConsortiumProposal(parsing: try readFile(path), source: path)
    }

    // MARK: sign

    static let consortiumSignCommand = Command(
        "consortium sign", purpose: "Add one member's signature to a proposal.",
        options: [
            .value("key", "KEYFILE", "the member's signing key (prov keygen): its log's key", required: true),
            .value(
                "new-key", "KEYFILE",
                "for the rotation of this member's own key: the new key, which signs too (proof that the member "
                    + "holds it)"),
            .json,
        ],
        operands: [Operand("PROPOSAL", "the proposal file (prov consortium propose); it is rewritten in place")],
        examples: [
            "prov consortium sign telco.proposal.json --key brand.key",
            "prov consortium sign rotate.proposal.json --key brand.key --new-key brand.next.key",
        ],
        notes: [
            "The signature is Ed25519 over the consortium's name, the version the change makes, the hash of the "
                + "version it changes and the change (Specs/format.md §9.5); it is checked against the member's key "
                + "by prov consortium apply and by every node. Nothing else of the key file is written anywhere."
        ], run: consortiumSign)

    static func consortiumSign(_ args: Arguments) throws -> Int32 {
        let path = args.positionals[0]
        var proposal = try readProposal(path)
        let signer = try signingKey(try args.required("key"))
        let newKey = try args.optional("new-key").map { try signingKey($0, option: "--new-key") }
        let added = try proposal.sign(with: signer, newKey: newKey)
        try FileHandleFD.replaceAtomically(path, Array((proposal.json.prettySerialized + "\n").utf8))
        let org = added[0].org
        var signedBy: [String] = []
        for a in proposal.approvals where !signedBy.contains(a.org) { signedBy.append(a.org) }
        if args.flag("json") {
            outJSON([
                JSONMember("proposal", .string(path)), JSONMember("org", .string(org)),
                JSONMember("keyIDs", .array(added.map { .string($0.keyIDHex) })),
                JSONMember("signatures", .number(String(proposal.approvals.count))),
                JSONMember("signedBy", .array(signedBy.map { .string($0) })),
            ])
        } else {
            out(
                "\(path): signed by \(org) (\(added.map(\.keyIDHex).joined(separator: " and "))); signed so far by "
                    + "\(signedBy.joined(separator: ", "))")
        }
        return 0
    }

    // MARK: apply

    static let consortiumApplyCommand = Command(
        "consortium apply", purpose: "Check a proposal's quorum and write the next version of the descriptor.",
        options: [
            .value("consortium", "FILE", "the consortium descriptor the proposal changes", required: true),
            .value(
                "out", "NEWFILE",
                "the new descriptor: the whole chain, newest version first; an existing file is never overwritten",
                required: true),
            .json,
        ],
        operands: [Operand("PROPOSAL", "the signed proposal")],
        exitCodes: [
            ExitCode(0, "applied: NEWFILE written"),
            ExitCode(1, "not applied: too few approvals, or an approval that does not verify (the message says whose)"),
            ExitCode(2, "usage or input error: a file that does not parse, a proposal for another version"),
        ],
        examples: ["prov consortium apply telco.proposal.json --consortium consortium.json --out consortium.v2.json"],
        notes: [
            "The new file holds every version, so it is checkable offline from the first; give it to every member "
                + "(node.json's consortium, or POST /v1/consortium on any node, which passes it on to the others)."
        ], run: consortiumApply)

    static func consortiumApply(_ args: Arguments) throws -> Int32 {
        let path = args.positionals[0]
        let descriptor = try args.required("consortium")
        let outPath = try args.required("out")
        var chain = try ConsortiumChain.load(descriptor)
        let proposal = try readProposal(path)
        if let why = proposal.mismatch(chain) { throw LedgerError(.config, "\(path): \(why)") }
        let previous = chain.current
        let next = try proposal.nextVersion(of: chain)
        let signers = proposal.signers(in: chain)
        var failure: String?
        do {
            try chain.append(next.json)
            failure = chain.fileSizeFailure
        } catch { failure = error.message }
        if failure == nil { try writeNew(outPath, chain.json, what: "a consortium descriptor") }
        let approvedBy =
            failure == nil
            ? try ConsortiumChain.approvers(of: chain.current, after: chain.versions[chain.versions.count - 2])
            : signers
        if args.flag("json") {
            outJSON([
                JSONMember("proposal", .string(path)), JSONMember("consortium", .string(previous.name)),
                JSONMember("version", .number(String(proposal.version))), JSONMember("change", proposal.change.json),
                JSONMember("status", .string(failure == nil ? "applied" : "refused")),
                JSONMember("approvedBy", .array(approvedBy.map { .string($0) })),
                JSONMember("needed", .number(String(previous.quorum))),
                JSONMember("out", failure == nil ? .string(outPath) : .null),
                JSONMember("failure", failure.map { .string($0) } ?? .null),
            ])
        } else if let failure {
            out("\(path): NOT APPLIED: \(failure)")
        } else {
            out(
                "wrote \(outPath): version \(proposal.version) of consortium \(previous.name) (\(proposal.change.summary)), "
                    + "approved by \(approvedBy.joined(separator: ", ")) (\(previous.quorum) needed)")
        }
        return failure == nil ? 0 : 1
    }

    // MARK: verify

    static let consortiumVerifyCommand = Command(
        "consortium verify", purpose: "Check a descriptor's whole chain of versions, each against the one before.",
        options: [.json],
        operands: [
            Operand("FILE", "a consortium descriptor, or a folder of consortium.v<N>.json files (a data directory's)")
        ],
        exitCodes: [
            ExitCode(0, "every version follows from the one before with its quorum"),
            ExitCode(1, "a version does not: the line says which and why"),
            ExitCode(2, "usage or input error: a file that cannot be read or is not JSON"),
        ],
        examples: ["prov consortium verify consortium.json"],
        notes: [
            "One line per version: its members and quorum, and for each version after the first its change and who "
                + "approved it; then the verdict."
        ], run: consortiumVerify)

    static func consortiumVerify(_ args: Arguments) throws -> Int32 {
        let path = args.positionals[0]
        let jsons = try ConsortiumChain.readVersions(path)
        var chain: ConsortiumChain?
        var rows: [JSONValue] = []
        var lines: [String] = []
        var failure: String?
        for (i, json) in jsons.enumerated() {
            do throws(LedgerError) {
                if chain == nil {
                    chain = try ConsortiumChain(versions: [json])
                } else {
                    try chain!.append(json)
                }
            } catch {
                failure = error.message
                break
            }
            let c = chain!.current
            let approvedBy =
                i == 0 ? [] : (try? ConsortiumChain.approvers(of: c, after: chain!.versions[i - 1])) ?? []
            let members = c.currentMembers.map(\.org)
            let quorum = "quorum \(c.quorum)" + (c.threshold == nil ? " (a majority)" : " (threshold)")
            let head = "version \(c.version): "
            lines.append(
                head
                    + (c.change.map {
                        "\($0.summary), approved by \(approvedBy.joined(separator: ", ")); "
                    } ?? "")
                    + "\(Phrase.count(members.count, "member")) (\(members.joined(separator: ", "))), \(quorum)")
            rows.append(
                .object([
                    JSONMember("version", .number(String(c.version))),
                    JSONMember("hash", .string(chain!.head.hash.hex)),
                    JSONMember("change", c.change?.json ?? .null),
                    JSONMember("approvedBy", .array(approvedBy.map { .string($0) })),
                    JSONMember("members", .array(members.map { .string($0) })),
                    JSONMember("quorum", .number(String(c.quorum))),
                ]))
        }
        let status: Int32 = failure == nil ? 0 : 1
        if args.flag("json") {
            outJSON([
                JSONMember("consortium", chain.map { .string($0.current.name) } ?? .null),
                JSONMember("verdict", .string(failure == nil ? "ok" : "failed")),
                JSONMember("exitCode", .number(String(status))), JSONMember("versions", .array(rows)),
                JSONMember("failure", failure.map { .string($0) } ?? .null),
            ])
            return status
        }
        for l in lines { out(l) }
        if let failure {
            out("FAILED: \(failure)")
        } else if let c = chain?.current {
            out("OK: consortium \(c.name), \(Phrase.count(jsons.count, "version")) verified from the first")
        }
        return status
    }
}

extension Prov {
    /// The descriptor to check a data directory against: the newest version of `path`, or of the data directory's
    /// `consortium` folder (Specs/format.md §10.14) when it holds later versions that follow from it, each checked
    /// against the one before. The messages say which was taken and what was left out.
    static func consortium(_ path: String, following dataDirectory: String) throws -> (Consortium, [String]) {
        let given = try ConsortiumChain.load(path)
        let (chain, warnings) = try ConsortiumFolder.reconcile(given, dataDirectory: dataDirectory)
        var notes = warnings
        if chain.versions.count > given.versions.count {
            notes.append(
                "using version \(chain.current.version) of consortium \(chain.current.name) from "
                    + "\(ConsortiumFolder.path(in: dataDirectory)), which follows from the descriptor given (version "
                    + "\(given.current.version)) with the approvals of each version checked")
        }
        return (chain.current, notes)
    }
}
