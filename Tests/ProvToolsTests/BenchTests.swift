import Foundation
import ProvLedger
import TestSupport
import Testing

@testable import ProvTools

/// The log benchmarks run on a small log and print the fields BENCHMARKS.md reports (timing is reported, not
/// asserted), and leave nothing behind unless asked to keep it.
@Suite(.leavesNoFiles, .timeLimit(.minutes(2))) struct BenchTests {
    @Test(arguments: [Bench.Log.append, .ingest, .verify])
    func aLogBenchmarkReportsItsFields(_ which: Bench.Log) throws {
        let dir = try TemporaryFiles.directory("bench")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try Bench.run(
            which, entries: 300, runs: 2, group: 100, directory: dir.path, keep: false, progress: ProgressLine(nil))
        let names = result.objectValue?.map(\.key) ?? []
        #expect(names.prefix(3) == ["bench", "entries", "runs"])
        #expect(result["bench"]?.stringValue == which.rawValue)
        #expect(result["entries_per_second_each_run"]?.arrayValue?.count == 2)
        #expect(names.contains("p99_commit_ms") == (which != .verify))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func thePartsBenchmarkTimesEveryStep() throws {
        let result = try Bench.parts(operations: 20)
        let names = result.objectValue?.map(\.key) ?? []
        #expect(names.first == "bench" && names.contains("entry_encode_ns") && names.contains("hmac_subject_ns"))
    }
}
