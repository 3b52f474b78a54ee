import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The parts of a finished call as they came off the wire.
package struct CallOutcome: Sendable {
    var code: RPCStatusCode
    var message: String
    var payload: [UInt8]?
    var initialMetadata: RPCMetadata
    var trailingMetadata: RPCMetadata
    /// The server certainly did not start the call (it went away first):
    /// safe to retry on a new connection.
    var notStarted = false

    static func failure(_ e: RPCError, notStarted: Bool = false) -> CallOutcome {
        CallOutcome(code: e.code, message: e.message, payload: nil, initialMetadata: [:], trailingMetadata: e.metadata, notStarted: notStarted)
    }

    var error: RPCError? { code == .ok ? nil : RPCError(code, message, metadata: trailingMetadata) }
}

/// What a server stream delivers.
package enum StreamEvent: Sendable {
    case message([UInt8], initialMetadata: RPCMetadata)
    case end(CallOutcome)
}

/// Identifies a call before and after it has an id on the wire, so a
/// cancellation that races the start still finds it.
package final class CallHandle: @unchecked Sendable {
    // Confined to the connection's queue.
    var id: UInt64 = 0
    var cancelled = false
}

/// One client connection: a socket with a serial queue, read and write
/// sources, and the calls in flight keyed by id. Every mutable property is
/// confined to `queue`, hence `@unchecked Sendable`.
package final class ClientConnection: @unchecked Sendable {
    private enum Pending {
        case unary(CheckedContinuation<CallOutcome, Never>, deadline: DispatchWorkItem?)
        case stream(AsyncStream<StreamEvent>.Continuation, deadline: DispatchWorkItem?, sawInitial: Bool)
    }

    private let fd: Int32
    private let queue = DispatchQueue(label: "rpc.client.connection")
    private let maxFrameBytes: Int
    private let peer: String
    private let onClose: @Sendable (ClientConnection) -> Void
    private var readSource: (any DispatchSourceRead)?
    private var writeSource: (any DispatchSourceWrite)?
    private var writeSourceActive = false
    private var decoder: FrameDecoder
    private var preface: [UInt8] = []
    private var out: [UInt8] = Preface.bytes
    private var outSent = 0
    private var calls: [UInt64: Pending] = [:]
    private var pings: [UInt64: (UInt64, CheckedContinuation<UInt64, Never>)] = [:]
    private var nextCallID: UInt64 = 1
    private var nextPing: UInt64 = 1
    private var closed = false
    private var closeReason = ""
    private var goAwayReceived = false
    private var writeFailed = false
    private let readBuffer: UnsafeMutableRawBufferPointer
    /// An established TLS session (the handshake ran before this connection
    /// was made), or nil for plaintext. `out` holds plaintext; its records wait in `cipherOut`.
    private let tls: TLSSession?
    private var cipherOut: [UInt8] = []
    private var cipherSent = 0

    /// False once the server said go-away or the connection closed: new calls
    /// must go to a new connection.
    package var isUsable: Bool { usable.load(ordering: .acquiring) }
    /// Mirrors `!closed && !goAwayReceived` for readers off the queue (every call
    /// checks it), without a hop onto the queue.
    private let usable = Atomic<Bool>(true)

    package init(fd: Int32, peer: String, maxFrameBytes: Int, tls: TLSSession? = nil, onClose: @escaping @Sendable (ClientConnection) -> Void) {
        self.fd = fd
        self.tls = tls
        self.peer = peer
        self.maxFrameBytes = maxFrameBytes
        self.decoder = FrameDecoder(maxFrameSize: maxFrameBytes)
        self.onClose = onClose
        self.readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        queue.async { [self] in
            let rs = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
            rs.setEventHandler { self.readable() }
            let release = DescriptorRelease(fd: fd, sources: 2)
            rs.setCancelHandler { release.sourceCancelled() }
            readSource = rs
            let ws = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
            ws.setEventHandler { self.flush() }
            ws.setCancelHandler { release.sourceCancelled() }
            writeSource = ws
            rs.resume()
            // Records that came with the end of the handshake wait in the session.
            if tls != nil { receivedCipher(UnsafeRawBufferPointer(start: nil, count: 0)) }
            flush()
        }
    }

    deinit {
        // Sources hold the connection strongly until `shutdown` cancels them,
        // so by now they are gone.
        readBuffer.deallocate()
    }

    // MARK: - Calls

    /// Runs a unary call to its end; never throws: failures come back as the outcome.
    package func unary(path: String, timeoutNanos: UInt64?, metadata: RPCMetadata, payload: [UInt8]) async -> CallOutcome {
        let handle = CallHandle()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<CallOutcome, Never>) in
                queue.async { [self] in
                    guard !handle.cancelled else { return c.resume(returning: .failure(RPCError(.cancelled, "call was cancelled"))) }
                    guard let id = begin(path: path, timeoutNanos: timeoutNanos, metadata: metadata, payload: payload, failure: { c.resume(returning: .failure($0, notStarted: $1)) }) else { return }
                    handle.id = id
                    let deadline = timeoutNanos.map { armDeadline(id, $0) }
                    calls[id] = .unary(c, deadline: deadline)
                    flush()
                }
            }
        } onCancel: {
            self.cancel(handle)
        }
    }

    /// Starts a server-streaming call; events arrive on the returned stream.
    package func serverStreaming(path: String, timeoutNanos: UInt64?, metadata: RPCMetadata, payload: [UInt8]) -> AsyncStream<StreamEvent> {
        let handle = CallHandle()
        let (stream, continuation) = AsyncStream<StreamEvent>.makeStream()
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.cancel(handle) }
        }
        queue.async { [self] in
            guard !handle.cancelled else { return }
            guard let id = begin(path: path, timeoutNanos: timeoutNanos, metadata: metadata, payload: payload, failure: {
                continuation.yield(.end(.failure($0, notStarted: $1)))
                continuation.finish()
            }) else { return }
            handle.id = id
            let deadline = timeoutNanos.map { armDeadline(id, $0) }
            calls[id] = .stream(continuation, deadline: deadline, sawInitial: false)
            flush()
        }
        return stream
    }

    /// Sends a ping and returns the round trip in nanoseconds.
    package func ping() async throws(RPCError) -> UInt64 {
        let rtt: UInt64 = await withCheckedContinuation { (c: CheckedContinuation<UInt64, Never>) in
            queue.async { [self] in
                guard !closed else { return c.resume(returning: UInt64.max) }
                let opaque = nextPing
                nextPing += 1
                pings[opaque] = (monotonicNanos(), c)
                Wire.appendPing(opaque: opaque, to: &out)
                flush()
            }
        }
        if rtt == UInt64.max { throw RPCError(.unavailable, "connection to \(peer) closed") }
        return rtt
    }

    /// Queues the request frame; returns its id, or reports a failure.
    private func begin(path: String, timeoutNanos: UInt64?, metadata: RPCMetadata, payload: [UInt8], failure: (RPCError, _ notStarted: Bool) -> Void) -> UInt64? {
        if closed || goAwayReceived {
            failure(RPCError(.unavailable, closed ? "connection to \(peer) closed: \(closeReason)" : "server \(peer) is going away"), true)
            return nil
        }
        if payload.count > maxFrameBytes - 512 {
            failure(RPCError(.resourceExhausted, "request of \(payload.count) bytes exceeds the frame limit of \(maxFrameBytes) bytes"), false)
            return nil
        }
        let id = nextCallID
        nextCallID += 1
        let micros = timeoutNanos.map { max(1, $0 / 1000) } ?? 0
        Wire.appendRequest(callID: id, method: path, timeoutMicros: micros, metadata: metadata, payload: payload, to: &out)
        return id
    }

    private func armDeadline(_ id: UInt64, _ nanos: UInt64) -> DispatchWorkItem {
        let item = DispatchWorkItem { [weak self] in
            guard let self else { return }
            // The server normally answers DEADLINE_EXCEEDED first; this is the backstop.
            if self.calls[id] != nil {
                self.complete(id, .failure(RPCError(.deadlineExceeded, "deadline exceeded before the server answered")))
                Wire.appendCancel(callID: id, reason: "deadline exceeded", to: &self.out)
                self.flush()
            }
        }
        queue.asyncAfter(deadline: .now() + .nanoseconds(Int(min(nanos, UInt64(Int.max)))) + .milliseconds(20), execute: item)
        return item
    }

    private func cancel(_ handle: CallHandle) {
        queue.async { [self] in
            handle.cancelled = true
            guard handle.id != 0, calls[handle.id] != nil else { return }
            complete(handle.id, .failure(RPCError(.cancelled, "call was cancelled")))
            if !closed {
                Wire.appendCancel(callID: handle.id, reason: "cancelled by the client", to: &out)
                flush()
            }
        }
    }

    private func complete(_ id: UInt64, _ outcome: CallOutcome) {
        guard let pending = calls.removeValue(forKey: id) else { return }
        switch pending {
        case .unary(let c, let deadline):
            deadline?.cancel()
            c.resume(returning: outcome)
        case .stream(let c, let deadline, _):
            deadline?.cancel()
            c.yield(.end(outcome))
            c.finish()
        }
        if goAwayReceived && calls.isEmpty { shutdown("server went away") }
    }

    // MARK: - I/O

    private func readable() {
        guard !closed else { return }
        while !closed {
            let n = recv(fd, readBuffer.baseAddress, readBuffer.count, 0)
            if n > 0 {
                if tls == nil {
                    received(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]))
                } else {
                    receivedCipher(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]))
                }
                if n < readBuffer.count { break }
            } else if n == 0 {
                shutdown(goAwayReceived ? "server went away" : "server closed the connection")
                return
            } else {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                shutdown("read failed: \(String(cString: strerror(errno)))")
                return
            }
        }
        flush()
    }

    /// TLS records from the server (in `readBuffer`, free again once fed).
    private func receivedCipher(_ bytes: UnsafeRawBufferPointer) {
        guard let tls, !closed else { return }
        tls.feed(bytes)
        do {
            let state = try tls.read(into: readBuffer) { plain in
                if !closed { received(plain) }
            }
            if state == .closedByPeer { shutdown(goAwayReceived ? "server went away" : "server closed the connection") }
        } catch {
            shutdown("\(error)")
        }
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        var bytes = bytes
        if preface.count < Preface.count {
            let need = Preface.count - preface.count
            preface.append(contentsOf: bytes.prefix(need))
            bytes = UnsafeRawBufferPointer(rebasing: bytes[min(need, bytes.count)...])
            if preface.count < Preface.count { return }
            switch Preface.judge(preface) {
            case .accepted: break
            case .unsupportedVersion(let v): return shutdown("server speaks protocol version \(v), this client \(Preface.version)")
            default: return shutdown("\(peer) is not a session RPC server (unexpected preface)")
            }
        }
        decoder.append(bytes)
        do {
            try decoder.forEachFrame { frame in try Wire.decode(frame) { handle($0) } }
        } catch {
            shutdown("server sent an invalid frame: \(error)")
        }
    }

    private func handle(_ envelope: Wire.Envelope) {
        switch envelope {
        case let .response(id, code, message, payload, initial, trailing):
            let outcome = CallOutcome(
                code: RPCStatusCode(wireValue: code), message: message, payload: payload.map { Array($0) },
                initialMetadata: (try? RPCMetadata.decode(initial)) ?? [:], trailingMetadata: (try? RPCMetadata.decode(trailing)) ?? [:])
            complete(id, outcome)
        case let .streamMessage(id, payload, initial):
            guard case .stream(let c, let deadline, let sawInitial) = calls[id] else { return }
            let md = sawInitial ? RPCMetadata() : ((try? RPCMetadata.decode(initial)) ?? [:])
            calls[id] = .stream(c, deadline: deadline, sawInitial: true)
            c.yield(.message(Array(payload), initialMetadata: md))
        case .ping(let opaque):
            Wire.appendPong(opaque: opaque, to: &out)
        case .pong(let opaque):
            if let (sent, c) = pings.removeValue(forKey: opaque) { c.resume(returning: monotonicNanos() - sent) }
        case let .goAway(last, code, reason):
            goAwayReceived = true
            usable.store(false, ordering: .releasing)
            closeReason = reason
            let error = RPCError(code == 0 ? .unavailable : RPCStatusCode(wireValue: code), "server \(peer) went away: \(reason)")
            for id in calls.keys where id > last { complete(id, .failure(error, notStarted: true)) }
            if calls.isEmpty { shutdown(reason) }
        case .request, .invalidRequest, .cancel:
            shutdown("server sent a client-only frame")
        }
    }

    private func flush() {
        guard !closed, !writeFailed else { return }
        guard transmit() else { return }
        out.removeAll(keepingCapacity: out.capacity <= 1 << 20)
        outSent = 0
        if writeSourceActive {
            writeSourceActive = false
            writeSource?.suspend()
        }
    }

    /// Sends `out`, through TLS when on; true once all of it is gone.
    private func transmit() -> Bool {
        guard let tls else { return sendBuffered(cipher: false) }
        repeat {
            guard sendBuffered(cipher: true) else { return false }
            cipherOut.removeAll(keepingCapacity: cipherOut.capacity <= 4 * TLSSession.sliceBytes)
            cipherSent = 0
            do {
                try tls.seal(out, sent: &outSent, into: &cipherOut)
            } catch {
                shutdown("\(error)")
                return false
            }
        } while !cipherOut.isEmpty
        return outSent >= out.count
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
            // The server may have said why before closing (a go-away): read it first.
            writeFailed = true
            readable()
            shutdown("write failed: \(String(cString: strerror(code)))")
            return false
        }
    }

    /// Closes the connection at once; calls in flight fail with UNAVAILABLE.
    package func close(reason: String = "closed by the client") {
        queue.async { [self] in shutdown(reason) }
    }

    private func shutdown(_ reason: String) {
        guard !closed else { return }
        closed = true
        usable.store(false, ordering: .releasing)
        closeReason = reason
        let error = RPCError(.unavailable, "connection to \(peer) lost: \(reason)")
        for id in Array(calls.keys) { complete(id, .failure(error)) }
        for (_, (_, c)) in pings { c.resume(returning: UInt64.max) }
        pings.removeAll()
        if let ws = writeSource {
            if !writeSourceActive { ws.resume() }
            ws.cancel()
        }
        readSource?.cancel()
        readSource = nil
        writeSource = nil
        onClose(self)
    }
}
