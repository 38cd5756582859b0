import Foundation
import ProvCrypto
import ProvLedger

#if canImport(Glibc)
    import Glibc
#endif

/// `prov keygen`, `prov key show`, `prov consortium init`, and how every command reads the key files it is given.
extension Prov {
    // MARK: keygen

    static let keygenCommand = Command(
        "keygen", purpose: "Make a company's signing key for one consortium and print its verifier key.",
        options: [
            .value("org", "ORG", "the company's org id: 1-32 of a-z 0-9 -", required: true),
            .value("consortium", "NAME", "the consortium's name: 1-64 of a-z 0-9 . -", required: true),
            .value(
                "out", "KEYFILE", "the key file to write, created mode 600; an existing file is never overwritten",
                required: true),
            .json,
        ],
        examples: ["prov keygen --org brand --consortium acme --out brand.key"],
        notes: [
            "The key is named <consortium>/<org>, the origin of the company's log. The verifier key it prints "
                + "(<name>+<key id>+<public key>) goes into the descriptor: prov consortium init --member "
                + "ORG=VKEY. prov key show KEYFILE prints it again."
        ], run: keygen)

    static func keygen(_ args: Arguments) throws -> Int32 {
        let org = try args.required("org")
        let name = try args.required("consortium")
        guard Vocabulary.isOrgID(org) else {
            throw UsageError("--org must be 1-32 of a-z 0-9 - (got '\(org.prefix(40))')")
        }
        guard Vocabulary.isConsortiumName(name) else {
            throw UsageError("--consortium must be 1-64 of a-z 0-9 . - (got '\(name.prefix(70))')")
        }
        let path = try args.required("out")
        let signer = try NoteSigner(name: "\(name)/\(org)", privateKey: .generate())
        try SigningKeyFile.write(signer, to: path)
        if args.flag("json") {
            outJSON(signingKeyJSON(signer.verifierKey) + [JSONMember("keyFile", .string(path))])
        } else {
            out(signer.verifierKey.description)
        }
        return 0
    }

    /// The fields of a signing key's public part, for `--json`.
    static func signingKeyJSON(_ key: NoteVerifierKey) -> [JSONMember] {
        let slash = key.name.lastIndex(of: "/")
        return [
            JSONMember("kind", .string("signing-key")), JSONMember("name", .string(key.name)),
            JSONMember("consortium", .string(slash.map { String(key.name[..<$0]) } ?? "")),
            JSONMember("org", .string(slash.map { String(key.name[key.name.index(after: $0)...]) } ?? key.name)),
            JSONMember("keyID", .string(String(format: "%08x", key.keyID))),
            JSONMember("verifierKey", .string(key.description)),
        ]
    }

    // MARK: key show

    static let keyShowCommand = Command(
        "key show",
        purpose: "Print the public part of a key file again: a signing key's verifier key, a linking key's "
            + "fingerprint.",
        options: [.json],
        operands: [
            Operand("KEYFILE", "a signing key file (prov keygen) or the linking key file (prov consortium init)")
        ],
        examples: ["prov key show brand.key", "prov key show --json link.key"],
        notes: [
            "A signing key prints its verifier key, the value of --member ORG=VKEY in prov consortium init; the "
                + "linking key prints its fingerprint, the descriptor's linkKeyFingerprint. Nothing secret is "
                + "printed. Like every command that reads a key, it refuses a key file that others may read."
        ], run: keyShow)

    static func keyShow(_ args: Arguments) throws -> Int32 {
        let path = args.positionals[0]
        switch keyFileKind(path) {
        case .linkingKey:
            let key = try LinkKey.load(path)
            if args.flag("json") {
                outJSON([
                    JSONMember("kind", .string("linking-key")), JSONMember("fingerprint", .string(key.fingerprint.hex)),
                ])
            } else {
                out(key.fingerprint.hex)
            }
        case .signingKey, nil:
            let signer = try signingKey(path, option: "key file")
            if args.flag("json") {
                outJSON(signingKeyJSON(signer.verifierKey))
            } else {
                out(signer.verifierKey.description)
            }
        case let other?:
            throw LedgerError(.config, "\(path) is \(other.described), not a key file")
        }
        return 0
    }

    // MARK: reading key files

    /// What a file given as a key seems to be, told from its first bytes (never shown).
    enum KeyFileKind: Equatable {
        case signingKey, linkingKey, descriptor, verifierKey, json, text, binary

        var described: String {
            switch self {
            case .signingKey: "a signing key file"
            case .linkingKey: "binary (32 bytes, as a linking key file is)"
            case .descriptor: "a consortium descriptor"
            case .verifierKey: "a verifier key (the public half of a signing key)"
            case .json: "a JSON file"
            case .text: "a text file"
            case .binary: "a binary file"
            }
        }
    }

    /// The kind of the file at `path`, or nil when it cannot be read (the key loader then says why).
    static func keyFileKind(_ path: String) -> KeyFileKind? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        var head = [UInt8](repeating: 0, count: 4096)
        let n = head.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
        guard n >= 0 else { return nil }
        head.removeSubrange(n...)
        if head.starts(with: Array("PRIVATE+KEY+".utf8)) { return .signingKey }
        guard FileKind.isText(head) else { return st.st_size == 32 ? .linkingKey : .binary }
        let text = String(decoding: head, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("{") {
            return text.contains("\"consortium\"") && text.contains("\"members\"") ? .descriptor : .json
        }
        if (try? NoteVerifierKey(parsing: text)) != nil { return .verifierKey }
        return st.st_size == 32 ? .linkingKey : .text
    }

