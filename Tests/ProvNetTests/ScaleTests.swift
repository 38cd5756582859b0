import Foundation
import Glibc
import TestSupport
import Testing

@testable import ProvNet

@Suite(.timeLimit(.minutes(2))) struct ScaleTests {
    /// A thousand idle kept-alive connections are held by the one loop thread: the process's thread count does not
    /// grow with them, and a new client is still served.
    @Test func thousandIdleConnectionsKeepTheThreadCountBounded() throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < 2600 && limit.rlim_max >= 2600 {
            limit.rlim_cur = 2600
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        try #require(limit.rlim_cur >= 2600, "needs 2,600 file descriptors (ulimit -n)")
        let server = try testServer {
            $0.maxConnections = 2000
            $0.maxConnectionsPerAddress = 2000
            $0.workerThreads = 4
        }
        defer { server.shutdown() }
        let before = threadCount()
        var idle: [RawConnection] = []
        idle.reserveCapacity(1000)
        for i in 0..<1000 {
            let c = try RawConnection(port: server.port)
            // One request each proves the server accepted the connection; then it sits idle, kept alive.
            try c.send("GET /idle/\(i) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try c.readResponse()?.status == 200)
            idle.append(c)
        }
        #expect(server.counters.connectionsOpen == 1000)
        let during = threadCount()
        // A thread per connection would add a thousand; other suites running meanwhile add a few dozen at most.
        #expect(during - before < 100, "threads: \(before) before, \(during) with 1,000 connections")
        let fresh = try HTTPClient(address: "127.0.0.1:\(server.port)")
        #expect(try fresh.get("/still-served").status == 200)
        #expect(server.counters.connectionsOpen == 1001)
        // Every idle connection still works.
        try idle[0].send("GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try idle[0].readResponse()?.status == 200)
        try idle[999].send("GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try idle[999].readResponse()?.status == 200)
    }
}
