import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// TLS on a server's port: every connection must handshake first (a
/// plaintext client is answered with a go-away saying so, see PROTOCOL.md §1).
public struct RPCServerTLS: Sendable {
    /// PEM file with the server's certificate, then any intermediates.
    public var certificateChainPath: String
    /// PEM file with the certificate's private key.
    public var privateKeyPath: String
    /// When set, clients must present a certificate signed by a CA in this PEM
    /// file (mutual TLS); without one the handshake fails.
    public var clientCAPath: String?

    public init(certificateChainPath: String, privateKeyPath: String, clientCAPath: String? = nil) {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
        self.clientCAPath = clientCAPath
    }
}

/// TLS of a client channel.
public struct RPCClientTLS: Sendable {
    /// PEM file of the CAs the server's certificate must chain to; nil trusts
    /// the system's store.
    public var caPath: String?
    /// A client certificate (PEM chain) and its key, for servers that require one.
    public var certificateChainPath: String?
    public var privateKeyPath: String?
    /// The name the server's certificate must carry (DNS name or IP address);
    /// nil: the host the channel connects to.
    public var serverName: String?

    public init(caPath: String? = nil, certificateChainPath: String? = nil, privateKeyPath: String? = nil, serverName: String? = nil) {
        self.caPath = caPath
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
        self.serverName = serverName
    }
}

/// A TLS setting that could not be applied (a file that is missing, not PEM,
/// or a key that does not match its certificate), or a failed handshake.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
    init(_ message: String) { self.message = message }

    /// `what`, with the reasons OpenSSL queued on this thread (the queue is emptied).
    static func openSSL(_ what: String) -> TLSError {
        let reasons = drainErrors()
        return TLSError(reasons.isEmpty ? what : "\(what): \(reasons)")
    }

    static func drainErrors() -> String {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            if let reason = ERR_reason_error_string(code) {
                reasons.append(String(cString: reason))
            } else {
                var buffer = [CChar](repeating: 0, count: 256)
                ERR_error_string_n(code, &buffer, buffer.count)
                reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
        }
        return reasons.joined(separator: "; ")
    }
}

