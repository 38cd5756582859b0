import Foundation
import TestSupport

@testable import ProvLedger

/// Loads a JSON vector file from Tests/ProvLedgerTests/Vectors.
func loadVectors(_ name: String) throws -> Any {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors/\(name)")
    return try JSONSerialization.jsonObject(with: Data(contentsOf: url))
}

/// A fresh empty directory under the temporary folder.
func makeTempDir(_ tag: String = "prov") throws -> URL { try TemporaryFiles.directory(tag) }

/// Deterministic pseudo-random numbers (SplitMix64) so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The LedgerError `body` throws, or nil when it succeeds.
func ledgerError(_ body: () throws -> Void) -> LedgerError? {
    do {
        try body()
        return nil
    } catch {
        return error as? LedgerError
    }
}
