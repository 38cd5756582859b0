import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A file descriptor with the few calls the log store needs, each turning errno into a `LedgerError` that names
/// the file.
/// Sendable: both properties are immutable, and the calls below are plain system calls on the descriptor.
package final class FileHandleFD: Sendable {
    package let fd: Int32
    package let path: String

    package init(path: String, flags: Int32, mode: mode_t = 0o644) throws(LedgerError) {
        let fd = open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Self.error("cannot open", path) }
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    static func error(_ what: String, _ path: String) -> LedgerError {
        LedgerError(.io, "\(what) \(path): \(String(cString: strerror(errno)))")
    }

    package var size: Int {
        get throws(LedgerError) {
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw Self.error("cannot stat", path) }
            return Int(st.st_size)
        }
    }

    package func pwriteAll(_ buf: UnsafeRawBufferPointer, at offset: Int) throws(LedgerError) {
        var done = 0
        while done < buf.count {
            let n = pwrite(fd, buf.baseAddress! + done, buf.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Self.error("cannot write", path) }
            done += n
        }
    }

    package func pwriteAll(_ bytes: [UInt8], at offset: Int) throws(LedgerError) {
        try withRawBytes(bytes) { b throws(LedgerError) in try pwriteAll(b, at: offset) }
    }

    /// Reads up to `count` bytes at `offset`; fewer only at end of file.
    package func pread(into buf: UnsafeMutableRawBufferPointer, at offset: Int) throws(LedgerError) -> Int {
        var done = 0
        while done < buf.count {
            let n = Glibc.pread(fd, buf.baseAddress! + done, buf.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Self.error("cannot read", path) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    package func read(count: Int, at offset: Int) throws(LedgerError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = try withRawMutableBytes(&out) { b throws(LedgerError) in try pread(into: b, at: offset) }
        out.removeLast(count - n)
        return out
    }

    package func readAll() throws(LedgerError) -> [UInt8] { try read(count: try size, at: 0) }

    package func truncate(to length: Int) throws(LedgerError) {
        guard ftruncate(fd, off_t(length)) == 0 else { throw Self.error("cannot truncate", path) }
    }

    /// fdatasync: the data and the size are on stable storage when it returns.
    package func sync() throws(LedgerError) {
        guard fdatasync(fd) == 0 else { throw Self.error("cannot fsync", path) }
    }

    /// Makes a directory entry durable (after creating or renaming a file in it).
    package static func syncDirectory(_ path: String) throws(LedgerError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw error("cannot open directory", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw error("cannot fsync directory", path) }
    }

    /// Writes a small file atomically: temporary file, rename over the old one.
    package static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws(LedgerError) {
        let tmp = path + ".tmp"
        let f = try FileHandleFD(path: tmp, flags: O_WRONLY | O_CREAT | O_TRUNC)
        try f.pwriteAll(bytes, at: 0)
        guard rename(tmp, path) == 0 else { throw error("cannot rename into", path) }
    }
}

/// An exclusive advisory lock on a log directory: one writer per log.
package final class DirectoryLock {
    let fd: Int32

    package init(directory: String) throws(LedgerError) {
        let path = directory + "/LOCK"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileHandleFD.error("cannot open lock file", path) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var holder = [UInt8](repeating: 0, count: 32)
            let n = Glibc.read(fd, &holder, 32)
            close(fd)
            let pid =
                n > 0
                ? String(decoding: holder[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            throw LedgerError(
                .locked,
                "\(directory) is locked by another writer (pid \(pid)); only one process may append to a log at a time")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, 0) }
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
