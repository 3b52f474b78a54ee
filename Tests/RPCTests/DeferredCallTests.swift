import RPC
import SessionAPI
import Testing

/// Deferred unary handlers (`RPCMethodHandler(deferredUnary:)`): started on the connection's
/// queue, answered later from any thread, exactly once.
@Suite("Deferred unary calls")
struct DeferredCallTests {
    static func request(size: Int32, delayMillis: Int) -> GrpcTesting.SimpleRequest {
        var r = GrpcTesting.SimpleRequest()
        r.responseSize = size
        var p = GrpcTesting.Payload()
        p.body = [UInt8](repeating: 0, count: delayMillis)
        r.payload = p
        return r
    }

    @Test("Answers come from another thread, once; errors and deadlines are the call's status; the connection stays usable")
    func answeredLater() async throws {
        try await withTestServer { server in
            let channel = server.channel
            // Many in flight on one connection, each answered from a Dispatch thread.
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<64 {
                    group.addTask {
                        let r: GrpcTesting.SimpleResponse = try await channel.unary(ProbeService.later, request: Self.request(size: Int32(i), delayMillis: i % 7))
                        return r.payload?.body.count ?? -1
                    }
                }
                var sizes: [Int] = []
                for try await size in group { sizes.append(size) }
                #expect(sizes.sorted() == Array(0..<64))
            }
            await #expect(throws: RPCError.self) {
                let _: GrpcTesting.SimpleResponse = try await channel.unary(ProbeService.later, request: Self.request(size: -1, delayMillis: 0))
            }
            do {
                let _: GrpcTesting.SimpleResponse = try await channel.unary(ProbeService.later, request: Self.request(size: -1, delayMillis: 0))
            } catch let error as RPCError {
                #expect(error.code == .notFound && error.message == "nothing later")
            }
            // A deadline before the answer: DEADLINE_EXCEEDED, and the late answer is dropped.
            do {
                let _: GrpcTesting.SimpleResponse = try await channel.unary(
                    ProbeService.later, request: Self.request(size: 5, delayMillis: 300), options: RPCCallOptions(timeout: .milliseconds(20)))
                Issue.record("the call was answered after its deadline")
            } catch let error as RPCError {
                #expect(error.code == .deadlineExceeded, "\(error)")
            }
            let after: GrpcTesting.SimpleResponse = try await channel.unary(ProbeService.later, request: Self.request(size: 3, delayMillis: 400))
            #expect(after.payload?.body.count == 3)
        }
    }
}
