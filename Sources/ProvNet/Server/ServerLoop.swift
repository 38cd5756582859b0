import CShims
import Dispatch
import Glibc
import Synchronization

/// A message from another thread to the loop.
enum LoopMessage: Sendable {
    /// A handler's serialized response for a connection.
    case response(connection: UInt64, bytes: [UInt8], close: Bool)
    case shutdown
}

/// The event loop of one server: the listening socket, every connection, timeouts and shutdown.
final class ServerLoop: @unchecked Sendable {
    // Safe to share because of thread confinement: the `var`s below and every `ServerConnection` are read and written
    // only on the loop thread (inside `run()` and what it calls). Other threads reach the loop through `post`
    // (a Mutex-protected inbox and an eventfd write), `log`, and the atomics (`stopping`, `counters`).
    let configuration: HTTPServerConfiguration
    let handler: HTTPServer.Handler
    let tls: TLSContext?
    let counters = ServerCounters()
    let pool: WorkerPool
    let localAddress: SocketAddress
    let stopping = Atomic<Bool>(false)
    private let epfd: Int32
    private let wakefd: Int32
    private let listenfd: Int32
    /// Messages for the loop; `open` turns false when the loop has ended and closed its eventfd.
    private let inbox = Mutex<(messages: [LoopMessage], open: Bool)>(([], true))

    private static let wakeToken: UInt64 = 0
    private static let listenToken: UInt64 = 1

    private var connections: [UInt64: ServerConnection] = [:]
    /// Open connections per client address (the host, without the port).
    private var perAddress: [String: Int] = [:]
    /// Request body bytes reserved by connections now, and the most since memory was last given back.
    private var bodyBytes = 0
    private var bodyPeak = 0
    private var nextID: UInt64 = 2
    private var listenerPausedUntil: Instant?
    private var listenerOpen = true
    private var stopDeadline: Instant?
    private var nextSweep = Instant.now
    /// Scratch space for reads, shared by the connections (one thread).
    var scratch = [UInt8](repeating: 0, count: 64 * 1024)

    init(
        configuration: HTTPServerConfiguration, address: SocketAddress, tls: TLSContext?,
        handler: @escaping HTTPServer.Handler
    ) throws {
        self.configuration = configuration
        self.handler = handler
        self.tls = tls
        let ep = prov_epoll_create()
        guard ep >= 0 else { throw NetError.posix("epoll_create1") }
        let wake = prov_eventfd()
        guard wake >= 0 else {
            close(ep)
            throw NetError.posix("eventfd")
        }
        let listener: Int32
        do {
            listener = try Sockets.listen(on: address)
        } catch {
            close(ep)
            close(wake)
            throw error
        }
        epfd = ep
        wakefd = wake
        listenfd = listener
        localAddress = Sockets.localAddress(listener) ?? address
        _ = prov_epoll_ctl(ep, 1, wake, PROV_EPOLL_IN, Self.wakeToken)
        _ = prov_epoll_ctl(ep, 1, listener, PROV_EPOLL_IN, Self.listenToken)
        pool = WorkerPool(threads: configuration.workerThreads, name: "prov-net-worker")
    }

    // MARK: From any thread

    /// Queues a message and wakes the loop; dropped when the loop has ended (a response after shutdown).
    func post(_ message: LoopMessage) {
        inbox.withLock { box in
            guard box.open else { return }
            box.messages.append(message)
            // Signalled under the lock so that the eventfd cannot be closed (and its number reused) meanwhile.
            if box.messages.count == 1 { prov_eventfd_signal(wakefd) }
        }
    }

    func log(
        _ level: NetEvent.Level, _ kind: NetEvent.Kind, _ message: String, remote: SocketAddress? = nil,
        peerKey: [UInt8]? = nil
    ) {
        configuration.logger?(NetEvent(level: level, kind: kind, message: message, remote: remote, peerKey: peerKey))
    }

    // MARK: Loop thread

