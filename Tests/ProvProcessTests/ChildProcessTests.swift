import Dispatch
import Foundation
import ProvProcess
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Children started with posix_spawn: what they get (arguments, environment, folder, descriptors, signals) and how
/// they are seen to end.
@Suite struct ChildProcessTests {
    @Test func exitStatusOutputsAndInput() throws {
        let r = try ChildProcess.run(
            "/bin/sh", ["-c", "read line; echo \"out:$line:$1\"; echo err >&2; exit 3", "sh", "arg one"],
            input: Array("hello\n".utf8))
        #expect(r.termination == .exited(3))
        #expect(r.stdoutText == "out:hello:arg one\n")
        #expect(r.stderrText == "err\n")
        #expect(!r.timedOut)
    }

    @Test func environmentIsAddedAndTheFolderIsSet() throws {
        let r = try ChildProcess.run(
            "/bin/sh", ["-c", "echo \"$PROV_TEST_VALUE $(pwd)\"; echo \"$PATH\" >&2"],
            environment: ["PROV_TEST_VALUE": "forty two"], directory: "/usr")
        #expect(r.stdoutText == "forty two /usr\n")
        #expect(r.stderrText == (ProcessInfo.processInfo.environment["PATH"] ?? "") + "\n", "the rest is inherited")
    }

    /// Only the three standard descriptors reach the child, even one of ours that is not close-on-exec.
    @Test func noOtherDescriptorIsInherited() throws {
        let leaky = open("/dev/null", O_RDONLY)  // deliberately without O_CLOEXEC
        try #require(leaky >= 0)
        defer { close(leaky) }
        let r = try ChildProcess.run("/bin/sh", ["-c", "ls /proc/$$/fd"])
        let fds = r.stdoutText.split(separator: "\n").compactMap { Int($0) }.sorted()
        #expect(!fds.contains(Int(leaky)), "\(fds)")
        #expect(fds.filter { $0 > 2 }.count <= 1, "only the shell's own listing may be open: \(fds)")
    }

    /// A thread that blocks SIGTERM (as the test runner's do) still starts a child that SIGTERM ends; a parent
    /// that ignores SIGPIPE does not pass that on.
    @Test func theChildStartsWithNoSignalBlockedOrIgnored() throws {
        var block = sigset_t()
        var saved = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &block, &saved)
        let p: ChildProcess
        do { p = try ChildProcess("/bin/sleep", ["30"]) } catch {
            pthread_sigmask(SIG_SETMASK, &saved, nil)
            throw error
        }
        pthread_sigmask(SIG_SETMASK, &saved, nil)
        defer { p.signal(SIGKILL) }
        #expect(p.isRunning)
        #expect(p.signal(SIGTERM))
        #expect(p.wait(timeout: 10) == .signalled(SIGTERM))
        #expect(!p.signal(SIGTERM), "an ended child is never signalled")

        let previous = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, previous) }
        let r = try ChildProcess.run("/bin/sh", ["-c", "grep SigIgn /proc/$$/status"])
        let ignored = UInt64(r.stdoutText.split(separator: "\t").last?.dropLast() ?? "", radix: 16)
        #expect(ignored.map { $0 & (1 << (SIGPIPE - 1)) } == 0, "SIGPIPE ignored in the child: \(r.stdoutText)")
    }

    @Test func aMissingProgramIsAnErrorThatNamesIt() {
        #expect {
            _ = try ChildProcess("/nonexistent/program")
        } throws: { error in
            "\(error)".contains("/nonexistent/program: cannot start: No such file or directory")
        }
    }

    @Test func aChildPastItsTimeIsKilled() throws {
        let r = try ChildProcess.run("/bin/sleep", ["30"], timeout: 0.2)
        #expect(r.timedOut)
        #expect(r.termination == .signalled(SIGKILL))
    }

    @Test func exitHandlersRunOnceTheChildEnds() throws {
        let p = try ChildProcess("/bin/sh", ["-c", "exit 7"])
        let seen = DispatchSemaphore(value: 0)
        p.onExit { t in
            if t == .exited(7) { seen.signal() }
        }
        #expect(seen.wait(timeout: .now() + 10) == .success)
        let late = DispatchSemaphore(value: 0)
        p.onExit { _ in late.signal() }  // after the end: called at once
        #expect(late.wait(timeout: .now() + 1) == .success)
    }

    /// Many children started at once from several threads, each with pipes: all start, all are reaped with their
    /// own status, nothing crashes (Foundation.Process did, about one test run in three).
    @Test func manyChildrenFromManyThreads() throws {
        let statuses = DispatchQueue(label: "statuses")
        nonisolated(unsafe) var seen: [Int32] = []
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            let r = try? ChildProcess.run("/bin/sh", ["-c", "echo \(i); exit \(i % 100)"])
            statuses.sync { if let r, r.stdoutText == "\(i)\n" { seen.append(r.termination.status) } }
        }
        #expect(statuses.sync { seen.sorted() } == (0..<64).map { Int32($0 % 100) }.sorted())
    }
}
