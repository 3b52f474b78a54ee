import Foundation
import Dispatch
import Glibc
import ProtoRuntime
import RPC

/// A plain TCP peer for bad-input tests: connect, send any bytes, read with a
/// timeout, see the close.
///
/// The socket is non-blocking and every wait is a short `Task.sleep` between
/// polls: no thread is ever parked, neither one of Swift concurrency's few
/// cooperative threads (the server's streaming handlers run there) nor a
/// Dispatch worker (the server's pool handlers and the client's connects run
/// there; Linux adds workers only slowly when they are blocked).
///
/// Used by one test at a time, each step awaited before the next, hence
/// `@unchecked Sendable`.
final class RawConnection: @unchecked Sendable {
    enum Failure: Error, CustomStringConvertible {
        case timedOut(received: [UInt8])
        /// The peer closed (FIN or RST) before the wanted bytes arrived.
        /// `socket`: what the descriptor was connected to then (a peer other than the server's
        /// port would mean something in this process closed our descriptor's number and it was reused).
        case closed(received: [UInt8], socket: String)
        /// The peer's first 8 bytes were not the preface.
        case badPreface([UInt8])
        case posix(String, Int32)

        var description: String {
            switch self {
            case .timedOut(let r): "timed out (\(r.count) bytes received: \(hex(Array(r.prefix(64)))))"
            case .closed(let r, let socket): "connection closed by the peer (\(r.count) bytes received: \(hex(Array(r.prefix(64)))); \(socket))"
            case .badPreface(let r): "the peer's first bytes are not the preface: \(hex(r))"
            case .posix(let call, let e): "\(call) failed: \(String(cString: strerror(e)))"
            }
        }
    }

    let fd: Int32
    /// Received bytes not yet handed out.
    private var pending: [UInt8] = []
    private var isClosed = false

