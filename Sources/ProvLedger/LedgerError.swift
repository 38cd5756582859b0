/// A failure in the ledger core, with a code to match on and a message that says what, where, and what to do.
public struct LedgerError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// An input event is invalid; nothing was appended.
        case invalidEvent
        /// Stored or received bytes are not a valid entry, checkpoint or receipt.
        case invalidEntry
        /// An audit found the ledger inconsistent: broken chain, bad signature, missing entries, fork.
        case verificationFailed
        /// Another process holds the log's writer lock.
        case locked
        /// A file could not be read or written.
        case io
        /// A configuration file (consortium descriptor, key) is missing or wrong.
        case config
    }

    public var code: Code
    public var message: String
    public var fileID: String
    public var line: Int

    public init(_ code: Code, _ message: String, fileID: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.fileID = fileID
        self.line = line
    }

    public var description: String { message }

    public static func == (a: LedgerError, b: LedgerError) -> Bool { a.code == b.code && a.message == b.message }
}

/// `withUnsafeBytes` that keeps a typed error: the standard library's version rethrows `any Error`.
@inline(__always)
package func withRawBytes<R, E: Error>(_ a: [UInt8], _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let r: Result<R, E> = a.withUnsafeBytes { raw in
        do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
    }
    return try r.get()
}

/// `withUnsafeMutableBytes` that keeps a typed error.
@inline(__always)
package func withRawMutableBytes<R, E: Error>(
    _ a: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R
) throws(E) -> R {
    let r: Result<R, E> = a.withUnsafeMutableBytes { raw in
        do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
    }
    return try r.get()
}
