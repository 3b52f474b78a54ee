import ArgumentParser
import RPC
import SessionAPI
import SessionClient

struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask the server's health service (grpc.health.v1).")

    @Option(help: "Service to ask about; empty for the whole server.")
    var service = ""

    @Flag(help: "Keep streaming status changes (Health/Watch) until interrupted.")
    var watch = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await runCall {
            let client = try global.client()
            var request = GrpcHealthV1.HealthCheckRequest()
            request.service = service
            if watch {
                let stream = client.health.watch(request)
                for try await update in stream {
                    say(global.wantsJSON ? update.jsonObject().rendered() : update.status.protoName)
                }
            } else {
                let response = try await client.health.check(request, options: try global.callOptions())
                say(global.wantsJSON ? response.jsonObject().rendered() : response.status.protoName)
                if response.status != .serving { throw ExitCode(1) }
            }
        }
    }
}

struct Echo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Round-trip a payload through grpc.testing.TestService/UnaryCall.")

    @Option(help: "Request payload bytes.")
    var size = 256

    @Option(help: "Response payload bytes.")
    var responseSize = 256

    @Option(help: "Number of calls.")
    var count = 1

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        guard size >= 0, responseSize >= 0, count > 0 else { throw ValidationError("--size and --response-size must be >= 0, --count > 0") }
        try await runCall {
            let client = try global.client()
            var request = GrpcTesting.SimpleRequest()
            var payload = GrpcTesting.Payload()
            payload.body = [UInt8](repeating: 0x61, count: size)
            request.payload = payload
            request.responseSize = Int32(clamping: responseSize)
            var times: [Double] = []
            for _ in 0..<count {
                let start = ContinuousClock.now
                let response = try await client.test.unaryCall(request, options: try global.callOptions())
                let elapsed = ContinuousClock.now - start
                times.append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6)
                guard response.payload?.body.count == responseSize else {
                    throw RPCError(.dataLoss, "response carried \(response.payload?.body.count ?? 0) bytes, expected \(responseSize)")
                }
            }
            report("echo", times, json: global.wantsJSON)
        }
    }
}

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Protocol-level ping/pong round trips.")

    @Option(help: "Number of pings.")
    var count = 3

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        guard count > 0 else { throw ValidationError("--count must be > 0") }
        try await runCall {
            let client = try global.client()
            var times: [Double] = []
            for _ in 0..<count {
                let nanos = try await client.channel.ping(timeout: .milliseconds(Int64(try global.timeoutSeconds() * 1000)))
                times.append(Double(nanos) / 1000)
            }
            report("ping", times, json: global.wantsJSON)
        }
    }
}

/// Prints round-trip times in microseconds.
func report(_ what: String, _ micros: [Double], json: Bool) {
    let sorted = micros.sorted()
    let p50 = sorted[sorted.count / 2]
    let minimum = sorted.first!, maximum = sorted.last!
    if json {
        say(#"{"what":"\#(what)","count":\#(micros.count),"minUs":\#(Int(minimum)),"p50Us":\#(Int(p50)),"maxUs":\#(Int(maximum))}"#)
    } else {
        say("\(what): \(micros.count) round trip\(micros.count == 1 ? "" : "s") to the server, min \(fmt(minimum)), median \(fmt(p50)), max \(fmt(maximum))")
    }
}

private func fmt(_ us: Double) -> String {
    us >= 1000 ? String(format: "%.2f ms", us / 1000) : String(format: "%.0f µs", us)
}
