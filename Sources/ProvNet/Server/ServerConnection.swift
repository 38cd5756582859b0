import CShims
import Glibc
import ProvCrypto

/// One server connection's state machine. Lives on the loop thread only.
///
/// handshaking → readingHead → readingBody → handling → writing → readingHead (kept alive) or lingering → closed.
final class ServerConnection {
    enum State {
        case handshaking, readingHead, readingBody, handling, writing, lingering, closed
    }

    unowned let loop: ServerLoop
    let id: UInt64
    let fd: Int32
    let remote: SocketAddress
    private let tls: TLSSession?
    private(set) var state = State.readingHead
    /// When the current phase times out.
    private(set) var deadline = Instant.now
    private var interest: UInt32 = PROV_EPOLL_IN
    private var input: [UInt8] = []
    private var parser: HTTPRequestParser
    private var head: HTTPRequestHead?
    private var headLength = 0
    private var requestStarted = false
    private var firstRequest = true
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var closeAfterWrite = false
    /// Whether the bytes being written are a response the handler gave (counted in `responses`).
    private var writingHandlerResponse = false
    private var peerKey: Ed25519PublicKey?
    private var lingerBytes = 0
    /// Body bytes of the current request reserved from the server's budget, given back once it is answered.
    private var reservedBody = 0
    /// Since when the connection has been waiting for a request that has not started (or for its TLS handshake);
    /// nil while a request is in progress. Idle connections are the first to go at a connection cap.
    private(set) var idleSince: Instant? = .now

    /// Bytes discarded after a closing response before the socket is closed, and for how long (so the client reads
    /// the response instead of a reset).
    private static let lingerLimit = 64 * 1024
    private static let lingerTime = Duration.seconds(2)

    var isClosed: Bool { state == .closed }

    init(loop: ServerLoop, id: UInt64, fd: Int32, remote: SocketAddress, tls: TLSSession?) {
        self.loop = loop
        self.id = id
        self.fd = fd
        self.remote = remote
        self.tls = tls
        parser = HTTPRequestParser(limits: loop.configuration.limits)
    }

    private var timeouts: HTTPServerTimeouts { loop.configuration.timeouts }

    private func setDeadline(_ d: Instant) {
        deadline = d
        loop.scheduleSweep(at: d)
    }

    private func want(_ events: UInt32) {
        guard events != interest, state != .closed else { return }
        interest = events
        loop.setInterest(self, events)
    }

    func start() {
        if tls != nil {
            state = .handshaking
            setDeadline(Instant.now + timeouts.handshake)
        } else {
            enterReadingHead()
        }
        drive()
    }

    func handle(events: UInt32) {
        guard state != .closed else { return }
        if state == .handling && events & (PROV_EPOLL_ERR | PROV_EPOLL_HUP) != 0 {
            close()  // the client is gone; its late response will find no connection
            return
        }
        drive()
    }

    // MARK: The state machine

    private enum IO {
        case progress, blocked(UInt32), eof, failed(String)
    }

    private func drive() {
        while true {
            switch state {
            case .closed:
                return
            case .handshaking:
                guard let tls else { return }
                switch tls.handshake() {
                case .done:
                    peerKey = tls.peerKey
                    enterReadingHead()
                case .wantRead: return want(PROV_EPOLL_IN)
                case .wantWrite: return want(PROV_EPOLL_OUT)
                case .closed:
                    loop.counters.handshakeFailed.increment()
                    loop.log(.info, .handshakeFailed, "TLS handshake: the client closed the connection", remote: remote)
                    return close()
                case .failed(let f):
                    if f.kind == .error {
                        loop.counters.handshakeFailed.increment()
                        loop.log(.warning, .handshakeFailed, "TLS handshake failed: \(f.reason)", remote: remote)
                    } else {
                        loop.counters.handshakeRefused.increment()
                        let what = f.kind == .refusedPeer ? "refused" : "refused by the client"
                        loop.log(
                            .warning, .handshakeRefused, "TLS handshake \(what): \(f.reason)", remote: remote,
                            peerKey: f.peerKey)
                    }
                    // The alert is sent; no application data is read. Linger so the client reads the alert.
                    return linger(sendCloseNotify: false)
                }
            case .readingHead, .readingBody:
                if processInput() { continue }
                switch readSome() {
                case .progress: continue
                case .blocked(let events): return want(events)
                case .eof:
                    return close()  // between requests: the client is done; within one: it gave up
                case .failed(let why):
                    loop.log(.debug, .connectionError, "read failed: \(why)", remote: remote)
                    return close()
                }
            case .handling:
                return want(0)
            case .writing:
                switch flush() {
                case .progress:
                    finishedWriting()
                case .blocked(let events): return want(events)
                case .eof, .failed:
                    return close()
                }
            case .lingering:
                switch discardInput() {
                case .progress: continue
                case .blocked(let events): return want(events)
                case .eof, .failed: return close()
                }
            }
        }
    }

