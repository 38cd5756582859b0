import Foundation
import Synchronization
import Testing

/// The temporary files and folders a test makes, all of which must be gone when it ends: no test leaves files
/// behind. Suites that make any are marked `.leavesNoFiles`; making one outside such a suite is an issue too, so a
/// new suite cannot skip the check.
public final class TemporaryFiles: Sendable {
    @TaskLocal static var current: TemporaryFiles?

    private let made = Mutex<[String]>([])

    /// A fresh path under the temporary folder, recorded for the check; nothing is created.
    public static func path(_ tag: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)").path
        if let files = current {
            files.made.withLock { $0.append(path) }
        } else {
            Issue.record("a temporary file made outside a suite marked .leavesNoFiles: nothing checks it is removed")
        }
        return path
    }

    /// A fresh empty folder under the temporary folder, recorded for the check.
    public static func directory(_ tag: String) throws -> URL {
        let url = URL(fileURLWithPath: path(tag))
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    fileprivate var leftBehind: [String] { made.withLock { $0 }.filter { FileManager.default.fileExists(atPath: $0) } }
}

/// Fails a test that leaves any of its temporary files behind (and removes them, so one failure does not pile up).
public struct LeavesNoFiles: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        guard !test.isSuite else { return try await function() }
        let files = TemporaryFiles()
        try await TemporaryFiles.$current.withValue(files) { try await function() }
        for path in files.leftBehind {
            Issue.record("\(test.name) left \(path) behind")
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}

extension Trait where Self == LeavesNoFiles {
    /// Every temporary file or folder a test of the suite makes must be gone when the test ends.
    public static var leavesNoFiles: Self { LeavesNoFiles() }
}
