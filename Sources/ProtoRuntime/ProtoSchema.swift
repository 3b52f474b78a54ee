/// What the generator knew about a group of `.proto` files, kept for tools
/// that find methods and messages by name at run time (`sessionctl call`,
/// `sessionctl describe`): every service with its methods, every message with
/// its fields, every enum with its values. A method carries the conversions
/// between proto3 JSON and the wire bytes of its request and response, done
/// by the generated types.
public struct ProtoSchema: Sendable {
    public let services: [Service]
    public let messages: [Message]
    public let enums: [Enum]

    public init(services: [Service], messages: [Message], enums: [Enum]) {
        self.services = services
        self.messages = messages
        self.enums = enums
    }

    /// A service.
    public struct Service: Sendable {
        /// `package.Service`, e.g. `sessions.v1.SessionService`.
        public let fullName: String
        public let methods: [Method]

        public init(fullName: String, methods: [Method]) {
            self.fullName = fullName
            self.methods = methods
        }

        /// The name without its package (`SessionService`).
        public var name: String { fullName.split(separator: ".").last.map(String.init) ?? fullName }

        public func method(named name: String) -> Method? { methods.first { $0.name == name } }
    }

    /// One method of a service (unary or server-streaming).
    public struct Method: Sendable {
        /// As written in the `.proto` file (`CreateSession`).
        public let name: String
        /// The path on the wire: `/package.Service/Method`.
        public let path: String
        /// Full names of the request and response messages.
        public let requestType: String
        public let responseType: String
        public let serverStreaming: Bool
        /// The request given as proto3 JSON, serialized.
        public let encodeRequest: @Sendable (ProtoJSON) throws(ProtoJSONDecodingError) -> [UInt8]
        /// A serialized response message as proto3 JSON.
        public let decodeResponse: @Sendable ([UInt8]) throws(ProtoDecodingError) -> ProtoJSON

        public init<Request: ProtoCMessage & ProtoJSONDecodable, Response: ProtoCMessage & ProtoJSONEncodable>(
            service: String, name: String, request: Request.Type, requestType: String,
            response: Response.Type, responseType: String, serverStreaming: Bool
        ) {
            self.name = name
            self.path = "/\(service)/\(name)"
            self.requestType = requestType
            self.responseType = responseType
            self.serverStreaming = serverStreaming
            self.encodeRequest = { (json) throws(ProtoJSONDecodingError) in try Request(json: json).serializedBytes() }
            self.decodeResponse = { (bytes) throws(ProtoDecodingError) in try Response(serializedBytes: bytes).jsonObject() }
        }
    }

    /// A message type.
    public struct Message: Sendable {
        /// `package.Message` (`package.Outer.Inner` when nested).
        public let fullName: String
        public let fields: [Field]

        public init(fullName: String, fields: [Field]) {
            self.fullName = fullName
            self.fields = fields
        }
    }

    /// A field of a message.
    public struct Field: Sendable {
        public enum Kind: String, Sendable {
            /// A number, bool, string or bytes; `type` is the `.proto` name (`int64`).
            case scalar
            /// `type` is the enum's full name.
            case enumeration = "enum"
            /// `type` is the message's full name.
            case message
        }

        /// As written in the `.proto` file (`channel_id`).
        public let name: String
        /// The proto3 JSON name (`channelId`).
        public let jsonName: String
        public let number: Int32
        public let kind: Kind
        public let type: String
        public let repeated: Bool
        /// The oneof the field belongs to, if any.
        public let oneof: String?

        public init(name: String, jsonName: String, number: Int32, kind: Kind, type: String, repeated: Bool, oneof: String? = nil) {
            self.name = name
            self.jsonName = jsonName
            self.number = number
            self.kind = kind
            self.type = type
            self.repeated = repeated
            self.oneof = oneof
        }
    }

    /// An enum type.
    public struct Enum: Sendable {
        public let fullName: String
        public let values: [(name: String, number: Int32)]

        public init(fullName: String, values: [(name: String, number: Int32)]) {
            self.fullName = fullName
            self.values = values
        }
    }

    // MARK: - Lookup

    /// The services called `name`: a full name (`sessions.v1.SessionService`)
    /// matches one; a short one (`SessionService`) every service of that name.
    public func services(named name: String) -> [Service] {
        let name = name.hasPrefix(".") ? String(name.dropFirst()) : name
        if let exact = services.first(where: { $0.fullName == name }) { return [exact] }
        return services.filter { $0.name == name }
    }

    /// A message by full name (a leading `.` is allowed), else by its unique short name.
    public func message(named name: String) -> Message? {
        lookup(name, in: messages, \.fullName)
    }

    /// An enum by full name (a leading `.` is allowed), else by its unique short name.
    public func enumeration(named name: String) -> Enum? {
        lookup(name, in: enums, \.fullName)
    }

    private func lookup<T>(_ name: String, in items: [T], _ fullName: (T) -> String) -> T? {
        let name = name.hasPrefix(".") ? String(name.dropFirst()) : name
        if let exact = items.first(where: { fullName($0) == name }) { return exact }
        let short = items.filter { fullName($0).hasSuffix("." + name) }
        return short.count == 1 ? short[0] : nil
    }
}
