import RPC
import SessionAPI
import SessionClient
import SessionServer
import Testing

extension Loopback {
    @Suite("Health service")
    struct HealthTests {
        static func request(_ service: String) -> GrpcHealthV1.HealthCheckRequest {
            var r = GrpcHealthV1.HealthCheckRequest()
            r.service = service
            return r
        }

        @Test("Check: the whole server is SERVING; an unknown service is NOT_FOUND")
        func check() async throws {
            try await withTestServer { server in
                let whole = try await server.healthClient.check(Self.request(""))
                #expect(whole.status == .serving)
                let error = await #expect(throws: RPCError.self) {
                    try await server.healthClient.check(Self.request("no.such.Service"))
                }
                #expect(error?.code == .notFound)
                server.health.setStatus(.notServing, for: "sessions.v1.SessionService")
                #expect(try await server.healthClient.check(Self.request("sessions.v1.SessionService")).status == .notServing)
            }
        }

        @Test("Watch: the current status, then every change made with setStatus")
        func watch() async throws {
            try await withTestServer { server in
                let stream = server.healthClient.watch(Self.request(""))
                var seen: [GrpcHealthV1.HealthCheckResponse.ServingStatus] = []
                for try await response in stream {
                    seen.append(response.status)
                    switch seen.count {
                    case 1: server.health.setStatus(.notServing)
                    case 2: server.health.setStatus(.serving)
                    default: break
                    }
                    if seen.count == 3 { break }
                }
                #expect(seen == [.serving, .notServing, .serving])
                // The watch was cancelled by the break; the connection keeps working.
                #expect(try await server.healthClient.check(Self.request("")).status == .serving)
            }
        }

        @Test("Watch of an unknown service: SERVICE_UNKNOWN, then SERVING once it appears")
        func watchUnknown() async throws {
            try await withTestServer { server in
                var seen: [GrpcHealthV1.HealthCheckResponse.ServingStatus] = []
                for try await response in server.healthClient.watch(Self.request("later.Service")) {
                    seen.append(response.status)
                    if seen.count == 1 { server.health.setStatus(.serving, for: "later.Service") }
                    if seen.count == 2 { break }
                }
                #expect(seen == [.serviceUnknown, .serving])
            }
        }

        @Test("Watch with a deadline ends DEADLINE_EXCEEDED after the current status")
        func watchDeadline() async throws {
            try await withTestServer { server in
                var seen: [GrpcHealthV1.HealthCheckResponse.ServingStatus] = []
                let error = await #expect(throws: RPCError.self) {
                    for try await response in server.healthClient.watch(Self.request(""), options: .init(timeout: .milliseconds(300))) {
                        seen.append(response.status)
                    }
                }
                #expect(error?.code == .deadlineExceeded)
                // The current status comes first, unless a loaded machine let the deadline pass before.
                #expect(seen == [.serving] || seen.isEmpty)
            }
        }
    }
}
