import ProvLedger
import Testing

@testable import ProvTools

@Suite(.timeLimit(.minutes(1))) struct HTTPBenchTests {
    /// `prov bench http` runs over plain HTTP and mutual TLS, and counts what it sent (timing is reported, not
    /// asserted).
    @Test(arguments: [false, true])
    func theKeepAliveBenchmarkSendsEveryRequest(_ tls: Bool) throws {
        let result = try HTTPBench.keepAlive(requests: 200, connections: 3, tls: tls)
        #expect(result.requests == 200)
        #expect(result.seconds > 0)
        let json = try HTTPBench.run(requests: 60, connections: 2, tls: tls, runs: 2, progress: ProgressLine(nil))
        #expect(json["bench"]?.stringValue == "http" && json["tls"] == .bool(tls))
        #expect(json["requests_per_second_each_run"]?.arrayValue?.count == 2)
    }
}
