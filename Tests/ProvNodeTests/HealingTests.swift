import Foundation
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
        // care's disk is lost: its data directory is gone, and it starts again with its key (it makes the directory,
        // as on an empty one).
        #expect(c.nodes["care"]!.stop() == 0)
        try FileManager.default.removeItem(atPath: c.dataDirectory("care"))
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

/// A copy found damaged when the node starts is set aside and fetched again from the peers; the node's own log
/// takes writes meanwhile (only damage to it stops the node).
@Suite(.serialized, .leavesNoFiles, .timeLimit(.minutes(3))) struct QuarantineTests {
    @Test func aCopyCutShortIsSetAsideAndFetchedAgainWhileTheOwnLogTakesWrites() throws {
        let c = try ProvdCluster()
        defer { c.stopAll() }
        try c.startAll()
        var brandAcks: [(UInt64, String)] = []
        for k in 0..<4 { brandAcks += try HealingTests.acks(c, "brand", 25, from: k * 100) }
        let careAcks = try HealingTests.acks(c, "care", 10, from: 0)
        #expect(c.waitConverged(["brand": 100, "care": 10]), "\(c.describe)")
        #expect(c.nodes["care"]!.stop() == 0)
        // care's copy of brand loses the second half of its segment; its index and checkpoint still say 100.
        let copy = c.dataDirectory("care") + "/brand"
        let segments = try FileManager.default.contentsOfDirectory(atPath: copy + "/segments").sorted()
        let last = copy + "/segments/" + segments.last!
        let size = try FileManager.default.attributesOfItem(atPath: last)[.size] as! Int
        try FileHandle(forWritingTo: URL(fileURLWithPath: last)).truncate(atOffset: UInt64(size / 2))

        let care = try c.start("care")
        try c.connect()
        #expect(care.waitForLog("a damaged copy was set aside"), "\(care.stderrLines.suffix(6))")
        // The own log goes on at once; the copy comes back whole from the peers.
        let more = try HealingTests.acks(c, "care", 5, from: 500)
        #expect(more.map(\.0) == Array(10..<15), "\(more.map(\.0))")
        #expect(c.waitConverged(["brand": 100, "care": 15]), "\(c.describe)")
        let leaves = try HealingTests.leaves(c, of: "brand", at: "care", size: 100)
        try #require(leaves.count == 100)
        for (seq, leaf) in brandAcks { #expect(leaves[Int(seq)] == leaf, "brand seq \(seq) changed or lost at care") }
        _ = careAcks

        // Status names the folder and why; the folder holds the damaged copy as it was.
        let status = try JSON.parse(
            try c.client("care").get(
                "/v1/status", headers: ["Authorization": "Bearer \(try c.token("care", auditor: true))"]
            ).body)
        let set = status["quarantined"]?.arrayValue ?? []
        #expect(set.count == 1, "\(status)")
        #expect(set.first?["log"]?.stringValue == "brand")
        #expect(set.first?["reason"]?.stringValue?.contains("were acknowledged") == true, "\(set)")
        let folder = set.first?["folder"]?.stringValue ?? ""
        #expect(folder.hasPrefix(c.dataDirectory("care") + "/quarantine/brand-"), "\(folder)")
        #expect(FileManager.default.fileExists(atPath: folder + "/segments/" + segments.last!))

        // Every data directory verifies; care's says what it keeps aside.
        for org in c.orgs { #expect(c.nodes[org]!.stop() == 0) }
        for org in c.orgs {
            let (status, out) = try c.verify(org)
            #expect(status == 0, "\(org): \(out)")
        }
    }

    /// Damage to the node's own log is not set aside: the node refuses to start and says why.
    @Test func damageToTheOwnLogStillStopsTheNode() throws {
        let c = try ProvdCluster(orgs: ["brand"])
        defer { c.stopAll() }
        try c.startAll()
        for k in 0..<2 { _ = try HealingTests.acks(c, "brand", 20, from: k * 100) }
        #expect(c.nodes["brand"]!.stop() == 0)
        let own = c.dataDirectory("brand") + "/brand/segments"
        let last = own + "/" + (try FileManager.default.contentsOfDirectory(atPath: own).sorted().last!)
        let size = try FileManager.default.attributesOfItem(atPath: last)[.size] as! Int
        try FileHandle(forWritingTo: URL(fileURLWithPath: last)).truncate(atOffset: UInt64(size / 2))
        #expect {
            try c.start("brand")
        } throws: { error in
            "\(error)".contains("did not start") && "\(error)".contains("were acknowledged")
        }
        #expect(Quarantine.list(dataDirectory: c.dataDirectory("brand")).isEmpty)
    }
}
