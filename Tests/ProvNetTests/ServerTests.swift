import Dispatch
import Foundation
import Glibc
import Synchronization
import TestSupport
import Testing

@testable import ProvNet

/// Responders a handler keeps for a test to answer later, from the test's thread.
final class HeldResponders: Sendable {
    private let held = Mutex<[(HTTPRequest, HTTPResponder)]>([])
    private let arrived = DispatchSemaphore(value: 0)

    var handler: HTTPServer.Handler {
        { [self] request, responder in
            held.withLock { $0.append((request, responder)) }
            arrived.signal()
        }
    }

    /// Waits for the next request to reach the handler.
    func next(seconds: Double = 10) -> (HTTPRequest, HTTPResponder)? {
        guard arrived.wait(timeout: .now() + seconds) == .success else { return nil }
        return held.withLock { $0.removeFirst() }
    }
}

@Suite(.timeLimit(.minutes(1))) struct ServerTests {
    @Test func keepAliveServesSeveralRequestsOnOneConnection() throws {
        let server = try testServer()
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        for i in 0..<3 {
            try raw.send("GET /n/\(i) HTTP/1.1\r\nHost: a\r\n\r\n")
            let r = try #require(try raw.readResponse())
            #expect(r.status == 200)
            #expect(r.text == "GET /n/\(i) 0")
            #expect(r.header("connection") == nil)
            #expect(r.header("date")?.hasSuffix(" GMT") == true)
        }
        #expect(server.counters.connectionsAccepted == 1)
        #expect(server.counters.requests == 3)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        // The first request is answered last in time (from another thread, after a delay the handler controls):
        // responses still come in request order.
        let held = HeldResponders()
        let server = try testServer(handler: held.handler)
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        try raw.send(
            "POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                + "HEAD /two HTTP/1.1\r\nHost: a\r\n\r\n"
                + "GET /three HTTP/1.1\r\nHost: a\r\n\r\n")
        for expected in ["/one", "/two", "/three"] {
            let (request, responder) = try #require(held.next())
            #expect(request.path == expected)
            DispatchQueue.global().async {
                responder.respond(.text(200, "answer to \(request.path) body \(request.body.count)"))
            }
            let r = try #require(try raw.readResponse(toHEAD: expected == "/two"))
            #expect(r.status == 200)
            if expected == "/two" {
                #expect(r.body.isEmpty)  // HEAD: the length of the body, not the body
                #expect(r.header("content-length") == "\("answer to /two body 0".utf8.count)")
            } else {
                #expect(r.text == "answer to \(expected) body \(expected == "/one" ? 3 : 0)")
            }
        }
    }

    @Test func garbageGets400AndTheConnectionClosed() throws {
        let log = EventLog()
        let called = Count()
        let server = try testServer(log: log) { _, responder in
            called.add()
            responder.respond(.text(200, "no"))
        }
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        let garbage: [UInt8] = [0x16, 0x03, 0x01, 0xFF, 0x00] + Array("secret-4242 \u{7}\r\n\r\n".utf8)
        try raw.send(garbage)
        let r = try #require(try raw.readResponse())
        #expect(r.status == 400)
        #expect(r.header("connection") == "close")
        #expect(!r.text.contains("secret"))
        #expect(raw.waitForClose())
        #expect(called.value == 0)
        #expect(server.counters.badRequest == 1)
        #expect(log.wait(for: .badRequest) != nil)
        #expect(log.all.allSatisfy { !$0.message.contains("secret") })
    }

    @Test func oversizedBodyGets413AndTheConnectionClosed() throws {
        let called = Count()
        let server = try testServer({ $0.limits.maxBodyBytes = 1024 }) { _, responder in
            called.add()
            responder.respond(.text(200, "no"))
        }
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        try raw.send("POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n")
        try raw.send([UInt8](repeating: 0x41, count: 4096))
        let r = try #require(try raw.readResponse())
        #expect(r.status == 413)
        #expect(r.header("connection") == "close")
        #expect(raw.waitForClose())
        #expect(called.value == 0)
        #expect(server.counters.tooLarge == 1)
    }

    @Test func transferEncodingGets501AndTheConnectionClosed() throws {
        let server = try testServer()
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        try raw.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        let r = try #require(try raw.readResponse())
        #expect(r.status == 501)
        #expect(raw.waitForClose())
    }

    @Test func tooManyHeadersGets431() throws {
        let server = try testServer { $0.limits.maxHeaderCount = 10 }
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        try raw.send("GET / HTTP/1.1\r\nHost: a\r\n" + (1...20).map { "X-\($0): v\r\n" }.joined() + "\r\n")
        #expect(try raw.readResponse()?.status == 431)
        #expect(raw.waitForClose())
    }

    @Test func expectContinueGetsAnInterim100() throws {
        let server = try testServer()
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        try raw.send("POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        #expect(try raw.readResponse()?.status == 100)
        try raw.send("body")
        let r = try #require(try raw.readResponse())
        #expect(r.text == "POST /e 4")
    }

    @Test func slowClientIsDroppedWhileANormalClientIsServed() throws {
        let log = EventLog()
        let server = try testServer({ $0.timeouts.header = .seconds(1) }, log: log)
        defer { server.shutdown() }
        let client = try HTTPClient(address: "127.0.0.1:\(server.port)")
        let slow = try RawConnection(port: server.port)
        try slow.send("GET /slow HTTP/1.1\r\n")
        // One header line every 100 ms: each byte comes well within the timeout, the head as a whole never does.
        var lines = 0
        var served = 0
        while lines < 100 {
            var p = pollfd(fd: slow.fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 100) > 0 { break }  // the server answered or closed
            if (try? slow.send("X-Trickle-\(lines): 1\r\n")) == nil { break }
            lines += 1
            #expect(try client.get("/normal").status == 200)
            served += 1
        }
        let r = try slow.readResponse()
        #expect(r?.status == 408)
        #expect(slow.waitForClose())
        #expect(lines < 100)
        #expect(served >= 1)
        #expect(server.counters.timeouts == 1)
        #expect(log.wait(for: .timeout)?.remote != nil)
        #expect(try client.get("/after").status == 200)
    }

    @Test func halfOpenConnectionIsDroppedAfterTheTimeout() throws {
        let log = EventLog()
        let called = Count()
        let server = try testServer({ $0.timeouts.header = .milliseconds(300) }, log: log) { _, responder in
            called.add()
            responder.respond(.text(200, ""))
        }
        defer { server.shutdown() }
        let silent = try RawConnection(port: server.port)
        #expect(silent.waitForClose())  // bounded by the connection's 10 s read timeout
        #expect(try silent.readResponse() == nil)  // closed without a response: there was no request
        #expect(log.wait(for: .timeout) != nil)
        #expect(server.counters.timeouts == 1)
        #expect(called.value == 0)
    }

    @Test func bodyThatNeverCompletesGets408() throws {
        let log = EventLog()
        let called = Count()
        let server = try testServer({ $0.timeouts.body = .milliseconds(300) }, log: log) { _, responder in
            called.add()
            responder.respond(.text(200, ""))
        }
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        try raw.send("POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly part of it")
        let r = try #require(try raw.readResponse())
        #expect(r.status == 408)
        #expect(raw.waitForClose())
        #expect(called.value == 0)
        #expect(server.counters.timeouts == 1)
    }

    @Test func clientThatDoesNotReadIsDroppedAfterTheWriteTimeout() throws {
        let log = EventLog()
        let big = [UInt8](repeating: 0x42, count: 32 * 1024 * 1024)
        let server = try testServer({ $0.timeouts.write = .milliseconds(300) }, log: log) { _, responder in
            responder.respond(HTTPResponse(status: 200, body: big))
        }
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port, receiveBuffer: 4096)
        try raw.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        // Never read: the server's socket buffer fills and its write stalls.
        let event = try #require(log.wait(for: .timeout))
        #expect(event.message.contains("did not read"))
        #expect(server.counters.timeouts == 1)
        #expect(server.counters.responses == 0)
        let fresh = try HTTPClient(address: "127.0.0.1:\(server.port)")
        #expect(try fresh.get("/big").body.count == big.count)  // others are served meanwhile
    }

    @Test func idleKeptAliveConnectionIsClosed() throws {
        let log = EventLog()
        let server = try testServer({ $0.timeouts.idle = .milliseconds(200) }, log: log)
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        try raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try raw.readResponse()?.status == 200)
        #expect(raw.waitForClose())
        #expect(log.wait(for: .idleClosed) != nil)
        #expect(server.counters.timeouts == 0)  // idle closes are normal, not rejections
    }

    @Test func deferredResponseFromAnotherThread() throws {
        let held = HeldResponders()
        let server = try testServer(handler: held.handler)
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        try raw.send("POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}")
        let (request, responder) = try #require(held.next())
        #expect(request.body == Array("{}".utf8))
        #expect(request.remoteAddress.host == "127.0.0.1")
        // Nothing is written before the handler answers.
        var p = pollfd(fd: raw.fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&p, 1, 0) == 0)
        let done = DispatchSemaphore(value: 0)
        Thread {
            #expect(responder.respond(HTTPResponse(status: 201, headers: ["X-Seq": "7"], body: Array("ok".utf8))))
            #expect(!responder.respond(.text(500, "second answer")))
            done.signal()
        }.start()
        #expect(done.wait(timeout: .now() + 10) == .success)
        let r = try #require(try raw.readResponse())
        #expect(r.status == 201)
        #expect(r.header("x-seq") == "7")
        #expect(r.text == "ok")
        // The connection is still usable.
        try raw.send("GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
        let (_, second) = try #require(held.next())
        second.respond(.text(200, "again"))
        #expect(try raw.readResponse()?.text == "again")
    }

    @Test func noBodyStatusesKeepTheConnectionInStep() throws {
        let server = try testServer(handler: { request, responder in
            switch request.path {
            case "/204": responder.respond(HTTPResponse(status: 204, body: Array("dropped".utf8)))
            case "/304": responder.respond(HTTPResponse(status: 304, body: Array("dropped".utf8)))
            default: responder.respond(.text(200, "after"))
            }
        })
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        try raw.send(
            "GET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        let r204 = try #require(try raw.readResponse())
        #expect(r204.status == 204)
        #expect(r204.header("content-length") == nil)
        let r304 = try #require(try raw.readResponse())
        #expect(r304.status == 304)
        #expect(r304.header("content-length") == nil)
        #expect(try raw.readResponse()?.text == "after")
    }

    @Test func responderReleasedUnansweredGives500() throws {
        let server = try testServer(handler: { _, _ in })
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        try raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try raw.readResponse()?.status == 500)
    }

    @Test func invalidResponseHeaderGives500() throws {
        let server = try testServer(handler: { _, responder in
            responder.respond(HTTPResponse(status: 200, headers: ["X-Injected": "a\r\nSet-Cookie: b"], body: []))
        })
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        try raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try #require(try raw.readResponse())
        #expect(r.status == 500)
        #expect(r.header("set-cookie") == nil)
    }

    @Test func handlerTimeoutGives503() throws {
        let held = HeldResponders()
        let server = try testServer({ $0.timeouts.handler = .milliseconds(200) }, handler: held.handler)
        defer { server.shutdown() }
        let raw = try RawConnection(port: server.port)
        try raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let (_, responder) = try #require(held.next())
        let r = try #require(try raw.readResponse())
        #expect(r.status == 503)
        #expect(raw.waitForClose())
        responder.respond(.text(200, "too late"))  // ignored: the connection is gone
        #expect(server.counters.timeouts == 1)
    }

    /// At the cap, with every connection in the middle of a request, a new one is closed at once and the others
    /// finish their requests.
    @Test func connectionsOverTheLimitAreClosedAtOnceWhenNoneIsIdle() throws {
        let log = EventLog()
        let held = HeldResponders()
        let server = try testServer({ $0.maxConnections = 2 }, log: log, handler: held.handler)
        defer { server.shutdown() }
        // Two connections whose requests the handler holds: neither is idle.
        var busy: [(RawConnection, HTTPResponder)] = []
        for _ in 0..<2 {
            let c = try RawConnection(port: server.port)
            try c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            busy.append((c, try #require(held.next()).1))
        }
        let third = try RawConnection(port: server.port)
        #expect(third.waitForClose())
        #expect(log.wait(for: .overCapacity) != nil)
        #expect(server.counters.overCapacity == 1)
        for (c, responder) in busy {
            responder.respond(.text(200, "done"))
            #expect(try c.readResponse()?.status == 200)
        }
    }

    /// At the cap, the longest-idle connection makes room for a new one: idle clients cannot keep others out.
    @Test func atTheCapTheLongestIdleConnectionMakesRoom() throws {
        let log = EventLog()
        let server = try testServer({ $0.maxConnections = 2 }, log: log)
        defer { server.shutdown() }
        var open: [RawConnection] = []
        for _ in 0..<2 {
            let c = try RawConnection(port: server.port)
            try c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try c.readResponse()?.status == 200)
            open.append(c)
        }
        let third = try RawConnection(port: server.port)
        try third.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try third.readResponse()?.status == 200)
        #expect(open[0].waitForClose(), "the longest idle was not closed")
        #expect(log.wait(for: .evicted) != nil)
        #expect(server.counters.evicted == 1 && server.counters.overCapacity == 0)
        try open[1].send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try open[1].readResponse()?.status == 200)
    }

    /// One address holds at most its share: past it, its own idle connections make room, and with none idle its new
    /// connection is closed, while another address is still served.
    @Test func oneAddressCannotHoldEveryConnection() throws {
        let held = HeldResponders()
        let server = try testServer(
            {
                $0.maxConnections = 10
                $0.maxConnectionsPerAddress = 2
            }, handler: held.handler)
        defer { server.shutdown() }
        var busy: [(RawConnection, HTTPResponder)] = []
        for _ in 0..<2 {
            let c = try RawConnection(port: server.port, from: "127.0.0.2")
            try c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            busy.append((c, try #require(held.next()).1))
        }
        let more = try RawConnection(port: server.port, from: "127.0.0.2")
        #expect(more.waitForClose())
        #expect(server.counters.overCapacity == 1)
        let other = try RawConnection(port: server.port)
        try other.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        try #require(held.next()).1.respond(.text(200, "other address"))
        #expect(try other.readResponse()?.status == 200)
        for (_, responder) in busy { responder.respond(.text(200, "done")) }
    }

    @Test func gracefulShutdownAnswersRequestsInFlight() throws {
        let log = EventLog()
        let held = HeldResponders()
        let server = try testServer({ $0.timeouts.shutdownGrace = .seconds(20) }, log: log, handler: held.handler)
        let port = server.port
        let busy = try RawConnection(port: port)
        try busy.send("POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
        let (_, responder) = try #require(held.next())
        let idle = try RawConnection(port: port)
        try idle.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let (_, idleResponder) = try #require(held.next())
        idleResponder.respond(.text(200, "idle"))
        #expect(try idle.readResponse()?.status == 200)

        let stopped = DispatchSemaphore(value: 0)
        Thread {
            server.shutdown()
            stopped.signal()
        }.start()
        #expect(log.wait(for: .stopping) != nil)
        #expect(idle.waitForClose())  // no request in flight: closed at once
        #expect(throws: RawError.self) { _ = try RawConnection(port: port) }  // not accepting
        #expect(stopped.wait(timeout: .now()) == .timedOut)  // still waiting for the request in flight
        responder.respond(.text(200, "committed"))
        let r = try #require(try busy.readResponse())
        #expect(r.text == "committed")
        #expect(r.header("connection") == "close")
        #expect(busy.waitForClose())
        #expect(stopped.wait(timeout: .now() + 20) == .success)
        #expect(log.wait(for: .stopped) != nil)
    }

    @Test func busyPortIsAClearError() throws {
        let server = try testServer()
        defer { server.shutdown() }
        #expect(throws: NetError(.addressInUse, "")) {
            _ = try testServer { $0.address = "127.0.0.1:\(server.port)" }
        }
        #expect(throws: NetError(.invalidAddress, "")) { _ = try testServer { $0.address = "127.0.0.1" } }
        #expect(throws: NetError(.invalidAddress, "")) { _ = try testServer { $0.address = "127.0.0.1:70000" } }
    }
}