    func run() {
        var datas = [UInt64](repeating: 0, count: 256)
        var events = [UInt32](repeating: 0, count: 256)
        while true {
            let before = Instant.now
            let wait = before.milliseconds(until: nextWakeUp(before), cap: 1000)
            let n = prov_epoll_wait(epfd, &datas, &events, 256, wait)
            if n < 0 && errno != EINTR {
                log(.error, .connectionError, "epoll_wait failed: \(errnoText(errno))")
            }
            for i in 0..<max(0, Int(n)) {
                switch datas[i] {
                case Self.wakeToken:
                    prov_eventfd_drain(wakefd)
                    drainInbox()
                case Self.listenToken:
                    acceptConnections()
                default:
                    connections[datas[i]]?.handle(events: events[i])
                }
            }
            let now = Instant.now
            if let until = listenerPausedUntil, now >= until, listenerOpen {
                listenerPausedUntil = nil
                _ = prov_epoll_ctl(epfd, 1, listenfd, PROV_EPOLL_IN, Self.listenToken)
            }
            if now >= nextSweep { sweep(now) }
            if let end = stopDeadline, connections.isEmpty || now >= end { break }
        }
        for c in Array(connections.values) { c.close() }
        let grace = stopDeadline.map { Instant.now.milliseconds(until: $0, cap: 60_000) } ?? 0
        pool.stop(waitingUntil: .now() + .milliseconds(Int(max(grace, 200))))
        close(epfd)
        inbox.withLock { box in
            box.open = false
            box.messages.removeAll()
            close(wakefd)
        }
        log(.info, .stopped, "stopped listening on \(localAddress)")
    }

    private func nextWakeUp(_ now: Instant) -> Instant {
        var t = nextSweep
        if let p = listenerPausedUntil, p < t { t = p }
        return t
    }

    /// Lowers the next sweep to `deadline` when it is earlier.
    func scheduleSweep(at deadline: Instant) {
        if deadline < nextSweep { nextSweep = deadline }
    }

    /// Times out the connections whose deadline passed; schedules the next sweep at the earliest deadline left.
    private func sweep(_ now: Instant) {
        var earliest = now + .seconds(1)
        for c in Array(connections.values) {
            if c.deadline <= now { c.timedOut() }
            if !c.isClosed && c.deadline < earliest { earliest = c.deadline }
        }
        // At most one sweep per millisecond, however close the deadlines.
        let floor = now + .milliseconds(1)
        nextSweep = earliest < floor ? floor : earliest
    }

    private func drainInbox() {
        let messages = inbox.withLock { box -> [LoopMessage] in
            let m = box.messages
            box.messages.removeAll()
            return m
        }
        for m in messages {
            switch m {
            case .response(let id, let bytes, let close):
                connections[id]?.deliver(bytes, close: close)
            case .shutdown:
                beginShutdown()
            }
        }
    }

    private func acceptConnections() {
        for _ in 0..<64 {
            switch Sockets.accept(listenfd) {
            case .success(nil):
                return
            case .success(let (fd, remote)?):
                counters.accepted.increment()
                guard makeRoom(for: remote) else {
                    counters.overCapacity.increment()  // before the close a client may be waiting for
                    Glibc.close(fd)
                    continue
                }
                Sockets.setNoDelay(fd)
                let id = nextID
                nextID += 1
                let session: TLSSession?
                do {
                    session = try tls.map { try TLSSession(context: $0, fd: fd) }
                } catch {
                    Glibc.close(fd)
                    log(.error, .handshakeFailed, "cannot start TLS: \(error)", remote: remote)
                    continue
                }
                let c = ServerConnection(loop: self, id: id, fd: fd, remote: remote, tls: session)
                guard prov_epoll_ctl(epfd, 1, fd, PROV_EPOLL_IN, id) == 0 else {
                    log(.error, .connectionError, "epoll_ctl add failed: \(errnoText(errno))", remote: remote)
                    Glibc.close(fd)
                    continue
                }
                connections[id] = c
                perAddress[remote.host, default: 0] += 1
                counters.open.increment()
                c.start()
            case .failure(let error):
                // Out of descriptors or memory: pause the listener instead of spinning on it.
                log(.error, .acceptFailed, "\(error.reason); not accepting for 100 ms")
                _ = prov_epoll_ctl(epfd, 2, listenfd, 0, Self.listenToken)
                listenerPausedUntil = Instant.now + .milliseconds(100)
                return
            }
        }
    }

