import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A file descriptor with the few calls the log store needs, each turning errno into a `LedgerError` that names
/// the file.
///
/// Every file and folder of a data directory is opened through here (Specs/format.md §10.1): never through a
/// symbolic link (`O_NOFOLLOW`), never blocking (`O_NONBLOCK`: a FIFO or a device in a file's place would block
/// `open` or `read` for ever), and only when `fstat` says it is what it should be. Anything else is refused with
/// a message that names the path and what it is: `<path> is a symbolic link, not a regular file`.
/// Sendable: both properties are immutable, and the calls below are plain system calls on the descriptor.
package final class FileHandleFD: Sendable {
    package let fd: Int32
    package let path: String

    /// What a path in a data directory must be.
    package enum Kind: Sendable {
        case regularFile
        case directory

        var name: String { self == .regularFile ? "a regular file" : "a directory" }
        var fileType: mode_t { self == .regularFile ? S_IFREG : S_IFDIR }
    }

    /// Opens a regular file (see the type's documentation).
    package convenience init(path: String, flags: Int32, mode: mode_t = 0o644) throws(LedgerError) {
        let r = Self.open(path, flags, mode, .regularFile)
        if let e = r.error { throw e }
        self.init(fd: r.fd, path: path)
    }

    /// Opens a directory for listing or fsync, on the same terms.
    package convenience init(directory path: String) throws(LedgerError) {
        let r = Self.open(path, O_RDONLY | O_DIRECTORY, 0, .directory)
        if let e = r.error { throw e }
        self.init(fd: r.fd, path: path)
    }

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    /// The descriptor is this object's: it is closed when the last reference goes.
    deinit { Glibc.close(fd) }

    /// The descriptor, or why not with the errno of the failed `open` (0 when the file is of the wrong kind).
    private static func open(_ path: String, _ flags: Int32, _ mode: mode_t, _ kind: Kind) -> (
        fd: Int32, error: LedgerError?, errno: Int32
    ) {
        let fd = Glibc.open(path, flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, mode)
        guard fd >= 0 else {
            // ELOOP (a link), ENXIO (a FIFO opened for writing without a reader, a socket), ENOTDIR: say what is
            // there instead of the bare errno text.
            let saved = errno
            if let other = Self.kind(of: path), other != kind.fileType {
                return (-1, LedgerError(.io, "\(path) is \(describe(other)), not \(kind.name)"), 0)
            }
            return (-1, LedgerError(.io, "cannot open \(path): \(String(cString: strerror(saved)))"), saved)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = error("cannot stat", path)
            close(fd)
            return (-1, e, 0)
        }
        guard st.st_mode & S_IFMT == kind.fileType else {
            close(fd)
            return (-1, LedgerError(.io, "\(path) is \(describe(st.st_mode & S_IFMT)), not \(kind.name)"), 0)
        }
        // A regular file or a directory never blocks: reads and writes behave as usual without the flag.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return (fd, nil, 0)
    }

    /// The file type bits (`S_IFMT`) of `path` itself, not of what a link points to; nil when it does not exist
    /// or cannot be examined.
    package static func kind(of path: String) -> mode_t? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : nil
    }

    static func describe(_ type: mode_t) -> String {
        switch type {
        case S_IFLNK: return "a symbolic link"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFDIR: return "a directory"
        case S_IFREG: return "a regular file"
        default: return "a special file"
        }
    }

    /// Refuses `path` when it exists and is not `kind` (a link counts as a link, whatever it points to). For files
    /// that are checked but not opened, such as `LOCK` by a verifier.
    package static func expect(_ path: String, is kind: Kind) throws(LedgerError) {
        if let other = Self.kind(of: path), other != kind.fileType {
            throw LedgerError(.io, "\(path) is \(describe(other)), not \(kind.name)")
        }
    }

    /// Opens a regular file, or nil when it does not exist.
    package static func openIfPresent(_ path: String, flags: Int32) throws(LedgerError) -> FileHandleFD? {
        let r = open(path, flags, 0, .regularFile)
        if r.errno == ENOENT { return nil }
        if let e = r.error { throw e }
        return FileHandleFD(fd: r.fd, path: path)
    }

    /// Opens a regular file, creating it (mode 0644 less the umask) when it does not exist; `created` says which.
    package static func openOrCreate(_ path: String, flags: Int32) throws(LedgerError) -> (
        file: FileHandleFD, created: Bool
    ) {
        if let f = try openIfPresent(path, flags: flags) { return (f, false) }
        let r = open(path, flags | O_CREAT | O_EXCL, 0o644, .regularFile)
        // Created by someone else in between: open what is there now.
        if r.errno == EEXIST { return (try FileHandleFD(path: path, flags: flags), false) }
        if let e = r.error { throw e }
        return (FileHandleFD(fd: r.fd, path: path), true)
    }

    /// The contents of a regular file, or nil when it does not exist; a file larger than `maxSize` is an error
    /// (nothing of it is read).
    package static func readIfPresent(_ path: String, maxSize: Int = .max) throws(LedgerError) -> [UInt8]? {
        guard let f = try openIfPresent(path, flags: O_RDONLY) else { return nil }
        let size = try f.size
        guard size <= maxSize else { throw LedgerError(.io, "\(path) is larger than \(maxSize) bytes") }
        return try f.read(count: size, at: 0)
    }

    /// The names in a directory (without `.` and `..`), unsorted.
    package static func list(directory path: String) throws(LedgerError) -> [String] {
        let d = try FileHandleFD(directory: path)
        // (`d` closes its descriptor when it goes: it must live until the call that uses it returned.)
        let fd = withExtendedLifetime(d) { dup(d.fd) }
        guard fd >= 0, let dir = fdopendir(fd) else {
            if fd >= 0 { close(fd) }
            throw error("cannot read", path)
        }
        defer { closedir(dir) }
        var names: [String] = []
        errno = 0
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: &ent.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        guard errno == 0 else { throw error("cannot read", path) }
        return names
    }

    /// Creates directory `path` unless it exists, and makes the new entry durable in its parent. With a `mode`,
    /// the folder gets it whatever the umask (also when it existed). An existing `path` must be a directory, not a
    /// link to one. Returns whether it was created.
    @discardableResult
    package static func makeDirectory(_ path: String, mode: mode_t?) throws(LedgerError) -> Bool {
        let created = mkdir(path, mode ?? 0o777) == 0
        guard created || errno == EEXIST else { throw error("cannot create", path) }
        let d = try FileHandleFD(directory: path)
        if let mode { withExtendedLifetime(d) { _ = fchmod(d.fd, mode) } }
        if created { try syncDirectory(parent(of: path)) }
        return created
    }

    /// Replaces the small file `path` with `bytes` atomically and durably: a temporary file beside it (opened
    /// without following links), fsync, rename over `path`, fsync of the folder. `path` must not be a link or a
    /// folder.
    package static func replaceAtomically(_ path: String, _ bytes: [UInt8], durable: Bool = true) throws(LedgerError) {
        if let k = kind(of: path), k != S_IFREG {
            throw LedgerError(.io, "\(path) is \(describe(k)), not a regular file")
        }
        let tmp = path + ".tmp"
        unlink(tmp)
        let f = try FileHandleFD(path: tmp, flags: O_WRONLY | O_CREAT | O_EXCL)
        do throws(LedgerError) {
            try f.pwriteAll(bytes, at: 0)
            if durable { try f.sync() }
            guard rename(tmp, path) == 0 else { throw error("cannot rename into", path) }
        } catch {
            unlink(tmp)  // nothing half-written is left beside the file (a full disk, a web root)
            throw error
        }
        if durable { try syncDirectory(parent(of: path)) }
    }

    /// The folder that holds `path`.
    package static func parent(of path: String) -> String {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }

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

    package func truncate(to length: Int) throws(LedgerError) {
        guard ftruncate(fd, off_t(length)) == 0 else { throw Self.error("cannot truncate", path) }
    }

    /// fdatasync: the data and the size are on stable storage when it returns.
    package func sync() throws(LedgerError) {
        guard fdatasync(fd) == 0 else { throw Self.error("cannot fsync", path) }
    }

    /// Makes a directory's entries durable (after creating, renaming or removing something in it).
    package static func syncDirectory(_ path: String) throws(LedgerError) {
        let d = try FileHandleFD(directory: path)
        guard withExtendedLifetime(d, { fsync(d.fd) }) == 0 else { throw error("cannot fsync directory", path) }
        DurabilityProbe.record(path)
    }
}

