import Foundation
import RPC
import SessionAPI
import SessionClient
import Testing

/// Certificates made once per test run with the openssl CLI, in a private
/// temporary directory: two CAs (one trusted, one not), server certificates
/// for 127.0.0.1/localhost and for another name, client certificates from each CA.
final class TestCertificates: Sendable {
    let directory: String

    static let shared: Result<TestCertificates, any Error> = Result { try TestCertificates() }
    static func get() throws -> TestCertificates { try shared.get() }

    func path(_ name: String) -> String { directory + "/" + name }
    var ca: String { path("ca.pem") }
    var otherCA: String { path("other-ca.pem") }
    var serverTLS: RPCServerTLS { RPCServerTLS(certificateChainPath: path("server.pem"), privateKeyPath: path("server.key")) }

    private init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("rpc-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try makeCA("ca", "Test CA")
        try makeCA("other-ca", "Other CA")
        try makeLeaf("server", signedBy: "ca", cn: "localhost", extensions: "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
        try makeLeaf("wrong-name", signedBy: "ca", cn: "other.example", extensions: "subjectAltName=DNS:other.example\nextendedKeyUsage=serverAuth")
        try makeLeaf("client", signedBy: "ca", cn: "backend-1", extensions: "extendedKeyUsage=clientAuth")
        try makeLeaf("stranger", signedBy: "other-ca", cn: "stranger", extensions: "extendedKeyUsage=clientAuth")
    }

    private func makeCA(_ name: String, _ cn: String) throws {
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "3",
                     "-subj", "/CN=\(cn)", "-keyout", path("\(name).key"), "-out", path("\(name).pem")])
    }

    private func makeLeaf(_ name: String, signedBy ca: String, cn: String, extensions: String) throws {
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=\(cn)",
                     "-keyout", path("\(name).key"), "-out", path("\(name).csr")])
        try Data((extensions + "\n").utf8).write(to: URL(fileURLWithPath: path("\(name).ext")))
        try openssl(["x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(ca).pem"), "-CAkey", path("\(ca).key"),
                     "-set_serial", "\(UInt32.random(in: 1...UInt32.max))", "-days", "3", "-extfile", path("\(name).ext"),
                     "-out", path("\(name).pem")])
    }

    private func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let log = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TLSSetupFailed(message: "openssl \(arguments.joined(separator: " ")): \(String(decoding: log, as: UTF8.self))")
        }
    }

    struct TLSSetupFailed: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}

extension Loopback {
    @Suite("TLS")
    struct TLSTests {
        static func channel(_ port: Int, host: String = "127.0.0.1", _ tls: RPCClientTLS?) -> RPCClientChannel {
            var configuration = RPCClientConfiguration()
            configuration.tls = tls
            return RPCClientChannel(host: host, port: port, configuration: configuration)
        }

        static func small() -> GrpcTesting.SimpleRequest {
            var request = GrpcTesting.SimpleRequest()
            request.responseSize = 10
            return request
        }

        /// The error of one unary call on `channel`, which must fail.
        static func failure(_ channel: RPCClientChannel) async -> RPCError? {
            do {
                _ = try await GrpcTesting.TestService.Client(channel: channel).unaryCall(small(), options: .init(timeout: .seconds(5)))
                return nil
            } catch {
                return error
            }
        }

