import Dispatch
import Foundation
import Glibc
import Synchronization
import Testing

@testable import ProvNet

/// A one-shot server written by hand: accepts one connection, reads a request head, writes `reply`, closes.
final class CannedServer: Sendable {
    let port: Int
    private let fd: Int32
    private let done = DispatchSemaphore(value: 0)

    init(reply: [UInt8]) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        listen(fd, 4)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
        let listener = fd
        let finished = done
        Thread {
            defer { finished.signal() }
            let c = accept(listener, nil, nil)  // bounded by SO_RCVTIMEO
            guard c >= 0 else { return }
            var tv = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var got: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while !got.suffix(4).elementsEqual([13, 10, 13, 10]) {
                let n = recv(c, &chunk, chunk.count, 0)
                if n <= 0 { break }
                got += chunk[..<n]
            }
            _ = reply.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            shutdown(c, Int32(SHUT_WR))
            while recv(c, &chunk, chunk.count, 0) > 0 {}
            close(c)
        }.start()
    }

    func finish() {
        _ = done.wait(timeout: .now() + 10)
        close(fd)
    }
}

func client(_ port: Int, _ configure: (inout HTTPClientConfiguration) -> Void = { _ in }) throws -> HTTPClient {
    var c = HTTPClientConfiguration()
    c.connectTimeout = .seconds(10)
    c.readTimeout = .seconds(10)
    configure(&c)
    return try HTTPClient(address: "127.0.0.1:\(port)", configuration: c)
}

@Suite(.timeLimit(.minutes(1))) struct ClientTests {
    @Test func keepAliveReusesOneConnection() throws {
        let server = try testServer()
        defer { server.shutdown() }
        let c = try client(server.port)
        for i in 0..<5 {
            let r = try c.send(method: i % 2 == 0 ? "GET" : "HEAD", target: "/r/\(i)")
            #expect(r.status == 200)
            #expect(r.body.isEmpty == (i % 2 == 1))
        }
        #expect(c.connectionsOpened == 1)
        #expect(server.counters.connectionsAccepted == 1)
        #expect(server.counters.requests == 5)
    }

    @Test func reconnectsWhenTheServerClosedTheConnection() throws {
        let log = EventLog()
        let server = try testServer({ $0.timeouts.idle = .milliseconds(100) }, log: log)
        defer { server.shutdown() }
        let c = try client(server.port)
        #expect(try c.get("/a").status == 200)
        #expect(log.wait(for: .idleClosed) != nil)  // the server dropped the idle connection
        #expect(try c.post("/b", body: [1]).status == 200)  // not sent on the dead connection: no retry needed
        #expect(c.connectionsOpened == 2)
        // A server that says Connection: close.
        let closing = try testServer(handler: { _, r in
            r.respond(HTTPResponse(status: 200, headers: ["Connection": "close"]))
        })
        defer { closing.shutdown() }
        let c2 = try client(closing.port)
        #expect(try c2.get("/1").status == 200)
        #expect(try c2.get("/2").status == 200)
        #expect(c2.connectionsOpened == 2)
    }

    @Test func connectionRefused() throws {
        // A bound socket that does not listen: connecting to its port is refused.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let c = try client(Int(UInt16(bigEndian: addr.sin_port)))
        #expect(throws: NetError(.connectionRefused, "")) { _ = try c.get("/") }
        #expect(throws: NetError(.invalidAddress, "")) { _ = try HTTPClient(address: "nowhere") }
        #expect(throws: NetError(.invalidRequest, "")) { _ = try c.get("no-slash") }
        #expect(throws: NetError(.invalidRequest, "")) { _ = try c.get("/", headers: ["X": "a\r\nb"]) }
    }

    @Test func readTimeout() throws {
        let held = HeldResponders()
        let server = try testServer(handler: held.handler)
        defer { server.shutdown() }
        let c = try client(server.port) { $0.readTimeout = .milliseconds(200) }
        #expect(throws: NetError(.timeout, "")) { _ = try c.get("/never") }
        let (_, responder) = try #require(held.next())
        responder.respond(.text(200, "late"))
        // The next request goes on a fresh connection, not the one with a late answer on it.
        let done = DispatchSemaphore(value: 0)
        Thread {
            if let (_, responder) = held.next() { responder.respond(.text(200, "second")) }
            done.signal()
        }.start()
        #expect(String(decoding: try c.get("/second").body, as: UTF8.self) == "second")
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(c.connectionsOpened == 2)
    }

    @Test func shutdownInterruptsABlockedCall() throws {
        let held = HeldResponders()
        let server = try testServer(handler: held.handler)
        defer { server.shutdown() }
        let c = try client(server.port) { $0.readTimeout = .seconds(60) }
        let outcome = Mutex<NetError?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            do { _ = try c.get("/blocks") } catch let e as NetError { outcome.withLock { $0 = e } } catch {}
            done.signal()
        }.start()
        let (_, responder) = try #require(held.next())  // the call is now waiting for its response
        c.shutdown()
        #expect(done.wait(timeout: .now() + 10) == .success)  // long before the 60 s read timeout
        #expect(outcome.withLock { $0 }?.code == .cancelled)
        #expect(throws: NetError(.cancelled, "")) { _ = try c.get("/later") }
        responder.respond(.text(200, "late"))
    }

    @Test func responseBodyOverTheLimit() throws {
        let server = try testServer(handler: { _, r in
            r.respond(HTTPResponse(status: 200, body: [UInt8](repeating: 7, count: 10_000)))
        })
        defer { server.shutdown() }
        let c = try client(server.port) { $0.maxResponseBodyBytes = 1000 }
        #expect(throws: NetError(.bodyTooLarge, "")) { _ = try c.get("/big") }
        let big = try client(server.port)
        #expect(try big.get("/big").body.count == 10_000)
        // One request can ask for less than the client's limit (what a right answer to it can hold), not more.
        #expect(throws: NetError(.bodyTooLarge, "")) {
            _ = try big.send(method: "GET", target: "/big", maxBodyBytes: 9_999)
        }
        #expect(try big.send(method: "GET", target: "/big", maxBodyBytes: 10_000).body.count == 10_000)
        #expect(throws: NetError(.bodyTooLarge, "")) {
            _ = try c.send(method: "GET", target: "/big", maxBodyBytes: 20_000)
        }
    }

    @Test(arguments: [
        ("not HTTP", "SSH-2.0-OpenSSH\r\n\r\n"),
        ("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
        ("bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
        ("folded header", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
    ])
    func malformedResponse(_ name: String, _ reply: String) throws {
        let canned = try CannedServer(reply: Array(reply.utf8))
        defer { canned.finish() }
        let c = try client(canned.port)
        #expect(throws: NetError(.malformedResponse, ""), "\(name)") { _ = try c.get("/") }
    }

    @Test func bodyToTheEndOfTheConnectionAndInterimResponses() throws {
        let canned = try CannedServer(
            reply: Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nuntil close".utf8))
        defer { canned.finish() }
        let c = try client(canned.port)
        let r = try c.get("/")
        #expect(r.status == 200)
        #expect(String(decoding: r.body, as: UTF8.self) == "until close")
    }

    @Test func truncatedBodyIsAnError() throws {
        let canned = try CannedServer(reply: Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".utf8))
        defer { canned.finish() }
        let c = try client(canned.port)
        #expect(throws: NetError(.connectionClosed, "")) { _ = try c.get("/") }
    }
}