    init(fd: Int32) {
        self.fd = fd
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit {
        if !isClosed { Glibc.close(fd) }
    }

    /// Connects to 127.0.0.1:`port`; sends the client preface unless told
    /// not to. A small `receiveBuffer` makes a peer that does not read fill
    /// up quickly.
    /// `source` binds the local end first (any 127.x.y.z works on Linux), so
    /// that a test can play several peer addresses.
    static func connect(
        port: Int, sendPreface: Bool = true, receiveBuffer: Int32? = nil, source: String? = nil, timeout: Double = 5
    ) async throws -> RawConnection {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw Failure.posix("socket", errno) }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let rc = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else {
                let e = errno
                Glibc.close(fd)
                throw Failure.posix("bind \(source)", e)
            }
        }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var addr = loopback(port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            guard errno == EINPROGRESS else {
                let e = errno
                Glibc.close(fd)
                throw Failure.posix("connect", e)
            }
            let deadline = monotonic() + timeout
            while !ready(fd, Int16(POLLOUT)) {
                guard monotonic() < deadline else {
                    Glibc.close(fd)
                    throw Failure.timedOut(received: [])
                }
                try await pause()
            }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            guard err == 0 else {
                Glibc.close(fd)
                throw Failure.posix("connect", err)
            }
        }
        let connection = RawConnection(fd: fd)
        if sendPreface { try await connection.send(Preface.bytes) }
        return connection
    }

    /// Connects, exchanges prefaces and checks the server's.
    static func open(port: Int, receiveBuffer: Int32? = nil, source: String? = nil) async throws -> RawConnection {
        let c = try await connect(port: port, receiveBuffer: receiveBuffer, source: source)
        let preface = try await c.receive(exactly: 8)
        guard preface == Preface.bytes else { throw Failure.badPreface(preface) }
        return c
    }

    /// The local and peer ports of the descriptor, or why there are none (diagnostics).
    func describeSocket() -> String {
        func address(_ get: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> (host: String, port: String) {
            var a = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let rc = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { get(fd, $0, &len) } }
            guard rc == 0 else { return ("?", "errno \(errno)") }
            let ip = UInt32(bigEndian: a.sin_addr.s_addr)
            return ("\(ip >> 24).\((ip >> 16) & 255).\((ip >> 8) & 255).\(ip & 255)", "\(UInt16(bigEndian: a.sin_port))")
        }
        let link = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")) ?? "?"
        let local = address(getsockname)
        // The server names the peer by the address the connection came from (tests bind 127.0.0.2 too).
        let serverLines = ServerLogRecorder.shared.lines(naming: "\(local.host):\(local.port)")
        return "descriptor \(fd): local \(local.host):\(local.port), peer port \(address(getpeername).port), \(link); "
            + "the server's log about this peer (\(serverLines.count) lines):\n" + serverLines.joined(separator: "\n")
    }

    // MARK: - Sending

    /// Sends all of `bytes`, waiting (up to `timeout`) while the socket is full.
    func send(_ bytes: [UInt8], timeout: Double = 5) async throws {
        var sent = 0
        let deadline = monotonic() + timeout
        while sent < bytes.count {
            let n = try sendNow(Array(bytes[sent...]))
            sent += n
            if n == 0 {
                guard monotonic() < deadline else { throw Failure.timedOut(received: []) }
                try await Self.pause()
            }
        }
    }

    /// Sends what the socket takes right now, without waiting; returns the
    /// count (0 when it is full).
    func sendNow(_ bytes: [UInt8]) throws -> Int {
        guard !bytes.isEmpty else { return 0 }
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
        if n >= 0 { return n }
        if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return 0 }
        throw Failure.posix("send", errno)
    }

    /// Sends one frame: the envelope with its 4-byte length.
    func send(_ envelope: SessionrpcV1.Envelope) async throws {
        try await send(Frames.frame(envelope))
    }

    // MARK: - Receiving

    /// Reads exactly `count` bytes.
    func receive(exactly count: Int, timeout: Double = 5) async throws -> [UInt8] {
        let closed = try await fill(until: { $0 >= count }, timeout: timeout)
        guard pending.count >= count else {
            let received = pending
            pending = []
            throw closed ? Failure.closed(received: received, socket: describeSocket()) : Failure.timedOut(received: received)
        }
        let out = Array(pending.prefix(count))
        pending.removeFirst(count)
        return out
    }

    /// Reads one frame and decodes its envelope.
    func receiveEnvelope(timeout: Double = 5) async throws -> SessionrpcV1.Envelope {
        let deadline = monotonic() + timeout
        let header = try await receive(exactly: 4, timeout: timeout)
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        let body = try await receive(exactly: length, timeout: max(0.01, deadline - monotonic()))
        return try SessionrpcV1.Envelope(serializedBytes: body)
    }

    /// Reads frames until one belongs to call `callID` and carries a
    /// `Response`; returns it and the stream messages seen on that call before.
    func receiveResponse(callID: UInt64, timeout: Double = 5) async throws -> (response: SessionrpcV1.Response, messages: [SessionrpcV1.StreamMessage]) {
        var messages: [SessionrpcV1.StreamMessage] = []
        let deadline = monotonic() + timeout
        while true {
            let envelope = try await receiveEnvelope(timeout: max(0.01, deadline - monotonic()))
            guard envelope.callId == callID else { continue }
            switch envelope.kind {
            case .response(let r)?: return (r, messages)
            case .streamMessage(let m)?: messages.append(m)
            default: continue
            }
        }
    }

    /// Reads everything until the peer closes; throws when it stays open
    /// past `timeout`.
    func receiveUntilClosed(timeout: Double = 5) async throws -> [UInt8] {
        let closed = try await fill(until: { _ in false }, timeout: timeout)
        let all = pending
        pending = []
        if !closed { throw Failure.timedOut(received: all) }
        return all
    }

    /// Reads into `pending` until `enough(pending.count)`, the peer closes
    /// (returns true) or `timeout` passes (returns false).
    private func fill(until enough: (Int) -> Bool, timeout: Double) async throws -> Bool {
        let deadline = monotonic() + timeout
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !enough(pending.count) {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                pending += buffer[0..<n]
            } else if n == 0 || errno == ECONNRESET || errno == EPIPE {
                return true
            } else if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                guard monotonic() < deadline else { return false }
                try await Self.pause()
            } else {
                throw Failure.posix("recv", errno)
            }
        }
        return false
    }

    // MARK: - Closing

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }

    // MARK: - Helpers

    fileprivate static func pause() async throws {
        try await Task.sleep(nanoseconds: 1_000_000)
    }

    fileprivate static func ready(_ fd: Int32, _ events: Int16) -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        return poll(&p, 1, 0) > 0
    }

    fileprivate static func loopback(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return addr
    }
}

/// A listening socket on 127.0.0.1 for tests that play the server's side.
final class RawListener: @unchecked Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw RawConnection.Failure.posix("socket", errno) }
        var addr = RawConnection.loopback(port: 0)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0, listen(fd, 16) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw RawConnection.Failure.posix("bind/listen", e)
        }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: bound.sin_port))
    }

    deinit {
        Glibc.close(fd)
    }

    func accept(timeout: Double = 5) async throws -> RawConnection {
        let deadline = monotonic() + timeout
        while true {
            let c = Glibc.accept(fd, nil, nil)
            if c >= 0 { return RawConnection(fd: c) }
            guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else { throw RawConnection.Failure.posix("accept", errno) }
            guard monotonic() < deadline else { throw RawConnection.Failure.timedOut(received: []) }
            try await RawConnection.pause()
        }
    }
}

/// Runs blocking work (a child process) on a Dispatch thread, never on one of
/// Swift concurrency's cooperative threads.
func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        DispatchQueue.global().async {
            c.resume(with: Result { try body() })
        }
    }
}
