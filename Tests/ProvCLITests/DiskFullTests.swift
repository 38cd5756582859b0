import Foundation
import ProvCrypto
import ProvProcess
import TestSupport
import Testing

@testable import ProvLedger

/// A disk that fills up between a group's fdatasync and its index write (Specs/format.md §10.9): the group is
/// committed, so it is acknowledged (exit 0) with a warning; the index catches up with the next group or the next
/// open. Needs a small filesystem of its own, so it runs as root (as CI does) and is skipped otherwise.
@Suite(
    .serialized, .leavesNoFiles,
    .enabled(if: Tmpfs.mountable, "skipped: mounting a small tmpfs needs root (CI runs as root)"))
struct DiskFullTests {
    /// A consortium whose data directory is a 4 MiB tmpfs holding a log of 512 entries: its index is then exactly 5
    /// pages, so one more record needs a page. The segment gets room for its next groups allocated past its end,
    /// so that when the disk is filled only the index runs out of space.
    func fullLog() throws -> (CLIConsortium, Tmpfs, filler: String) {
        let c = try CLIConsortium()
        try FileManager.default.createDirectory(atPath: c.data, withIntermediateDirectories: true)
        let disk = try Tmpfs(at: c.data, size: "4m")
        let r = try c.append(Events.lines(512))
        try #require(r.status == 0, "\(r.stderr)")
        let segment = c.data + "/brand/segments/" + SegmentFormat.segmentName(firstSeq: 0)
        let size = try FileManager.default.attributesOfItem(atPath: segment)[.size] as! Int
        let f = try run("/usr/bin/fallocate", ["--keep-size", "--offset", "\(size)", "--length", "65536", segment])
        try #require(f.status == 0, "fallocate: \(f.stderr)")
        return (c, disk, c.data + "/filler")
    }

    @Test func aCommittedBatchIsAcknowledgedWhenItsIndexCannotBeWritten() throws {
        let (c, disk, filler) = try fullLog()
        defer { c.remove() }
        defer { disk.unmount() }
        try Tmpfs.fill(filler)
        let r = try c.append(Events.lines(1, from: 512))
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
        #expect(r.stdout.hasPrefix("512 ") && r.stdout.split(separator: "\n").count == 1, "\(r.stdout)")
        #expect(r.stderr.contains("cannot write \(c.data)/brand/index: No space left on device"), "\(r.stderr)")
        #expect(r.stderr.contains("the entries are committed all the same"), "\(r.stderr)")
        let v = try c.verify()
        #expect(v.status == 0 && v.stdout.contains("brand: OK: 513 entries"), "\(v.stdout) \(v.stderr)")

        // With room again, the next open indexes what the index missed, and receipts built from it verify.
        try FileManager.default.removeItem(atPath: filler)
        let again = try c.append(Events.lines(1, from: 513))
        #expect(again.status == 0 && again.stdout.hasPrefix("513 "), "\(again.stderr)")
        try expectWholeIndex(c, entries: 514)
    }

    /// The same in `--follow`: the group is acknowledged, the stream goes on, and the records the index missed are
    /// written with the next group, at their place: no gap in the index that later groups would build on.
    @Test func followGoesOnAndTheIndexCatchesUp() throws {
        signal(SIGPIPE, SIG_IGN)
        let (c, disk, filler) = try fullLog()
        defer { c.remove() }
        defer { disk.unmount() }
        try Tmpfs.fill(filler)
        let p = try c.follow(stdout: .pipe, stderr: .pipe)
        let watchdog = Watchdog(p, after: 120)
        defer {
            p.signal(SIGKILL)
            _ = watchdog.finish()
        }
        let errors = OutputBox()
        let reading = DispatchGroup()
        DispatchQueue.global().async(group: reading) {
            errors.set(false, Data(p.stderr!.readToEnd()))
        }
        var acks = AckReader(p.stdout!)

        try p.stdin!.write(Events.lines(1, from: 512))
        #expect(try acks.next(1) == ["512"])
        try FileManager.default.removeItem(atPath: filler)
        try p.stdin!.write(Events.lines(2, from: 513))
        #expect(try acks.next(2) == ["513", "514"])
        p.stdin!.close()
        let ended = p.wait()
        reading.wait()
        #expect(ended == .exited(0), "\(ended)")
        let stderr = errors.err
        #expect(stderr.contains("cannot write \(c.data)/brand/index: No space left on device"), "\(stderr)")
        #expect(stderr.contains("the index is written again, up to seq "), "\(stderr)")
        try expectWholeIndex(c, entries: 515)
    }

    /// The log verifies with no warning about its index, the index holds a record for every entry, and a receipt
    /// for each of the last entries (those whose index write failed among them) verifies.
    func expectWholeIndex(_ c: CLIConsortium, entries: Int) throws {
        let v = try c.verify()
        #expect(v.status == 0 && v.stdout.contains("brand: OK: \(entries) entries"), "\(v.stdout)")
        #expect(!v.stderr.contains("index"), "\(v.stderr)")
        let index = try FileManager.default.attributesOfItem(atPath: c.data + "/brand/index")[.size] as! Int
        #expect(index == entries * SegmentFormat.indexRecordSize)
        for seq in 511..<entries {
            let r = try prov(["receipt", "--dir", c.data, "--org", "brand", "--seq", "\(seq)"])
            let path = c.dir.path + "/receipt"
            try r.stdout.write(toFile: path, atomically: false, encoding: .utf8)
            let check = try prov(["verify-receipt", "--consortium", c.consortium, path])
            #expect(check.status == 0 && check.stdout.contains("brand seq \(seq) "), "seq \(seq): \(check.stderr)")
        }
    }
}

/// Reads `<seq> <leaf>` acknowledgement lines as they arrive.
struct AckReader {
    let handle: PipeEnd
    var buffer = Data()

    init(_ handle: PipeEnd) { self.handle = handle }

    /// The seqs of the next `n` lines, waiting for them.
    mutating func next(_ n: Int) throws -> [String] {
        var lines: [String] = []
        while lines.count < n {
            if let nl = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...nl)
                lines.append(String(line.split(separator: " ").first ?? ""))
                continue
            }
            let d = Data(handle.read())
            try #require(!d.isEmpty, "prov exited before \(n) acknowledgements")
            buffer.append(d)
        }
        return lines
    }
}
