import Glibc

/// An IPv4 or IPv6 socket address with its port, resolved from "host:port" text.
public struct SocketAddress: Sendable, CustomStringConvertible, Equatable {
    /// The numeric host ("127.0.0.1", "::1").
    public let host: String
    public let port: Int
    let storage: sockaddr_storage
    let length: socklen_t

    /// "127.0.0.1:8080", or "[::1]:8080" for IPv6.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool { a.host == b.host && a.port == b.port }

    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
        var s = storage
        var hostBuf = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var portBuf = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let rc = withUnsafePointer(to: &s) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo(
                    $0, length, &hostBuf, socklen_t(hostBuf.count), &portBuf, socklen_t(portBuf.count),
                    NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        if rc == 0 {
            host = String(decoding: hostBuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            port = Int(String(decoding: portBuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) ?? 0
        } else {
            host = "?"
            port = 0
        }
    }

    /// Splits "host:port" ("[v6]:port" for IPv6 literals) and checks the port is 0...65535.
    static func split(_ text: String) throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":") else {
            throw NetError(.invalidAddress, "address \"\(text)\" has no port: expected host:port")
        }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            throw NetError(.invalidAddress, "address \"\(text)\": write an IPv6 host in brackets, [::1]:port")
        }
        guard !host.isEmpty else { throw NetError(.invalidAddress, "address \"\(text)\" has no host") }
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
            let port = Int(portText), port <= 65535
        else {
            throw NetError(.invalidAddress, "address \"\(text)\": the port is not a number from 0 to 65535")
        }
        return (host, port)
    }

    /// Resolves "host:port" with getaddrinfo (numeric hosts and names such as "localhost").
    public static func resolve(_ text: String) throws -> [SocketAddress] {
        let (host, port) = try split(text)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw NetError(.invalidAddress, "cannot resolve \"\(host)\": \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(first) }
        var out: [SocketAddress] = []
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let n = node {
            if let a = n.pointee.ai_addr, n.pointee.ai_family == AF_INET || n.pointee.ai_family == AF_INET6 {
                var storage = sockaddr_storage()
                let len = n.pointee.ai_addrlen
                withUnsafeMutableBytes(of: &storage) { dst in
                    dst.copyMemory(from: UnsafeRawBufferPointer(start: a, count: Int(len)))
                }
                let addr = SocketAddress(storage: storage, length: len)
                if !out.contains(addr) { out.append(addr) }
            }
            node = n.pointee.ai_next
        }
        guard !out.isEmpty else { throw NetError(.invalidAddress, "\"\(host)\" has no IPv4 or IPv6 address") }
        return out
    }

    var family: Int32 { Int32(storage.ss_family) }

    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var s = storage
        return withUnsafePointer(to: &s) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
