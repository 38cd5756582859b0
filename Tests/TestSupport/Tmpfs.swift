import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A small tmpfs mounted over a folder for one test: a disk that fills up. Needs root (CI runs as root); suites
/// that use it are enabled only when `mountable`.
public struct Tmpfs: Sendable {
    public let path: String

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public init(at path: String, size: String) throws {
        guard mount("tmpfs", path, "tmpfs", 0, "size=\(size)") == 0 else {
            throw Failure(description: "cannot mount a tmpfs at \(path): \(String(cString: strerror(errno)))")
        }
        self.path = path
    }

    /// Gives the file system `size` in all (a disk that was grown, or had room made on it), keeping its files.
    public func grow(to size: String) throws {
        guard mount("tmpfs", path, "tmpfs", UInt(MS_REMOUNT), "size=\(size)") == 0 else {
            throw Failure(description: "cannot grow the tmpfs at \(path): \(String(cString: strerror(errno)))")
        }
    }

    public func unmount() {
        if umount2(path, 0) != 0 { _ = umount2(path, Int32(MNT_DETACH)) }
    }

    /// Whether this process may mount one (root, with the capability to mount).
    public static let mountable: Bool = {
        guard getuid() == 0 else { return false }
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("prov-mount-\(UUID().uuidString)")
            .path
        guard mkdir(probe, 0o700) == 0 else { return false }
        defer { rmdir(probe) }
        guard mount("tmpfs", probe, "tmpfs", 0, "size=64k") == 0 else { return false }
        umount2(probe, 0)
        return true
    }()

    /// Writes `path` until the file system has no byte left.
    public static func fill(_ path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(description: "cannot create \(path)") }
        defer { close(fd) }
        for chunk in [1 << 20, 4096, 1] {
            let block = [UInt8](repeating: 0x55, count: chunk)
            while block.withUnsafeBytes({ write(fd, $0.baseAddress!, chunk) }) == chunk {}
        }
        guard errno == ENOSPC else {
            throw Failure(description: "filling \(path): \(String(cString: strerror(errno)))")
        }
    }
}
