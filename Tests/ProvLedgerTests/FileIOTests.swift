import Foundation
import TestSupport
import Testing

@testable import ProvLedger

/// Every descriptor a data directory's files are opened with is closed when its handle goes: a node that writes
/// its checkpoint file and syncs its folders for weeks, or an export of many files, does not run out of them.
@Suite(.leavesNoFiles) struct FileIOTests {
    static func openDescriptors() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
    }

    @Test func descriptorsAreClosedWhenTheirHandlesGo() throws {
        let dir = try TemporaryFiles.directory("fileio")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.path + "/checkpoint"
        try FileHandleFD.replaceAtomically(file, Array("first\n".utf8))
        let before = try Self.openDescriptors()
        for i in 0..<600 {
            try FileHandleFD.replaceAtomically(file, Array("checkpoint \(i)\n".utf8))
            _ = try FileHandleFD.readIfPresent(file)
            _ = try FileHandleFD.list(directory: dir.path)
            try FileHandleFD.syncDirectory(dir.path)
            _ = try FileHandleFD.makeDirectory(dir.path + "/sub", mode: 0o700)
        }
        // 3,600 handles were opened; other tests running beside this one open and close a few of their own.
        #expect(try Self.openDescriptors() - before < 200)
        #expect(try FileHandleFD.readIfPresent(file) == Array("checkpoint 599\n".utf8))
        #expect(try FileHandleFD.list(directory: dir.path).sorted() == ["checkpoint", "sub"])
    }

    /// A replacement that cannot be written (a full disk) fails, keeps the file as it was, and leaves no temporary
    /// file beside it.
    @Test(.enabled(if: Tmpfs.mountable)) func aReplacementThatCannotBeWrittenLeavesNothingBehind() throws {
        let dir = try TemporaryFiles.directory("fileio-full")
        defer { try? FileManager.default.removeItem(at: dir) }
        let disk = try Tmpfs(at: dir.path, size: "64k")
        defer { disk.unmount() }
        let file = dir.path + "/checkpoint"
        try FileHandleFD.replaceAtomically(file, Array("small\n".utf8))
        #expect(throws: LedgerError.self) {
            try FileHandleFD.replaceAtomically(file, [UInt8](repeating: 0x41, count: 1 << 20))
        }
        #expect(try FileHandleFD.readIfPresent(file) == Array("small\n".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["checkpoint"])
    }
}
