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

/// The LedgerError `body` throws, or nil when it succeeds.
func ledgerError(_ body: () throws -> Void) -> LedgerError? {
    do {
        try body()
        return nil
    } catch {
        return error as? LedgerError
    }
}
