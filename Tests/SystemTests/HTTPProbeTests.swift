import Foundation
import Glibc
import SessionAPI
import Testing

/// GET /healthz, /readyz and /metrics on the RPC port of a real sessiond, with a plain HTTP/1.1
/// client over a socket of its own. Not URLSession: on Linux its curl-based socket handling has an
/// open issue about descriptor ownership (swift-corelibs-foundation SR-5761, "fix concurrency/fd
/// ownership in MultiHandle.swift"), and a stray close in this process would hit whatever socket
/// another suite, running at the same time, has under that number (the RPC tests' rare EOF).
@Suite("HTTP probes and metrics with a real sessiond")
struct HTTPProbeTests {
    struct HTTPError: Error, CustomStringConvertible {
        let description: String
    }

    static func get(_ port: Int, _ path: String, method: String = "GET") async throws -> (status: Int, body: String, type: String) {
        // Blocking socket calls with timeouts, on a thread of their own (not the cooperative pool).
        let response: Result<[UInt8], HTTPError> = await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: exchange(port: port, request: "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n")) }
        }
        let bytes = try response.get()
        guard let split = bytes.indices.first(where: { bytes[$0...].starts(with: Array("\r\n\r\n".utf8)) }) else {
            throw HTTPError(description: "no end of headers in \(String(decoding: bytes, as: UTF8.self))")
        }
        let head = String(decoding: bytes[..<split], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = head[0].split(separator: " ")
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]) else {
            throw HTTPError(description: "bad status line \(head[0])")
        }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(bytes[(split + 4)...])
        if let length = headers["content-length"].flatMap(Int.init) {
            #expect(body.count == length, "body of \(body.count) bytes, Content-Length \(length)")
            body = Array(body.prefix(length))
        }
        return (status, String(decoding: body, as: UTF8.self), headers["content-type"] ?? "")
    }

    /// Connects, sends `request`, reads until the server closes (it closes after every answer).
    private static func exchange(port: Int, request: String) -> Result<[UInt8], HTTPError> {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(HTTPError(description: "socket: errno \(errno)")) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return .failure(HTTPError(description: "connect: errno \(errno)")) }
        let out = Array(request.utf8)
        var sent = 0
        while sent < out.count {
            let n = out[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return .failure(HTTPError(description: "send: errno \(errno)")) }
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return .failure(HTTPError(description: "recv: errno \(errno) after \(received.count) bytes")) }
            if n == 0 { return .success(received) }
            received += buffer[..<n]
            guard received.count <= 16 << 20 else { return .failure(HTTPError(description: "an answer over 16 MiB")) }
        }
    }

    @Test("liveness, readiness and Prometheus metrics that follow the state; other paths and methods are refused")
    func probesAndMetrics() async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let daemon = try DaemonProcess.start(dataDirectory: dir)
        try await daemon.withLogOnFailure {
            let health = try await Self.get(daemon.port, "/healthz")
            #expect(health.status == 200 && health.body == "ok\n")
            #expect(try await Self.get(daemon.port, "/readyz").status == 200)
            #expect(try await Self.get(daemon.port, "/nope").status == 404)
            #expect(try await Self.get(daemon.port, "/metrics", method: "POST").status == 405)

            let admin = try daemon.client()
            defer { admin.close() }
            try await setUpChannelAndReps(admin, reps: 2, capacity: 10)
            let routed = try await customerMessage(admin, conversation: "c1", channel: "web", message: "m1").session
            #expect(routed?.status == .active)
            var missing = SessionsV1.GetSessionRequest()
            missing.sessionId = "ses_missing"
            await #expect(throws: (any Error).self) { _ = try await admin.sessions.getSession(missing) }

            let metrics = try await Self.get(daemon.port, "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.type.hasPrefix("text/plain; version=0.0.4"))
            let lines = Set(metrics.body.split(separator: "\n").map(String.init))
            for expected in [
                "sessiond_ready 1", #"sessiond_sessions{status="ACTIVE",tenant="default"} 1"#, #"sessiond_sessions{status="WAITING",tenant="default"} 0"#,
                #"sessiond_reps{presence="AVAILABLE",tenant="default"} 2"#, #"sessiond_capacity_total_units{tenant="default"} 20"#,
                #"sessiond_capacity_used_units{tenant="default"} 1"#, "sessiond_tenants_owned 1", "sessiond_tenants_lost_total 0",
                #"sessiond_waiting_queue_length{tenant="default"} 0"#, "# TYPE sessiond_journal_batches_total counter",
                #"sessiond_calls_total{code="OK",method="/sessions.v1.SessionService/PostCustomerMessage"} 1"#,
                #"sessiond_calls_total{code="NOT_FOUND",method="/sessions.v1.SessionService/GetSession"} 1"#,
                #"sessiond_call_duration_seconds_bucket{le="+Inf",method="/sessions.v1.SessionService/PostCustomerMessage"} 1"#,
                #"sessiond_call_duration_seconds_count{method="/sessions.v1.SessionService/GetSession"} 1"#,
                "# TYPE sessiond_call_duration_seconds histogram",
            ] {
                #expect(lines.contains(expected), "missing '\(expected)' in:\n\(metrics.body)")
            }
            let batches = lines.first { $0.hasPrefix(#"sessiond_journal_batches_total{tenant="default"} "#) }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
            #expect(batches >= 1)
            // The RPC protocol still works on the same port after HTTP requests, and the calls of a
            // connection that closed are still counted (once).
            let other = try daemon.client()
            #expect(try await customerMessage(other, conversation: "c2", channel: "web", message: "m2").session?.status == .active)
            other.close()
            let after = try await Self.get(daemon.port, "/metrics").body
            #expect(after.contains(#"sessiond_calls_total{code="OK",method="/sessions.v1.SessionService/PostCustomerMessage"} 2"#), "\(after)")
        }
        #expect(daemon.terminate() == 0)
    }
}
