import ProvLedger

/// A failure of the view layer: a bad query parameter, an entry the index cannot take, or a store that disagrees
/// with the index. Messages name what and where (parameter, org, seq, field) and never repeat a raw identifier.
public struct ViewError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// A query parameter is missing or malformed; `parameter` names it (the API answers 400).
        case badParameter
        /// Entry bytes the index was given do not decode as an entry of format version 1.
        case invalidEntry
        /// The feed broke the contract: an entry out of seq order, a commit past what was ingested, a checkpoint
        /// whose root the ingested leaves do not give.
        case feed
        /// Entry bytes or receipts could not be read, or do not match what the index holds.
        case source
        /// A report does not parse as a subject access report.
        case report
    }

    public var code: Code
    public var message: String
    /// The query parameter at fault, for `badParameter`.
    public var parameter: String?

    public init(_ code: Code, _ message: String, parameter: String? = nil) {
        self.code = code
        self.message = message
        self.parameter = parameter
    }

    static func parameter(_ name: String, _ reason: String) -> ViewError {
        ViewError(.badParameter, "parameter '\(name)': \(reason)", parameter: name)
    }

    public var description: String { message }
}
