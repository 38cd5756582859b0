import Foundation
import ProvCrypto
import ProvLedger

/// One node's configuration, `node.json` (Specs/protocol.md §2). Paths are relative to the file's folder.
public struct NodeConfig: Sendable {
    public var org: String
    public var consortiumPath: String
    public var keyPath: String
    /// The key file of a planned rotation of the org's key (Specs/protocol.md §2.2, §8.3): while no version of the
    /// descriptor makes it the org's key, the node signs its checkpoints with both keys; once one does, with it.
    public var nextKeyPath: String?
    public var linkKeyPath: String
    public var dataDirectory: String
    /// Listen addresses, `host:port` (port 0: any free port, reported on start).
    public var peerListen: String
    public var apiListen: String
    /// Bearer tokens: the company's apps (full access) and auditors (read-only).
    public var token: String
    public var auditorToken: String
    /// Members this node connects to; nil means every member with a peer address.
    public var peers: [String]?
    /// Peer addresses that override the descriptor's (re-read on SIGHUP).
    public var peerAddresses: [String: String]
    /// Serve the API over TLS with the node's key (no client certificate).
    public var apiTLS: Bool
    /// Keep the shared customer view (Specs/view.md). A node that only keeps and serves verified copies (an
    /// auditor's mirror) sets it false: no index in memory, and the view routes answer 404.
    public var view: Bool
    /// A heads-only entry is appended at most this often when other logs moved and nothing else was written.
    public var headsIntervalMs: Int
    /// How often every peer is asked for every log's checkpoint (anti-entropy).
    public var syncIntervalMs: Int
    /// How long a client may take to complete the TLS handshake, a request's head, or its body.
    public var requestTimeoutMs: Int
    /// Where equivocation evidence is kept: the data directory's `evidence` folder (Specs/format.md §10.12), where
    /// `prov verify` finds it too.
    public var evidenceDirectory: String { EvidenceFolder.path(in: dataDirectory) }
    /// Connections each listener keeps open at most, and at most from one client address (Specs/transport.md).
    public var maxConnections: Int
    public var maxConnectionsPerAddress: Int
    /// Request bodies the API listener holds in memory at once, across all connections; past it, 503.
    public var bodyBudgetBytes: Int
    /// The file the configuration was read from.
    public var path: String

    static let fields: Set<String> = [
        "org", "consortium", "key", "nextKey", "linkKey", "data", "peer", "api", "token", "auditorToken", "peers",
        "peerAddresses", "apiTLS", "headsIntervalMs", "syncIntervalMs", "requestTimeoutMs",
        "view", "maxConnections", "maxConnectionsPerAddress", "bodyBudgetBytes",
    ]

    /// Reads and checks `node.json`. Errors name the file and the field.
    public static func load(_ path: String) throws(LedgerError) -> NodeConfig {
        let bytes: [UInt8]
        do { bytes = try SecretFile.read(path, maxSize: 1 << 20) } catch let e as CryptoError {
            throw LedgerError(.config, "node configuration: \(e.reason)")
        } catch { throw LedgerError(.config, "node configuration \(path): \(error)") }
        let json: JSONValue
        do { json = try JSON.parse(bytes) } catch {
            throw LedgerError(.config, "node configuration \(path) is not valid JSON: \(error)")
        }
        return try NodeConfig(json: json, path: path)
    }