/// An exclusive advisory lock on a log directory: one writer per log.
package final class DirectoryLock {
    let file: FileHandleFD
    /// Whether the `LOCK` file was created by this lock (the folder then needs an fsync to keep it).
    package let created: Bool

    package init(directory: String) throws(LedgerError) {
        let path = directory + "/LOCK"
        (file, created) = try FileHandleFD.openOrCreate(path, flags: O_RDWR)
        guard flock(file.fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? file.read(count: 32, at: 0)) ?? []
            let text = String(decoding: holder, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            // Only a process id is shown: the file is ours, but a stranger's bytes are never echoed.
            let pid = !text.isEmpty && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } ? text : "?"
            throw LedgerError(
                .locked,
                "\(directory) is locked by another writer (pid \(pid)); only one process may append to a log at a time")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(file.fd, 0)
        try? file.pwriteAll(pid, at: 0)
    }

    deinit { flock(file.fd, LOCK_UN) }
}

/// Records the directories fsynced under a watched folder, so that a test can check that every new folder and
/// file is made durable in its parent (a power cut cannot be staged in a test). Costs nothing unless watched.
package enum DurabilityProbe {
    private static let watched = Mutex<[String: [String]]>([:])

    /// Starts recording the fsyncs of `root` and of the folders under it.
    package static func watch(_ root: String) { watched.withLock { $0[root] = [] } }

    /// Stops recording under `root`; returns the directories fsynced there, in order.
    package static func stop(_ root: String) -> [String] { watched.withLock { $0.removeValue(forKey: root) ?? [] } }

    static func record(_ path: String) {
        watched.withLock { w in
            for root in w.keys where path == root || path.hasPrefix(root + "/") { w[root]!.append(path) }
        }
    }
}
