import Foundation
import RPC
import SessionAPI
import SessionClient
import Testing

/// Flags and environment variables that reach a real sessiond.
@Suite("sessiond flags with a real process", .serialized)
struct FlagTests {
    @Test("grpc.testing.TestService is off by default; --test-service or SESSIOND_TEST_SERVICE=1 hosts it")
    func testServiceOffByDefault() async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        for (arguments, environment, hosted) in [([String](), [String: String](), false), (["--test-service"], [:], true), ([], ["SESSIOND_TEST_SERVICE": "1"], true)] {
            let daemon = try DaemonProcess.start(dataDirectory: dir, arguments: arguments, environment: environment)
            try await daemon.withLogOnFailure {
                let client = try daemon.client()
                defer { client.close() }
                do {
                    _ = try await client.test.emptyCall()
                    #expect(hosted, "TestService answered without --test-service")
                } catch {
                    #expect(!hosted && (error as? RPCError)?.code == .unimplemented, "\(arguments) \(environment): \(error)")
                }
            }
            #expect(daemon.terminate() == 0)
        }
    }

    @Test("--max-connections-per-peer and SESSIOND_MAX_CONNECTIONS_PER_PEER limit connections from one address")
    func maxConnectionsPerPeer() async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        for (arguments, environment) in [(["--max-connections-per-peer", "1"], [String: String]()), ([], ["SESSIOND_MAX_CONNECTIONS_PER_PEER": "1"])] {
            let daemon = try DaemonProcess.start(dataDirectory: dir, arguments: arguments, environment: environment)
            try await daemon.withLogOnFailure {
                let first = try daemon.client()
                defer { first.close() }
                #expect(try await first.health.check(.init()).status == .serving)
                let second = try daemon.client()
                defer { second.close() }
                do {
                    _ = try await second.health.check(.init(), options: .init(timeout: .seconds(10)))
                    Issue.record("a second connection from 127.0.0.1 was served with a limit of 1")
                } catch {
                    #expect((error as? RPCError)?.code != .ok, "\(error)")
                }
                #expect(await daemon.logBuffer.waitFor("limit 1 per address", until: Date().addingTimeInterval(30)), "no refusal logged")
            }
            #expect(daemon.terminate() == 0)
        }
    }

    @Test("--first-call-timeout and --min-receive-rate (and their env variables) must be positive numbers")
    func timeoutAndRateFlagsParse() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let base = ["--listen", "127.0.0.1:0", "--data-dir", dir + "/data"]
        for (arguments, environment, expected) in [
            (["--first-call-timeout", "0"], [String: String](), "--first-call-timeout must be greater than 0"),
            (["--min-receive-rate", "0"], [:], "--min-receive-rate must be greater than 0"),
            ([], ["SESSIOND_FIRST_CALL_TIMEOUT": "soon"], "SESSIOND_FIRST_CALL_TIMEOUT='soon' is not a valid value"),
            ([], ["SESSIOND_MIN_RECEIVE_RATE": "fast"], "SESSIOND_MIN_RECEIVE_RATE='fast' is not a valid value"),
            (["--max-connections-per-peer", "0"], [:], "--max-connections-per-peer must be greater than 0"),
        ] {
            let (status, output) = try DaemonProcess.runToExit(arguments: base + arguments, environment: environment)
            #expect(status == 64, "\(arguments) \(environment): \(output)")
            #expect(output.contains(expected), "\(arguments) \(environment): \(output)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/data"))
        }
        // Valid values start.
        let daemon = try DaemonProcess.start(
            dataDirectory: dir + "/ok", arguments: ["--first-call-timeout", "2.5", "--min-receive-rate", "10"],
            environment: ["SESSIOND_MAX_CONNECTIONS_PER_PEER": "8"])
        #expect(daemon.terminate() == 0)
    }

    @Test("TLS flags: a key needs its certificate and back, a client CA needs both, and a file that cannot be read fails the start naming it")
    func tlsFlags() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let base = ["--listen", "127.0.0.1:0", "--data-dir", dir + "/data"]
        for (arguments, environment, status, expected) in [
            (["--tls-key", dir + "/k.pem"], [String: String](), Int32(64), "--tls-key needs --tls-cert"),
            (["--tls-cert", dir + "/c.pem"], [:], 64, "--tls-cert needs --tls-key"),
            (["--tls-client-ca", dir + "/ca.pem"], [:], 64, "--tls-client-ca needs --tls-cert and --tls-key"),
            ([], ["SESSIOND_TLS_CERT": dir + "/missing-cert.pem", "SESSIOND_TLS_KEY": dir + "/missing-key.pem"], 64,
             "cannot read the TLS certificate \(dir)/missing-cert.pem"),
        ] {
            let (code, output) = try DaemonProcess.runToExit(arguments: base + arguments, environment: environment)
            #expect(code == status, "\(arguments) \(environment): \(output)")
            #expect(output.contains(expected), "\(arguments) \(environment): \(output)")
        }
    }
}
