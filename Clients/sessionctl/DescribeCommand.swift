import ArgumentParser
import ProtoRuntime
import SessionAPI

/// `sessionctl describe [NAME]`: the services, methods, messages and enums
/// that `sessionctl call` knows, from the schema generated with the code
/// (no server is asked).
struct Describe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the services and methods 'sessionctl call' can call, and their message fields.",
        discussion: """
            Without NAME: every service with its methods, REQUEST → RESPONSE ('stream' marks a server-streaming \
            response). NAME may be a service (full or short name: sessions.v1.SessionService, SessionService), a \
            method (SessionService/CreateSession: its request and response fields), a message \
            (sessions.v1.Channel or Channel) or an enum. Fields show their JSON name, type ('repeated' for lists; \
            the values of enums) and, when it differs, their .proto name; message fields are expanded indented. \
            With --json, the same as JSON. Read from the schema sessionctl was built with; no server is asked.
            """)

    @Argument(help: ArgumentHelp("A service, Service/Method, message or enum (default: every service).", valueName: "name"))
    var name: String?

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let schema = ProtoSchema.sessionAPI
        let json = global.wantsJSON
        guard let name else {
            if json {
                say(ProtoJSON.object([("services", .array(schema.services.map(serviceJSON)))]).rendered(pretty: true))
            } else {
                say(schema.services.map(serviceText).joined(separator: "\n\n"))
            }
            return
        }
        switch try Self.find(name, in: schema) {
        case .service(let service):
            say(json ? serviceJSON(service).rendered(pretty: true) : serviceText(service))
        case .method(let service, let method):
            if json {
                say(methodJSON(service, method, withTypes: true, schema: schema).rendered(pretty: true))
            } else {
                var lines = ["\(service.fullName)/\(method.name)  \(signature(method))"]
                for (label, type) in [("request", method.requestType), ("response", method.responseType)] {
                    lines.append("")
                    lines.append("\(label) \(type)")
                    if let message = schema.message(named: type) {
                        lines += fieldLines(message, schema: schema, indent: "  ", path: [type])
                    }
                }
                say(lines.joined(separator: "\n"))
            }
        case .message(let message):
            if json {
                say(messageJSON(message, withTypes: true, schema: schema).rendered(pretty: true))
            } else {
                say((["message \(message.fullName)"] + fieldLines(message, schema: schema, indent: "  ", path: [message.fullName])).joined(separator: "\n"))
            }
        case .enumeration(let e):
            if json {
                say(enumJSON(e).rendered(pretty: true))
            } else {
                say((["enum \(e.fullName)"] + e.values.map { "  \($0.name) = \($0.number)" }).joined(separator: "\n"))
            }
        }
    }

    enum Found {
        case service(ProtoSchema.Service)
        case method(ProtoSchema.Service, ProtoSchema.Method)
        case message(ProtoSchema.Message)
        case enumeration(ProtoSchema.Enum)
    }

    static func find(_ name: String, in schema: ProtoSchema) throws -> Found {
        if name.contains("/") {
            let (service, method) = try Call.resolve(name, in: schema)
            return .method(service, method)
        }
        let services = schema.services(named: name)
        if services.count == 1 { return .service(services[0]) }
        if services.count > 1 { _ = try Call.resolveService(name, in: schema) }
        if let message = schema.message(named: name) { return .message(message) }
        if let e = schema.enumeration(named: name) { return .enumeration(e) }
        // grpcurl's spelling of a method: package.Service.Method.
        if let dot = name.lastIndex(of: "."), schema.services(named: String(name[..<dot])).count == 1 {
            let (service, method) = try Call.resolve(name, in: schema)
            return .method(service, method)
        }
        var all = schema.services.flatMap { [$0.fullName, $0.name] }
        all += schema.messages.map(\.fullName) + schema.enums.map(\.fullName)
        all += schema.messages.map { short($0.fullName) } + schema.enums.map { short($0.fullName) }
        let close = closeNames(to: name, among: all)
        var message = "no service, method, message or enum is called '\(name)'"
        if !close.isEmpty { message += "; did you mean \(close.joined(separator: " or "))?" }
        throw ValidationError(message + " ('sessionctl describe' lists the services)")
    }

    // MARK: - Text

    private func signature(_ method: ProtoSchema.Method) -> String {
        "\(method.requestType) → \(method.serverStreaming ? "stream " : "")\(method.responseType)"
    }

    private func serviceText(_ service: ProtoSchema.Service) -> String {
        let width = service.methods.map(\.name.count).max() ?? 0
        let lines = service.methods.map { m in
            "  " + m.name + String(repeating: " ", count: width - m.name.count) + "  " + signature(m)
        }
        return ([service.fullName] + lines).joined(separator: "\n")
    }

    /// One line per field, message fields followed by their own fields
    /// (indented; a message already being expanded is not expanded again).
    private func fieldLines(_ message: ProtoSchema.Message, schema: ProtoSchema, indent: String, path: [String]) -> [String] {
        if message.fields.isEmpty { return [indent + "(no fields)"] }
        let width = message.fields.map(\.jsonName.count).max() ?? 0
        var lines: [String] = []
        for field in message.fields {
            var type = field.repeated ? "repeated " : ""
            switch field.kind {
            case .scalar, .message: type += field.type
            case .enumeration:
                type += "enum \(field.type)"
                if let e = schema.enumeration(named: field.type) { type += " (\(e.values.map(\.name).joined(separator: ", ")))" }
            }
            var notes: [String] = []
            if field.name != field.jsonName { notes.append("proto name \(field.name)") }
            if let oneof = field.oneof { notes.append("oneof \(oneof)") }
            let pad = String(repeating: " ", count: width - field.jsonName.count)
            lines.append(indent + field.jsonName + pad + "  " + type + (notes.isEmpty ? "" : "  [\(notes.joined(separator: "; "))]"))
            if field.kind == .message, let nested = schema.message(named: field.type) {
                if path.contains(nested.fullName) {
                    lines.append(indent + "  (fields of \(nested.fullName) above)")
                } else {
                    lines += fieldLines(nested, schema: schema, indent: indent + "  ", path: path + [nested.fullName])
                }
            }
        }
        return lines
    }

    // MARK: - JSON

    private func methodJSON(_ service: ProtoSchema.Service, _ m: ProtoSchema.Method, withTypes: Bool, schema: ProtoSchema) -> ProtoJSON {
        var o: [(String, ProtoJSON)] = [
            ("name", .string(m.name)), ("path", .string(m.path)), ("requestType", .string(m.requestType)),
            ("responseType", .string(m.responseType)), ("serverStreaming", .bool(m.serverStreaming)),
        ]
        if withTypes {
            o.insert(("service", .string(service.fullName)), at: 0)
            o += referencedTypes(from: [m.requestType, m.responseType], schema: schema, includingRoots: true)
        }
        return .object(o)
    }

    private func serviceJSON(_ service: ProtoSchema.Service) -> ProtoJSON {
        .object([
            ("name", .string(service.fullName)),
            ("methods", .array(service.methods.map { methodJSON(service, $0, withTypes: false, schema: .sessionAPI) })),
        ])
    }

    private func messageJSON(_ message: ProtoSchema.Message, withTypes: Bool, schema: ProtoSchema) -> ProtoJSON {
        var o: [(String, ProtoJSON)] = [
            ("name", .string(message.fullName)),
            ("fields", .array(message.fields.map { f in
                var field: [(String, ProtoJSON)] = [
                    ("name", .string(f.name)), ("jsonName", .string(f.jsonName)), ("number", .number(Double(f.number))),
                    ("kind", .string(f.kind.rawValue)), ("type", .string(f.type)), ("repeated", .bool(f.repeated)),
                ]
                if let oneof = f.oneof { field.append(("oneof", .string(oneof))) }
                return .object(field)
            })),
        ]
        if withTypes { o += referencedTypes(from: [message.fullName], schema: schema, includingRoots: false) }
        return .object(o)
    }

    private func enumJSON(_ e: ProtoSchema.Enum) -> ProtoJSON {
        .object([
            ("name", .string(e.fullName)),
            ("values", .array(e.values.map { .object([("name", .string($0.name)), ("number", .number(Double($0.number)))]) })),
        ])
    }

    /// `messages` and `enums`: every type the roots use, transitively (the roots themselves first when `includingRoots`).
    private func referencedTypes(from roots: [String], schema: ProtoSchema, includingRoots: Bool) -> [(String, ProtoJSON)] {
        var messages: [String] = []
        var enums: [String] = []
        var queue = roots
        while !queue.isEmpty {
            let name = queue.removeFirst()
            guard !messages.contains(name), let message = schema.message(named: name) else { continue }
            messages.append(name)
            for f in message.fields {
                switch f.kind {
                case .message: queue.append(f.type)
                case .enumeration: if !enums.contains(f.type) { enums.append(f.type) }
                case .scalar: break
                }
            }
        }
        if !includingRoots { messages.removeAll { roots.contains($0) } }
        return [
            ("messages", .array(messages.compactMap { schema.message(named: $0) }.map { messageJSON($0, withTypes: false, schema: schema) })),
            ("enums", .array(enums.compactMap { schema.enumeration(named: $0) }.map(enumJSON))),
        ]
    }
}

private func short(_ fullName: String) -> String {
    fullName.split(separator: ".").last.map(String.init) ?? fullName
}
