import Dispatch
import Foundation
import ProvCrypto
import Synchronization
import TestSupport
import Testing

@testable import ProvNet

/// Three companies' keys: two consortium members and a stranger.
struct Keys {
    let brand = try! TLSIdentity(key: Ed25519PrivateKey.generate(), commonName: "brand")
    let retail = try! TLSIdentity(key: Ed25519PrivateKey.generate(), commonName: "retail")
    let stranger = try! TLSIdentity(key: Ed25519PrivateKey.generate(), commonName: "stranger")
}

/// A peer listener for `brand` that accepts `brand` and `retail` as clients and answers with the caller's key.
func peerServer(_ keys: Keys, log: EventLog, called: Count? = nil) throws -> HTTPServer {
    let members = [keys.brand.publicKey, keys.retail.publicKey]
    return try testServer(
        {
            $0.tls = TLSServerConfiguration(identity: keys.brand, clientKeys: TLSPeerKeys(members))
        }, log: log,
        handler: { request, responder in
            called?.add()
            let who = request.peerKey.map { hex($0.rawRepresentation) } ?? "none"
            responder.respond(.text(200, "hello \(who)"))
        })
}

func peerClient(_ port: Int, identity: TLSIdentity?, pin: Ed25519PublicKey) throws -> HTTPClient {
    var c = HTTPClientConfiguration(tls: TLSClientConfiguration(identity: identity, serverKeys: .only(pin)))
    c.connectTimeout = .seconds(10)
    c.readTimeout = .seconds(10)
    return try HTTPClient(address: "127.0.0.1:\(port)", configuration: c)
}

@Suite(.timeLimit(.minutes(1))) struct TLSTests {
    @Test func mutualTLSWithKeysPinnedBothWays() throws {
        let keys = Keys()
        let log = EventLog()
        let server = try peerServer(keys, log: log)
        defer { server.shutdown() }
        let client = try peerClient(server.port, identity: keys.retail, pin: keys.brand.publicKey)
        for _ in 0..<3 {
            let r = try client.get("/checkpoint")
            #expect(r.status == 200)
            // The handler learns which member is calling.
            #expect(String(decoding: r.body, as: UTF8.self) == "hello \(hex(keys.retail.publicKey.rawRepresentation))")
        }
        #expect(client.serverKey == keys.brand.publicKey)
        #expect(client.connectionsOpened == 1)
        #expect(server.counters.handshakeRefused == 0)
    }

    @Test func clientWithAnUnknownKeyIsRefusedInTheHandshake() throws {
        let keys = Keys()
        let log = EventLog()
        let called = Count()
        let server = try peerServer(keys, log: log, called: called)
        defer { server.shutdown() }
        let client = try peerClient(server.port, identity: keys.stranger, pin: keys.brand.publicKey)
        do {
            _ = try client.post("/add-checkpoint", body: Array("old 0\n".utf8))
            Issue.record("a stranger's request was answered")
        } catch let e as NetError {
            #expect(e.code == .tlsRefused, "\(e)")
        }
        let event = try #require(log.wait(for: .handshakeRefused))
        #expect(event.peerKey == keys.stranger.publicKey.rawRepresentation)
        #expect(event.message.contains(hex(keys.stranger.publicKey.rawRepresentation)))
        #expect(server.counters.handshakeRefused == 1)
        #expect(server.counters.requests == 0)
        #expect(called.value == 0)
    }

    @Test func clientWithoutACertificateIsRefused() throws {
        let keys = Keys()
        let log = EventLog()
        let server = try peerServer(keys, log: log)
        defer { server.shutdown() }
        let client = try peerClient(server.port, identity: nil, pin: keys.brand.publicKey)
        #expect(throws: NetError(.tlsRefused, "")) { _ = try client.get("/") }
        #expect(log.wait(for: .handshakeRefused) != nil)
        #expect(server.counters.requests == 0)
    }

    @Test func serverWithAnUnexpectedKeyIsRefusedByTheClient() throws {
        let keys = Keys()
        let log = EventLog()
        let called = Count()
        let server = try peerServer(keys, log: log, called: called)
        defer { server.shutdown() }
        // The client expects retail's node at this address, but brand's answers.
        let client = try peerClient(server.port, identity: keys.retail, pin: keys.retail.publicKey)
        do {
            _ = try client.get("/checkpoint")
            Issue.record("the client talked to an unpinned server")
        } catch let e as NetError {
            #expect(e.code == .tlsRefused)
            #expect(e.reason.contains(hex(keys.brand.publicKey.rawRepresentation)))
        }
        #expect(called.value == 0)
        #expect(client.serverKey == nil)
    }

    @Test func serverOnlyTLSForTheAPIListener() throws {
        let keys = Keys()
        let server = try testServer({ $0.tls = TLSServerConfiguration(identity: keys.brand) })
        defer { server.shutdown() }
        let client = try peerClient(server.port, identity: nil, pin: keys.brand.publicKey)
        let r = try client.post("/v1/events", body: Array("[]".utf8))
        #expect(String(decoding: r.body, as: UTF8.self) == "POST /v1/events 2")
        // A plain-HTTP client gets no HTTP from a TLS listener.
        let log = EventLog()
        let server2 = try testServer({ $0.tls = TLSServerConfiguration(identity: keys.brand) }, log: log)
        defer { server2.shutdown() }
        let plain = try HTTPClient(address: "127.0.0.1:\(server2.port)")
        #expect(throws: NetError.self) { _ = try plain.get("/") }
        #expect(log.wait(for: .handshakeFailed) != nil)
        #expect(server2.counters.requests == 0)
    }

    @Test func silentClientIsDroppedAfterTheHandshakeTimeout() throws {
        let keys = Keys()
        let log = EventLog()
        let server = try testServer(
            {
                $0.tls = TLSServerConfiguration(identity: keys.brand, clientKeys: .only(keys.retail.publicKey))
                $0.timeouts.handshake = .milliseconds(300)
            }, log: log)
        defer { server.shutdown() }
        let silent = try RawConnection(port: server.port)  // connects, never sends a ClientHello
        #expect(silent.waitForClose())
        #expect(log.wait(for: .timeout) != nil)
        #expect(server.counters.timeouts == 1)
    }

    @Test func limitsApplyOverTLS() throws {
        let keys = Keys()
        let server = try testServer({
            $0.tls = TLSServerConfiguration(identity: keys.brand)
            $0.limits.maxBodyBytes = 1024
        })
        defer { server.shutdown() }
        let client = try peerClient(server.port, identity: nil, pin: keys.brand.publicKey)
        // The server answers 413 from the head and closes; the client reads that answer although its body was
        // not all taken.
        let r = try client.post("/v1/events", body: [UInt8](repeating: 0x20, count: 40_000))
        #expect(r.status == 413)
        #expect(try client.get("/fine").status == 200)  // a new connection
        #expect(client.connectionsOpened == 2)
    }

    @Test func selfSignedCertificateCarriesTheKey() throws {
        let keys = Keys()
        // Two identities from one key are interchangeable for a peer that pins the key.
        let again = try TLSIdentity(key: keys.brand.key, commonName: "brand-restarted")
        let server = try testServer({ $0.tls = TLSServerConfiguration(identity: again) })
        defer { server.shutdown() }
        let client = try peerClient(server.port, identity: nil, pin: keys.brand.publicKey)
        #expect(try client.get("/").status == 200)
        #expect(throws: NetError.self) { _ = try TLSIdentity(key: keys.brand.key, commonName: "") }
    }
}
