import Foundation
import ProvLedger
import ProvNet

/// A client of one node's API with its token.
package struct NodeAPI {
    package let client: HTTPClient
    package let token: String

    package init(address: String, token: String) throws {
        var c = HTTPClientConfiguration()
        c.readTimeout = .seconds(60)
        client = try HTTPClient(address: address, configuration: c)
        self.token = token
    }

    package func get(_ path: String) throws -> HTTPResponse {
        try client.get(path, headers: ["Authorization": "Bearer \(token)"])
    }

    package func post(_ path: String, _ body: [UInt8]) throws -> HTTPResponse {
        try client.post(
            path, body: body, headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"])
    }

    /// Sizes of the logs this node holds.
    package func sizes() throws -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for m in try JSON.parse(try get("/v1/status").body)["logs"]?.objectValue ?? [] {
            out[m.key] = UInt64(m.value["size"]?.int64Value ?? 0)
        }
        return out
    }

    /// As `get`, asking for `accept` (`text/html`, `text/plain`).
    package func getAccepting(_ path: String, accept: String) throws -> HTTPResponse {
        try client.get(path, headers: ["Authorization": "Bearer \(token)", "Accept": accept])
    }

    /// `s` percent-encoded for a URL path segment or query value (RFC 3986 unreserved characters kept).
    package static func percentEncoded(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }
}
