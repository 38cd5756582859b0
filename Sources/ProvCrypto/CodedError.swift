/// The error of a layer, in the style of swift-certificates' `CertificateError`: a code to match on (errors compare
/// equal by code), a reason for a person, and where it was made (`#fileID`, `#line`), kept for diagnostics. Each
/// layer names its own: `CryptoError` is `CodedError<CryptoErrorCode>`, ProvNet's `NetError` is
/// `CodedError<NetErrorCode>`.
public struct CodedError<C: Hashable & Sendable>: Error, Equatable, CustomStringConvertible, Sendable {
    /// What went wrong, to match on.
    public typealias Code = C

    public var code: Code
    public var reason: String
    public var fileID: String
    public var line: Int

    public init(_ code: Code, _ reason: String, fileID: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.fileID = fileID
        self.line = line
    }

    public var description: String { reason }

    public static func == (a: Self, b: Self) -> Bool { a.code == b.code }
}
