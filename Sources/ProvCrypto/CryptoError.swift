import COpenSSL

/// A failure in the crypto layer: a malformed key or note, a failed OpenSSL call, an unsafe key file.
public typealias CryptoError = CodedError<CryptoErrorCode>

/// What went wrong in the crypto layer.
public enum CryptoErrorCode: String, Sendable {
    case invalidKey, malformedNote, openssl, keyFilePermissions, keyFileIO
}

extension CryptoError {
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
