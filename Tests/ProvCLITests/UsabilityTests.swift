import Foundation
import ProvCrypto
import ProvProcess
import TestSupport
import Testing

@testable import ProvCLI
@testable import ProvLedger

/// What stopped or misled a person trying `prov` from the README alone: each mistake gets a message that names the
/// fix, and each message reads as English.
@Suite(.leavesNoFiles) struct UsabilityTests {
    // MARK: wrong descriptor, wrong folder

    /// Another consortium's descriptor, or a log folder for the data directory, is a usage error (exit 2) that
    /// says what to pass; only a log that belongs and is wrong is a verification failure (exit 1).
    @Test func aDescriptorOrFolderThatDoesNotFitIsAUsageError() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        try #require(try c.append(Events.lines(3)).status == 0)
        try #require(try c.append(Events.lines(2), org: "retail").status == 0)

        let other = try CLIConsortium(name: "globex")
        defer { other.remove() }
        let r = try prov(["verify", "--consortium", other.consortium, c.data])
        #expect(r.status == 2 && r.stdout.isEmpty, "\(r.stdout)")
        #expect(
            r.stderr.contains(
                "no log in \(c.data) belongs to the consortium of this descriptor, globex (brand is the log "
                    + "acme/brand, not globex/brand; retail is the log acme/retail, not globex/retail): pass the "
                    + "descriptor of the consortium whose logs these are, or the data directory of globex's logs"),
            "\(r.stderr)")

        // Another consortium of the same name: the logs are signed by other keys.
        let twin = try CLIConsortium()
        defer { twin.remove() }
        let t = try prov(["verify", "--consortium", twin.consortium, c.data])
        #expect(t.status == 2, "\(t.stdout)")
        #expect(
            t.stderr.contains(
                "(brand is signed by another key than the descriptor's for acme/brand; retail is signed by another "
                    + "key than the descriptor's for acme/retail)"), "\(t.stderr)")

        // One level too deep.
        for path in [c.data + "/brand", c.data + "/brand/"] {
            let deep = try prov(["verify", "--consortium", c.consortium, path])
            #expect(deep.status == 2 && deep.stdout.isEmpty)
            #expect(
                deep.stderr.contains(
                    "\(path) is a log folder (it holds segments/), not a data directory: pass the folder that holds "
                        + "it, \(c.data)"), "\(deep.stderr)")
        }
        // The right descriptor still verifies, and one log that belongs and is altered still fails (exit 1).
        #expect(try c.verify().status == 0)
        try Data("x".utf8).write(to: URL(fileURLWithPath: c.data + "/retail/checkpoint"))
        var seg = try TamperTests.Segment(c.data + "/brand/segments/" + SegmentFormat.segmentName(firstSeq: 0))
        seg.records.swapAt(seg.entryIndex(0), seg.entryIndex(1))
        try seg.write()
        expectVerificationFailure(try c.verify(), ["brand seq 0: found seq 1 where seq 0 belongs"])
    }

    // MARK: append on a terminal

    /// A pseudo-terminal for a child's standard input: the child's end and ours.
    struct Terminal {
        let ours: FileHandle
        let theirs: FileHandle

        init() throws {
            // posix_openpt and friends are not in Swift's Glibc: /dev/ptmx, unlocked and numbered with the ioctls
            // they use (TIOCSPTLCK, TIOCGPTN).
            let master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
            try #require(master >= 0)
            var unlock: CInt = 0
            var number: CInt = 0
            try #require(
                ioctl(master, UInt(0x4004_5431), &unlock) == 0 && ioctl(master, UInt(0x8004_5430), &number) == 0)
            let slave = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY | O_CLOEXEC)
            try #require(slave >= 0)
            ours = FileHandle(fileDescriptor: master, closeOnDealloc: true)
            theirs = FileHandle(fileDescriptor: slave, closeOnDealloc: true)
        }
    }

    /// Reads a pipe until `text` has arrived (or the pipe ends); returns all read.
    func read(_ pipe: PipeEnd, until text: String) -> String {
        var got = ""
        while !got.contains(text) {
            let d = pipe.read()
            if d.isEmpty { break }
            got += String(decoding: d, as: UTF8.self)
        }
        return got
    }

    /// On a terminal, `prov append` says it reads standard input and how to end; Ctrl-D ends the input, Ctrl-C
    /// before it leaves no log folder behind (it used to leave `segments/` and `LOCK`).
    @Test func appendOnATerminalSaysHowToEndAndCtrlCLeavesNothing() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        for typed in [false, true] {
            let terminal = try Terminal()
            let p = try ChildProcess(
                provPath,
                [
                    "append", "--dir", c.data, "--key", c.key("brand"), "--consortium", c.consortium, "--link-key",
                    c.linkKey, "--log-format", "text",
                ], stdin: .descriptor(terminal.theirs.fileDescriptor), stdout: .pipe, stderr: .pipe)
            let watchdog = Watchdog(p, after: 60)
            defer {
                p.signal(SIGKILL)
                _ = watchdog.finish()
            }
            try terminal.theirs.close()
            let said = read(p.stderr!, until: "Ctrl-C cancels: nothing is appended)\n")
            #expect(
                said
                    == "prov: info: reading events from standard input, one JSON object per line; end with Ctrl-D "
                    + "(Ctrl-C cancels: nothing is appended)\n", "\(said)")
            if typed {
                try terminal.ours.write(contentsOf: Data((Events.lines(2) + "\u{04}").utf8))
                let acks = String(decoding: p.stdout!.readToEnd(), as: UTF8.self)
                #expect(p.wait() == .exited(0))
                #expect(acks.split(separator: "\n").map { $0.prefix(2) } == ["0 ", "1 "], "\(acks)")
            } else {
                try terminal.ours.write(contentsOf: Data(Events.consent(1).utf8))  // a line not yet ended
                p.signal(SIGINT)
                #expect(p.wait() == .signalled(SIGINT))
                #expect(!FileManager.default.fileExists(atPath: c.data + "/brand"), "a log folder was left behind")
            }
            #expect(!watchdog.finish(), "prov append did not end")
        }
        #expect(try c.verify().stdout.contains("brand: OK: 2 entries"))
    }

    // MARK: Nodes/ from any folder of a checkout

    @Test func theNodesFolderIsFoundFromAnyFolderOfACheckout() throws {
        let root = try makeTempDir("prov-checkout")
        defer { try? FileManager.default.removeItem(at: root) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: root.path + "/Sources/ProvCLI", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root.path + "/Nodes", withIntermediateDirectories: true)
        // Without Package.swift it is not a checkout: nothing found, however deep.
        #expect(Checkout.nodesFolder(from: root.path + "/Sources/ProvCLI") == nil)
        try Data().write(to: root.appendingPathComponent("Package.swift"))
        for folder in ["", "/Nodes", "/Sources", "/Sources/ProvCLI", "/Sources/ProvCLI/."] {
            #expect(Checkout.nodesFolder(from: root.path + folder) == root.path + "/Nodes", "\(folder)")
        }
        // Nodes must be a folder.
        let file = try makeTempDir("prov-checkout")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data().write(to: file.appendingPathComponent("Package.swift"))
        try Data().write(to: file.appendingPathComponent("Nodes"))
        #expect(Checkout.nodesFolder(from: file.path) == nil)

        // prov demo, run deep inside the checkout, uses its Nodes/; outside any checkout it says to pass --nodes.
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let members = repository.appendingPathComponent("Nodes/members.json").path
        try fm.copyItem(atPath: members, toPath: root.path + "/Nodes/members.json")
        let demo = try run(provPath, ["demo", "--customers", "30"], directory: root.path + "/Sources/ProvCLI")
        #expect(demo.status == 0, "\(demo.stdout) \(demo.stderr)")
        let name = try #require(
            try JSON.parse(Array(try Data(contentsOf: URL(fileURLWithPath: members))))["consortium"])
        let runsFolder = root.path + "/Nodes/" + (name.stringValue ?? "")
        let runs = (try? fm.contentsOfDirectory(atPath: runsFolder)) ?? []
        #expect(runs.count == 1 && runs[0].hasPrefix("run-"), "\(runs)")
        #expect(fm.fileExists(atPath: runsFolder + "/\(runs.first ?? "")/consortium/consortium.json"))
        #expect(demo.stdout.contains("care's node: brand and retail verified"), "\(demo.stdout)")
        // A run whose nodes cannot start says so, exits 2 and leaves nothing behind.
        let broken = try run(provPath, ["demo", "--provd", "/bin/false"], directory: root.path)
        #expect(broken.status == 2 && broken.stderr.contains("provd for brand did not start"), "\(broken.stderr)")
        #expect((try? fm.contentsOfDirectory(atPath: runsFolder)) == runs, "a failed run left files behind")
        let fresh = try makeTempDir("prov-nodes")
        defer { try? fm.removeItem(at: fresh) }
        try fm.copyItem(atPath: members, toPath: fresh.path + "/members.json")
        let brokenFirst = try run(provPath, ["demo", "--nodes", fresh.path, "--provd", "/bin/false"])
        #expect(brokenFirst.status == 2)
        #expect(try fm.contentsOfDirectory(atPath: fresh.path) == ["members.json"], "a failed first run left files")
        let outside = try run(provPath, ["demo"], directory: file.path)
        #expect(outside.status == 2)
        #expect(
            outside.stderr.contains("no Nodes folder in \(file.path) or a folder above it")
                && outside.stderr.contains(
                    "run this inside a checkout, or pass --nodes DIR"),
            "\(outside.stderr)")
    }

    // MARK: messages

    /// Counts, ranges and sizes read as English, and a failure names its org once.
    @Test func verificationMessagesReadAsEnglish() throws {
        let (c, original) = try TamperTests().makeLog()
        defer { c.remove() }
        var seg = original
        seg.records.remove(at: seg.entryIndex(12))
        try seg.write()
        let one = try c.verify()
        expectVerificationFailure(
            one, ["brand seq 12: found seq 13 where seq 12 belongs: entry 12 is missing or out of order"])
        let line = try #require(one.stdout.split(separator: "\n").first { $0.contains("FAILED") })
        #expect(line.components(separatedBy: "brand").count == 2, "the org is named twice: \(line)")
        #expect(one.stdout.hasSuffix("s\n") && one.stdout.contains("\nFAILED: 1 log, "), "\(one.stdout)")

        seg = original
        seg.records.removeSubrange(seg.entryIndex(12)...seg.entryIndex(14))
        try seg.write()
        expectVerificationFailure(
            try c.verify(),
            ["brand seq 12: found seq 15 where seq 12 belongs: entries 12..14 are missing or out of order"])

        // A rollback of one entry: a last group of one entry cut, the checkpoint file still claims it.
        try original.write()
        try #require(try c.append(Events.lines(1, from: 30)).status == 0)
        seg = try TamperTests.Segment(original.path)
        seg.records.removeSubrange(seg.entryIndex(30)...)
        try seg.write()
        expectVerificationFailure(
            try c.verify(),
            [
                "brand: rollback: the log's latest checkpoint file covers 31 entries but the log holds only 30 "
                    + "verified: entry 30 is missing"
            ])
    }

    // MARK: input mistakes name the fix

    static let channels = Vocabulary.channels.sorted().joined(separator: ", ")
    static let declared = ConsortiumVocabulary.standard.interactions.sorted().joined(separator: ", ")

    static let mistakes: [(input: String, message: String)] = [
        // Pretty-printed JSON, an array of events.
        (
            "{\n  \"type\": \"consent\",\n  \"event\": \"give\"\n}\n",
            "line 1: not valid JSON: column 2: input ends inside an object; each event must be on one line: JSON Lines"
        ),
        (
            "[" + Events.consent(1) + "," + Events.consent(2) + "]\n",
            "line 1: an event must be a JSON object, got array; give one event per line (JSON Lines), not an array of "
                + "events"
        ),
        // A byte order mark anywhere but at the start of the input (the message is inside a JSON log line here,
        // its backslash escaped).
        (
            Events.consent(1) + "\n\u{FEFF}" + Events.consent(2) + "\n",
            #"line 2: not valid JSON: column 1: unexpected character '\\xef' where a value should start"#
        ),
        // Unknown codes list the valid ones; a blank is said where the value cannot be shown.
        (
            Events.consent(1).replacingOccurrences(of: #""channel":"web""#, with: #""channel":"fax""#) + "\n",
            "line 1: field 'channel': 'fax' is not a known channel (one of \(channels))"
        ),
        (
            Events.consent(1).replacingOccurrences(of: #""channel":"web""#, with: #""channel":"web ""#) + "\n",
            "line 1: field 'channel': a value of 4 bytes that ends with a space is not a known channel (one of "
                + "\(channels))"
        ),
        (
            Events.interaction(1).replacingOccurrences(of: "support-call", with: "support call") + "\n",
            "line 1: field 'interaction': a value of 12 bytes that holds a space is not an interaction type of the "
                + "consortium's vocabulary (it declares \(declared))"
        ),
        (
            Events.consent(1).replacingOccurrences(of: "email:user1@", with: "email:user1 @") + "\n",
            "line 1: field 'subject': 'email:' needs one address like alice@example.com (it holds a space)"
        ),
        (
            Events.consent(1).replacingOccurrences(of: "2026-11-24T10:00:00Z", with: "2026-11-24 10:00:00Z") + "\n",
            "line 1: field 'occurredAt': a value of 20 bytes that holds a space is not an RFC 3339 time"
        ),
        (
            Events.interaction(1).replacingOccurrences(of: "agent-42", with: "agent 42") + "\n",
            "line 1: field 'agent.id': a person is given by their employee id, 1-64 of A-Z a-z 0-9 . _ - (stored as "
                + "a keyed pseudonym, never as given), or by a ref: (it holds a space)"
        ),
    ]

    @Test(arguments: mistakes)
    func inputMistakesNameTheFix(_ c: (input: String, message: String)) throws {
        let cli = try CLIConsortium()
        defer { cli.remove() }
        let r = try cli.append(c.0)
        #expect(r.status == 2 && r.stdout.isEmpty)
        #expect(r.stderr.contains(c.1), "\(r.stderr)")
        #expect(!r.stderr.contains("user1"), "an identifier was echoed: \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: cli.data + "/brand"))
    }

    /// A UTF-8 byte order mark at the start of the input (an editor's) is skipped, in a batch and in a stream.
    @Test func aByteOrderMarkAtTheStartIsSkipped() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        let batch = try c.append("\u{FEFF}" + Events.lines(2))
        #expect(batch.status == 0 && batch.stdout.split(separator: "\n").count == 2, "\(batch.stderr)")
        let input = c.dir.path + "/events.jsonl"
        try Data(("\u{FEFF}" + Events.lines(1, from: 2)).utf8).write(to: URL(fileURLWithPath: input))
        #expect(try c.append("", extra: ["--input", input]).stdout.hasPrefix("2 "))
        let stream = try c.append("\u{FEFF}" + Events.lines(2, from: 3), extra: ["--follow"])
        #expect(stream.status == 0 && stream.stdout.split(separator: "\n").count == 2, "\(stream.stderr)")
        #expect(try c.verify().stdout.contains("brand: OK: 5 entries"))
    }

    /// A key file on the wrong option is named for what it is before any advice about its mode (a descriptor is
    /// world-readable, which a key must not be).
    @Test func keyFilesOnTheWrongOptionAreNamedFirst() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        func append(key: String, linkKey: String) throws -> Run {
            try prov(
                ["append", "--dir", c.data, "--key", key, "--consortium", c.consortium, "--link-key", linkKey],
                stdin: Events.lines(1))
        }
        let descriptor = try append(key: c.consortium, linkKey: c.linkKey)
        #expect(descriptor.status == 2)
        #expect(
            descriptor.stderr.contains(
                "--key \(c.consortium) is a consortium descriptor, not a signing key: give the key file prov keygen "
                    + "wrote with --key, and the descriptor with --consortium"), "\(descriptor.stderr)")
        #expect(!descriptor.stderr.contains("chmod"))
        let vkey = c.dir.path + "/brand.vkey"
        try prov(["key", "show", c.key("brand")]).stdout.write(toFile: vkey, atomically: true, encoding: .utf8)
        #expect(
            try append(key: vkey, linkKey: c.linkKey).stderr.contains(
                "--key \(vkey) is a verifier key (the public half of a signing key), not a signing key: the signing key "
                    + "is the file prov keygen wrote (--out), not the key it printed"))
        #expect(
            try append(key: c.linkKey, linkKey: c.linkKey).stderr.contains(
                "--key \(c.linkKey) is binary (32 bytes, as a linking key file is), not a signing key"))
        #expect(
            try append(key: c.key("brand"), linkKey: c.key("brand")).stderr.contains(
                "--link-key \(c.key("brand")) is a signing key file, not the linking key: give the 32-byte linking key "
                    + "file prov consortium init made"))
        #expect(
            try append(key: c.key("brand"), linkKey: c.consortium).stderr.contains(
                "--link-key \(c.consortium) is a consortium descriptor, not the linking key"))
        #expect(!FileManager.default.fileExists(atPath: c.data))
    }

    /// A descriptor that is not valid JSON: the error gives its line and column.
    @Test func descriptorErrorsGiveLineAndColumn() throws {
        let c = try CLIConsortium()
        defer { c.remove() }
        var text = try String(contentsOfFile: c.consortium, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let n = try #require(lines.firstIndex { $0.contains("\"formatVersion\"") })
        let column = try #require(lines[n].firstIndex(of: ":")).utf16Offset(in: lines[n]) + 1
        text = text.replacingOccurrences(of: "\"formatVersion\": 1", with: "\"formatVersion\" 1")
        try text.write(toFile: c.consortium, atomically: true, encoding: .utf8)
        let r = try c.verify()
        #expect(r.status == 2)
        #expect(
            r.stderr.contains(
                "\(c.consortium): not valid JSON: line \(n + 1), column \(column + 1): expected ':' after member name"
            ), "\(r.stderr)")
    }
}
