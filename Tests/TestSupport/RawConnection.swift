import Glibc

/// A plain blocking TCP client that speaks HTTP/1.1 by hand, independent of the library under test, every read
/// bounded by a timeout: what a hostile or broken client does (partial heads, bodies never sent, another source
/// address on this machine).
public final class RawConnection {
    public let fd: Int32

    /// Connects to 127.0.0.1:`port`; from the loopback address `from` when given (127.0.0.2: another client
    /// address on this machine).
    public init(port: Int, readTimeoutSeconds: Int = 10, receiveBuffer: Int32? = nil, from: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw RawError("socket: \(errno)") }
        if let from {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(from)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else {
                Glibc.close(fd)
                throw RawError("bind \(from): \(errno)")
            }
        }
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
            Glibc.close(fd)
            throw RawError("connect: \(errno)")
        }
    }

    private var closed = false

    deinit { close() }

    /// Closes the connection (once).
    public func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
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
    public func readResponse(toHEAD: Bool = false) throws -> RawResponse? {
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
    public func waitForClose() -> Bool {
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

public struct RawResponse {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
    public func header(_ name: String) -> String? { headers.first { $0.0 == name.lowercased() }?.1 }
}

public struct RawError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