    private func enterReadingHead() {
        state = .readingHead
        parser.reset()
        head = nil
        requestStarted = false
        let now = Instant.now
        idleSince = input.isEmpty ? now : nil
        if firstRequest {
            // The first request's head must arrive within the header timeout of the connection being ready: this
            // also drops a client that connects and sends nothing.
            setDeadline(now + timeouts.header)
        } else if input.isEmpty {
            setDeadline(now + timeouts.idle)
        } else {
            requestStarted = true
            setDeadline(now + timeouts.header)
        }
    }

    /// Parses what the buffer holds; true when the state changed.
    private func processInput() -> Bool {
        if state == .readingHead {
            if !requestStarted && parser.hasStarted(input.count) {
                requestStarted = true
                idleSince = nil
                if !firstRequest { setDeadline(Instant.now + timeouts.header) }
            }
            let parsed = input.withUnsafeBytes { parser.parseHeadResult($0) }
            guard case .success(let found) = parsed else {
                if case .failure(let error) = parsed { reject(error) }
                return true
            }
            guard let (h, length) = found else { return false }
            head = h
            headLength = length
            idleSince = nil
            // Nothing of the body is read before the request is admitted: a refused one is answered and closed.
            if let refusal = admit(h) {
                refuse(refusal, head: h)
                return true
            }
            state = .readingBody
            setDeadline(Instant.now + timeouts.body)
            if h.expectsContinue && input.count < length + h.contentLength {
                sendContinue()
                if state == .closed { return true }
            }
        }
        guard let h = head, input.count >= headLength + h.contentLength else { return false }
        dispatch(h)
        return true
    }

    /// The server's check of the head (token, route, size), then the body budget; the response that refuses the
    /// request, or nil when its body may be read.
    private func admit(_ h: HTTPRequestHead) -> HTTPResponse? {
        if let check = loop.configuration.headCheck {
            let request = HTTPRequest(
                method: h.method, target: h.target, path: h.path, query: h.query, headers: h.headers, body: [],
                remoteAddress: remote, peerKey: peerKey)
            if let r = check(request, h.contentLength) {
                loop.counters.refusedOnHead.increment()
                loop.log(.info, .refused, "refused a request on its head with \(r.status)", remote: remote)
                return r
            }
        }
        guard loop.reserveBody(h.contentLength) else {
            loop.counters.overBudget.increment()
            loop.log(
                .warning, .refused,
                "refused a request with 503: its body would pass the budget of \(loop.configuration.maxBufferedBodyBytes) "
                    + "bytes held at once", remote: remote)
            var r = HTTPResponse.text(503, "the server holds too many request bodies now: retry shortly\n")
            r.headers.set("Retry-After", "1")
            return r
        }
        reservedBody = h.contentLength
        return nil
    }

    /// Answers a request refused on its head and closes: its body, if any, is never read (what the client sends
    /// meanwhile is discarded, within the linger's bounds).
    private func refuse(_ response: HTTPResponse, head h: HTTPRequestHead) {
        let bytes =
            response.serialized(headRequest: h.method == "HEAD", close: true, date: HTTPDate.now)
            ?? HTTPResponse.text(500, "internal error\n").serialized(
                headRequest: false, close: true, date: HTTPDate.now)
            ?? []
        startWriting(bytes, close: true, fromHandler: false)
        want(PROV_EPOLL_OUT)
    }

