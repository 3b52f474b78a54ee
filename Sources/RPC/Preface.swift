/// The 8 bytes that open every connection: ASCII `SESSRPC` and a version byte.
///
/// The client sends it first; a server that accepts the connection answers
/// with its own preface before any frame. Anything else is refused and
/// closed (an HTTP request gets a one-line HTTP 400 first).
public enum Preface {
    /// The protocol version this implementation speaks.
    public static let version: UInt8 = 1
    /// `S E S S R P C` followed by ``version``.
    public static let bytes: [UInt8] = Array("SESSRPC".utf8) + [version]
    public static let count = 8

    /// What a complete preface from a peer means.
    public enum Verdict: Equatable, Sendable {
        case accepted
        /// Our magic, another version.
        case unsupportedVersion(UInt8)
        /// Looks like an HTTP/1.x or HTTP/2 request line.
        case http
        case garbage
    }

    /// Judges the first 8 bytes a peer sent.
    public static func judge(_ received: some Collection<UInt8>) -> Verdict {
        let b = Array(received.prefix(count))
        if b.count == count, b.prefix(7).elementsEqual(bytes.prefix(7)) {
            return b[7] == version ? .accepted : .unsupportedVersion(b[7])
        }
        let text = String(decoding: b, as: UTF8.self)
        for method in httpMethods where text.hasPrefix(method) {
            return .http
        }
        return .garbage
    }

    private static let httpMethods = ["GET ", "POST", "PUT ", "HEAD", "DELE", "OPTI", "PATC", "CONN", "TRAC", "PRI "]

    /// True while `partial` (fewer than 8 bytes) could still become our
    /// preface or an HTTP request line: wait for more before judging.
    public static func couldContinue(_ partial: some Collection<UInt8>) -> Bool {
        let b = Array(partial.prefix(count))
        if bytes.starts(with: b) { return true }
        return httpMethods.contains { Array($0.utf8).starts(with: b) || b.starts(with: Array($0.utf8)) }
    }

    /// What an HTTP client is told before the connection closes.
    public static let httpRefusal: [UInt8] = Array((
        "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 62\r\n\r\n"
        + "This port speaks the session RPC protocol (see PROTOCOL.md).\r\n"
    ).utf8)
}
