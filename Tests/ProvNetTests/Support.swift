import Dispatch
import Foundation
import Glibc
import ProvCrypto
import Synchronization
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

/// A plain blocking TCP client for speaking raw bytes to a server, every read bounded by a timeout.
final class RawConnection {
    let fd: Int32

    init(port: Int, readTimeoutSeconds: Int = 10, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw RawError("socket: \(errno)") }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var tv = timeval(tv_sec: readTimeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw RawError("connect: \(errno)")
        }
    }

    deinit { close(fd) }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL))
            }
            guard n > 0 else { throw RawError("send: \(errno)") }
            off += n
        }
    }

    private var buffer: [UInt8] = []

    /// Reads one response (head and Content-Length body); nil at end of stream. Parsed here by hand, independent of
    /// the library's parser.
    func readResponse(toHEAD: Bool = false) throws -> RawResponse? {
        while true {
            if let end = findHeadEnd() {
                let headText = String(decoding: buffer[..<end], as: UTF8.self)
                var lines = headText.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst()
                let parts = statusLine.split(separator: " ", maxSplits: 2)
                guard parts.count >= 2, let status = Int(parts[1]) else { throw RawError("bad status line") }
                var headers: [(String, String)] = []
                for l in lines where !l.isEmpty {
                    let kv = l.split(separator: ":", maxSplits: 1)
                    headers.append((kv[0].lowercased(), kv.count > 1 ? kv[1].trimmingCharacters(in: .whitespaces) : ""))
                }
                let length = toHEAD ? 0 : Int(headers.first { $0.0 == "content-length" }?.1 ?? "0") ?? 0
                let bodyStart = end + 4
                while buffer.count < bodyStart + length {
                    guard try fill() else { throw RawError("closed inside a body") }
                }
                let body = Array(buffer[bodyStart..<(bodyStart + length)])
                buffer.removeFirst(bodyStart + length)
                return RawResponse(status: status, headers: headers, body: body)
            }
            guard try fill() else {
                if buffer.isEmpty { return nil }
                throw RawError("closed inside a head")
            }
        }
    }

    /// Reads until the server closes; returns true at end of stream, false if the read timed out.
    func waitForClose() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    private func findHeadEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4)
        where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }

    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &chunk, chunk.count, 0)
        if n == 0 { return false }
        if n < 0 {
            if errno == ECONNRESET { return false }
            throw RawError("recv: errno \(errno)")
        }
        buffer += chunk[..<n]
        return true
    }
}

struct RawResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    func header(_ name: String) -> String? { headers.first { $0.0 == name.lowercased() }?.1 }
}

struct RawError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
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
