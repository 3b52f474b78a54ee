import Dispatch
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// One accepted connection. Every mutable property is confined to `queue`
/// (a serial queue), which is why the class may be `@unchecked Sendable`:
/// other threads only ever enqueue work on it.
package final class ServerConnection: @unchecked Sendable {
    private enum Phase {
        case awaitingPreface, open, draining
        /// Our side is half-closed after the last bytes went out; what the peer
        /// still sends is read and discarded until it closes (or the linger
        /// ends), so that closing never resets the connection and destroys a
        /// go-away the peer has not read yet.
        case lingering
        case closed
    }

    private let fd: Int32
    private let id: UInt64
    private unowned let server: RPCServer
    private let config: RPCServerConfiguration
    private let queue: DispatchQueue
    private let peer: String
    /// The peer's address without its port: the key of the per-peer limit.
    let peerHost: String
    private var logger: Logger

    private var phase = Phase.awaitingPreface
    private var readSource: (any DispatchSourceRead)?
    private var writeSource: (any DispatchSourceWrite)?
    private var writeSourceActive = false
    private var readPaused = false
    private var housekeeping: (any DispatchSourceTimer)?

    private var preface: [UInt8] = []
    private var decoder: FrameDecoder
    private let readBuffer: UnsafeMutableRawBufferPointer
    private var out: [UInt8] = []
    private var outSent = 0
    private var closeWhenFlushed = false
    private var flushScheduled = false

    /// TLS, when the port has it: the context, then the session once the
    /// peer's first byte showed a TLS record. `out` holds plaintext; the
    /// records made from it wait in `cipherOut` (at most one slice of `out`
    /// plus handshake records, so TLS adds a bounded amount per connection).
    private let tlsContext: TLSContext?
    private var tls: TLSSession?
    private var tlsFailed = false
    private var plaintextRefused = false
    private var cipherOut: [UInt8] = []
    private var cipherSent = 0

    private var calls: [UInt64: ServerCall] = [:]
    /// While a frame is handled: whether another request is already buffered behind it.
    private var moreFramesBuffered = false
    private var lastCallID: UInt64 = 0
    private let openedAt = monotonicNanos()
    /// When the last call began or ended: what the idle timeout counts from
    /// (bytes alone, pings included, do not keep a connection alive).
    private var lastCallActivity = monotonicNanos()
    /// When the first byte of the frame now being received arrived.
    private var frameStartedAt: UInt64?

    /// Output bytes reserved by pool calls in flight, each for
    /// `answerEstimate` bytes: their answers count against the output bound
    /// before they exist, so a peer that pipelines calls and never reads cannot
    /// start more calls than the bound has room for.
    private var reservedOutBytes = 0
    /// A running estimate of one answer's size on this connection: jumps to
    /// the largest answer seen, then decays slowly towards a floor.
    private var answerEstimate: Int
    private var largestBuffered = 0

    init(fd: Int32, id: UInt64, peer: Socket.PeerAddress, server: RPCServer, tls: TLSContext?) {
        self.fd = fd
        self.tlsContext = tls
        self.id = id
        self.server = server
        self.config = server.configuration
        self.queue = DispatchQueue(label: "rpc.connection", target: RPCServer.connectionTarget)
        self.peer = peer.description
        self.peerHost = peer.host
        self.answerEstimate = Self.initialAnswerEstimate(server.configuration)
        self.decoder = FrameDecoder(maxFrameSize: server.configuration.maxFrameBytes)
        self.readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        var logger = server.logger
        logger[metadataKey: "connection"] = "\(id)"
        logger[metadataKey: "peer"] = "\(peer)"
        logger[metadataKey: "fd"] = "\(fd)"
        self.logger = logger
    }

    deinit {
        readBuffer.deallocate()
    }

    func start() {
        queue.async { [self] in
            let rs = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
            rs.setEventHandler { self.readable() }
            // The descriptor is closed once both sources on it are gone (see DescriptorRelease).
            let release = DescriptorRelease(fd: fd, sources: 2)
            rs.setCancelHandler { release.sourceCancelled() }
            readSource = rs
            let ws = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
            ws.setEventHandler { self.flush() }
            ws.setCancelHandler { release.sourceCancelled() }
            writeSource = ws  // resumed only while a write is blocked (EAGAIN)
            let tick = max(0.05, min(config.idleTimeoutSeconds, config.frameTimeoutSeconds, config.firstCallTimeoutSeconds) / 4)
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.schedule(deadline: .now() + tick, repeating: tick, leeway: .milliseconds(Int(tick * 250)))
            timer.setEventHandler { self.housekeep() }
            housekeeping = timer
            timer.resume()
            rs.resume()
            logger.debug("connection opened")
        }
    }

    // MARK: - Reading

    private func readable() {
        guard phase != .closed else { return }
        if phase == .lingering { return discardUntilClosed() }
        var budget = 16
        while budget > 0, phase != .closed, !readPaused {
            budget -= 1
            let n = recv(fd, readBuffer.baseAddress, readBuffer.count, 0)
            if n > 0 {
                if tlsContext == nil {
                    received(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]))
                } else {
                    receivedOnTLSPort(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]))
                }
                if n < readBuffer.count { break }
            } else if n == 0 {
                peerClosed()
                break
            } else {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                logger.debug("read failed", metadata: ["errno": "\(errno)"])
                teardown()
                return
            }
        }
        flush()
    }

    // MARK: - TLS

    /// Ciphertext from the peer (in `readBuffer`, which is free again once fed).
    private func receivedOnTLSPort(_ bytes: UnsafeRawBufferPointer) {
        guard let tlsContext, !plaintextRefused, !tlsFailed else { return }
        if tls == nil {
            guard let first = bytes.first else { return }
            // A TLS connection opens with a handshake record (content type 22).
            guard first == 0x16 else { return refusePlaintext(first) }
            do {
                tls = try TLSSession(context: tlsContext)
            } catch {
                logger.error("cannot start TLS", metadata: ["error": "\(error)"])
                return teardown()
            }
        }
        guard let tls else { return }
        var announced = tls.isEstablished
        func announce() {
            guard !announced, tls.isEstablished else { return }
            announced = true
            logger.debug("TLS established", metadata: ["version": "\(tls.version)", "client": "\(tls.peerSubject ?? "-")"])
        }
        tls.feed(bytes)
        do {
            let state = try tls.read(into: readBuffer) { plain in
                announce()
                guard phase != .closed else { return }
                received(plain)
            }
            announce()
            if state == .closedByPeer { peerClosed() }
        } catch {
            // The alert OpenSSL queued goes out; nothing else will.
            tlsFailed = true
            logger.notice("TLS failed; closing", metadata: ["error": "\(error)"])
            failAllCalls(RPCError(.unavailable, "connection closed: \(error)"))
            closeAfterFlush()
        }
    }

    /// A peer that speaks plaintext to a TLS port is told so in its own
    /// language when it is ours (a preface and a go-away) or HTTP (a 400).
    private func refusePlaintext(_ first: UInt8) {
        plaintextRefused = true
        if first == UInt8(ascii: "S") {
            out.append(contentsOf: Preface.bytes)
            goAwayAndClose(.unavailable, "this port requires TLS; connect with TLS (sessionctl --tls-ca FILE)")
        } else if (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(first) {
            logger.notice("refused a plaintext HTTP request on the TLS port")
            out.append(contentsOf: Self.httpsRequired)
            closeAfterFlush()
        } else {
            logger.notice("refused a connection that is neither TLS nor this protocol")
            teardown()
        }
    }

    static let httpsRequired: [UInt8] = {
        let body = "This port requires TLS: use https://.\r\n"
        return Array(("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body).utf8)
    }()

    /// Sends `out`, through TLS when the connection has it; true once all of
    /// it is gone (false: the socket is full and the write source will call
    /// back, or the connection closed).
    private func transmit() -> Bool {
        guard let tls else { return sendBuffered(cipher: false) }
        repeat {
            guard sendBuffered(cipher: true) else { return false }
            cipherOut.removeAll(keepingCapacity: cipherOut.capacity <= 4 * TLSSession.sliceBytes)
            cipherSent = 0
            do {
                if tlsFailed {
                    tls.takeOutput(into: &cipherOut)  // the alert of the failure, if any
                } else {
                    try tls.seal(out, sent: &outSent, into: &cipherOut)
                }
            } catch {
                tlsFailed = true
                logger.notice("TLS failed; closing", metadata: ["error": "\(error)"])
                tls.takeOutput(into: &cipherOut)  // the alert
            }
        } while !cipherOut.isEmpty
        // After a failure nothing more can be encrypted: what is left is dropped.
        return outSent >= out.count || tlsFailed
    }

    /// Writes the rest of `out` (or of `cipherOut`); true once all of it is written.
    private func sendBuffered(cipher: Bool) -> Bool {
        let outcome = cipher ? Socket.write(fd, cipherOut, sent: &cipherSent) : Socket.write(fd, out, sent: &outSent)
        switch outcome {
        case .done:
            return true
        case .wouldBlock:
            if !writeSourceActive {
                writeSourceActive = true
                writeSource?.resume()
            }
            return false
        case .failed(let code):
            logger.debug("write failed", metadata: ["errno": "\(code)"])
            teardown()
            return false
        }
    }

    private func peerClosed() {
        // The client finished sending. Nothing more can arrive; answers to
        // calls in flight could still be read if it only half-closed, but
        // clients of this protocol close fully, so stop here.
        logger.debug("peer closed the connection")
        teardown()
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        var bytes = bytes
        if httpRequest != nil { return receivedHTTP(bytes) }
        if phase == .awaitingPreface {
            let need = Preface.count - preface.count
            preface.append(contentsOf: bytes.prefix(need))
            bytes = UnsafeRawBufferPointer(rebasing: bytes[min(need, bytes.count)...])
            // Judge as soon as the bytes so far can be neither our preface nor an HTTP request.
            if preface.count < Preface.count && Preface.couldContinue(preface) { return }
            switch Preface.judge(preface) {
            case .accepted:
                phase = .open
                out.append(contentsOf: Preface.bytes)
            case .unsupportedVersion(let v):
                out.append(contentsOf: Preface.bytes)
                goAwayAndClose(.unimplemented, "protocol version \(v) is not supported; this server speaks version \(Preface.version)")
                return
            case .http where config.httpHandler != nil:
                httpRequest = preface
                return receivedHTTP(bytes)
            case .http:
                out.append(contentsOf: Preface.httpRefusal)
                logger.notice("refused an HTTP request on the RPC port")
                closeAfterFlush()
                return
            case .garbage:
                logger.notice("refused a connection with a wrong preface")
                teardown()
                return
            }
        }
        guard phase == .open || phase == .draining else { return }
        decoder.append(bytes)
        processBufferedFrames()
    }

    // MARK: - HTTP probes

    /// The HTTP request being received (the preface phase's deadline still applies).
    /// This connection's calls (confined to its queue, like everything here).
    private var stats = RPCCallStats()

    /// A copy of this connection's call counts, taken on its queue.
    func callStats(_ done: @escaping @Sendable (RPCCallStats) -> Void) {
        queue.async { done(self.stats) }
    }

    private var httpRequest: [UInt8]?
    private var httpAnswered = false
    static let maxHTTPRequestBytes = 8 * 1024

    private func receivedHTTP(_ bytes: UnsafeRawBufferPointer) {
        guard var request = httpRequest, !httpAnswered, let handler = config.httpHandler else { return }
        request.append(contentsOf: bytes.prefix(max(0, Self.maxHTTPRequestBytes + 1 - request.count)))
        httpRequest = request
        guard let end = Self.endOfHeaders(request) else {
            if request.count > Self.maxHTTPRequestBytes {
                httpAnswered = true
                answerHTTP(RPCHTTPResponse(status: 431, body: "request header too large\n"), head: false)
            }
            return
        }
        httpAnswered = true  // one request per connection: later bytes are ignored
        let line = String(decoding: request[..<end].prefix { $0 != 0x0D && $0 != 0x0A }, as: UTF8.self)
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            return answerHTTP(RPCHTTPResponse(status: 400, body: "bad request line\n"), head: false)
        }
        let method = String(parts[0])
        guard method == "GET" || method == "HEAD" else {
            return answerHTTP(RPCHTTPResponse(status: 405, body: "only GET and HEAD\n"), head: false)
        }
        let path = String(parts[1].prefix { $0 != "?" })
        logger.debug("HTTP request", metadata: ["method": "\(method)", "path": "\(path)"])
        handler(RPCHTTPRequest(method: method, path: path)) { [weak self] response in
            guard let self else { return }
            self.queue.async { self.answerHTTP(response, head: method == "HEAD") }
        }
    }

    private static func endOfHeaders(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 2 else { return nil }
        for i in 1..<bytes.count where bytes[i] == 0x0A {
            if bytes[i - 1] == 0x0A { return i + 1 }
            if i >= 3, bytes[i - 1] == 0x0D, bytes[i - 2] == 0x0A, bytes[i - 3] == 0x0D { return i + 1 }
        }
        return nil
    }

    private func answerHTTP(_ response: RPCHTTPResponse, head: Bool) {
        guard phase != .closed else { return }
        let reason: String
        switch response.status {
        case 200: reason = "OK"
        case 400: reason = "Bad Request"
        case 404: reason = "Not Found"
        case 405: reason = "Method Not Allowed"
        case 431: reason = "Request Header Fields Too Large"
        case 503: reason = "Service Unavailable"
        default: reason = "Status"
        }
        let header = "HTTP/1.1 \(response.status) \(reason)\r\nConnection: close\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(response.body.count)\r\n\r\n"
        out.append(contentsOf: Array(header.utf8))
        if !head { out.append(contentsOf: response.body) }
        closeAfterFlush()
    }

    /// Handles complete frames one at a time while the output buffer is under
    /// its bound; over it, the rest wait in the decoder and reading pauses
    /// until the peer drains the output (backpressure).
    private func processBufferedFrames() {
        var completed = 0
        do {
            while phase == .open || phase == .draining, !closeWhenFlushed {
                if outputOverBound {
                    pauseReading()
                    break
                }
                moreFramesBuffered = decoder.hasMoreAfterNextFrame
                guard try decoder.withNextFrame({ handleFrame($0) }) != nil else { break }
                completed += 1
            }
        } catch FrameDecoder.Failure.frameTooLarge(let length, let limit) {
            goAwayAndClose(.resourceExhausted, "frame of \(length) bytes exceeds the limit of \(limit) bytes")
            return
        } catch {
            goAwayAndClose(.internal, "frame decoding failed")
            return
        }
        // Each frame is timed from its own first byte: a frame that began in
        // this read (after a complete one, or with nothing buffered before)
        // starts a new clock.
        if decoder.hasPartialFrame {
            if completed > 0 || frameStartedAt == nil { frameStartedAt = monotonicNanos() }
        } else {
            frameStartedAt = nil
        }
    }

    /// True while buffered output plus what calls in flight have reserved
    /// exceeds the per-connection bound: no frame is handled and nothing is
    /// read until the peer drains its answers.
    private var outputOverBound: Bool {
        pendingOutBytes + reservedOutBytes > config.maxBufferedBytesPerConnection
    }

    private static func initialAnswerEstimate(_ config: RPCServerConfiguration) -> Int {
        max(512, config.maxBufferedBytesPerConnection / 64)
    }

    private static func answerEstimateFloor(_ config: RPCServerConfiguration) -> Int {
        max(256, config.maxBufferedBytesPerConnection / 256)
    }

    private func handleFrame(_ frame: UnsafeRawBufferPointer) {
        do {
            try Wire.decode(frame) { envelope in
                switch envelope {
                case let .request(callID, method, timeoutMicros, metadata, payload):
                    startCall(callID: callID, path: method, timeoutMicros: timeoutMicros, rawMetadata: metadata, payload: payload)
                case let .invalidRequest(callID, reason):
                    if callID > lastCallID { lastCallID = callID }
                    refuse(callID, .invalidArgument, "request is malformed: \(reason)")
                case .cancel(let callID):
                    cancelCall(callID)
                case .ping(let opaque):
                    Wire.appendPong(opaque: opaque, to: &out)
                case .pong:
                    break
                case .goAway:
                    // The client will open no more calls here; finish what is in flight.
                    if calls.isEmpty { closeAfterFlush() } else { phase = .draining }
                case .streamMessage, .response:
                    goAwayAndClose(.invalidArgument, "clients may not send responses or stream messages")
                }
            }
        } catch {
            goAwayAndClose(.invalidArgument, "received a frame that is not a valid envelope: \(error)")
        }
    }

    // MARK: - Calls

    private func refuse(_ callID: UInt64, _ code: RPCStatusCode, _ message: String) {
        Wire.appendResponse(callID: callID, code: code, message: message, payload: nil, initialMetadata: [:], trailingMetadata: [:], to: &out)
    }

    private func startCall(callID: UInt64, path: String, timeoutMicros: UInt64, rawMetadata: [Wire.RawEntry], payload: UnsafeRawBufferPointer) {
        guard phase == .open else {
            return refuse(callID, .unavailable, "server is shutting down; retry on a new connection")
        }
        if callID == 0 {
            return refuse(0, .invalidArgument, "call id 0 is reserved for connection frames")
        }
        if calls[callID] != nil {
            return refuse(callID, .invalidArgument, "call id \(callID) is already in flight on this connection")
        }
        if callID <= lastCallID {
            return refuse(callID, .invalidArgument, "call ids must increase on a connection: \(callID) after \(lastCallID)")
        }
        lastCallID = callID
        lastCallActivity = monotonicNanos()
        if calls.count >= config.maxConcurrentCallsPerConnection {
            return refuse(callID, .resourceExhausted, "too many concurrent calls on this connection (limit \(config.maxConcurrentCallsPerConnection))")
        }
        let metadataBytes = rawMetadata.reduce(0) { $0 + $1.key.utf8.count + $1.value.count }
        if metadataBytes > config.maxMetadataBytes {
            return refuse(callID, .resourceExhausted, "request metadata of \(metadataBytes) bytes exceeds the limit of \(config.maxMetadataBytes) bytes")
        }
        let metadata: RPCMetadata
        do {
            metadata = try RPCMetadata.decode(rawMetadata)
        } catch {
            return refuse(callID, error.code, error.message)
        }
        guard let handler = server.registry[path] else {
            return refuse(callID, .unimplemented, unimplementedMessage(path))
        }
        let deadline: UInt64? = timeoutMicros == 0 ? nil : monotonicNanos() &+ min(timeoutMicros, 1 << 40) &* 1000
        let context = RPCServerContext(callID: callID, method: handler.descriptor, metadata: metadata, peer: peer, deadlineNanos: deadline,
            maxResponseBytes: config.maxFrameBytes - Self.envelopeOverheadBytes, isSoleCall: calls.isEmpty && !moreFramesBuffered)

        switch handler.body {
        case .unary(let prepare):
            let run: RPCMethodHandler.PreparedUnary
            do { run = try prepare(payload, metadata) } catch { return refuse(callID, error.code, error.message) }
            if handler.policy == .inline && deadline == nil {
                let result = runUnary(run, context)
                appendFinal(callID: callID, context: context, result: result, initialSent: false)
                return
            }
            let call = ServerCall(id: callID, context: context)
            calls[callID] = call
            armDeadline(call, timeoutMicros: timeoutMicros)
            if handler.policy == .inline {
                finish(call, runUnary(run, context))
            } else {
                call.reservedBytes = answerEstimate
                reservedOutBytes += answerEstimate
                DispatchQueue.global().async { [self] in
                    let result = context.isCancelled ? .failure(RPCError(.cancelled, "call was cancelled")) : runUnary(run, context)
                    queue.async { self.finish(call, result) }
                }
            }
        case .asyncUnary(let prepare):
            let run: RPCMethodHandler.PreparedAsyncUnary
            do { run = try prepare(payload, metadata) } catch { return refuse(callID, error.code, error.message) }
            let call = ServerCall(id: callID, context: context)
            calls[callID] = call
            armDeadline(call, timeoutMicros: timeoutMicros)
            call.reservedBytes = answerEstimate
            reservedOutBytes += answerEstimate
            call.task = Task(executorPreference: HandlerExecutor.shared) { [self] in
                let result: Result<[UInt8]?, RPCError>
                do {
                    result = checkedSize(try await run(context))
                } catch {
                    result = .failure(mapError(error, context))
                }
                queue.async { self.finish(call, result) }
            }
        case .deferred(let prepare):
            let start: RPCMethodHandler.PreparedDeferred
            do { start = try prepare(payload, metadata) } catch { return refuse(callID, error.code, error.message) }
            let call = ServerCall(id: callID, context: context)
            calls[callID] = call
            armDeadline(call, timeoutMicros: timeoutMicros)
            call.reservedBytes = answerEstimate
            reservedOutBytes += answerEstimate
            let responder = RPCRawResponder { [weak self] outcome in
                guard let self else { return }
                self.queue.async {
                    guard !call.finished else { return }
                    let result: Result<[UInt8]?, RPCError>
                    switch outcome {
                    case .success(let produce):
                        do { result = self.checkedSize(try produce()) } catch { result = .failure(self.mapError(error, context)) }
                    case .failure(let error):
                        result = .failure(error)
                    }
                    self.finish(call, result)
                }
            }
            start(context, responder)
        case .serverStreaming(let prepare):
            let run: RPCMethodHandler.PreparedStream
            do { run = try prepare(payload, metadata) } catch { return refuse(callID, error.code, error.message) }
            let call = ServerCall(id: callID, context: context)
            calls[callID] = call
            armDeadline(call, timeoutMicros: timeoutMicros)
            let sink = StreamSink(connection: self, call: call)
            call.task = Task(executorPreference: HandlerExecutor.shared) { [self] in
                let result: Result<[UInt8]?, RPCError>
                do {
                    try await run(context, sink)
                    result = .success(nil)
                } catch {
                    result = .failure(mapError(error, context))
                }
                queue.async { self.finish(call, result) }
            }
        }
    }

    private func unimplementedMessage(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else {
            return "method '\(path.prefix(200))' is not of the form /package.Service/Method"
        }
        if server.services.contains(String(parts[1])) {
            return "method \(parts[2]) is not implemented by service \(parts[1])"
        }
        return "service \(parts[1]) is not hosted by this server"
    }

    private func runUnary(_ run: RPCMethodHandler.PreparedUnary, _ context: RPCServerContext) -> Result<[UInt8]?, RPCError> {
        do {
            return checkedSize(try run(context))
        } catch {
            return .failure(mapError(error, context))
        }
    }

    /// A response that fits one frame, or RESOURCE_EXHAUSTED.
    private func checkedSize(_ bytes: [UInt8]) -> Result<[UInt8]?, RPCError> {
        if bytes.count > config.maxFrameBytes - Self.envelopeOverheadBytes {
            return .failure(RPCError(.resourceExhausted, "response of \(bytes.count) bytes exceeds the frame limit of \(config.maxFrameBytes) bytes"))
        }
        return .success(bytes)
    }

    private func mapError(_ error: any Error, _ context: RPCServerContext) -> RPCError {
        if let e = error as? RPCError { return e }
        if error is CancellationError { return RPCError(.cancelled, "call was cancelled") }
        logger.error("handler failed", metadata: ["method": "\(context.method.path)", "error": "\(error)"])
        return RPCError(.internal, "internal error")
    }

    private func armDeadline(_ call: ServerCall, timeoutMicros: UInt64) {
        guard timeoutMicros > 0 else { return }
        let item = DispatchWorkItem { [weak self, weak call] in
            guard let self, let call, !call.finished else { return }
            self.finish(call, .failure(RPCError(.deadlineExceeded, "deadline of \(Self.formatMicros(timeoutMicros)) exceeded")))
            self.flush()
        }
        call.deadlineItem = item
        queue.asyncAfter(deadline: .now() + .microseconds(Int(min(timeoutMicros, 1 << 40))), execute: item)
    }

    private static func formatMicros(_ us: UInt64) -> String {
        us % 1_000_000 == 0 ? "\(us / 1_000_000) s" : us % 1000 == 0 ? "\(us / 1000) ms" : "\(us) µs"
    }

    private func cancelCall(_ callID: UInt64) {
        guard let call = calls[callID] else { return }
        finish(call, .failure(RPCError(.cancelled, "call cancelled by the client")))
    }

    /// Ends a call exactly once: sends its status, stops its handler.
    private func finish(_ call: ServerCall, _ result: Result<[UInt8]?, RPCError>) {
        guard !call.finished else { return }
        call.finished = true
        calls.removeValue(forKey: call.id)
        lastCallActivity = monotonicNanos()
        call.deadlineItem?.cancel()
        if call.reservedBytes > 0 {
            reservedOutBytes -= call.reservedBytes
            call.reservedBytes = 0
            if case .success(let payload?) = result {
                answerEstimate = max(payload.count, answerEstimate - answerEstimate / 16, Self.answerEstimateFloor(config))
            }
        }
        if case .failure = result {
            call.context.cancel()
            call.task?.cancel()
        }
        call.failWaiters(RPCError(.cancelled, "call is over"))
        let code: RPCStatusCode
        switch result {
        case .success: code = .ok
        case .failure(let error): code = error.code
        }
        let nanos = monotonicNanos() - call.startedNanos
        stats.record(call.context.method.path, code, nanos: nanos)
        if logger.logLevel <= .debug {
            logger.debug("call", metadata: [
                "method": "\(call.context.method.path)", "code": "\(code)",
                "duration_us": "\(nanos / 1000)", "peer": "\(call.context.peer)",
            ])
        }
        if phase != .closed {
            appendFinal(callID: call.id, context: call.context, result: result, initialSent: call.sentInitialMetadata)
            scheduleFlush()
        }
        if phase == .draining && calls.isEmpty { closeAfterFlush() }
    }

    private func appendFinal(callID: UInt64, context: RPCServerContext, result: Result<[UInt8]?, RPCError>, initialSent: Bool) {
        let md = context.takeMetadata()
        let initial = initialSent ? RPCMetadata() : md.initial
        let start = out.count
        switch result {
        case .success(let payload):
            Wire.appendResponse(callID: callID, code: .ok, message: "", payload: payload, initialMetadata: initial, trailingMetadata: md.trailing, to: &out)
        case .failure(let error):
            var trailing = md.trailing
            for e in error.metadata { trailing.add(e.key, e.value) }
            Wire.appendResponse(callID: callID, code: error.code, message: Self.capped(error.message), payload: nil, initialMetadata: initial, trailingMetadata: trailing, to: &out)
        }
        // The whole envelope, metadata and message included, must fit our own frame limit.
        let frameBytes = out.count - start - 4
        if frameBytes > config.maxFrameBytes {
            out.removeSubrange(start...)
            Wire.appendResponse(
                callID: callID, code: .resourceExhausted,
                message: "response of \(frameBytes) bytes exceeds the frame limit of \(config.maxFrameBytes) bytes",
                payload: nil, initialMetadata: [:], trailingMetadata: [:], to: &out)
        }
    }

    /// Called on `queue` by a streaming handler's sink.
    fileprivate func streamWrite(_ call: ServerCall, payload: [UInt8], continuation: CheckedContinuation<Void, any Error>) {
        guard !call.finished, phase != .closed else {
            continuation.resume(throwing: RPCError(.cancelled, "call is over"))
            return
        }
        let initial = call.sentInitialMetadata ? RPCMetadata() : call.context.initialMetadata
        let start = out.count
        Wire.appendStreamMessage(callID: call.id, payload: payload, initialMetadata: initial, to: &out)
        let frameBytes = out.count - start - 4
        if frameBytes > config.maxFrameBytes {
            out.removeSubrange(start...)
            continuation.resume(throwing: RPCError(
                .resourceExhausted, "stream message of \(frameBytes) bytes exceeds the frame limit of \(config.maxFrameBytes) bytes"))
            return
        }
        call.sentInitialMetadata = true
        scheduleFlush()
        if pendingOutBytes > config.maxBufferedBytesPerConnection {
            call.waiters.append(continuation)
        } else {
            continuation.resume()
        }
    }

    // MARK: - Writing

    private var pendingOutBytes: Int { out.count - outSent + cipherOut.count - cipherSent }

    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        queue.async { [self] in
            flushScheduled = false
            flush()
        }
    }

    private func flush() {
        guard phase != .closed, phase != .lingering else { return }
        largestBuffered = max(largestBuffered, pendingOutBytes)
        guard transmit() else { return }
        out.removeAll(keepingCapacity: out.capacity <= 1 << 20)
        outSent = 0
        if writeSourceActive {
            writeSourceActive = false
            writeSource?.suspend()
        }
        if closeWhenFlushed {
            linger()
            return
        }
        if readPaused {
            // Frames that arrived before the pause come first; they may fill
            // the buffer again, and then reading stays paused.
            processBufferedFrames()
            if !outputOverBound { resumeReading() }
            if pendingOutBytes > 0 { scheduleFlush() }
        }
        for call in calls.values where !call.waiters.isEmpty {
            let waiters = call.waiters
            call.waiters = []
            for w in waiters { w.resume() }
        }
    }

    private func pauseReading() {
        guard !readPaused, let readSource else { return }
        readPaused = true
        readSource.suspend()
        logger.debug("peer is not reading; paused reading", metadata: ["buffered": "\(pendingOutBytes)"])
    }

    private func resumeReading() {
        guard readPaused, let readSource else { return }
        readPaused = false
        // The peer could not send while we did not read: its frame gets a new clock.
        if frameStartedAt != nil { frameStartedAt = monotonicNanos() }
        readSource.resume()
    }

    // MARK: - Closing

    private func goAwayAndClose(_ code: RPCStatusCode, _ reason: String) {
        logger.notice("closing connection", metadata: ["code": "\(code)", "reason": "\(reason)"])
        if phase == .awaitingPreface {
            phase = .open  // the preface has been written into `out` by the caller when relevant
        }
        Wire.appendGoAway(lastCallID: lastCallID, code: code, reason: reason, to: &out)
        failAllCalls(RPCError(.unavailable, "connection closed: \(reason)"))
        closeAfterFlush()
    }

    private func closeAfterFlush() {
        guard !closeWhenFlushed else { return }
        closeWhenFlushed = true
        phase = phase == .closed ? .closed : .draining
        flush()
        // A peer that does not read would keep the connection open forever.
        queue.asyncAfter(deadline: .now() + Self.closeLingerSeconds) { [self] in teardown() }
    }

    /// How long a closing connection waits for its last bytes to drain and
    /// for the peer to close its side.
    static let closeLingerSeconds = 1.0

    /// Everything is sent: half-close, then wait for the peer's close.
    private func linger() {
        guard phase != .closed, phase != .lingering else { return }
        phase = .lingering
        housekeeping?.cancel()
        housekeeping = nil
        if readPaused { resumeReading() }
        if let tls, !tlsFailed {
            // close_notify, best effort: the socket is drained, so it fits.
            tls.close()
            tls.takeOutput(into: &cipherOut)
            _ = sendBuffered(cipher: true)
            guard phase == .lingering else { return }
        }
        Glibc.shutdown(fd, Int32(SHUT_WR))
        discardUntilClosed()
    }

    private func discardUntilClosed() {
        while true {
            let n = recv(fd, readBuffer.baseAddress, readBuffer.count, 0)
            if n > 0 { continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
            teardown()  // EOF or an error: the peer is gone
            return
        }
    }

    /// Graceful: go-away with the last accepted call id; close once in-flight calls end.
    func drain(reason: String) {
        queue.async { [self] in
            guard phase == .open || phase == .awaitingPreface else { return }
            if phase == .awaitingPreface {
                teardown()
                return
            }
            phase = .draining
            Wire.appendGoAway(lastCallID: lastCallID, code: .ok, reason: reason, to: &out)
            if calls.isEmpty { closeAfterFlush() } else { flush() }
        }
    }

    func forceClose(reason: String) {
        queue.async { [self] in
            guard phase != .closed else { return }
            failAllCalls(RPCError(.unavailable, reason))
            closeAfterFlush()
        }
    }

    private func failAllCalls(_ error: RPCError) {
        for call in Array(calls.values) { finish(call, .failure(error)) }
    }

    private func housekeep() {
        // Once a close is pending, the linger timer ends the connection.
        guard phase != .closed, !closeWhenFlushed else { return }
        let now = monotonicNanos()
        let frameLimit = UInt64(config.frameTimeoutSeconds * 1e9)
        if phase == .awaitingPreface, now - openedAt > frameLimit {
            logger.notice("no preface in time; closing")
            teardown()
            return
        }
        // While reading is paused the peer cannot send: no frame clock runs.
        if let since = frameStartedAt, !readPaused {
            let elapsed = now - since
            if elapsed > frameLimit {
                goAwayAndClose(.deadlineExceeded, "a frame was not completed within \(config.frameTimeoutSeconds) s")
                return
            }
            let received = decoder.bufferedByteCount
            if elapsed > Self.minimumRateGraceNanos,
               Double(received) < Double(config.minReceiveBytesPerSecond) * Double(elapsed) / 1e9 {
                goAwayAndClose(.deadlineExceeded, "a frame arrived slower than \(config.minReceiveBytesPerSecond) bytes/s")
                return
            }
        }
        if phase == .open, lastCallID == 0, now - openedAt > UInt64(config.firstCallTimeoutSeconds * 1e9) {
            Wire.appendGoAway(lastCallID: 0, code: .ok, reason: "no call within \(config.firstCallTimeoutSeconds) s", to: &out)
            closeAfterFlush()
            return
        }
        if phase == .open, calls.isEmpty, now - lastCallActivity > UInt64(config.idleTimeoutSeconds * 1e9) {
            Wire.appendGoAway(lastCallID: lastCallID, code: .ok, reason: "idle for \(config.idleTimeoutSeconds) s", to: &out)
            closeAfterFlush()
        }
    }

    /// The longest status message sent, in UTF-8 bytes: whatever a handler
    /// quotes from a request (an id, a name), the answer stays small.
    static let maxStatusMessageBytes = 1024

    /// `message` cut to `maxStatusMessageBytes` on a character boundary, with an ellipsis.
    static func capped(_ message: String) -> String {
        guard message.utf8.count > maxStatusMessageBytes else { return message }
        var cut = ""
        var bytes = 0
        for ch in message {
            let n = ch.utf8.count
            if bytes + n > maxStatusMessageBytes - 3 { break }
            cut.append(ch)
            bytes += n
        }
        return cut + "…"
    }

    /// Room left in a frame for the envelope around a response payload.
    static let envelopeOverheadBytes = 64

    /// A frame's receive rate is judged only after this long.
    static let minimumRateGraceNanos: UInt64 = 2_000_000_000

    /// Releases everything; runs once.
    private func teardown() {
        guard phase != .closed else { return }
        phase = .closed
        reservedOutBytes = 0
        out = []  // (the decoder may be mid-frame on this stack; it goes with the connection)
        // A connection that buffered megabytes leaves them in malloc's
        // per-thread arenas; give them back to the system.
        if largestBuffered > 1 << 20 { DispatchQueue.global(qos: .utility).async { releaseFreedMemory() } }
        for call in Array(calls.values) {
            call.finished = true
            call.context.cancel()
            call.task?.cancel()
            call.deadlineItem?.cancel()
            call.failWaiters(RPCError(.unavailable, "connection closed"))
        }
        calls.removeAll()
        housekeeping?.cancel()
        housekeeping = nil
        if let ws = writeSource {
            if !writeSourceActive { ws.resume() }
            ws.cancel()
        }
        if let rs = readSource {
            if readPaused { rs.resume() }
            rs.cancel()  // the last of the two cancel handlers closes the fd
        } else {
            close(fd)
        }
        writeSource = nil
        readSource = nil
        logger.debug("connection closed")
        server.connectionClosed(self, stats: stats)
    }
}

/// A call in flight; confined to its connection's queue.
final class ServerCall: @unchecked Sendable {
    let id: UInt64
    let context: RPCServerContext
    var finished = false
    var task: Task<Void, Never>?
    var deadlineItem: DispatchWorkItem?
    var sentInitialMetadata = false
    /// Output bytes this call holds reserved (pool calls only).
    var reservedBytes = 0
    var waiters: [CheckedContinuation<Void, any Error>] = []

    /// When the call's request arrived (for the access log line).
    let startedNanos = monotonicNanos()

    init(id: UInt64, context: RPCServerContext) {
        self.id = id
        self.context = context
    }

    func failWaiters(_ error: RPCError) {
        let w = waiters
        waiters = []
        for c in w { c.resume(throwing: error) }
    }
}

/// The raw sink a streaming handler writes into.
private struct StreamSink: RPCRawStreamSink {
    let connection: ServerConnection
    let call: ServerCall

    func write(_ payload: [UInt8]) async throws {
        try Task.checkCancellation()
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            connection.queueAsync { connection.streamWrite(call, payload: payload, continuation: c) }
        }
    }
}

extension ServerConnection {
    fileprivate func queueAsync(_ body: @escaping @Sendable () -> Void) {
        queue.async(execute: body)
    }
}
