/// An error of the domain core: a canonical status code and a message that is one clear sentence
/// naming the object involved (session, channel, rep, status, channel type or permission).
///
/// The RPC layer maps `code` one-to-one to the gRPC status code of the same name. Errors thrown by a
/// `SessionRepository` that are not `DomainError` are storage failures and must be mapped by the caller.
public struct DomainError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The canonical code of a domain error (a subset of gRPC's status codes).
    public enum Code: String, Sendable, CaseHashable {
        /// The request itself is malformed or out of range (independent of the system's state).
        case invalidArgument = "INVALID_ARGUMENT"
        /// A named channel, rep or session does not exist.
        case notFound = "NOT_FOUND"
        /// The object to create already exists.
        case alreadyExists = "ALREADY_EXISTS"
        /// The request is well-formed but does not fit the current state (for example the session's status).
        case failedPrecondition = "FAILED_PRECONDITION"
        /// The caller's role or identity may not perform this action, or a rep lacks a channel permission.
        case permissionDenied = "PERMISSION_DENIED"
        /// A limit was exceeded.
        case resourceExhausted = "RESOURCE_EXHAUSTED"
        /// A concurrent change won the race (optimistic concurrency conflict); the caller may retry.
        case aborted = "ABORTED"
    }

    /// The canonical code.
    public var code: Code
    /// A clear sentence for the caller.
    public var message: String

    /// Creates an error with a code and a message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// An `INVALID_ARGUMENT` error.
    public static func invalidArgument(_ message: String) -> DomainError { DomainError(.invalidArgument, message) }
    /// A `NOT_FOUND` error.
    public static func notFound(_ message: String) -> DomainError { DomainError(.notFound, message) }
    /// An `ALREADY_EXISTS` error.
    public static func alreadyExists(_ message: String) -> DomainError { DomainError(.alreadyExists, message) }
    /// A `FAILED_PRECONDITION` error.
    public static func failedPrecondition(_ message: String) -> DomainError { DomainError(.failedPrecondition, message) }
    /// A `PERMISSION_DENIED` error.
    public static func permissionDenied(_ message: String) -> DomainError { DomainError(.permissionDenied, message) }
    /// A `RESOURCE_EXHAUSTED` error.
    public static func resourceExhausted(_ message: String) -> DomainError { DomainError(.resourceExhausted, message) }
    /// An `ABORTED` error.
    public static func aborted(_ message: String) -> DomainError { DomainError(.aborted, message) }

    /// `CODE: message`.
    public var description: String {
        "\(code.rawValue): \(message)"
    }
}
