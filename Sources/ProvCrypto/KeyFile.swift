import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Files that hold secrets: created mode 0600, never overwritten, refused when others can read them.
public enum SecretFile {
    /// Creates `path` with mode 0600 and writes `bytes`; fails if the file exists.
    public static func create(_ path: String, bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let e = errno
            throw CryptoError(
                .keyFileIO,
                e == EEXIST
                    ? "\(path) already exists; refusing to overwrite a key (move it away first)"
                    : "cannot create \(path): \(String(cString: strerror(e)))")
        }
        defer { close(fd) }
        _ = fchmod(fd, 0o600)  // whatever the umask
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, bytes.count - off) }
            guard n > 0 else {
                throw CryptoError(.keyFileIO, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            off += n
        }
        guard fsync(fd) == 0 else { throw CryptoError(.keyFileIO, "cannot fsync \(path)") }
    }

    /// Reads a secret file after checking that neither group nor others may read or write it.
    public static func read(_ path: String, maxSize: Int = 4096) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CryptoError(.keyFileIO, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw CryptoError(.keyFileIO, "cannot stat \(path)") }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw CryptoError(.keyFileIO, "\(path) is not a regular file (a directory?); give the key file itself")
        }
        let mode = st.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw CryptoError(
                .keyFilePermissions,
                "\(path) is accessible by group or others (mode \(String(mode, radix: 8))); "
                    + "a secret key must be mode 600: run chmod 600 \(path)")
        }
        guard Int(st.st_size) <= maxSize else {
            throw CryptoError(.keyFileIO, "\(path) is larger than \(maxSize) bytes")
        }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var off = 0
        while off < out.count {
            let n = out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + off, $0.count - off) }
            guard n > 0 else { throw CryptoError(.keyFileIO, "cannot read \(path)") }
            off += n
        }
        return out
    }
}

/// A company's signing key file: one line `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ seed)>`, the signer-key
/// form of golang.org/x/mod/sumdb/note, so other C2SP tooling can read it.
public enum SigningKeyFile {
    public static func encode(_ signer: NoteSigner) -> String {
        "PRIVATE+KEY+\(signer.name)+\(NoteVerifierKey.hex(signer.verifierKey.keyID))+"
            + Data([NoteSignatureType.ed25519.rawValue] + signer.privateKey.seed).base64EncodedString() + "\n"
    }

    public static func decode(_ text: String, path: String = "key") throws -> NoteSigner {
        let line = text.trimmingCharacters(in: .newlines)
        let parts = line.split(separator: "+", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "PRIVATE", parts[1] == "KEY",
            let blob = Data(base64Encoded: String(parts[4])), blob.count == 33, blob.first == 0x01
        else { throw CryptoError(.invalidKey, "\(path) is not a signing key file (PRIVATE+KEY+name+id+key)") }
        let signer = try NoteSigner(
            name: String(parts[2]), privateKey: Ed25519PrivateKey(seed: Array(blob.dropFirst())))
        guard NoteVerifierKey.hex(signer.verifierKey.keyID) == parts[3].lowercased() else {
            throw CryptoError(.invalidKey, "\(path): key id \(parts[3]) does not match the key")
        }
        return signer
    }

    public static func write(_ signer: NoteSigner, to path: String) throws {
        try SecretFile.create(path, bytes: Array(encode(signer).utf8))
    }

    public static func read(_ path: String) throws -> NoteSigner {
        try decode(String(decoding: SecretFile.read(path), as: UTF8.self), path: path)
    }
}