    /// Whether a connection from `remote` may be accepted: under both caps, or once an idle connection made room
    /// (Specs/transport.md §Connections). Logs why not.
    private func makeRoom(for remote: SocketAddress) -> Bool {
        let c = configuration
        if perAddress[remote.host, default: 0] >= c.maxConnectionsPerAddress {
            guard let victim = longestIdle(of: remote.host) else {
                log(
                    .warning, .overCapacity,
                    "closed a new connection: its address holds \(c.maxConnectionsPerAddress) connections, none idle",
                    remote: remote)
                return false
            }
            evict(victim)
        }
        if connections.count >= c.maxConnections {
            // The address that holds the most gives up its longest-idle connection (one pass over the connections).
            var victim: ServerConnection?
            var held = -1
            for conn in connections.values {
                guard let since = conn.idleSince else { continue }
                let n = perAddress[conn.remote.host] ?? 0
                if n > held || (n == held && since < victim!.idleSince!) {
                    victim = conn
                    held = n
                }
            }
            guard let victim else {
                log(
                    .warning, .overCapacity,
                    "closed a new connection: \(c.maxConnections) connections are open, none idle",
                    remote: remote)
                return false
            }
            evict(victim)
        }
        return true
    }

    private func longestIdle(of host: String) -> ServerConnection? {
        var best: ServerConnection?
        for conn in connections.values where conn.remote.host == host {
            guard let since = conn.idleSince else { continue }
            if best == nil || since < best!.idleSince! { best = conn }
        }
        return best
    }

    private func evict(_ c: ServerConnection) {
        counters.evicted.increment()
        log(.info, .evicted, "closed an idle connection to make room for a new one", remote: c.remote)
        c.close()
    }

    /// Reserves `bytes` of the body budget for a request about to be read; false when that would pass the budget.
    func reserveBody(_ bytes: Int) -> Bool {
        guard bytes > 0 else { return true }
        guard bodyBytes + bytes <= configuration.maxBufferedBodyBytes else { return false }
        bodyBytes += bytes
        bodyPeak = max(bodyPeak, bodyBytes)
        counters.bufferedBodyBytes.store(bodyBytes, ordering: .relaxed)
        return true
    }

    /// Gives back a reservation. When nothing is held any more after a burst of large bodies, the freed memory goes
    /// back to the system (glibc keeps it otherwise).
    func releaseBody(_ bytes: Int) {
        guard bytes > 0 else { return }
        bodyBytes -= bytes
        counters.bufferedBodyBytes.store(bodyBytes, ordering: .relaxed)
        if bodyBytes == 0 && bodyPeak >= 4 << 20 {
            bodyPeak = 0
            prov_malloc_trim()
        }
    }

    /// Changes the events a connection is polled for.
    func setInterest(_ c: ServerConnection, _ events: UInt32) {
        _ = prov_epoll_ctl(epfd, 3, c.fd, events, c.id)
    }

    /// Forgets a connection and closes its socket.
    func remove(_ c: ServerConnection) {
        _ = prov_epoll_ctl(epfd, 2, c.fd, 0, c.id)
        Glibc.close(c.fd)
        if connections.removeValue(forKey: c.id) != nil {
            counters.open.decrement()
            let left = (perAddress[c.remote.host] ?? 1) - 1
            perAddress[c.remote.host] = left > 0 ? left : nil
        }
    }

    private func beginShutdown() {
        guard stopDeadline == nil else { return }
        stopping.store(true, ordering: .relaxed)
        stopDeadline = Instant.now + configuration.timeouts.shutdownGrace
        if listenerOpen {
            listenerOpen = false
            _ = prov_epoll_ctl(epfd, 2, listenfd, 0, Self.listenToken)
            close(listenfd)
        }
        var inFlight = 0
        for c in Array(connections.values) where c.serverStopping() { inFlight += 1 }
        log(
            .info, .stopping,
            "stopped accepting on \(localAddress); waiting up to \(configuration.timeouts.shutdownGrace) for "
                + "\(inFlight) request(s) in flight")
    }
}
