import Dispatch
import RPC
import SessionAPI
import Synchronization

/// A test-only service whose handlers run until the server cancels them and
/// record that they saw the cancellation, so tests can check that a client's
/// cancel or a deadline really reached the handler (the interop TestService
/// answers too fast for that).
final class ProbeService: RPCService {
    static let serviceName = "rpctests.Probe"
    /// Unary, on the handler pool: blocks until its call is cancelled (10 s at most).
    static let block = RPCMethodDescriptor(service: serviceName, method: "Block", kind: .unary)
    /// Server streaming: writes an `Empty` every 10 ms until its call is cancelled (10 s at most).
    static let ticks = RPCMethodDescriptor(service: serviceName, method: "Ticks", kind: .serverStreaming)

    /// Unary, inline: answers a `SimpleRequest` with `response_size` bytes and counts its calls.
    static let sized = RPCMethodDescriptor(service: serviceName, method: "Sized", kind: .unary)

    /// Unary, on the handler pool (as domain handlers run): like `sized`.
    static let sizedOnPool = RPCMethodDescriptor(service: serviceName, method: "SizedOnPool", kind: .unary)

    /// Deferred unary: answers `response_size` bytes from another thread after as many ms as the
    /// request's payload has bytes, then answers again (that second answer must be ignored); fails
    /// with NOT_FOUND when `response_size` is negative.
    static let later = RPCMethodDescriptor(service: serviceName, method: "Later", kind: .unary)

    struct Counts: Sendable, Equatable {
        var started = 0
        var cancelled = 0
        var sized = 0
        var sizedOnPool = 0
    }

    private let state = Mutex(Counts())

    var counts: Counts { state.withLock { $0 } }

    var serviceName: String { Self.serviceName }

    func methodHandlers() -> [RPCMethodHandler] {
        [
            RPCMethodHandler(unary: Self.sized, policy: .inline) { [self] (request: GrpcTesting.SimpleRequest, _) -> GrpcTesting.SimpleResponse in
                state.withLock { $0.sized += 1 }
                return Self.response(of: request.responseSize)
            },
            RPCMethodHandler(unary: Self.sizedOnPool, policy: .pool) { [self] (request: GrpcTesting.SimpleRequest, _) -> GrpcTesting.SimpleResponse in
                state.withLock { $0.sizedOnPool += 1 }
                return Self.response(of: request.responseSize)
            },
            RPCMethodHandler(unary: Self.block, policy: .pool) { [self] (_: GrpcTesting.Empty, context) -> GrpcTesting.Empty in
                state.withLock { $0.started += 1 }
                context.onCancel { [self] in state.withLock { $0.cancelled += 1 } }
                let giveUp = DispatchTime.now().uptimeNanoseconds + 10_000_000_000
                while !context.isCancelled && DispatchTime.now().uptimeNanoseconds < giveUp {
                    usleepMillis(1)
                }
                try context.checkCancellation()
                return GrpcTesting.Empty()
            },
            RPCMethodHandler(deferredUnary: Self.later) { (request: GrpcTesting.SimpleRequest, _, respond: RPCResponder<GrpcTesting.SimpleResponse>) in
                // The delay in ms rides in the payload's length; the answer is built on the connection's queue.
                let delay = request.payload?.body.count ?? 0
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(delay)) {
                    if request.responseSize < 0 {
                        respond.fail(RPCError(.notFound, "nothing later"))
                    } else {
                        respond.complete { Self.response(of: request.responseSize) }
                    }
                    respond.complete { Self.response(of: 1) }  // a second answer: ignored
                }
            },
            RPCMethodHandler(serverStreaming: Self.ticks) {
                [self] (_: GrpcTesting.Empty, writer: RPCServerStreamWriter<GrpcTesting.Empty>, context) in
                state.withLock { $0.started += 1 }
                context.onCancel { [self] in state.withLock { $0.cancelled += 1 } }
                for _ in 0..<1000 {
                    try await writer.write(GrpcTesting.Empty())
                    try await Task.sleep(nanoseconds: 10_000_000)
                }
            },
        ]
    }
}

extension ProbeService {
    /// A response whose payload is `size` zero bytes.
    static func response(of size: Int32) -> GrpcTesting.SimpleResponse {
        var payload = GrpcTesting.Payload()
        payload.body = [UInt8](repeating: 0, count: Int(size))
        var response = GrpcTesting.SimpleResponse()
        response.payload = payload
        return response
    }
}

/// Blocks the calling (Dispatch) thread; never used on a Swift concurrency thread.
func usleepMillis(_ ms: Int) {
    let semaphore = DispatchSemaphore(value: 0)
    _ = semaphore.wait(timeout: .now() + .milliseconds(ms))
}
