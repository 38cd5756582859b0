import Foundation
import ProvCrypto
import ProvProcess
import TestSupport
import Testing

@testable import ProvLedger

/// `prov` where the conditions are hostile: traps in a data directory (never followed, never waited on: Specs/format.md
/// §10.1), key files on the wrong option (named, never echoed: §9.4), signals and limits at awkward moments (nothing
/// acknowledged is lost), and a damaged log a writer would build on (refused: §11 step 8).
@Suite(.leavesNoFiles) struct HostileConditionsTests {
    /// A link in place of `index`, `checkpoint` or `LOCK`, of the log folder or of `segments/`: the writer refuses
    /// the log and writes nothing through the link; `prov verify` says the log is not verified (exit 2).
    @Test func linksInADataDirectoryAreNeverFollowed() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        try #require(try c.append(Events.lines(3)).status == 0)
        let fm = FileManager.default
        let log = c.data + "/brand"
        let victim = c.dir.path + "/victim"
        let segment = log + "/segments/" + SegmentFormat.segmentName(firstSeq: 0)
        for (path, kind) in [
            (log + "/index", "a regular file"), (log + "/checkpoint", "a regular file"),
            (log + "/LOCK", "a regular file"),
            (segment, "a regular file"), (log + "/segments", "a directory"), (log, "a directory"),
        ] {
            try fm.moveItem(atPath: path, toPath: victim)
            try fm.createSymbolicLink(atPath: path, withDestinationPath: victim)
            let before = try snapshot(victim)
            let expected = "\(path) is a symbolic link, not \(kind)"
            let a = try c.append(Events.lines(1, from: 3))
            #expect(a.status == 2 && a.stdout.isEmpty, "\(path): exit \(a.status) \(a.stdout)")
            #expect(a.stderr.contains(expected), "\(path): \(a.stderr)")
            #expect(try snapshot(victim) == before, "\(path): the writer changed what the link points to")
            let v = try c.verify()
            #expect(v.status == 2, "\(path): \(v.stdout)")
            #expect(v.stdout.contains("brand: NOT VERIFIED, cannot be read: "), "\(path): \(v.stdout)")
            #expect(v.stdout.contains(expected), "\(path): \(v.stdout)")
            try fm.removeItem(atPath: path)
            try fm.moveItem(atPath: victim, toPath: path)
        }
        #expect(try c.verify().stdout.contains("brand: OK: 3 entries"))
    }

    /// A FIFO, a socket or a device in place of a segment or of a file beside it blocked `open` or `read` for
    /// ever. Now nothing waits on one: `prov verify` says the log is not verified, `prov append` refuses it.
    @Test func fifosSocketsAndDevicesNeverBlock() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        try #require(try c.append(Events.lines(3)).status == 0)
        let fm = FileManager.default
        let log = c.data + "/brand"
        let segment = log + "/segments/" + SegmentFormat.segmentName(firstSeq: 0)
        var cases: [(path: String, kind: String, make: (String) -> Int32)] = [
            (segment, "a FIFO", { mkfifo($0, 0o644) }), (log + "/index", "a FIFO", { mkfifo($0, 0o644) }),
            (log + "/checkpoint", "a socket", makeSocket),
        ]
        // The null device, as a segment (only root may make device nodes).
        if getuid() == 0 { cases.append((segment, "a character device", { mknod($0, S_IFCHR | 0o644, 0x103) })) }
        let aside = c.dir.path + "/aside"
        for (path, kind, make) in cases {
            try fm.moveItem(atPath: path, toPath: aside)
            try #require(make(path) == 0, "cannot make \(kind) at \(path): \(String(cString: strerror(errno)))")
            let expected = "\(path) is \(kind), not a regular file"
            let v = try run(provPath, ["verify", "--consortium", c.consortium, c.data], timeout: 60)
            #expect(!v.timedOut, "prov verify hangs on \(kind) at \(path)")
            #expect(v.status == 2 && v.stdout.contains("brand: NOT VERIFIED, cannot be read: "), "\(v.stdout)")
            #expect(v.stdout.contains(expected), "\(v.stdout)")
            let a = try run(
                provPath,
                [
                    "append", "--dir", c.data, "--key", c.key("brand"), "--consortium", c.consortium, "--link-key",
                    c.linkKey,
                ], input: Data(Events.lines(1, from: 3).utf8), timeout: 60)
            #expect(!a.timedOut, "prov append hangs on \(kind) at \(path)")
            #expect(a.status == 2 && a.stderr.contains(expected), "\(path): \(a.stderr)")
            try fm.removeItem(atPath: path)
            try fm.moveItem(atPath: aside, toPath: path)
        }
        #expect(try c.verify().stdout.contains("brand: OK: 3 entries"))
    }

    /// A member name given twice is quoted in the error only when it could not be an identifier, like any value.
    @Test func duplicateMemberNamesAreQuotedOnlyWhenTheyCannotHoldAnIdentifier() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        let r = try c.append(#"{"bob.jones@corp.org":1,"bob.jones@corp.org":2}"# + "\n")
        #expect(r.status == 2)
        #expect(
            r.stderr.contains("line 1: not valid JSON: column 25: duplicate key with a name of 18 bytes"), "\(r.stderr)"
        )
        let nested = try c.append(
            #"{"type":"consent","notice":{"id":"privacy","bob.jones@corp.org":1,"bob.jones@corp.org":2}}"# + "\n")
        #expect(nested.status == 2)
        #expect(nested.stderr.contains("duplicate key with a name of 18 bytes"), "\(nested.stderr)")
        for e in [r, nested] { #expect(!e.stderr.contains("bob"), "\(e.stderr)") }
        let type = try c.append(#"{"type":"consent","type":"share"}"# + "\n")
        // (Standard error is not a terminal here: the message is inside a JSON log line.)
        #expect(type.stderr.contains(#"column 19: duplicate key \"type\""#), "\(type.stderr)")
    }

    /// The linking key or a signing key given where a descriptor, events, a checkpoint or a receipt belong: the
    /// error says what the file seems to be and shows none of its bytes.
    @Test func keyFilesOnTheWrongOptionAreNamedNotEchoed() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        try #require(try c.append(Events.lines(2)).status == 0)
        let linkKey = "is binary (32 bytes, as a linking key file is)"
        func refused(_ r: Run, _ message: String) {
            #expect(r.status == 2, "exit \(r.status) \(r.stderr)")
            #expect(r.stderr.contains(message), "missing '\(message)' in \(r.stderr)")
            #expect(!r.stderr.contains("unexpected character") && !r.stderr.contains("\\x"), "\(r.stderr)")
        }
        refused(
            try prov(["verify", "--consortium", c.linkKey, c.data]),
            "\(c.linkKey) \(linkKey), not a JSON consortium descriptor")
        refused(
            try prov(["verify", "--consortium", c.key("brand"), c.data]),
            "\(c.key("brand")) is a signing key file, not a JSON consortium descriptor")
        refused(
            try prov([
                "append", "--dir", c.data, "--key", c.key("brand"), "--consortium", c.linkKey, "--link-key", c.linkKey,
            ]), "\(c.linkKey) \(linkKey), not a JSON consortium descriptor")
        refused(
            try c.append("", extra: ["--input", c.linkKey]), "--input \(c.linkKey) \(linkKey), not JSON Lines events")
        let key = try Data(contentsOf: URL(fileURLWithPath: c.linkKey))
        let piped = try run(
            provPath,
            [
                "append", "--dir", c.data, "--key", c.key("brand"), "--consortium", c.consortium, "--link-key",
                c.linkKey,
            ],
            input: key)
        refused(piped, "standard input \(linkKey), not JSON Lines events")
        // In --follow each line is judged alone: a binary one is named as such.
        let stream = try run(
            provPath,
            [
                "append", "--dir", c.data, "--key", c.key("brand"), "--consortium", c.consortium, "--link-key",
                c.linkKey, "--follow",
            ], input: Data([0x41, 0xed, 0x00, 0x17, 0x9f, 0x42, 0x0a]))
        refused(stream, "rejected, not appended: line 1: binary data, not a JSON event")
        refused(
            try c.verify(["--checkpoint", c.linkKey]), "--checkpoint \(c.linkKey) \(linkKey), not a signed checkpoint")
        let receipt = try prov(["verify-receipt", "--consortium", c.consortium, c.linkKey])
        #expect(receipt.status == 2)
        #expect(
            receipt.stdout.contains(
                "\(c.linkKey): NOT VERIFIED: the file \(linkKey), not a receipt"),
            "\(receipt.stdout)")
    }

    /// SIGTERM while `append --follow` is still starting (here: while it reads its consortium descriptor from a
    /// FIFO, so the moment is certain) stops it cleanly: the lines already sent are committed, exit 0.
    @Test func sigtermDuringStartUpStillCommitsWhatWasSent() throws {
        signal(SIGPIPE, SIG_IGN)
        let c = try CLIConsortium()
        defer { c.remove() }
        let fifo = c.dir.path + "/consortium.fifo"
        try #require(mkfifo(fifo, 0o600) == 0)
        let p = try ChildProcess(
            provPath,
            [
                "append", "--dir", c.data, "--key", c.key("brand"), "--consortium", fifo, "--link-key", c.linkKey,
                "--follow",
            ], stdin: .pipe, stdout: .pipe)
        let watchdog = Watchdog(p, after: 60)
        defer {
            p.signal(SIGKILL)
            _ = watchdog.finish()
        }
        try p.stdin!.write(Events.lines(4))
        // The FIFO opens for writing once prov has it open for reading: prov is then loading its descriptor.
        var writer: Int32 = -1
        while writer < 0 && p.isRunning {
            writer = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            if writer < 0 { usleep(1000) }
        }
        try #require(writer >= 0, "prov never opened its descriptor")
        p.signal(SIGTERM)
        let descriptor = try Data(contentsOf: URL(fileURLWithPath: c.consortium))
        _ = descriptor.withUnsafeBytes { Glibc.write(writer, $0.baseAddress!, $0.count) }
        close(writer)
        let acks = String(decoding: p.stdout!.readToEnd(), as: UTF8.self)
        let ended = p.wait()
        #expect(!watchdog.finish(), "prov did not stop on SIGTERM")
        #expect(ended == .exited(0), "ended by \(ended)")
        #expect(acks.split(separator: "\n").map { $0.split(separator: " ")[0] } == ["0", "1", "2", "3"], "\(acks)")
        #expect(try c.verify().stdout.contains("brand: OK: 4 entries"))
    }

    /// A file-size limit (`ulimit -f`) reached while appending is a write error like any other: exit 2 with a
    /// message, nothing acknowledged, nothing lost; SIGXFSZ no longer kills `prov` without a word.
    @Test func fileSizeLimitIsAnErrorNotADeathBySignal() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        try #require(try c.append(Events.lines(60)).status == 0)
        // 8 blocks of 512 or 1,024 bytes (by shell): far below the segment's 20 KB.
        let r = try run(
            "/bin/sh",
            [
                "-c", #"ulimit -f 8 && exec "$0" "$@""#, provPath, "append", "--dir", c.data, "--key", c.key("brand"),
                "--consortium", c.consortium, "--link-key", c.linkKey,
            ], input: Data(Events.lines(2, from: 60).utf8))
        #expect(!r.signalled, "killed by signal \(r.status)")
        #expect(r.status == 2 && r.stdout.isEmpty, "exit \(r.status): \(r.stdout)")
        #expect(r.stderr.contains("File too large"), "\(r.stderr)")
        let v = try c.verify()
        #expect(v.status == 0 && v.stdout.contains("brand: OK: 60 entries"), "\(v.stdout) \(v.stderr)")
        #expect(try c.append(Events.lines(2, from: 60)).stdout.hasPrefix("60 "))
    }

    /// Records of the last groups swapped, a checkpoint signed by someone else: `prov append` used to append on
    /// top of a log that `prov verify` rejects. The writer now checks the group it builds on and refuses with the
    /// verifier's message and a pointer to recovery, writing nothing.
    @Test func theWriterRefusesToExtendALogThatVerifyRejects() throws {
        let impostor = try NoteSigner(name: "acme/brand", privateKey: .generate())
        func resign(_ seg: inout TamperTests.Segment, checkpoint n: Int) throws {
            let i = seg.records.indices.filter { seg.records[$0].type == .checkpoint }[n]
            let cp = try SignedCheckpoint(parsing: String(decoding: seg.records[i].payload, as: UTF8.self))
            seg.records[i].payload = Array(try SignedCheckpoint.sign(cp.checkpoint, with: impostor).serialized.utf8)
        }
        let damage: [(what: String, keepIndex: Bool, change: (inout TamperTests.Segment) throws -> Void)] = [
            (
                "two entries of the last group swapped", true,
                { $0.records.swapAt($0.entryIndex(26), $0.entryIndex(28)) }
            ),
            ("the same, index lost", false, { $0.records.swapAt($0.entryIndex(26), $0.entryIndex(28)) }),
            (
                "entries swapped across the last two groups", true,
                { $0.records.swapAt($0.entryIndex(19), $0.entryIndex(20)) }
            ),
            ("last checkpoint signed by another key", true, { try resign(&$0, checkpoint: 2) }),
            ("the checkpoint before it signed by another key", true, { try resign(&$0, checkpoint: 1) }),
        ]
        for (what, keepIndex, change) in damage {
            let (c, seg) = try TamperTests().makeLog()
            defer { c.remove() }
            var changed = seg
            try change(&changed)
            try changed.write()
            if !keepIndex { try FileManager.default.removeItem(atPath: c.data + "/brand/index") }
            let v = try c.verify()
            try #require(v.status == 1, "\(what): \(v.stdout)")
            let failure = try #require(v.stdout.split(separator: "\n").first { $0.hasPrefix("brand: FAILED") })
            let message = String(failure[failure.range(of: " entries: ")!.upperBound...])
            let before = try Data(contentsOf: URL(fileURLWithPath: seg.path))
            let a = try c.append(Events.lines(2, from: 30))
            #expect(a.status == 2 && a.stdout.isEmpty, "\(what): exit \(a.status) \(a.stdout)")
            #expect(a.stderr.contains("log brand is damaged, nothing was appended: "), "\(what): \(a.stderr)")
            #expect(a.stderr.contains("Run prov verify; restore the log from a node that holds it"), "\(what)")
            if what.hasPrefix("entries swapped across") {
                // The verifier stops at the first group; the writer checks the group it builds on.
                #expect(
                    a.stderr.contains("brand seq 19: state record after it disagrees with the entries"), "\(a.stderr)")
            } else {
                #expect(a.stderr.contains(message), "\(what): verify says '\(message)', append: \(a.stderr)")
            }
            #expect(try Data(contentsOf: URL(fileURLWithPath: seg.path)) == before, "\(what): the segment changed")
        }
    }
}

/// A UNIX socket bound at `path` (the socket file stays after the descriptor is closed); 0 or -1 like `mkfifo`.
func makeSocket(_ path: String) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return -1 }
    defer { close(fd) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return -1 }
    withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in bytes.enumerated() { p[i] = b } }
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

/// A file's bytes, or of a folder the names and bytes of everything in it.
func snapshot(_ path: String) throws -> [String: Data] {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return [:] }
    guard isDirectory.boolValue else { return ["": try Data(contentsOf: URL(fileURLWithPath: path))] }
    var out: [String: Data] = [:]
    for f in FileManager.default.enumerator(atPath: path)?.compactMap({ $0 as? String }) ?? [] {
        out[f] = FileManager.default.contents(atPath: path + "/" + f) ?? Data()
    }
    return out
}
