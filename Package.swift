// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ProvenanceLedger",
    products: [
        .executable(name: "prov", targets: ["prov"]),
        .executable(name: "provd", targets: ["provd"]),
        .library(name: "ProvLedger", targets: ["ProvLedger"]),
        .library(name: "ProvView", targets: ["ProvView"]),
    ],
    targets: [
        // C interop: OpenSSL from the system (libssl-dev), and the shims Swift cannot import.
        .systemLibrary(
            name: "COpenSSL", pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]),
        .target(name: "CShims", dependencies: ["COpenSSL"]),
        // Child processes through posix_spawn (prov starts provd, tests start both), never Foundation.Process.
        .target(name: "ProvProcess", dependencies: ["CShims"]),

        // Crypto: SHA-256, HMAC, Ed25519, C2SP signed notes, key files.
        .target(name: "ProvCrypto", dependencies: ["COpenSSL", "CShims"]),
        // Ledger core: CBOR, JSON, entries, Merkle proofs, checkpoints, storage, verifier. No networking.
        .target(name: "ProvLedger", dependencies: ["ProvCrypto", "CShims"]),
        // The shared customer view computed from the logs: identity, consent state, permits, timeline, compliance,
        // view digest, subject access report, incremental index. Reads logs; writes nothing. No networking.
        .target(name: "ProvView", dependencies: ["ProvLedger", "ProvCrypto"]),
        // Network: sockets, an epoll loop, TLS 1.3 pinned to Ed25519 keys, one HTTP/1.1 server and client.
        // Knows nothing of ledgers.
        .target(name: "ProvNet", dependencies: ["ProvCrypto", "COpenSSL", "CShims"]),
        // The node daemon's parts: configuration, logs held, group commit for the API, the view's routes, tlog-tiles
        // and tlog-witness endpoints, replication; NodeServer puts them behind ProvNet's listeners.
        .target(name: "ProvNode", dependencies: ["ProvLedger", "ProvCrypto", "ProvView", "ProvNet", "CShims"]),
        // Benchmarks, the demo, the test-vector generator, and what drives provd processes from outside (start,
        // configure, ask their API): libraries the `prov` commands call, tests too. Prints nothing itself.
        .target(
            name: "ProvTools",
            dependencies: ["ProvView", "ProvLedger", "ProvCrypto", "ProvNode", "ProvNet", "ProvProcess"]),
        // The commands behind the `prov` executable, so tests can call them directly: arguments, help, output.
        .target(
            name: "ProvCLI",
            dependencies: [
                "ProvTools", "ProvView", "ProvLedger", "ProvCrypto", "ProvNode", "ProvNet", "ProvProcess", "CShims",
            ]),
        // prov starts provd (the demo, node benchmarks): building prov builds provd beside it.
        .executableTarget(name: "prov", dependencies: ["ProvCLI", "provd"]),
        .executableTarget(name: "provd", dependencies: ["ProvNode", "CShims"]),
        // libFuzzer target over the decoders and the HTTP parsers (see Specs/fuzzing.md); a replay tool when built
        // without -DFUZZING.
        .executableTarget(name: "Fuzz", dependencies: ["ProvLedger", "ProvView", "ProvTools", "ProvNet", "ProvNode"]),

        // What every test target shares: the check that no test leaves files behind.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(
            name: "ProvCryptoTests", dependencies: ["ProvCrypto", "TestSupport"], exclude: ["Vectors"]),
        .testTarget(
            name: "ProvLedgerTests", dependencies: ["ProvLedger", "ProvCrypto", "TestSupport"], exclude: ["Vectors"]),
        .testTarget(name: "ProvProcessTests", dependencies: ["ProvProcess"]),
        .testTarget(name: "ProvNetTests", dependencies: ["ProvNet", "ProvCrypto", "TestSupport"]),
        .testTarget(
            name: "ProvNodeTests",
            dependencies: [
                "ProvNode", "ProvNet", "ProvLedger", "ProvCrypto", "ProvTools", "ProvProcess", "TestSupport",
            ]),
        .testTarget(
            name: "ProvViewTests",
            dependencies: ["ProvView", "ProvLedger", "ProvCrypto", "ProvProcess", "TestSupport"]),
        .testTarget(name: "ProvToolsTests", dependencies: ["ProvTools", "ProvLedger", "TestSupport"]),
        .testTarget(
            name: "ProvCLITests",
            dependencies: [
                "ProvCLI", "ProvTools", "ProvLedger", "ProvCrypto", "ProvView", "ProvNet", "ProvNode", "ProvProcess",
                "TestSupport",
            ]),
    ],
    swiftLanguageModes: [.v6]
)
