// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ProvenanceLedger",
    products: [
        .executable(name: "prov", targets: ["prov"]),
        .library(name: "ProvLedger", targets: ["ProvLedger"]),
        .library(name: "ProvView", targets: ["ProvView"]),
    ],
    targets: [
        // C interop: OpenSSL from the system (libssl-dev), and the shims Swift cannot import.
        .systemLibrary(
            name: "COpenSSL", pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]),
        .target(name: "CShims", dependencies: ["COpenSSL"]),

        // Crypto: SHA-256, HMAC, Ed25519, C2SP signed notes, key files.
        .target(name: "ProvCrypto", dependencies: ["COpenSSL", "CShims"]),
        // Ledger core: CBOR, JSON, entries, Merkle proofs, checkpoints, storage, verifier. No networking.
        .target(name: "ProvLedger", dependencies: ["ProvCrypto", "CShims"]),
        // The shared customer view computed from the logs: identity, consent state, permits, timeline, compliance,
        // view digest, subject access report, incremental index. Reads logs; writes nothing. No networking.
        .target(name: "ProvView", dependencies: ["ProvLedger", "ProvCrypto"]),
        // The commands behind the `prov` executable, so tests can call them directly.
        .target(name: "ProvCLI", dependencies: ["ProvView", "ProvLedger", "ProvCrypto", "CShims"]),
        .executableTarget(name: "prov", dependencies: ["ProvCLI"]),
        // libFuzzer target over the decoders (see Specs/fuzzing.md); a replay tool when built without -DFUZZING.
        .executableTarget(name: "Fuzz", dependencies: ["ProvLedger", "ProvView", "ProvCLI"]),

        .testTarget(
            name: "ProvCryptoTests", dependencies: ["ProvCrypto"], exclude: ["Vectors"]),
        .testTarget(
            name: "ProvLedgerTests", dependencies: ["ProvLedger", "ProvCrypto"], exclude: ["Vectors"]),
        .testTarget(
            name: "ProvViewTests", dependencies: ["ProvView", "ProvLedger", "ProvCrypto"]),
        .testTarget(
            name: "ProvCLITests", dependencies: ["ProvCLI", "ProvLedger", "ProvCrypto"]),
    ],
    swiftLanguageModes: [.v6]
)