        @Test("over TLS: unary calls with payloads larger than a record slice, a stream, and calls in parallel on one connection")
        func roundTrips() async throws {
            let certs = try TestCertificates.get()
            try await withTestServer({ $0.tls = certs.serverTLS }) { server in
                let channel = Self.channel(server.port, RPCClientTLS(caPath: certs.ca))
                defer { channel.close() }
                let client = GrpcTesting.TestService.Client(channel: channel)
                var large = GrpcTesting.SimpleRequest()
                large.responseSize = 1_000_000
                large.payload = GrpcTesting.Payload()
                large.payload?.body = (0..<900_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
                let response = try await client.unaryCall(large)
                #expect(response.payload?.body.count == 1_000_000)
                var got: [Int] = []
                for try await message in client.streamingOutputCall(.with(sizes: [1, 70_000, 300_000, 5])) {
                    got.append(message.payload?.body.count ?? -1)
                }
                #expect(got == [1, 70_000, 300_000, 5])
                let sizes = try await withThrowingTaskGroup(of: Int.self) { group in
                    for i in 0..<64 {
                        group.addTask {
                            var r = GrpcTesting.SimpleRequest()
                            r.responseSize = Int32(i * 997)
                            return try await client.unaryCall(r).payload?.body.count ?? -1
                        }
                    }
                    return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
                }
                #expect(sizes == Set((0..<64).map { $0 * 997 }))
                #expect(server.server.connectionCount == 1)
            }
        }

        @Test("a server certificate from a CA the client does not trust is refused at the handshake")
        func wrongCA() async throws {
            let certs = try TestCertificates.get()
            try await withTestServer({ $0.tls = certs.serverTLS }) { server in
                let channel = Self.channel(server.port, RPCClientTLS(caPath: certs.otherCA))
                defer { channel.close() }
                let error = await Self.failure(channel)
                #expect(error?.code == .unavailable)
                #expect(error?.message.contains("certificate verify failed") == true, "\(String(describing: error))")
                await server.expectServesNewClient(tls: RPCClientTLS(caPath: certs.ca))
            }
        }

        @Test("a certificate for another name is refused (the name checked is the host connected to, or serverName)")
        func wrongName() async throws {
            let certs = try TestCertificates.get()
            let tls = RPCServerTLS(certificateChainPath: certs.path("wrong-name.pem"), privateKeyPath: certs.path("wrong-name.key"))
            try await withTestServer({ $0.tls = tls }) { server in
                let byAddress = Self.channel(server.port, RPCClientTLS(caPath: certs.ca))
                defer { byAddress.close() }
                let error = await Self.failure(byAddress)
                #expect(error?.code == .unavailable)
                #expect(error?.message.contains("certificate verify failed") == true, "\(String(describing: error))")
                let byName = Self.channel(server.port, RPCClientTLS(caPath: certs.ca, serverName: "other.example"))
                defer { byName.close() }
                #expect(await Self.failure(byName) == nil)
            }
        }

        @Test("a plaintext client on a TLS port is told the port requires TLS")
        func plaintextClient() async throws {
            let certs = try TestCertificates.get()
            try await withTestServer({ $0.tls = certs.serverTLS }) { server in
                let plain = Self.channel(server.port, nil)
                defer { plain.close() }
                let error = await Self.failure(plain)
                #expect(error?.code == .unavailable)
                #expect(error?.message.contains("this port requires TLS") == true, "\(String(describing: error))")

                let http = try await RawConnection.connect(port: server.port, sendPreface: false)
                try await http.send(Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                let answer = String(decoding: try await http.receiveUntilClosed(), as: UTF8.self)
                #expect(answer.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
                #expect(answer.contains("This port requires TLS"))
                http.close()

                let garbage = try await RawConnection.connect(port: server.port, sendPreface: false)
                try await garbage.send([0x00, 0x01, 0x02, 0x03])
                #expect(try await garbage.receiveUntilClosed().isEmpty)
                garbage.close()
                await server.expectServesNewClient(tls: RPCClientTLS(caPath: certs.ca))
            }
        }

        @Test("a TLS client on a plaintext port fails at once with a clear reason")
        func tlsClientOnPlainPort() async throws {
            try await withTestServer { server in
                let certs = try TestCertificates.get()
                let channel = Self.channel(server.port, RPCClientTLS(caPath: certs.ca))
                defer { channel.close() }
                let error = await Self.failure(channel)
                #expect(error?.code == .unavailable)
                #expect(error?.message.contains("during the TLS handshake") == true, "\(String(describing: error))")
                await server.expectServesNewClient()
            }
        }

        @Test("a handshake that never comes is cut at the frame timeout")
        func stalledHandshake() async throws {
            try await withTestServer({
                $0.tls = try? TestCertificates.get().serverTLS
                $0.frameTimeoutSeconds = 0.5
            }) { server in
                let raw = try await RawConnection.connect(port: server.port, sendPreface: false)
                defer { raw.close() }
                try await raw.send([0x16, 0x03, 0x01])  // the start of a record, then nothing
                let started = ContinuousClock.now
                _ = try await raw.receiveUntilClosed(timeout: 10)
                #expect(ContinuousClock.now - started < .seconds(8))
            }
        }

        @Test("mutual TLS: a client without a certificate, or with one from another CA, is refused; one from the CA is served")
        func mutual() async throws {
            let certs = try TestCertificates.get()
            var tls = certs.serverTLS
            tls.clientCAPath = certs.ca
            try await withTestServer({ $0.tls = tls }) { server in
                let anonymous = Self.channel(server.port, RPCClientTLS(caPath: certs.ca))
                defer { anonymous.close() }
                let error = await Self.failure(anonymous)
                #expect(error?.code == .unavailable)
                #expect(error?.message.lowercased().contains("certificate") == true, "\(String(describing: error))")

                let stranger = Self.channel(server.port, RPCClientTLS(
                    caPath: certs.ca, certificateChainPath: certs.path("stranger.pem"), privateKeyPath: certs.path("stranger.key")))
                defer { stranger.close() }
                let refused = await Self.failure(stranger)
                #expect(refused?.code == .unavailable, "\(String(describing: refused))")

                await server.expectServesNewClient(tls: RPCClientTLS(
                    caPath: certs.ca, certificateChainPath: certs.path("client.pem"), privateKeyPath: certs.path("client.key")))
            }
        }

        @Test("graceful shutdown over TLS: a call in flight finishes, then the go-away closes the connection")
        func drain() async throws {
            let certs = try TestCertificates.get()
            let server = try TestServer { $0.tls = certs.serverTLS }
            let channel = Self.channel(server.port, RPCClientTLS(caPath: certs.ca))
            defer { channel.close() }
            let client = GrpcTesting.TestService.Client(channel: channel)
            _ = try await client.unaryCall(Self.small())
            var count = 0
            for try await _ in client.streamingOutputCall(.with(sizes: [10, 10, 10], intervalUs: 200_000)) {
                count += 1
                if count == 1 { server.server.beginGracefulShutdown() }
            }
            #expect(count == 3)
            await server.waitUntilStopped()
        }

        @Test("bad server settings fail the start and name the file")
        func badSettings() throws {
            let certs = try TestCertificates.get()
            func startError(_ tls: RPCServerTLS) -> String? {
                var configuration = TestServer.defaultConfiguration()
                configuration.tls = tls
                let server = RPCServer(configuration: configuration, services: [])
                do {
                    try server.start()
                    server.beginGracefulShutdown()
                    return nil
                } catch {
                    return "\(error)"
                }
            }
            let missing = startError(RPCServerTLS(certificateChainPath: certs.path("server.pem"), privateKeyPath: certs.path("nope.key")))
            #expect(missing?.contains("nope.key") == true, "\(String(describing: missing))")
            let mismatched = startError(RPCServerTLS(certificateChainPath: certs.path("server.pem"), privateKeyPath: certs.path("client.key")))
            #expect(mismatched?.contains("does not match") == true, "\(String(describing: mismatched))")
            let notPEM = startError(RPCServerTLS(certificateChainPath: certs.path("server.ext"), privateKeyPath: certs.path("server.key")))
            #expect(notPEM?.contains("cannot load the TLS certificate") == true, "\(String(describing: notPEM))")
            let clientCA = startError(RPCServerTLS(certificateChainPath: certs.path("server.pem"), privateKeyPath: certs.path("server.key"), clientCAPath: certs.path("missing-ca.pem")))
            #expect(clientCA?.contains("missing-ca.pem") == true, "\(String(describing: clientCA))")
        }

        @Test("a client whose CA file cannot be read fails its calls naming the file")
        func badClientSettings() async throws {
            try await withTestServer { server in
                let channel = Self.channel(server.port, RPCClientTLS(caPath: "/nonexistent/ca.pem"))
                defer { channel.close() }
                let error = await Self.failure(channel)
                #expect(error?.code == .unavailable)
                #expect(error?.message.contains("/nonexistent/ca.pem") == true, "\(String(describing: error))")
            }
        }
    }
}

extension TestServer {
    /// ``expectServesNewClient(sourceLocation:)`` over TLS.
    func expectServesNewClient(tls: RPCClientTLS, sourceLocation: SourceLocation = #_sourceLocation) async {
        let fresh = Loopback.TLSTests.channel(port, tls)
        defer { fresh.close() }
        if let error = await Loopback.TLSTests.failure(fresh) {
            Issue.record("a well-behaved TLS client was not served: \(error)", sourceLocation: sourceLocation)
        }
    }
}
