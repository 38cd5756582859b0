import ProvCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// The `consortium` folder of a data directory (Specs/format.md §10.14): every version of the consortium descriptor
/// the node took, one file per version, `consortium.v<N>.json`. Written by a node; read by the node when it starts
/// (it uses the newest version that follows from the descriptor of its configuration) and by `prov verify`. Every
/// file is checked as a version of the chain before anything uses it; nothing is read through a link. `consortium`
/// is no member's org id.
package enum ConsortiumFolder {
    package static let name = "consortium"

    package static func path(in dataDirectory: String) -> String { dataDirectory + "/" + name }

    package static func fileName(_ version: Int) -> String { "consortium.v\(version).json" }

    /// The version a file name stands for: `consortium.v<N>.json`, N canonical decimal from 1; nil otherwise.
    static func version(ofFileName f: String) -> Int? {
        guard f.hasPrefix("consortium.v"), f.hasSuffix(".json") else { return nil }
        let digits = f.dropFirst("consortium.v".count).dropLast(".json".count)
        guard let v = JSONValue.canonicalInteger(String(digits)), v >= 1, v <= UInt64(Consortium.maxVersion) else {
            return nil
        }
        return Int(v)
    }

    /// The version files of `folder`, by version, and what breaks their run from 1 (a missing version), if anything.
    package static func read(folder: String) throws(LedgerError) -> (
        versions: [(version: Int, path: String)], gap: String?
    ) {
        try FileHandleFD.expect(folder, is: .directory)
        let files = try FileHandleFD.list(directory: folder).compactMap { f in
            version(ofFileName: f).map { (version: $0, path: folder + "/" + f) }
        }.sorted { $0.version < $1.version }
        for (i, f) in files.enumerated() where f.version != i + 1 {
            return (
                Array(files[..<i]),
                "version \(i + 1) is missing: the folder holds \(fileName(f.version)) but no \(fileName(i + 1))"
            )
        }
        return (files, nil)
    }

    /// One version file: at most 1 MiB of JSON, opened without following a link.
    package static func readVersion(_ path: String) throws(LedgerError) -> JSONValue {
        guard let bytes = try FileHandleFD.readIfPresent(path, maxSize: ConsortiumChain.maxFileSize) else {
            throw LedgerError(.io, "\(path): no such file")
        }
        do { return try JSON.parse(bytes) } catch {
            throw LedgerError(.config, "\(path): not valid JSON: \(error.located(in: bytes))")
        }
    }

    /// The chain to use when `given` is the descriptor of a node's configuration (or an auditor's) and the data
    /// directory holds versions too: the stored versions must agree with `given` where both have one, and those
    /// past `given` are taken while each follows from the one before (a warning names the first that does not,
    /// and it and later ones are left out). Versions that differ from `given`'s are an error: the consortium's
    /// history split, or the directory is another consortium's.
    package static func reconcile(_ given: ConsortiumChain, dataDirectory: String) throws(LedgerError) -> (
        chain: ConsortiumChain, warnings: [String]
    ) {
        let folder = path(in: dataDirectory)
        guard FileHandleFD.kind(of: folder) != nil else { return (given, []) }
        let (files, gap) = try read(folder: folder)
        var chain = given
        var warnings: [String] = []
        for f in files {
            let json: JSONValue
            do { json = try readVersion(f.path) } catch {
                warnings.append("\(error.message): it and any later version are left out")
                return (chain, warnings)
            }
            if f.version <= given.versions.count {
                let mine = given.versions[f.version - 1]
                guard (try? ConsortiumChain.hash(json, version: f.version)) == mine.hash else {
                    throw LedgerError(
                        .config,
                        "\(f.path) is another version \(f.version) of the consortium than the descriptor's "
                            + "(\(mine.consortium.name)): the data directory belongs to another consortium, or its "
                            + "history split; move the folder away only once you know which is the consortium's")
                }
                continue
            }
            do { try chain.append(json) } catch {
                warnings.append(
                    "\(f.path) does not follow from version \(f.version - 1) (\(error.message)): it and any later "
                        + "version are left out")
                return (chain, warnings)
            }
        }
        if let gap { warnings.append("\(folder): \(gap); later versions are left out") }
        return (chain, warnings)
    }

    /// Writes every version of `chain` the folder does not hold yet (each atomically and durably), creating the
    /// folder; a file that holds something else under a version's name is replaced.
    package static func store(_ chain: ConsortiumChain, dataDirectory: String) throws(LedgerError) {
        let folder = path(in: dataDirectory)
        try FileHandleFD.makeDirectory(folder, mode: 0o755)
        for v in chain.versions {
            let file = folder + "/" + fileName(v.consortium.version)
            if FileHandleFD.kind(of: file) != nil, let held = try? readVersion(file),
                (try? ConsortiumChain.hash(held, version: v.consortium.version)) == v.hash
            {
                continue
            }
            try FileHandleFD.replaceAtomically(file, Array((v.json.prettySerialized + "\n").utf8))
        }
    }
}
