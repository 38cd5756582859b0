import Dispatch
import Foundation
import ProvCrypto
import Synchronization

/// Throughput of the HTTP server and client over loopback, for `prov bench` to report.
public enum HTTPBenchmark {
    public struct Result: Sendable, CustomStringConvertible {
        public var requests: Int
        public var connections: Int
        public var tls: Bool
        public var seconds: Double
        public var requestsPerSecond: Double { seconds > 0 ? Double(requests) / seconds : 0 }

        public var description: String {
            let rate = Int(requestsPerSecond.rounded())
            return "requests=\(requests) connections=\(connections) tls=\(tls) seconds=\(seconds) "
                + "requests_per_second=\(rate)"
        }
    }

    /// Starts a server on 127.0.0.1 port 0 whose handler answers every request at once with `responseBytes` bytes,
    /// then `connections` client threads each send their share of `requests` GETs over one kept-alive connection
    /// (mutual TLS 1.3 with pinned keys when `tls`). Measures from the first request to the last response;
    /// connection set-up and handshakes happen before the clock starts.
    public static func keepAlive(requests: Int, connections: Int = 4, tls: Bool = false, responseBytes: Int = 64)
        throws -> Result
    {
        precondition(requests > 0 && connections > 0)
        var configuration = HTTPServerConfiguration()
        configuration.maxConnections = connections + 16
        var clientTLS: TLSClientConfiguration?
        if tls {
            let server = try TLSIdentity(key: Ed25519PrivateKey.generate(), commonName: "bench-server")
            let client = try TLSIdentity(key: Ed25519PrivateKey.generate(), commonName: "bench-client")
            configuration.tls = TLSServerConfiguration(identity: server, clientKeys: .only(client.publicKey))
            clientTLS = TLSClientConfiguration(identity: client, serverKeys: .only(server.publicKey))
        }
        let body = [UInt8](repeating: 0x61, count: responseBytes)
        let server = try HTTPServer.start(configuration) { _, responder in
            responder.respond(HTTPResponse(status: 200, body: body))
        }
        defer { server.shutdown() }
        let clients = try (0..<connections).map { _ in
            try HTTPClient(
                address: "127.0.0.1:\(server.port)", configuration: HTTPClientConfiguration(tls: clientTLS))
        }
        for c in clients { _ = try c.get("/warm-up") }

        let failures = Mutex<[Error]>([])
        let group = DispatchGroup()
        let start = Instant.now
        for (i, c) in clients.enumerated() {
            let share = requests / connections + (i < requests % connections ? 1 : 0)
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    for _ in 0..<share {
                        let r = try c.get("/bench")
                        guard r.status == 200, r.body.count == responseBytes else {
                            throw NetError(.malformedResponse, "unexpected benchmark response")
                        }
                    }
                } catch {
                    failures.withLock { $0.append(error) }
                }
            }.start()
        }
        group.wait()
        let seconds = Double(Instant.now.nanoseconds - start.nanoseconds) / 1e9
        if let first = failures.withLock({ $0.first }) { throw first }
        return Result(requests: requests, connections: connections, tls: tls, seconds: seconds)
    }
}
