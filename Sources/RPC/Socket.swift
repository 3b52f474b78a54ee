#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Thin POSIX socket helpers; every return code checked.
package enum Socket {
    /// A POSIX call failed.
    package struct Failure: Error, CustomStringConvertible {
        package let call: String
        package let errno: Int32
        package var description: String { "\(call) failed: \(String(cString: strerror(errno)))" }
    }

    /// Splits `host:port` (or `[v6]:port`).
    package static func parseAddress(_ address: String) -> (host: String, port: Int)? {
        var host: Substring
        var portPart: Substring
        if address.hasPrefix("[") {
            guard let close = address.firstIndex(of: "]") else { return nil }
            host = address[address.index(after: address.startIndex)..<close]
            let rest = address[address.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portPart = rest.dropFirst()
        } else {
            guard let colon = address.lastIndex(of: ":") else { return nil }
            host = address[..<colon]
            portPart = address[address.index(after: colon)...]
        }
        if host.isEmpty { host = "0.0.0.0" }
        guard let port = Int(portPart), (0...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    private static func resolve(_ host: String, _ port: Int, passive: Bool) throws -> [(family: Int32, addr: [UInt8], len: socklen_t)] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        if passive { hints.ai_flags = AI_PASSIVE }
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &res)
        guard rc == 0, let first = res else {
            throw Failure(call: "getaddrinfo(\(host)): \(String(cString: gai_strerror(rc)))", errno: 0)
        }
        defer { freeaddrinfo(first) }
        var out: [(Int32, [UInt8], socklen_t)] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let ai = p {
            let bytes = Array(UnsafeRawBufferPointer(start: ai.pointee.ai_addr, count: Int(ai.pointee.ai_addrlen)))
            out.append((ai.pointee.ai_family, bytes, ai.pointee.ai_addrlen))
            p = ai.pointee.ai_next
        }
        return out
    }

    /// A non-blocking listening socket bound to `host:port` (port 0: any free port).
    package static func listen(host: String, port: Int, backlog: Int32 = 1024) throws -> Int32 {
        var lastError: (any Error)?
        for a in try resolve(host, port, passive: true) {
            let fd = socket(a.family, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { lastError = Failure(call: "socket", errno: errno); continue }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            let rc = a.addr.withUnsafeBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), a.len) }
            if rc != 0 { lastError = Failure(call: "bind(\(host):\(port))", errno: errno); close(fd); continue }
            guard Glibc.listen(fd, backlog) == 0 else { lastError = Failure(call: "listen", errno: errno); close(fd); continue }
            try setNonBlocking(fd)
            return fd
        }
        throw lastError ?? Failure(call: "listen(\(host):\(port))", errno: EADDRNOTAVAIL)
    }

    /// Connects to `host:port` within `timeoutMillis`; returns a non-blocking socket.
    package static func connect(host: String, port: Int, timeoutMillis: Int32) throws -> Int32 {
        var lastError: (any Error)?
        for a in try resolve(host, port, passive: false) {
            let fd = socket(a.family, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { lastError = Failure(call: "socket", errno: errno); continue }
            do {
                try setNonBlocking(fd)
                let rc = a.addr.withUnsafeBytes { Glibc.connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), a.len) }
                if rc != 0 {
                    guard errno == EINPROGRESS else { throw Failure(call: "connect(\(host):\(port))", errno: errno) }
                    var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    let n = poll(&pfd, 1, timeoutMillis)
                    if n == 0 { throw Failure(call: "connect(\(host):\(port)) timed out", errno: ETIMEDOUT) }
                    if n < 0 { throw Failure(call: "poll", errno: errno) }
                    var err: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                    if err != 0 { throw Failure(call: "connect(\(host):\(port))", errno: err) }
                }
                setNoDelay(fd)
                return fd
            } catch {
                close(fd)
                lastError = error
            }
        }
        throw lastError ?? Failure(call: "connect(\(host):\(port))", errno: EADDRNOTAVAIL)
    }

    /// What writing to a non-blocking socket came to.
    package enum WriteOutcome { case done, wouldBlock, failed(Int32) }

    /// Writes `buffer[sent...]` to `fd`, advancing `sent`, until all is
    /// written, the socket is full or the write fails (with its errno).
    package static func write(_ fd: Int32, _ buffer: [UInt8], sent: inout Int) -> WriteOutcome {
        while sent < buffer.count {
            let from = sent
            let n = buffer.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + from, $0.count - from, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                sent += n
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return .wouldBlock
            } else {
                return .failed(n == 0 ? EPIPE : errno)
            }
        }
        return .done
    }

    package static func setNonBlocking(_ fd: Int32) throws {
        let flags = fcntl(fd, F_GETFL, 0)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else { throw Failure(call: "fcntl(O_NONBLOCK)", errno: errno) }
    }

    package static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The port a bound socket listens on.
    package static func localPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return portOf(&storage)
    }

    /// `host:port` of the peer.
    /// A peer's numeric address.
    package struct PeerAddress: Sendable, CustomStringConvertible {
        /// `127.0.0.1`, `::1`; `unknown` when the socket has no peer.
        package let host: String
        package let port: Int
        package let isIPv6: Bool
        package var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    package static func peerAddress(_ fd: Int32) -> PeerAddress {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) } }
        guard rc == 0 else { return PeerAddress(host: "unknown", port: 0, isIPv6: false) }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let port = portOf(&storage)
        _ = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getnameinfo($0, len, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) }
        }
        let h = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return PeerAddress(host: h, port: port, isIPv6: storage.ss_family == sa_family_t(AF_INET6))
    }

    package static func peerName(_ fd: Int32) -> String { peerAddress(fd).description }

    private static func portOf(_ storage: inout sockaddr_storage) -> Int {
        withUnsafePointer(to: &storage) { p in
            if p.pointee.ss_family == sa_family_t(AF_INET6) {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }
}

/// Closes a descriptor once every Dispatch source watching it has finished cancelling. A
/// source's cancellation is asynchronous, and libdispatch on Linux keeps one epoll entry per
/// descriptor for all sources on it: closing the descriptor when the read source is done while
/// the write source is still being torn down lets the number be reused by a new socket under an
/// entry that is about to be changed (the manager thread then crashes in the event loop).
package final class DescriptorRelease: Sendable {
    private let fd: Int32
    private let remaining: Atomic<Int>

    package init(fd: Int32, sources: Int) {
        self.fd = fd
        self.remaining = Atomic(sources)
    }

    /// From each source's cancel handler; the last one closes the descriptor.
    package func sourceCancelled() {
        if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { _ = close(fd) }
    }
}
