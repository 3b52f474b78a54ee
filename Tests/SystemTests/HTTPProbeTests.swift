import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SessionAPI
import Testing

/// GET /healthz, /readyz and /metrics on the RPC port of a real sessiond, with a real HTTP client
/// (URLSession).
@Suite("HTTP probes and metrics with a real sessiond")
struct HTTPProbeTests {
    static func get(_ port: Int, _ path: String, method: String = "GET") async throws -> (status: Int, body: String, type: String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.timeoutInterval = 30
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        return (http.statusCode, String(decoding: data, as: UTF8.self), http.value(forHTTPHeaderField: "Content-Type") ?? "")
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
                #"sessiond_capacity_used_units{tenant="default"} 1"#, "sessiond_tenants_owned 1",
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