    private func releaseBody() {
        loop.releaseBody(reservedBody)
        reservedBody = 0
    }

    /// The interim 100 (RFC 9110 §10.1.1), written at once: a fresh connection's socket buffer takes 25 bytes.
    private func sendContinue() {
        let bytes = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
        let complete = bytes.withUnsafeBytes { buf -> Bool in
            if let tls {
                if case .done(let n) = tls.write(buf), n == buf.count { return true }
                return false
            }
            return send(fd, buf.baseAddress, buf.count, Int32(MSG_NOSIGNAL)) == buf.count
        }
        if !complete { close() }
    }

    private func dispatch(_ h: HTTPRequestHead) {
        let end = headLength + h.contentLength
        let body = Array(input[headLength..<end])
        input.removeFirst(end)
        if input.isEmpty && input.capacity > 256 * 1024 { input = [] }
        firstRequest = false
        head = nil
        state = .handling
        setDeadline(Instant.now + timeouts.handler)
        want(0)
        loop.counters.requests.increment()
        let request = HTTPRequest(
            method: h.method, target: h.target, path: h.path, query: h.query, headers: h.headers, body: body,
            remoteAddress: remote, peerKey: peerKey)
        let responder = HTTPResponder(
            loop: loop, connectionID: id, headRequest: h.method == "HEAD", clientAsksClose: !h.keepAlive)
        let handler = loop.handler
        loop.pool.submit { handler(request, responder) }
    }

    /// A response from the handler (through the loop's inbox).
    func deliver(_ bytes: [UInt8], close: Bool) {
        guard state == .handling else { return }  // timed out meanwhile: the 503 went instead
        releaseBody()
        startWriting(bytes, close: close || loop.stopping.load(ordering: .relaxed), fromHandler: true)
        drive()
    }

    private func startWriting(_ bytes: [UInt8], close: Bool, fromHandler: Bool) {
        output = bytes
        outputOffset = 0
        closeAfterWrite = close
        writingHandlerResponse = fromHandler
        state = .writing
        setDeadline(Instant.now + timeouts.write)
    }

    private func finishedWriting() {
        output = []
        outputOffset = 0
        if writingHandlerResponse { loop.counters.responses.increment() }
        if closeAfterWrite || loop.stopping.load(ordering: .relaxed) {
            linger(sendCloseNotify: true)
        } else {
            enterReadingHead()
        }
    }

    /// Answers a request the parser refused, then closes (Specs/transport.md §Status codes).
    private func reject(_ error: HTTPParseError) {
        let tooLarge = [413, 414, 431].contains(error.status)
        if tooLarge { loop.counters.tooLarge.increment() } else { loop.counters.badRequest.increment() }
        loop.log(
            .info, tooLarge ? .tooLarge : .badRequest, "refused a request with \(error.status): \(error.reason)",
            remote: remote)
        respondAndClose(HTTPResponse.text(error.status, error.reason + "\n"))
    }

    private func respondAndClose(_ response: HTTPResponse) {
        let bytes = response.serialized(headRequest: false, close: true, date: HTTPDate.now) ?? []
        startWriting(bytes, close: true, fromHandler: false)
        want(PROV_EPOLL_OUT)
    }

    // MARK: Timeouts and shutdown

    func timedOut() {
        switch state {
        case .closed:
            return
        case .handshaking:
            countTimeout("no TLS handshake within \(timeouts.handshake)")
            close()
        case .readingHead:
            if !requestStarted && !firstRequest {
                close()
                loop.log(.debug, .idleClosed, "closed a connection idle for \(timeouts.idle)", remote: remote)
            } else if !requestStarted {
                countTimeout("no request within \(timeouts.header) of connecting")
                close()
            } else {
                countTimeout("the request head did not arrive within \(timeouts.header)")
                respondAndClose(HTTPResponse.text(408, "the request head took too long\n"))
                drive()
            }
        case .readingBody:
            countTimeout("the request body did not arrive within \(timeouts.body)")
            respondAndClose(HTTPResponse.text(408, "the request body took too long\n"))
            drive()
        case .handling:
            countTimeout("the handler did not answer within \(timeouts.handler)")
            releaseBody()
            respondAndClose(HTTPResponse.text(503, "the server did not answer in time\n"))
            drive()
        case .writing:
            countTimeout("the client did not read the response for \(timeouts.write)")
            close()
        case .lingering:
            close()
        }
    }

