import Foundation
import ProvLedger
import ProvNet
import TestSupport
import Testing

@testable import ProvNode

/// A node whose disk fills up answers 503 and loses nothing, and once the disk has room again its own log and its
/// copies are written again by themselves, without a restart; the copies' trouble is not blamed on the peers.
/// Needs a small file system of its own, so it runs as root (as CI does) and is skipped otherwise.
@Suite(
    .serialized, .leavesNoFiles, .timeLimit(.minutes(3)),
    .enabled(if: Tmpfs.mountable, "skipped: mounting a small tmpfs needs root (CI runs as root)"))
struct FullDiskTests {
    /// The logs' failures as care's status shows them, by log.
    static func writeFailures(_ c: ProvdCluster) throws -> [String: String] {
        let r = try c.client("care").get(
            "/v1/status", headers: ["Authorization": "Bearer \(try c.token("care", auditor: true))"])
        var out: [String: String] = [:]
        for m in try JSON.parse(r.body)["logs"]?.objectValue ?? [] {
            if let e = m.value["writeFailure"]?["error"]?.stringValue { out[m.key] = e }
        }
        return out
    }

    @Test func writesAndCopiesResumeByThemselvesOnceTheDiskHasRoomAgain() throws {
        let c = try ProvdCluster()
        let data = c.dataDirectory("care")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let disk = try Tmpfs(at: data, size: "8m")
        defer {
            for p in c.nodes.values { p.stop() }
            disk.unmount()
            c.stopAll()
        }
        try c.startAll()
        var careAcks = try HealingTests.acks(c, "care", 50, from: 0)
        var brandAcks = try HealingTests.acks(c, "brand", 20, from: 0)
        #expect(c.waitConverged(["care": 50, "brand": 20]), "\(c.describe)")
        let care = c.nodes["care"]!

        try Tmpfs.fill(data + "/filler")
        // The own log: refused with 503, saying what kind of thing failed and that nothing was appended.
        let refused = try c.post("care", Ev.batch(300, org: "care", from: 1000))
        let text = String(decoding: refused.body, as: UTF8.self)
        #expect(refused.status == 503, "\(refused.status) \(text)")
        #expect(text.contains("cannot be written just now") && text.contains("nothing of this request was appended"))
        #expect(!text.contains(data), "a client is not told the node's paths: \(text)")
        #expect(care.waitForLog("writing the own log failed"))
        // A copy: brand goes on writing; care cannot store it, and says so without blaming brand.
        let seen = care.stderrLines.count
        brandAcks += try HealingTests.acks(c, "brand", 300, from: 100)
        #expect(care.waitForLog("writing a copy failed"), "\(care.stderrLines.suffix(8))")
        let failures = try Self.writeFailures(c)
        #expect(failures["care"]?.contains("No space left on device") == true, "\(failures)")
        #expect(failures["brand"]?.contains("No space left on device") == true, "\(failures)")
        let since = care.stderrLines.dropFirst(seen)
        #expect(!since.contains { $0.contains("peer unreachable") }, "\(since)")
        let again = try c.post("care", Ev.batch(300, org: "care", from: 2000))
        #expect(again.status == 503)

        // The disk grows: the copy resumes by itself, the next write succeeds, and nothing acknowledged is lost.
        try disk.grow(to: "64m")
        #expect(care.waitForLog("a copy is written again", timeout: 30), "\(care.stderrLines.suffix(8))")
        careAcks += try HealingTests.acks(c, "care", 30, from: 3000)
        #expect(careAcks.map(\.0) == Array(0..<80), "\(careAcks.map(\.0))")
        #expect(care.waitForLog("the own log is written again"))
        #expect(c.waitConverged(["care": 80, "brand": 320]), "\(c.describe)")
        #expect(try Self.writeFailures(c).isEmpty)
        let careLeaves = try HealingTests.leaves(c, of: "care", at: "brand", size: 80)
        try #require(careLeaves.count == 80)
        for (seq, leaf) in careAcks { #expect(careLeaves[Int(seq)] == leaf, "care seq \(seq) changed or lost") }
        let brandLeaves = try HealingTests.leaves(c, of: "brand", at: "care", size: 320)
        try #require(brandLeaves.count == 320)
        for (seq, leaf) in brandAcks { #expect(brandLeaves[Int(seq)] == leaf, "brand seq \(seq) changed or lost") }
        for org in c.orgs { #expect(c.nodes[org]!.stop() == 0) }
        for org in c.orgs {
            let (status, out) = try c.verify(org)
            #expect(status == 0, "\(org): \(out)")
        }
    }
}
