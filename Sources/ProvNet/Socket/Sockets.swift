import CShims
import Glibc

/// Socket system calls, on non-blocking, close-on-exec descriptors.
enum Sockets {
    /// A listening socket bound to `address`, non-blocking.
    static func listen(on address: SocketAddress, backlog: Int32 = 511) throws -> Int32 {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NetError.posix("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = address.withSockAddr { bind(fd, $0, $1) }
        guard rc == 0 else {
            let e = errno
            close(fd)
            if e == EADDRINUSE {
                throw NetError(.addressInUse, "cannot listen on \(address): the address is already in use")
            }
            throw NetError.posix("cannot bind \(address)", errno: e)
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let e = errno
            close(fd)
            throw NetError.posix("cannot listen on \(address)", errno: e)
        }
        return fd
    }

    /// Accepts one connection, non-blocking and close-on-exec; nil when none is pending, or an errno value.
    static func accept(_ listener: Int32) -> Result<(Int32, SocketAddress)?, NetError> {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &storage) { prov_accept(listener, $0, &len) }
        if fd < 0 {
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED || e == EPROTO {
                return .success(nil)
            }
            return .failure(NetError.posix("accept", errno: e))
        }
        return .success((fd, SocketAddress(storage: storage, length: len)))
    }

    /// The address a socket is bound to.
    static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return rc == 0 ? SocketAddress(storage: storage, length: len) : nil
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Connects to `address` within `deadline`, non-blocking; returns the connected descriptor.
    static func connect(to address: SocketAddress, deadline: Instant, cancel: Int32 = -1) throws -> Int32 {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NetError.posix("socket") }
        var ok = false
        defer { if !ok { close(fd) } }
        let rc = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        if rc != 0 {
            guard errno == EINPROGRESS || errno == EINTR else {
                throw NetError.posix("cannot connect to \(address)")
            }
            guard try waitFor(fd, events: Int16(POLLOUT), deadline: deadline, cancel: cancel) else {
                throw NetError(.timeout, "connecting to \(address) timed out")
            }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 { throw NetError.posix("cannot connect to \(address)", errno: err) }
        }
        setNoDelay(fd)
        ok = true
        return fd
    }

    /// Waits until `fd` is ready for `events` or `deadline` passes; false on timeout. Error and hang-up conditions
    /// count as ready (the next read or write reports them). Throws `.cancelled` when `cancel` (an eventfd, or -1)
    /// becomes readable first.
    static func waitFor(_ fd: Int32, events: Int16, deadline: Instant, cancel: Int32 = -1) throws -> Bool {
        while true {
            let now = Instant.now
            if now >= deadline { return false }
            var p = [pollfd(fd: fd, events: events, revents: 0), pollfd(fd: cancel, events: Int16(POLLIN), revents: 0)]
            let n = poll(&p, cancel >= 0 ? 2 : 1, now.milliseconds(until: deadline, cap: 60_000))
            if n > 0 {
                if cancel >= 0 && p[1].revents != 0 { throw NetError(.cancelled, "the client was shut down") }
                return true
            }
            if n < 0 && errno != EINTR { throw NetError.posix("poll") }
        }
    }

    /// True when a kept-alive client connection has something to read (the server closed it, or sent bytes
    /// nobody asked for): either way it cannot carry the next request.
    static func isReadable(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) != 0
    }
}