    private func countTimeout(_ why: String) {
        loop.counters.timeouts.increment()
        loop.log(.info, .timeout, "dropped a connection: \(why)", remote: remote)
    }

    /// The server is shutting down: close what has no request in flight; answer the rest, then close.
    /// Returns whether the connection stays open for a request in flight.
    func serverStopping() -> Bool {
        switch state {
        case .handling, .writing:
            closeAfterWrite = true
            return true
        case .lingering, .closed:
            return false
        case .handshaking, .readingHead, .readingBody:
            close()
            return false
        }
    }

    // MARK: I/O

    private func readSome() -> IO {
        let room: Int
        if state == .readingBody, let h = head {
            room = max(1, min(loop.scratch.count, headLength + h.contentLength - input.count))
        } else {
            room = min(loop.scratch.count, 16 * 1024)
        }
        return loop.scratch.withUnsafeMutableBytes { raw -> IO in
            let buf = UnsafeMutableRawBufferPointer(rebasing: raw[..<room])
            if let tls {
                switch tls.read(into: buf) {
                case .done(let n):
                    input.append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[..<n]))
                    return .progress
                case .wantRead: return .blocked(PROV_EPOLL_IN)
                case .wantWrite: return .blocked(PROV_EPOLL_OUT)
                case .closed: return .eof
                case .failed(let f): return .failed(f.reason)
                }
            }
            let n = recv(fd, buf.baseAddress, buf.count, 0)
            if n > 0 {
                input.append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[..<n]))
                return .progress
            }
            if n == 0 { return .eof }
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return .blocked(PROV_EPOLL_IN) }
            return .failed(errnoText(errno))
        }
    }

    /// Writes the pending output; `.progress` once all of it is written.
    private func flush() -> IO {
        while outputOffset < output.count {
            let result = output.withUnsafeBytes { raw -> IO in
                let rest = UnsafeRawBufferPointer(rebasing: raw[outputOffset...])
                if let tls {
                    switch tls.write(rest) {
                    case .done(let n):
                        outputOffset += n
                        return .progress
                    case .wantWrite: return .blocked(PROV_EPOLL_OUT)
                    case .wantRead: return .blocked(PROV_EPOLL_IN)
                    case .closed: return .eof
                    case .failed(let f): return .failed(f.reason)
                    }
                }
                let n = send(fd, rest.baseAddress, rest.count, Int32(MSG_NOSIGNAL))
                if n > 0 {
                    outputOffset += n
                    return .progress
                }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    return .blocked(PROV_EPOLL_OUT)
                }
                return .failed(n == 0 ? "send wrote nothing" : errnoText(errno))
            }
            guard case .progress = result else { return result }
            setDeadline(Instant.now + timeouts.write)  // a stalled write times out, a slow one does not
        }
        return .progress
    }

    /// Ends our side (close_notify and FIN), then discards what the client still sends, for a bounded time and
    /// number of bytes, so that closing does not reset the connection before the client read our last bytes.
    private func linger(sendCloseNotify: Bool) {
        if sendCloseNotify { tls?.shutdown() }
        Glibc.shutdown(fd, Int32(SHUT_WR))
        state = .lingering
        lingerBytes = 0
        setDeadline(Instant.now + Self.lingerTime)
    }

    private func discardInput() -> IO {
        loop.scratch.withUnsafeMutableBytes { raw -> IO in
            let n = recv(fd, raw.baseAddress, raw.count, 0)
            if n > 0 {
                lingerBytes += n
                return lingerBytes >= Self.lingerLimit ? .eof : .progress
            }
            if n == 0 { return .eof }
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return .blocked(PROV_EPOLL_IN) }
            return .failed(errnoText(errno))
        }
    }

    func close() {
        guard state != .closed else { return }
        releaseBody()
        state = .closed
        loop.remove(self)
    }
}