    init(json: JSONValue, path: String) throws(LedgerError) {
        func bad(_ field: String, _ why: String) -> LedgerError {
            LedgerError(.config, "node configuration \(path): \(field) \(why)")
        }
        guard let top = json.objectValue else { throw bad("the file", "must hold a JSON object") }
        for m in top where !Self.fields.contains(m.key) {
            throw bad("field '\(m.key)'", "is not known (fields: \(Self.fields.sorted().joined(separator: ", ")))")
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
        func string(_ f: String) throws(LedgerError) -> String {
            guard let s = json[f]?.stringValue, !s.isEmpty else { throw bad(f, "must be a non-empty string") }
            return s
        }
        func file(_ f: String) throws(LedgerError) -> String {
            let s = try string(f)
            return s.hasPrefix("/") ? s : base + "/" + s
        }
        func integer(_ f: String, _ def: Int, _ range: ClosedRange<Int>) throws(LedgerError) -> Int {
            guard let v = json[f] else { return def }
            guard let n = v.int64Value, range.contains(Int(n)) else {
                throw bad(f, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return Int(n)
        }
        self.path = path
        org = try string("org")
        guard Vocabulary.isOrgID(org) else { throw bad("org", "must be an org id (1-32 of a-z 0-9 -)") }
        consortiumPath = try file("consortium")
        keyPath = try file("key")
        nextKeyPath = json["nextKey"] == nil ? nil : try file("nextKey")
        linkKeyPath = try file("linkKey")
        dataDirectory = try file("data")
        peerListen = try string("peer")
        apiListen = try string("api")
        for (f, v) in [("peer", peerListen), ("api", apiListen)] where Self.hostPort(v) == nil {
            throw bad(f, "must be host:port, e.g. 127.0.0.1:7401")
        }
        token = try string("token")
        auditorToken = try string("auditorToken")
        guard token.utf8.count >= 16, auditorToken.utf8.count >= 16 else {
            throw bad("token and auditorToken", "must be at least 16 characters")
        }
        guard token != auditorToken else { throw bad("auditorToken", "must differ from token") }
        if let p = json["peers"] {
            guard let list = p.arrayValue?.compactMap(\.stringValue), list.count == p.arrayValue?.count else {
                throw bad("peers", "must be an array of org ids")
            }
            peers = list
        } else {
            peers = nil
        }
        var addresses: [String: String] = [:]
        if let p = json["peerAddresses"] {
            guard let fields = p.objectValue else { throw bad("peerAddresses", "must map org ids to host:port") }
            for f in fields {
                guard let s = f.value.stringValue, Self.hostPort(s) != nil else {
                    throw bad("peerAddresses.\(f.key)", "must be host:port")
                }
                addresses[f.key] = s
            }
        }
        peerAddresses = addresses
        if let v = json["apiTLS"] {
            guard case .bool(let b) = v else { throw bad("apiTLS", "must be true or false") }
            apiTLS = b
        } else {
            apiTLS = false
        }
        if let v = json["view"] {
            guard case .bool(let b) = v else { throw bad("view", "must be true or false") }
            view = b
        } else {
            view = true
        }
        headsIntervalMs = try integer("headsIntervalMs", 1000, 10...3_600_000)
        syncIntervalMs = try integer("syncIntervalMs", 2000, 50...3_600_000)
        requestTimeoutMs = try integer("requestTimeoutMs", 10_000, 100...600_000)
        maxConnections = try integer("maxConnections", 1024, 2...65_536)
        maxConnectionsPerAddress = try integer("maxConnectionsPerAddress", 256, 1...65_536)
        guard maxConnectionsPerAddress <= maxConnections else {
            throw bad("maxConnectionsPerAddress", "must not be above maxConnections (\(maxConnections))")
        }
        bodyBudgetBytes = try integer("bodyBudgetBytes", 64 << 20, (16 << 20)...(1 << 34))
    }

    /// `host:port` with a port 0…65535; nil otherwise.
    public static func hostPort(_ s: String) -> (host: String, port: Int)? {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port)
        else { return nil }
        var host = String(s[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }

    /// The configuration as `node.json` writes it (paths as given).
    static func json(
        org: String, consortium: String, key: String, linkKey: String, data: String, peer: String, api: String,
        token: String, auditorToken: String
    ) -> JSONValue {
        .object([
            JSONMember("org", .string(org)), JSONMember("consortium", .string(consortium)),
            JSONMember("key", .string(key)), JSONMember("linkKey", .string(linkKey)),
            JSONMember("data", .string(data)), JSONMember("peer", .string(peer)), JSONMember("api", .string(api)),
            JSONMember("token", .string(token)), JSONMember("auditorToken", .string(auditorToken)),
        ])
    }
}
