import Dispatch
import Foundation
import ProvCrypto
import ProvLedger
import ProvNet
import Synchronization

/// `prov bench http`: requests per second through ProvNet's HTTP/1.1 server and client alone, over loopback, with a
/// handler that answers at once: the transport's ceiling, under every node's API and replication.
package enum HTTPBench {
    package struct Result: Sendable {
        package var requests: Int
        package var connections: Int
        package var tls: Bool
        package var seconds: Double
        package var requestsPerSecond: Double { seconds > 0 ? Double(requests) / seconds : 0 }
    }

    /// Runs `keepAlive` `runs` times; the result has the median rate and each run's.
    package static func run(requests: Int, connections: Int, tls: Bool, runs: Int, progress: ProgressLine) throws
        -> JSONValue
    {
        var results: [Result] = []
        for r in 0..<runs {
            progress.update("http: run \(r + 1)/\(runs), \(requests) requests")
            results.append(try keepAlive(requests: requests, connections: connections, tls: tls))
            progress.clear()
        }
        let rates = results.map(\.requestsPerSecond)
        return .object([
            JSONMember("bench", .string("http")), JSONMember("requests", .number(String(requests))),
            JSONMember("connections", .number(String(connections))), JSONMember("tls", .bool(tls)),
            JSONMember("runs", .number(String(runs))),
            JSONMember("requests_per_second", .number(String(Int(rates.sorted()[rates.count / 2])))),
            JSONMember("requests_per_second_each_run", .array(rates.map { .number(String(Int($0))) })),
        ])
    }

    /// Starts a server on 127.0.0.1 port 0 whose handler answers every request at once with `responseBytes` bytes,
    /// then `connections` client threads each send their share of `requests` GETs over one kept-alive connection
    /// (mutual TLS 1.3 with pinned keys when `tls`). Measures from the first request to the last response;
    /// connection set-up and handshakes happen before the clock starts.
    package static func keepAlive(requests: Int, connections: Int = 4, tls: Bool = false, responseBytes: Int = 64)
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
        let start = Bench.clock()
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
        let seconds = Bench.clock() - start
        if let first = failures.withLock({ $0.first }) { throw first }
        return Result(requests: requests, connections: connections, tls: tls, seconds: seconds)
    }
}