    /// The signing key of `option`. A file that is something else (a consortium descriptor, the linking key, a
    /// verifier key) is named as such before any advice about its file mode, and none of its bytes are shown.
    static func signingKey(_ path: String, option: String = "--key") throws -> NoteSigner {
        if let kind = keyFileKind(path), kind != .signingKey {
            let advice =
                kind == .descriptor
                ? ": give the key file prov keygen wrote with --key, and the descriptor with --consortium"
                : kind == .verifierKey
                    ? ": the signing key is the file prov keygen wrote (--out), not the key it printed"
                    : ": give the key file prov keygen wrote"
            throw LedgerError(.config, "\(option) \(path) is \(kind.described), not a signing key\(advice)")
        }
        return try SigningKeyFile.read(path)
    }

    /// The linking key of `option`, told apart from other key files like `signingKey`.
    static func linkingKey(_ path: String, option: String = "--link-key") throws -> LinkKey {
        if let kind = keyFileKind(path), kind != .linkingKey {
            throw LedgerError(
                .config,
                "\(option) \(path) is \(kind.described), not the linking key: give the 32-byte linking key file "
                    + "prov consortium init made")
        }
        return try LinkKey.load(path)
    }

    // MARK: consortium init

    static let consortiumInitCommand = Command(
        "consortium init",
        purpose: "Write a consortium descriptor (members' verifier keys, vocabulary, linking-key fingerprint) and "
            + "make the linking key.",
        options: [
            .value("name", "NAME", "the consortium's name: 1-64 of a-z 0-9 . -", required: true),
            .value(
                "member", "ORG=VKEY", "a member: its org id and the verifier key its prov keygen printed",
                required: true, repeatable: true),
            .value("display", "ORG=NAME", "a member's display name (default: its org id)", repeatable: true),
            .value(
                "vocabulary", "FILE",
                "the consortium's interaction types, notices and agent names (Specs/format.md §9.1; default: the "
                    + "standard vocabulary)"),
            .value("out", "FILE", "the descriptor to write; an existing file is never overwritten", required: true),
            .value(
                "link-key", "LINKFILE",
                "the consortium's linking key: made (mode 600) if the file does not exist, else read; its "
                    + "fingerprint goes into the descriptor",
                required: true),
        ],
        examples: [
            "prov consortium init --name acme --member brand=VKEY --member retail=VKEY --out consortium.json "
                + "--link-key link.key"
        ],
        notes: [
            "The descriptor is public: every member and auditor gets a copy. The linking key is a secret shared by "
                + "the members only: it turns customer identifiers into subject refs."
        ], run: consortiumInit)

    static func consortiumInit(_ args: Arguments) throws -> Int32 {
        let name = try args.required("name")
        let outPath = try args.required("out")
        let linkPath = try args.required("link-key")
        var display: [String: String] = [:]
        for d in args.all("display") {
            let p = d.split(separator: "=", maxSplits: 1)
            guard p.count == 2 else { throw UsageError("--display takes ORG=NAME, got '\(d.prefix(80))'") }
            display[String(p[0])] = String(p[1])
        }
        var members: [Consortium.Member] = []
        for m in args.all("member") {
            let p = m.split(separator: "=", maxSplits: 1)
            guard p.count == 2 else { throw UsageError("--member takes ORG=VERIFIERKEY, got '\(m.prefix(80))'") }
            let org = String(p[0])
            let key: NoteVerifierKey
            do { key = try NoteVerifierKey(parsing: String(p[1])) } catch let e as CryptoError {
                throw LedgerError(.config, "member \(org): \(e.reason)")
            }
            members.append(
                Consortium.Member(
                    org: org, name: display[org] ?? org, origin: "\(name)/\(org)", key: key, peer: nil, api: nil))
        }
        for org in display.keys where !members.contains(where: { $0.org == org }) {
            throw UsageError("--display names '\(org)', which is not given with --member")
        }
        var vocabulary = ConsortiumVocabulary.standard
        if let path = try args.optional("vocabulary") {
            vocabulary = try ConsortiumVocabulary(parsing: try readFile(path), source: "--vocabulary \(path)")
        }
        _ = try Consortium(name: name, members: members, vocabulary: vocabulary)
        guard !FileManager.default.fileExists(atPath: outPath) else {
            throw LedgerError(.io, "\(outPath) exists: a consortium descriptor is not overwritten; remove it first")
        }
        // The descriptor carries the linking key's fingerprint, so the key is made (or read) first.
        let linkKey: LinkKey
        if FileManager.default.fileExists(atPath: linkPath) {
            linkKey = try linkingKey(linkPath)
            log("info", "using the existing linking key \(linkPath)")
        } else {
            linkKey = try LinkKey.create(linkPath)
        }
        let c = try Consortium(
            name: name, members: members, linkKeyFingerprint: linkKey.fingerprint, vocabulary: vocabulary)
        try c.write(to: outPath)
        out("wrote \(outPath): consortium \(name) with \(Phrase.count(members.count, "member"))")
        return 0
    }
}
