import Foundation
import ProvCrypto
import ProvLedger
import TestSupport
import Testing

@testable import ProvNode

#if canImport(Glibc)
    import Glibc
#endif

/// The own log's `cosigned` file is read as every file of a data directory (Specs/format.md §10.1, §10.11): a FIFO
/// or a link in its place does not hang or feed the node's start, it is simply not a cosigned checkpoint.
@Suite(.leavesNoFiles, .timeLimit(.minutes(1))) struct HeldLogFilesTests {
    @Test(arguments: ["fifo", "link"])
    func aCosignedFileThatIsNotARegularFileIsIgnored(_ kind: String) throws {
        let (consortium, _, _) = try Consortium.withFreshKeys(name: "acme", orgs: ["brand", "retail"])
        let dir = try TemporaryFiles.directory("heldlog")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try LogStore(dataDirectory: dir.path, consortium: "acme", org: "brand", writable: true)
        defer { store.close() }
        let cosigned = store.directory + "/cosigned"
        if kind == "fifo" {
            #expect(mkfifo(cosigned, 0o600) == 0)
        } else {
            try FileManager.default.createSymbolicLink(atPath: cosigned, withDestinationPath: "/dev/zero")
        }
        let held = try HeldLog(
            member: try #require(consortium.member("brand")), store: store, consortium: consortium, isOwn: true)
        #expect(held.latestCosigned == nil)
    }
}
