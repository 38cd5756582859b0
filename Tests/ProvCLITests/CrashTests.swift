import Foundation
import ProvCrypto
import ProvProcess
import TestSupport
import Testing

@testable import ProvLedger

/// `prov append --follow` streams events into the log while it is killed with SIGKILL at random moments; after
/// every kill the log must open, verify, and hold every entry whose `<seq> <hash>` line was printed.
@Suite(.serialized, .leavesNoFiles) struct CrashTests {
    @Test func sigkillNeverLosesAnAcknowledgedEntry() throws {
        signal(SIGPIPE, SIG_IGN)
        let c = try CLIConsortium()
        defer { c.remove() }
        var rng = SystemRandomNumberGenerator()
        var acknowledged: [UInt64: String] = [:]
        var eventNumber = 0
        let rounds = 30
        for round in 0..<rounds {
            let p = try c.follow(stdout: .pipe)
            defer { p.signal(SIGKILL) }

            // Feed events without pause, in chunks of varying size, until the child is gone.
            let writer = p.stdin!
            let start = eventNumber
            let feeder = Thread {
                var n = start
                var chunkRng = SplitMix64(seed: UInt64(start))
                while true {
                    let k = Int(chunkRng.next() % 40) + 1
                    do { try writer.write(Events.lines(k, from: n)) } catch { break }
                    n += k
                }
            }
            feeder.start()
            eventNumber += 1_000_000

            // Kill once a random number of acknowledgements has arrived, plus a random sliver of time, so the kill
            // lands anywhere in a group commit: parsing, writing, fsync, printing.
            let target = Int.random(in: 1...150, using: &rng)
            var buffer: [UInt8] = []
            var lines = 0
            let reader = p.stdout!
            while lines < target {
                let d = reader.read()
                if d.isEmpty { break }
                buffer += d
                lines = buffer.reduce(0) { $1 == 10 ? $0 + 1 : $0 }
            }
            usleep(UInt32.random(in: 0...3000, using: &rng))
            p.signal(SIGKILL)
            p.wait()
            buffer += reader.readToEnd()
            writer.close()

            // Only whole lines are acknowledgements.
            let text = String(decoding: buffer, as: UTF8.self)
            for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
                let parts = line.split(separator: " ")
                #expect(parts.count == 2, "malformed acknowledgement '\(line)'")
                guard parts.count == 2, let seq = UInt64(parts[0]) else { continue }
                if let previous = acknowledged[seq] {
                    #expect(previous == String(parts[1]), "seq \(seq) acknowledged twice with different hashes")
                }
                acknowledged[seq] = String(parts[1])
            }

            // Restart as a writer would (recovery runs), and check everything acknowledged so far.
            do {
                let store = try LogStore(
                    dataDirectory: c.data, consortium: "acme", org: "brand", writable: true, log: { _ in })
                for (seq, hash) in acknowledged {
                    #expect(seq < store.size, "round \(round): acknowledged seq \(seq) lost (log has \(store.size))")
                    if seq < store.size {
                        #expect(try store.leafHash(seq).hex == hash, "round \(round): seq \(seq) changed")
                    }
                }
            }
            let v = try c.verify()
            #expect(v.status == 0, "round \(round): \(v.stderr)")
        }
        #expect(acknowledged.count >= rounds, "too few acknowledgements to mean anything")
    }
}

/// `prov append --follow` stopped with SIGTERM: every whole line it read is committed and acknowledged, an
/// unfinished line is dropped with a log line saying so, and it exits 0.
@Suite(.leavesNoFiles) struct StopTests {
    @Test func sigtermFlushesWholeLinesAndExitsCleanly() throws {
        signal(SIGPIPE, SIG_IGN)
        let c = try CLIConsortium()
        defer { c.remove() }
        let p = try c.follow(stdout: .pipe, stderr: .pipe)
        defer { p.signal(SIGKILL) }
        // If SIGTERM were ignored the test would wait forever: end it after a minute, and fail below.
        let watchdog = Watchdog(p, after: 60)

        // Five lines, then wait until all five are acknowledged: the process is then waiting for input.
        try p.stdin!.write(Events.lines(5))
        var acks: [UInt8] = []
        while acks.reduce(0, { $1 == 10 ? $0 + 1 : $0 }) < 5 {
            let d = p.stdout!.read()
            try #require(!d.isEmpty, "prov exited early")
            acks += d
        }
        // Half a line, then SIGTERM.
        try p.stdin!.write(String(Events.consent(5).prefix(40)))
        p.signal(SIGTERM)
        let ended = p.wait()
        #expect(!watchdog.finish(), "prov did not stop on SIGTERM within a minute")
        let stderr = String(decoding: p.stderr!.readToEnd(), as: UTF8.self)
        #expect(ended == .exited(0), "\(ended): \(stderr)")
        #expect(stderr.contains("stopping on signal"), "\(stderr)")
        #expect(stderr.contains("40 bytes of an unfinished last line dropped"), "\(stderr)")
        let v = try c.verify()
        #expect(v.stdout.contains("brand: OK: 5 entries"), "\(v.stdout)")
    }
}
