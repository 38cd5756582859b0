import Testing

@testable import ProvNet

@Suite(.timeLimit(.minutes(1))) struct BenchmarkEntryTests {
    /// The entry point `prov bench` can call runs and counts what it sent (timing is reported, not asserted).
    @Test(arguments: [false, true])
    func keepAliveBenchmarkRuns(_ tls: Bool) throws {
        let result = try HTTPBenchmark.keepAlive(requests: 200, connections: 3, tls: tls)
        #expect(result.requests == 200)
        #expect(result.seconds > 0)
        #expect(result.description.contains("requests_per_second="))
    }
}
