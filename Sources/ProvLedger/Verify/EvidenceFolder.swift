import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The `evidence` folder of a data directory (Specs/format.md §10.12): equivocation evidence (§4.3 of
/// Specs/protocol.md), one JSON file per piece, named by org, sizes and hash. Written by a node; read by the node
/// on start-up and by `prov verify`, each file only as evidence that verifies against the descriptor, so the org it
/// concerns comes from its checked checkpoints, never from the file's name. `evidence` is no member's org id.
package enum EvidenceFolder {
    package static let name = "evidence"

    /// A piece of evidence read back and checked.
    package struct Piece: Sendable {
        package var path: String
        package var evidence: Evidence
        package var proven: Evidence.Proven
    }

    package static func path(in dataDirectory: String) -> String { dataDirectory + "/" + name }

    /// Keeps `evidence` (checked by the caller) in the data directory; returns its path. One conflict has one name:
    /// a file there with these very bytes is kept; any other regular file there (junk, or the conflict passed on
    /// with other signature lines, which might not verify) is replaced; anything else there (a link, a folder, a
    /// FIFO) is an error, never reported as kept.
    package static func store(_ evidence: Evidence, org: String, dataDirectory: String) throws(LedgerError) -> String {
        let folder = path(in: dataDirectory)
        try FileHandleFD.makeDirectory(folder, mode: 0o755)
        let file = folder + "/" + evidence.fileName(org: org)
        let bytes = evidence.serialized
        if FileHandleFD.kind(of: file) == S_IFREG,
            (try? FileHandleFD.readIfPresent(file, maxSize: Evidence.maxSize)) == bytes
        {
            return file
        }
        try FileHandleFD.replaceAtomically(file, bytes)
        return file
    }

    /// Every file of the folder: the pieces that prove equivocation, and what was found and not taken (with the
    /// reason, which never quotes the file). A data directory without the folder holds none. Nothing is read
    /// through a link, and anything but a regular file is not read.
    package static func read(dataDirectory: String, consortium: Consortium) -> (
        proven: [Piece], ignored: [(path: String, reason: String)]
    ) {
        let folder = path(in: dataDirectory)
        guard FileHandleFD.kind(of: folder) != nil else { return ([], []) }
        let names: [String]
        do {
            try FileHandleFD.expect(folder, is: .directory)
            names = try FileHandleFD.list(directory: folder).sorted()
        } catch { return ([], [(folder, error.message)]) }
        var proven: [Piece] = []
        var ignored: [(String, String)] = []
        for file in names where !file.hasSuffix(".tmp") {
            let p = folder + "/" + file
            do throws(LedgerError) {
                guard let bytes = try FileHandleFD.readIfPresent(p, maxSize: Evidence.maxSize) else { continue }
                let e = try Evidence(parsing: bytes)
                switch e.verify(consortium: consortium) {
                case .success(let v): proven.append(Piece(path: p, evidence: e, proven: v))
                case .failure(let f): ignored.append((p, f.message))
                }
            } catch {
                ignored.append((p, error.message))
            }
        }
        return (proven, ignored)
    }
}
