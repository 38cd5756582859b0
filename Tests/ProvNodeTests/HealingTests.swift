import Foundation
import ProvCLI
import ProvCrypto
import ProvLedger
import ProvNet
import TestSupport
import Testing

@testable import ProvNode

/// A node that lost data rebuilds its own log from its peers' verified copies before it appends anything more, and
/// so never signs a second history (Specs/protocol.md §5.6), with real provd processes on 127.0.0.1.
@Suite(.serialized, .leavesNoFiles, .timeLimit(.minutes(3))) struct HealingTests {
    /// Posts `n` events to `org` and returns their (seq, leaf hash) acknowledgements.
    static func acks(_ c: ProvdCluster, _ org: String, _ n: Int, from: Int) throws -> [(UInt64, String)] {
        let r = try c.post(org, Ev.batch(n, org: org, from: from))
        #expect(
            r.status == 200,
            "\(String(decoding: r.body, as: UTF8.self)) \(c.nodes[org]!.stderrLines.suffix(12).joined(separator: "\n"))"
        )
        return (try JSON.parse(r.body).arrayValue ?? []).map {
            (UInt64($0["seq"]!.int64Value!), $0["leafHash"]!.stringValue!)
        }
    }

    /// The leaf hashes of `org`'s log as `node` serves them (its level-0 tiles), for entries 0..<size.
    static func leaves(_ c: ProvdCluster, of org: String, at node: String, size: UInt64) throws -> [String] {
        var out: [String] = []
        var index: UInt64 = 0
        while index * 256 < size {
            let width = Int(min(256, size - index * 256))
            let t = TileAddress(level: 0, index: index, width: width)
            let r = try c.client(node).get(
                "/logs/\(org)/\(t)", headers: ["Authorization": "Bearer \(try c.token(node, auditor: true))"])
            #expect(r.status == 200)
            for i in 0..<width {
                out.append(r.body[(i * 32)..<(i * 32 + 32)].map { String(format: "%02x", $0) }.joined())
            }
            index += 1
        }
        return out
    }

    static func evidence(_ c: ProvdCluster, _ org: String) throws -> Int {
        try JSON.parse(
            try c.client(org).get("/v1/evidence", headers: ["Authorization": "Bearer \(try c.token(org))"]).body)[
                "evidence"]?.arrayValue?.count ?? -1
    }

    /// Everything care acknowledged is still in its log, in the same order, and every node agrees; nobody holds
    /// evidence (no second history was signed), and every data directory verifies.
    static func expectHealed(_ c: ProvdCluster, _ acknowledged: [(UInt64, String)], size: UInt64) throws {
        #expect(c.waitConverged(["care": size]), "\(c.describe)")
        let held = try Self.leaves(c, of: "care", at: "care", size: size)
        for (seq, leaf) in acknowledged { #expect(held[Int(seq)] == leaf, "seq \(seq) changed or lost") }
        for org in c.orgs { #expect(try Self.evidence(c, org) == 0, "\(org) holds evidence") }
        for org in c.orgs { #expect(c.nodes[org]!.stop() == 0) }
        for org in c.orgs {
            let (status, out) = try c.verify(org)
            #expect(status == 0, "\(org): \(out)")
        }
    }

    @Test func aNodeOnAnEmptyDataDirectoryRestoresItsLogFromItsPeersAndContinuesIt() throws {
        let c = try ProvdCluster()
        defer { c.stopAll() }
        try c.startAll()
        var acknowledged = try Self.acks(c, "care", 40, from: 0) + Self.acks(c, "care", 30, from: 100)
        #expect(c.waitConverged(["care": 70]))
        // care's disk is lost: it starts again on an empty data directory, with its key.
        #expect(c.nodes["care"]!.stop() == 0)
        try FileManager.default.removeItem(atPath: c.dataDirectory("care"))
        try FileManager.default.createDirectory(atPath: c.dataDirectory("care"), withIntermediateDirectories: false)
        try c.start("care")
        try c.connect()
        // Its next write waits until the log is restored, then continues the same history.
        let next = try Self.acks(c, "care", 5, from: 200)
        #expect(next.map(\.0) == Array(70..<75), "\(next.map(\.0))")
        #expect(c.nodes["care"]!.waitForLog("the own log was restored from a peer's verified copy"))
        acknowledged += next
        try Self.expectHealed(c, acknowledged, size: 75)
    }

    @Test func aNodeWhoseLastGroupsAndCachesWereLostRestoresThemBeforeAppending() throws {
        let c = try ProvdCluster()
        defer { c.stopAll() }
        try c.startAll()
        var acknowledged: [(UInt64, String)] = []
        for k in 0..<6 { acknowledged += try Self.acks(c, "care", 20, from: k * 100) }
        #expect(c.waitConverged(["care": 120]))
        #expect(c.nodes["care"]!.stop() == 0)
        // A failed disk: the segment lost its last part, and the caches that remember the size are gone.
        let log = c.dataDirectory("care") + "/care"
        let segments = try FileManager.default.contentsOfDirectory(atPath: log + "/segments").sorted()
        let last = log + "/segments/" + segments.last!
        let size = try FileManager.default.attributesOfItem(atPath: last)[.size] as! Int
        try FileHandle(forWritingTo: URL(fileURLWithPath: last)).truncate(atOffset: UInt64(size / 2))
        for cache in ["index", "checkpoint", "tiles", "cosigned"] {
            try? FileManager.default.removeItem(atPath: log + "/" + cache)
        }
        try c.start("care")
        try c.connect()
        let next = try Self.acks(c, "care", 5, from: 900)
        #expect(next.map(\.0) == Array(120..<125), "\(next.map(\.0))")
        acknowledged += next
        try Self.expectHealed(c, acknowledged, size: 125)
    }
}
