import COpenSSL

/// A failure in the crypto layer: a malformed key or note, a failed OpenSSL call, an unsafe key file.
public struct CryptoError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case invalidKey, malformedNote, openssl, keyFilePermissions, keyFileIO
    }

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

    public static func == (a: CryptoError, b: CryptoError) -> Bool { a.code == b.code }

    /// Builds an error from the OpenSSL error queue of this thread, and drains it.
    static func openssl(_ what: String, fileID: String = #fileID, line: Int = #line) -> CryptoError {
        var detail = ""
        while case let e = ERR_get_error(), e != 0 {
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(e, &buf, buf.count)
            if detail.isEmpty {
                detail = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        return CryptoError(.openssl, detail.isEmpty ? what : "\(what): \(detail)", fileID: fileID, line: line)
    }
}

/// Cryptographically secure random bytes from OpenSSL's DRBG.
public enum SecureRandom {
    public static func bytes(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&out, Int32(count)) == 1 else { throw CryptoError.openssl("RAND_bytes failed") }
        return out
    }
}
