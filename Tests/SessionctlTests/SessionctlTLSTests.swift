import Foundation
import RPC
import Testing

/// sessionctl against a sessiond whose port has TLS: the CA flag or its
/// environment variable, and the error a user sees without them.
@Suite("sessionctl over TLS")
struct SessionctlTLSTests {
    /// A self-signed certificate for 127.0.0.1, made with the openssl CLI; it is its own CA.
    static func selfSigned(in directory: String) throws -> (cert: String, key: String) {
        let cert = directory + "/server.pem", key = directory + "/server.key"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                             "-days", "2", "-subj", "/CN=sessiond test", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                             "-keyout", key, "-out", cert]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let log = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CLIError("openssl failed: \(String(decoding: log, as: UTF8.self))") }
        return (cert, key)
    }

    @Test("--tls-ca (or SESSIONCTL_TLS_CA) connects; without it the user is told the port requires TLS; half a client certificate is a usage error")
    func tls() async throws {
        let directory = NSTemporaryDirectory() + "/sessionctl-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (cert, key) = try Self.selfSigned(in: directory)
        try await withServer({ $0.server.tls = RPCServerTLS(certificateChainPath: cert, privateKeyPath: key) }) { server in
            var r = try await sessionctl(["health", "--tls-ca", cert], env: server.env)
            #expect(r.status == 0 && r.stdout.contains("SERVING"), "\(r)")
            r = try await sessionctl(["channels", "create", "web", "--type", "enhanced-web-chat-v2"], env: server.env.merging(["SESSIONCTL_TLS_CA": cert]) { $1 })
            #expect(r.status == 0, "\(r)")
            r = try await sessionctl(["--server", "localhost:\(server.address.split(separator: ":").last!)", "--tls-ca", cert, "channels", "list", "--json"], env: server.env)
            #expect(r.status == 0 && r.stdout.contains("\"web\""), "\(r)")

            r = try await sessionctl(["health"], env: server.env)
            #expect(r.status == exitUnavailable, "\(r)")
            #expect(r.stderr.contains("this port requires TLS"), "\(r)")
            // The system's CAs do not know a self-signed certificate.
            r = try await sessionctl(["health", "--tls"], env: server.env)
            #expect(r.status == exitUnavailable && r.stderr.contains("certificate verify failed"), "\(r)")
            r = try await sessionctl(["health", "--tls-ca", cert, "--tls-cert", cert], env: server.env)
            #expect(r.status == exitUsage && r.stderr.contains("--tls-cert and --tls-key go together"), "\(r)")
        }
    }
}
