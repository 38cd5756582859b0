import Dispatch
import Foundation
import Glibc
import ProvCrypto
import Synchronization
import TestSupport
import Testing

@testable import ProvNet

/// Collects a server's log events and lets a test wait for one.
final class EventLog: Sendable {
    private let events = Mutex<[NetEvent]>([])
    private let arrived = DispatchSemaphore(value: 0)

    var logger: @Sendable (NetEvent) -> Void {
        { [self] e in
            events.withLock { $0.append(e) }
            arrived.signal()
        }
    }

    var all: [NetEvent] { events.withLock { $0 } }

    func count(_ kind: NetEvent.Kind) -> Int { all.filter { $0.kind == kind }.count }

    /// Waits until an event of `kind` has been logged (at most `seconds`); returns it.
    func wait(for kind: NetEvent.Kind, seconds: Double = 10) -> NetEvent? {
        let end = DispatchTime.now() + seconds
        while true {
            if let e = all.first(where: { $0.kind == kind }) { return e }
            if arrived.wait(timeout: end) == .timedOut { return all.first { $0.kind == kind } }
        }
    }
}

/// A handler that answers every request with its method, path and body length.
let echoHandler: HTTPServer.Handler = { request, responder in
    responder.respond(.text(200, "\(request.method) \(request.target) \(request.body.count)"))
}

func testServer(
    _ configure: (inout HTTPServerConfiguration) -> Void = { _ in }, log: EventLog? = nil,
    handler: @escaping HTTPServer.Handler = echoHandler
) throws -> HTTPServer {
    var c = HTTPServerConfiguration()
    c.workerThreads = 2
    c.logger = log?.logger
    configure(&c)
    return try HTTPServer.start(c, handler: handler)
}

/// Number of threads of this process.
func threadCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1
}

/// A counter shared with handlers.
final class Count: Sendable {
    private let atomic = Atomic<Int>(0)
    func add() { atomic.add(1, ordering: .relaxed) }
    var value: Int { atomic.load(ordering: .relaxed) }
}
