import ArgumentParser
import Foundation
import ProtoRuntime
import RPC
import SessionAPI
import SessionClient

/// `sessionctl call Service/Method -d JSON`: any method of any service, with
/// the request written as proto3 JSON and the response printed as proto3
/// JSON (as grpcurl does). The method and its message types come from the
/// schema generated with the Swift code (`ProtoSchema.sessionAPI`); the JSON
/// is converted by the generated message types.
struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call any method with a request written as proto3 JSON (as grpcurl does).",
        discussion: """
            METHOD is Service/Method: the service by its full name (sessions.v1.SessionService) or short name \
            (SessionService), the method as written in the .proto (CreateSession); 'sessionctl describe' lists them \
            and their fields.
            The request is proto3 JSON: -d '{"sessionId": "s-1"}', -d @FILE, or -d @- for standard input; without \
            -d it is {} (every field its default). Fields go by their JSON names (lowerCamelCase) or their .proto \
            names; 64-bit integers may be numbers or strings; enums go by name (SERVING) or number; bytes in base64. \
            An unknown field, a value of the wrong type or invalid JSON is a usage error (exit 64), found before \
            connecting.
            A unary response prints as indented proto3 JSON (--compact: on one line). A server-streaming method \
            prints each message as one line of JSON until the server ends the stream (or the command is \
            interrupted); --timeout applies to a stream only when it is given.
            -H 'key: value' adds request metadata (repeatable); a key ending in -bin takes its value in base64. \
            An 'authorization' header is sent instead of --token.
            """)

    @Argument(help: ArgumentHelp("The method: Service/Method, e.g. SessionService/GetSession.", valueName: "service/method"))
    var method: String

    @Option(name: [.customShort("d"), .customLong("data")], help: ArgumentHelp(
        "The request as proto3 JSON, @FILE to read it from a file, or @- from standard input (default: {}).",
        valueName: "json|@file|@-"))
    var data: String?

    @Option(name: [.customShort("H"), .customLong("header")], help: ArgumentHelp(
        "Request metadata 'key: value' (repeatable; -bin keys take base64).", valueName: "key: value"))
    var headers: [String] = []

    @Flag(help: "Print a unary response on one line instead of indented.")
    var compact = false

    @OptionGroup var global: GlobalOptions

    /// Requests are bounded like a frame on the wire.
    static let maxRequestBytes = 4 * 1024 * 1024

    func run() async throws {
        // Everything that can be wrong with the command line is found before connecting.
        let (_, target) = try Self.resolve(method, in: .sessionAPI)
        let json = try Self.parseRequest(try Self.readRequest(data))
        let payload: [UInt8]
        do {
            payload = try target.encodeRequest(json)
        } catch {
            throw ValidationError("-d: \(error)" + (error.path.isEmpty ? "" : " (in request \(target.requestType))"))
        }
        let metadata = try Self.parseHeaders(headers)
        var options = RPCCallOptions(metadata: metadata)
        if !target.serverStreaming || global.timeoutGiven {
            options.timeout = try global.callOptions().timeout
        }
        let sendToken = !metadata.contains { $0.key == "authorization" }

        try await runCall {
            let client = try global.client(sendToken: sendToken)
            defer { client.close() }
            if target.serverStreaming {
                for try await bytes in client.channel.serverStreamingSerialized(path: target.path, request: payload, options: options) {
                    say(try Self.responseJSON(bytes, target).rendered())
                    fflush(nil)
                }
            } else {
                let response = try await client.channel.unarySerialized(path: target.path, request: payload, options: options)
                say(try Self.responseJSON(response.message, target).rendered(pretty: !compact))
            }
        }
    }

    private static func responseJSON(_ bytes: [UInt8], _ method: ProtoSchema.Method) throws(RPCError) -> ProtoJSON {
        do {
            return try method.decodeResponse(bytes)
        } catch {
            throw RPCError(.internal, "response of \(method.path) is not a valid \(method.responseType): \(error)")
        }
    }

    // MARK: - The method

    /// `Service/Method` (also `/Service/Method` and `Service.Method`, as grpcurl takes them).
    static func resolve(_ spec: String, in schema: ProtoSchema) throws -> (ProtoSchema.Service, ProtoSchema.Method) {
        var text = spec
        if text.hasPrefix("/") { text.removeFirst() }
        if let service = schema.services(named: text).first {
            throw ValidationError("'\(spec)' is a service; name one of its methods, e.g. \(service.name)/\(service.methods.first?.name ?? "Method") (its methods: \(service.methods.map(\.name).joined(separator: ", ")))")
        }
        let separator = text.lastIndex(of: "/") ?? text.lastIndex(of: ".")
        guard let separator, separator != text.startIndex, text.index(after: separator) != text.endIndex else {
            throw ValidationError("'\(spec)' is not Service/Method (e.g. SessionService/GetSession); 'sessionctl describe' lists the methods")
        }
        let serviceName = String(text[..<separator])
        let methodName = String(text[text.index(after: separator)...])
        let service = try resolveService(serviceName, in: schema)
        guard let method = service.method(named: methodName) else {
            let names = service.methods.map(\.name)
            var message = "\(service.fullName) has no method '\(methodName)'"
            let close = closeNames(to: methodName, among: names)
            if !close.isEmpty { message += "; did you mean \(close.joined(separator: " or "))?" }
            message += " Its methods: \(names.joined(separator: ", "))"
            throw ValidationError(message)
        }
        return (service, method)
    }

    static func resolveService(_ name: String, in schema: ProtoSchema) throws -> ProtoSchema.Service {
        let matches = schema.services(named: name)
        if matches.count == 1 { return matches[0] }
        if matches.count > 1 {
            throw ValidationError("service name '\(name)' is ambiguous: \(matches.map(\.fullName).joined(separator: ", ")); give the full name")
        }
        let all = schema.services.map(\.fullName)
        let close = closeNames(to: name, among: all + schema.services.map(\.name))
            .map { short in schema.services.first { $0.name == short }?.fullName ?? short }
        var message = "unknown service '\(name)'"
        if !close.isEmpty {
            var unique: [String] = []
            for c in close where !unique.contains(c) { unique.append(c) }
            message += "; did you mean \(unique.joined(separator: " or "))?"
        } else {
            message += "; the services are \(all.joined(separator: ", "))"
        }
        throw ValidationError(message)
    }

    // MARK: - The request

    /// The text of `-d`: itself, a file's contents (`@FILE`) or standard input (`@-`).
    static func readRequest(_ data: String?) throws -> [UInt8] {
        guard let data else { return Array("{}".utf8) }
        guard data.hasPrefix("@") else { return Array(data.utf8) }
        let path = String(data.dropFirst())
        let bytes: Data
        if path == "-" {
            bytes = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard !path.isEmpty else { throw ValidationError("-d @: give a file name after @ (or @- for standard input)") }
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw ValidationError("-d @\(path): cannot read the file")
            }
            bytes = contents
        }
        guard bytes.count <= maxRequestBytes else {
            throw ValidationError("-d \(data): the request is \(bytes.count) bytes, more than \(maxRequestBytes)")
        }
        return Array(bytes)
    }

    static func parseRequest(_ bytes: [UInt8]) throws -> ProtoJSON {
        guard bytes.count <= maxRequestBytes else {
            throw ValidationError("-d: the request is \(bytes.count) bytes, more than \(maxRequestBytes)")
        }
        do {
            return try ProtoJSON.parse(utf8: bytes)
        } catch {
            throw ValidationError("-d: \(error)")
        }
    }

    /// `key: value` pairs; keys are lower-cased, `-bin` values base64-decoded.
    static func parseHeaders(_ headers: [String]) throws -> RPCMetadata {
        var metadata = RPCMetadata()
        for header in headers {
            guard let colon = header.firstIndex(of: ":") else {
                throw ValidationError("-H '\(header)': write it as 'key: value'")
            }
            let key = String(header[..<colon]).trimmingWhitespace().lowercased()
            let value = String(header[header.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
            if let problem = RPCMetadata.keyProblem(key) { throw ValidationError("-H '\(header)': \(problem)") }
            if key.hasSuffix("-bin") {
                guard let bytes = ProtoJSON.base64Decode(value) else {
                    throw ValidationError("-H '\(header)': the value of a -bin key must be base64")
                }
                metadata.add(key, binary: bytes)
            } else {
                metadata.add(key, value)
            }
        }
        if let problem = metadata.problem() { throw ValidationError("-H: \(problem)") }
        return metadata
    }
}

/// Names among `names` that `name` probably meant: the same but for case, or
/// within a small edit distance, or containing it.
func closeNames(to name: String, among names: [String]) -> [String] {
    let wanted = name.lowercased()
    let scored = names.compactMap { candidate -> (String, Int)? in
        let lower = candidate.lowercased()
        if lower == wanted { return (candidate, 0) }
        let d = editDistance(wanted, lower)
        if d <= max(2, wanted.count / 4) { return (candidate, d) }
        if wanted.count >= 4, lower.contains(wanted) { return (candidate, 100 + lower.count) }
        return nil
    }
    return scored.sorted { $0.1 < $1.1 }.prefix(3).map(\.0)
}

/// Levenshtein distance.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