/// An OpenSSL `SSL_CTX` set up once (certificates loaded and checked), then
/// shared by every connection; OpenSSL allows creating connections from one
/// context on any thread once it is no longer changed.
package final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer
    let isServer: Bool

    private init(server: Bool) throws(TLSError) {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()) else {
            throw TLSError.openSSL("cannot create a TLS context")
        }
        context = ctx
        isServer = server
        _ = copenssl_ctx_set_min_tls12(ctx)
        _ = SSL_CTX_set_options(ctx, UInt64(COPENSSL_OP_NO_RENEGOTIATION | COPENSSL_OP_NO_COMPRESSION))
        // An idle connection gives its record buffers back (~34 KiB each).
        _ = copenssl_ctx_set_mode(ctx, COPENSSL_MODE_RELEASE_BUFFERS)
    }

    deinit { SSL_CTX_free(context) }

    package static func server(_ settings: RPCServerTLS) throws(TLSError) -> TLSContext {
        let tls = try TLSContext(server: true)
        try tls.useCertificate(chain: settings.certificateChainPath, key: settings.privateKeyPath)
        let sessionContext = Array("sessiond".utf8)
        _ = SSL_CTX_set_session_id_context(tls.context, sessionContext, UInt32(sessionContext.count))
        if let ca = settings.clientCAPath {
            try tls.trust(caFile: ca, what: "client CA")
            guard let names = SSL_load_client_CA_file(ca) else { throw TLSError.openSSL("cannot read the client CA names of \(ca)") }
            SSL_CTX_set_client_CA_list(tls.context, names)
            SSL_CTX_set_verify(tls.context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        }
        return tls
    }

    package static func client(_ settings: RPCClientTLS) throws(TLSError) -> TLSContext {
        let tls = try TLSContext(server: false)
        if let ca = settings.caPath {
            try tls.trust(caFile: ca, what: "CA")
        } else if SSL_CTX_set_default_verify_paths(tls.context) != 1 {
            throw TLSError.openSSL("cannot load the system's trusted CAs")
        }
        SSL_CTX_set_verify(tls.context, SSL_VERIFY_PEER, nil)
        switch (settings.certificateChainPath, settings.privateKeyPath) {
        case let (chain?, key?): try tls.useCertificate(chain: chain, key: key)
        case (nil, nil): break
        default: throw TLSError("a client certificate needs both its chain and its key")
        }
        return tls
    }

    private func useCertificate(chain: String, key: String) throws(TLSError) {
        try Self.readable(chain, "certificate")
        try Self.readable(key, "private key")
        ERR_clear_error()
        guard SSL_CTX_use_certificate_chain_file(context, chain) == 1 else {
            throw TLSError.openSSL("cannot load the TLS certificate \(chain)")
        }
        guard SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1 else {
            let error = TLSError.openSSL("cannot load the TLS private key \(key)")
            if error.message.hasSuffix("key values mismatch") {
                throw TLSError("the TLS private key \(key) does not match the certificate \(chain)")
            }
            throw error
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            throw TLSError.openSSL("the TLS private key \(key) does not match the certificate \(chain)")
        }
    }

    private func trust(caFile: String, what: String) throws(TLSError) {
        try Self.readable(caFile, what)
        ERR_clear_error()
        guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
            throw TLSError.openSSL("cannot load the \(what) file \(caFile)")
        }
    }

    /// OpenSSL's message for a missing file is "system lib"; say what is wrong instead.
    private static func readable(_ path: String, _ what: String) throws(TLSError) {
        if access(path, R_OK) != 0 {
            throw TLSError("cannot read the TLS \(what) \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// One TLS connection over memory BIOs: ciphertext goes in and comes out as
/// bytes, the socket stays the caller's (so the Dispatch sources, bounds and
/// timeouts of a plaintext connection apply unchanged). Confined to one
/// serial queue, like the connection that owns it (handed over once, from
/// the thread that ran a client's handshake: hence `@unchecked Sendable`).
package final class TLSSession: @unchecked Sendable {
    private let ssl: OpaquePointer
    private let input: OpaquePointer   // ciphertext from the peer, read by OpenSSL
    private let output: OpaquePointer  // ciphertext for the peer, written by OpenSSL
    package private(set) var isEstablished = false

    package enum ReadState { case open, closedByPeer }

    /// `serverName` (client side): the DNS name or IP address the peer's
    /// certificate must carry; also sent as SNI when it is a name.
    package init(context: TLSContext, serverName: String? = nil) throws(TLSError) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.context) else { throw TLSError.openSSL("cannot create a TLS connection") }
        guard let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError.openSSL("cannot create TLS buffers")
        }
        // An empty input means "wait for more", not end of file.
        _ = copenssl_bio_set_mem_eof_return(input, -1)
        SSL_set_bio(ssl, input, output)  // the SSL owns both from here
        self.ssl = ssl
        self.input = input
        self.output = output
        if context.isServer {
            SSL_set_accept_state(ssl)
        } else {
            if let name = serverName {
                if Self.isIPAddress(name) {
                    guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 else {
                        throw TLSError.openSSL("cannot verify the server's address \(name)")
                    }
                } else {
                    _ = copenssl_set_sni(ssl, name)
                    guard SSL_set1_host(ssl, name) == 1 else { throw TLSError.openSSL("cannot verify the server's name \(name)") }
                }
            }
            SSL_set_connect_state(ssl)
        }
    }

    deinit { SSL_free(ssl) }

    private static func isIPAddress(_ s: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }

    /// Takes ciphertext the peer sent.
    package func feed(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var offset = 0
        while offset < bytes.count {
            let n = BIO_write(input, base + offset, Int32(min(bytes.count - offset, Int(Int32.max))))
            if n <= 0 { break }  // a memory BIO only fails when memory does
            offset += Int(n)
        }
    }

    /// Advances the handshake, then decrypts everything the fed ciphertext
    /// holds, handing the plaintext to `deliver` in pieces of at most
    /// `buffer.count` bytes. Handshake and alert records to send back are left
    /// in the output (see ``takeOutput(into:)``).
    package func read(into buffer: UnsafeMutableRawBufferPointer, deliver: (UnsafeRawBufferPointer) -> Void) throws(TLSError) -> ReadState {
        guard try handshake() else { return .open }
        while true {
            ERR_clear_error()
            let n = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
            if n > 0 {
                deliver(UnsafeRawBufferPointer(rebasing: buffer[0..<Int(n)]))
                continue
            }
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .open
            case SSL_ERROR_ZERO_RETURN: return .closedByPeer
            case let code: throw failure(code, during: "TLS read")
            }
        }
    }

    /// Encrypts up to `plain.count` bytes into the output; returns how many
    /// were taken (0 while the handshake is not finished).
    package func write(_ plain: UnsafeRawBufferPointer) throws(TLSError) -> Int {
        guard plain.count > 0, try handshake() else { return 0 }
        ERR_clear_error()
        let n = SSL_write(ssl, plain.baseAddress, Int32(min(plain.count, Int(Int32.max))))
        if n > 0 { return Int(n) }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return 0
        case let code: throw failure(code, during: "TLS write")
        }
    }

    /// Drives the handshake; true once it is done.
    @discardableResult
    package func handshake() throws(TLSError) -> Bool {
        if isEstablished { return true }
        ERR_clear_error()
        let r = SSL_do_handshake(ssl)
        if r == 1 {
            isEstablished = true
            return true
        }
        switch SSL_get_error(ssl, r) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return false
        case let code: throw failure(code, during: "TLS handshake")
        }
    }

    /// Plaintext encrypted per ``seal(_:sent:into:)``: what TLS adds to a
    /// connection's buffered output stays about this size.
    package static let sliceBytes = 64 * 1024

    /// Encrypts the next slice of `plain` after `sent` (advancing it) once the
    /// handshake is done, and moves every record waiting to go out to the end of `cipher`.
    package func seal(_ plain: [UInt8], sent: inout Int, into cipher: inout [UInt8]) throws(TLSError) {
        if isEstablished, sent < plain.count {
            let from = sent, end = min(plain.count, sent + Self.sliceBytes)
            var result: Result<Int, TLSError> = .success(0)
            plain.withUnsafeBytes { bytes in
                result = Result { () throws(TLSError) in try write(UnsafeRawBufferPointer(rebasing: bytes[from..<end])) }
            }
            sent += try result.get()
        }
        takeOutput(into: &cipher)
    }

    /// Ciphertext waiting to go to the peer.
    package var pendingOutput: Int { copenssl_bio_pending(output) }

    /// Moves the ciphertext waiting to go to the peer to the end of `out`.
    package func takeOutput(into out: inout [UInt8]) {
        let pending = copenssl_bio_pending(output)
        guard pending > 0 else { return }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: pending))
        let n = out.withUnsafeMutableBytes { BIO_read(output, $0.baseAddress! + start, Int32(pending)) }
        out.removeLast(pending - max(0, Int(n)))
    }

    /// Queues a close_notify alert (the caller still sends the output).
    package func close() {
        ERR_clear_error()
        if isEstablished { _ = SSL_shutdown(ssl) }
        ERR_clear_error()
    }

    /// The subject of the certificate the peer presented, if it presented one.
    package var peerSubject: String? {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        guard let name = X509_get_subject_name(cert), let line = X509_NAME_oneline(name, nil, 0) else { return nil }
        defer { CRYPTO_free(line, #fileID, #line) }
        return String(cString: line)
    }

    /// The negotiated protocol version (`TLSv1.3`), for logs.
    package var version: String { String(cString: SSL_get_version(ssl)) }

    private func failure(_ code: Int32, during what: String) -> TLSError {
        var reasons = TLSError.drainErrors()
        let verify = SSL_get_verify_result(ssl)
        if verify != Int(X509_V_OK), let text = X509_verify_cert_error_string(verify) {
            reasons += (reasons.isEmpty ? "" : ": ") + String(cString: text)
        }
        if reasons.isEmpty {
            reasons = code == SSL_ERROR_SYSCALL ? "the peer ended the connection" : "OpenSSL error \(code)"
        }
        return TLSError("\(what) failed: \(reasons)")
    }
}

extension TLSSession {
    /// Runs the client's handshake on the connected non-blocking socket `fd`
    /// within `timeoutMillis` (the caller's connect thread waits in poll; the
    /// connection's queue only sees an established session).
    package func handshake(fd: Int32, timeoutMillis: Int32) throws(TLSError) {
        let deadline = monotonicNanos() &+ UInt64(max(0, timeoutMillis)) * 1_000_000
        func wait(_ events: Int32) throws(TLSError) {
            while true {
                let now = monotonicNanos()
                guard now < deadline else { throw TLSError("TLS handshake timed out after \(timeoutMillis) ms") }
                var pfd = pollfd(fd: fd, events: Int16(events), revents: 0)
                let n = poll(&pfd, 1, Int32(clamping: (deadline - now) / 1_000_000 + 1))
                if n > 0 { return }
                if n < 0 && errno != EINTR { throw TLSError("TLS handshake failed: poll: \(String(cString: strerror(errno)))") }
            }
        }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let done = try handshake()
            takeOutput(into: &out)
            var sent = 0
            while sent < out.count {
                let n = out.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
                if n > 0 { sent += n; continue }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { try wait(Int32(POLLOUT)); continue }
                throw TLSError("TLS handshake failed: write: \(String(cString: strerror(errno)))")
            }
            out.removeAll(keepingCapacity: true)
            if done { return }
            try wait(Int32(POLLIN))
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                buffer.withUnsafeBytes { feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            } else if n == 0 {
                throw TLSError("the server closed the connection during the TLS handshake (is TLS on for its port?)")
            } else if errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK {
                throw TLSError("TLS handshake failed: read: \(String(cString: strerror(errno)))")
            }
        }
    }
}
