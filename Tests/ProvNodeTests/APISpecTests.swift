import Foundation
import ProvLedger
import ProvNet
import TestSupport
import Testing

@testable import ProvNode

/// Specs/api.yaml against a running node: every documented route answers every documented status, and nothing
/// is documented that this test does not try.
@Suite(.serialized, .leavesNoFiles, .timeLimit(.minutes(2))) struct APISpecTests {
    /// (method, path template, status) of every response in Specs/api.yaml, read line by line: a path at two
    /// spaces, its methods at four, their statuses at eight. The file is ours and keeps that layout.
    static func documented() throws -> Set<String> {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../Specs/api.yaml")
        var out = Set<String>()
        var path = ""
        var method = ""
        var inPaths = false
        for line in try String(contentsOf: url, encoding: .utf8).split(
            separator: "\n", omittingEmptySubsequences: false)
        {
            if line == "paths:" { inPaths = true; continue }
            guard inPaths else { continue }
            if line.hasPrefix("  /") { path = String(line.dropFirst(2).dropLast()) }
            if line.hasPrefix("    ") && !line.hasPrefix("     ") {
                method = line.trimmingCharacters(in: .whitespaces).dropLast().uppercased()
            }
            if line.hasPrefix("        \""), let q = line.dropFirst(9).firstIndex(of: "\"") {
                out.insert("\(method) \(path) \(line.dropFirst(9)[..<q])")
            }
        }
        return out
    }

    /// Responses that need a broken disk or a stopping node (the writer's failure path is tested in LogStoreTests,
    /// DiskFullTests and EvidenceTests), or a real equivocation (EvidenceTests fetches evidence that way).
    static let notProvoked: Set<String> = [
        "POST /v1/events 503", "GET /v1/evidence/{name} 200", "POST /v1/consortium 503",
    ]

    @Test func everyDocumentedRouteAnswersAsDocumented() throws {
        let c = try ProvdCluster(orgs: ["brand", "retail"])
        defer { c.stopAll() }
        // retail keeps copies but no customer view: its view routes answer 404.
        try c.rewrite("retail") { $0["view"] = .bool(false) }
        try c.startAll()
        let event = Ev.consent(1, org: "brand")
        #expect(try c.post("brand", [event]).status == 200)
        let app = try c.token("brand")
        let auditor = try c.token("brand", auditor: true)
        let client = try c.client("brand")
        let mirror = try c.client("retail")
        let mirrorAuditor = try c.token("retail", auditor: true)
        func call(
            _ method: String, _ path: String, token: String?, body: [UInt8] = [], accept: String? = nil,
            on node: HTTPClient? = nil
        ) throws -> Int {

            var h: HTTPHeaders = [:]
            if let token { h.set("Authorization", "Bearer \(token)") }
            if let accept { h.set("Accept", accept) }
            return try (node ?? client).send(method: method, target: path, headers: h, body: body).status
        }
        let subject = "email%3Auser1%40example.com"
        let many = Array(("[" + Array(repeating: "{}", count: 100_001).joined(separator: ",") + "]").utf8)
        // The node's own descriptor (it holds it already), and another first version (a member renamed).
        let descriptor = Array(try Data(contentsOf: URL(fileURLWithPath: c.dir.path + "/consortium.json")))
        var other = c.consortium
        other.members[0].name = "Another Brand"
        let otherDescriptor = Array(other.json.prettySerialized.utf8)
        // One request per documented response.
        let tries: [String: () throws -> Int] = [
            "GET /healthz 200": { try call("GET", "/healthz", token: nil) },
            "POST /v1/events 200": { try call("POST", "/v1/events", token: app, body: Array(event.utf8)) },
            "POST /v1/events 400": {
                try call("POST", "/v1/events", token: app, body: Array(#"{"type":"nope"}"#.utf8))
            },
            "POST /v1/events 401": { try call("POST", "/v1/events", token: nil, body: Array(event.utf8)) },
            "POST /v1/events 403": { try call("POST", "/v1/events", token: auditor, body: Array(event.utf8)) },
            "POST /v1/events 413": { try call("POST", "/v1/events", token: app, body: many) },
            "GET /v1/status 200": { try call("GET", "/v1/status", token: auditor) },
            "GET /v1/status 401": { try call("GET", "/v1/status", token: "not-a-token-of-this-node") },
            "GET /metrics 200": { try call("GET", "/metrics", token: auditor) },
            "GET /v1/consortium 200": { try call("GET", "/v1/consortium", token: auditor) },
            "GET /v1/consortium 401": { try call("GET", "/v1/consortium", token: nil) },
            "POST /v1/consortium 200": { try call("POST", "/v1/consortium", token: app, body: descriptor) },
            "POST /v1/consortium 400": { try call("POST", "/v1/consortium", token: app, body: Array("[1,".utf8)) },
            "POST /v1/consortium 401": { try call("POST", "/v1/consortium", token: nil, body: descriptor) },
            "POST /v1/consortium 403": { try call("POST", "/v1/consortium", token: auditor, body: descriptor) },
            "POST /v1/consortium 409": { try call("POST", "/v1/consortium", token: app, body: otherDescriptor) },
            "POST /v1/consortium 422": { try call("POST", "/v1/consortium", token: app, body: Array("{}".utf8)) },
            "GET /v1/evidence 200": { try call("GET", "/v1/evidence", token: auditor) },
            "GET /v1/evidence 401": { try call("GET", "/v1/evidence", token: nil) },
            "GET /v1/evidence/{name} 401": { try call("GET", "/v1/evidence/brand.1-1.0.json", token: nil) },
            "GET /v1/evidence/{name} 404": { try call("GET", "/v1/evidence/brand.1-1.0.json", token: auditor) },
            "GET /metrics 401": { try call("GET", "/metrics", token: nil) },
            "GET /v1/subjects/{subject}/view 200": { try call("GET", "/v1/subjects/\(subject)/view", token: auditor) },
            "GET /v1/subjects/{subject}/view 400": {
                try call("GET", "/v1/subjects/\(subject)/view?at=yesterday", token: auditor)
            },
            "GET /v1/subjects/{subject}/view 401": { try call("GET", "/v1/subjects/\(subject)/view", token: nil) },
            "GET /v1/subjects/{subject}/timeline 200": {
                try call("GET", "/v1/subjects/\(subject)/timeline?limit=5", token: auditor)
            },
            "GET /v1/subjects/{subject}/timeline 400": {
                try call("GET", "/v1/subjects/\(subject)/timeline?limit=0", token: auditor)
            },
            "GET /v1/subjects/{subject}/timeline 401": {
                try call("GET", "/v1/subjects/\(subject)/timeline", token: nil)
            },
            "GET /v1/subjects/{subject}/report 200": {
                try call("GET", "/v1/subjects/\(subject)/report", token: auditor, accept: "text/html")
            },
            "GET /v1/subjects/{subject}/report 400": {
                try call("GET", "/v1/subjects/email%3Ano-at-sign/report", token: auditor)
            },
            "GET /v1/subjects/{subject}/report 401": { try call("GET", "/v1/subjects/\(subject)/report", token: nil) },
            "GET /v1/permit 200": {
                try call("GET", "/v1/permit?subject=\(subject)&org=brand&purpose=dpv:DirectMarketing", token: auditor)
            },
            "GET /v1/permit 400": { try call("GET", "/v1/permit?subject=\(subject)&org=brand", token: auditor) },
            "GET /v1/permit 401": { try call("GET", "/v1/permit?subject=\(subject)", token: nil) },
            "GET /v1/compliance 200": { try call("GET", "/v1/compliance?org=brand", token: auditor) },
            "GET /v1/compliance 400": { try call("GET", "/v1/compliance", token: auditor) },
            "GET /v1/compliance 401": { try call("GET", "/v1/compliance?org=brand", token: nil) },
            "GET /v1/entries/{org}/{seq} 200": { try call("GET", "/v1/entries/brand/0", token: auditor) },
            "GET /v1/entries/{org}/{seq} 400": { try call("GET", "/v1/entries/brand/999999", token: auditor) },
            "GET /v1/entries/{org}/{seq} 401": { try call("GET", "/v1/entries/brand/0", token: nil) },
            "GET /v1/entries/{org}/{seq}/receipt.html 200": {
                try call("GET", "/v1/entries/brand/0/receipt.html", token: auditor)
            },
            "GET /v1/entries/{org}/{seq}/receipt.html 400": {
                try call("GET", "/v1/entries/brand/999999/receipt.html", token: auditor)
            },
            "GET /v1/entries/{org}/{seq}/receipt.html 401": {
                try call("GET", "/v1/entries/brand/0/receipt.html", token: nil)
            },
            "GET /logs/{org}/checkpoint 200": { try call("GET", "/logs/brand/checkpoint", token: auditor) },
            "GET /logs/{org}/checkpoint 401": { try call("GET", "/logs/brand/checkpoint", token: nil) },
            "GET /logs/{org}/checkpoint 404": { try call("GET", "/logs/nobody/checkpoint", token: auditor) },
            "GET /logs/{org}/checkpoints/{size} 200": { try call("GET", "/logs/brand/checkpoints/1", token: auditor) },
            "GET /logs/{org}/checkpoints/{size} 400": { try call("GET", "/logs/brand/checkpoints/0", token: auditor) },
            "GET /logs/{org}/checkpoints/{size} 401": { try call("GET", "/logs/brand/checkpoints/1", token: nil) },
            "GET /logs/{org}/checkpoints/{size} 404": {
                try call("GET", "/logs/brand/checkpoints/1000", token: auditor)
            },
            "GET /logs/{org}/tile/{path} 200": { try call("GET", "/logs/brand/tile/0/000.p/1", token: auditor) },
            "GET /logs/{org}/tile/{path} 400": { try call("GET", "/logs/brand/tile/0/0", token: auditor) },
            "GET /logs/{org}/tile/{path} 401": { try call("GET", "/logs/brand/tile/0/000.p/1", token: nil) },
            "GET /logs/{org}/tile/{path} 404": { try call("GET", "/logs/brand/tile/0/000", token: auditor) },
            "GET /v1/subjects/{subject}/view 404": {
                try call("GET", "/v1/subjects/\(subject)/view", token: mirrorAuditor, on: mirror)
            },
            "GET /v1/subjects/{subject}/timeline 404": {
                try call("GET", "/v1/subjects/\(subject)/timeline", token: mirrorAuditor, on: mirror)
            },
            "GET /v1/subjects/{subject}/report 404": {
                try call("GET", "/v1/subjects/\(subject)/report", token: mirrorAuditor, on: mirror)
            },
            "GET /v1/permit 404": {
                try call(
                    "GET", "/v1/permit?subject=\(subject)&org=brand&purpose=dpv:DirectMarketing", token: mirrorAuditor,
                    on: mirror)
            },
            "GET /v1/compliance 404": {
                try call("GET", "/v1/compliance?org=brand", token: mirrorAuditor, on: mirror)
            },
        ]
        let documented = try Self.documented()
        #expect(documented.count > 30)
        #expect(Set(tries.keys).union(Self.notProvoked) == documented, "spec and test differ")
        for (key, attempt) in tries.sorted(by: { $0.key < $1.key }) {
            let status = try attempt()
            #expect("\(status)" == key.split(separator: " ").last.map(String.init), "\(key): got \(status)")
        }
        // A route the spec does not name is not served.
        #expect(try call("GET", "/v1/nothing-here", token: auditor) == 404)
        // The node without a view still copies, verifies and serves brand's log.
        #expect(c.waitConverged(["brand": 2]))
        #expect(try call("GET", "/v1/entries/brand/0", token: mirrorAuditor, on: mirror) == 200)
    }
}

/// Query and path parameters as a node reads them.
@Suite struct ParameterTests {
    @Test func percentEscapesAndPlusAreDecoded() {
        let r = NodeRequest(
            listener: .api, method: "GET", path: "/v1/permit",
            query: "subject=email%3Aa%2Bb%40example.com&org=retail&purpose=dpv%3ADirect+Marketing&empty=&bad=%zz")
        #expect(r.parameter("subject") == "email:a+b@example.com")
        #expect(r.parameter("org") == "retail")
        #expect(r.parameter("purpose") == "dpv:Direct Marketing")
        #expect(r.parameter("empty") == "")
        #expect(r.parameter("bad") == nil)
        #expect(r.parameter("missing") == nil)
        // In a path, + is itself.
        #expect(NodeRequest.percentDecoded(Substring("phone%3A+44").utf8[...], plusIsSpace: false) == "phone:+44")
        #expect(NodeRequest.percentDecoded(Substring("%FF").utf8[...], plusIsSpace: false) == nil)
    }
}
