import ProtoRuntime
import RPC
import SessionAPI
import Testing

/// Generated `init(json:)`: proto3 JSON back into messages.
@Suite("generated init(json:)")
struct ProtoJSONDecodingTests {
    /// `jsonObject()` → text → `parse` → `init(json:)`.
    private func roundTrip<M: ProtoJSONEncodable & ProtoJSONDecodable>(_ message: M) throws -> M {
        try M(json: try ProtoJSON.parse(message.jsonObject().rendered(pretty: true)))
    }

    private func decodingError<M: ProtoJSONDecodable>(_ type: M.Type, _ text: String) throws -> ProtoJSONDecodingError? {
        let json = try ProtoJSON.parse(text)
        do {
            _ = try M(json: json)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Round trips

    @Test("a channel with extreme int64 and int32 values")
    func channel() throws {
        var c = SessionsV1.Channel()
        c.id = "web-eu"
        c.type = .enhancedWebChatV2
        c.capacityModel = .statusBased
        c.capacityWeight = Int32.min
        c.customerInactivityTimeoutMs = Int64.max
        c.inactiveAutoEndAfterMs = Int64.min
        c.inactivateActionHidden = true
        #expect(try roundTrip(c) == c)
        var request = SessionsV1.ChannelRequest()
        request.channel = c
        #expect(try roundTrip(request) == request)
    }

    @Test("a workload: nested messages, repeated messages, repeated enums, negative numbers")
    func workload() throws {
        var rep = SessionsV1.Rep()
        rep.id = "alice"
        rep.displayName = "Alice «A» 😀 \"quoted\"\n"
        rep.capacity = 5
        rep.presence = .busy
        rep.permissions = [.enhancedChatRep, .messagingAgent, .enhancedChatUser]
        rep.usedCapacity = 7
        rep.idleSinceMs = 1_700_000_000_123
        var s1 = SessionsV1.Session()
        s1.id = "s-1"
        s1.status = .active
        s1.version = 9_007_199_254_740_993  // not exact as a Double
        var s2 = SessionsV1.Session()
        s2.id = "s-2"
        s2.status = .ended
        s2.endReason = .endedByRep
        var w = SessionsV1.WorkloadResponse()
        w.rep = rep
        w.capacity = 5
        w.used = 7
        w.free = -2
        w.activeSessions = [s1, s1]
        w.otherSessions = [s2]
        #expect(try roundTrip(w) == w)
    }

    @Test("bytes (all 256 values), nested enums and the test service's messages")
    func bytesAndNested() throws {
        var r = GrpcTesting.SimpleRequest()
        var p = GrpcTesting.Payload()
        p.body = (0...255).map { UInt8($0) }
        r.payload = p
        r.responseSize = 1
        r.fillUsername = true
        var status = GrpcTesting.EchoStatus()
        status.code = 3
        status.message = "bad"
        r.responseStatus = status
        #expect(try roundTrip(r) == r)
        for n in 0..<5 {
            var q = GrpcTesting.Payload()
            q.body = Array(p.body.prefix(n))
            #expect(try roundTrip(q) == q, "\(n) bytes")
        }
        var h = GrpcHealthV1.HealthCheckResponse()
        h.status = .serviceUnknown
        #expect(try roundTrip(h) == h)
    }

    @Test("oneofs and uint64: the RPC envelope")
    func envelope() throws {
        var request = SessionrpcV1.Request()
        request.method = "/sessions.v1.SessionService/GetSession"
        request.timeoutMicros = UInt64.max
        var entry = SessionrpcV1.MetadataEntry()
        entry.key = "trace-bin"
        entry.value = [0, 1, 254, 255]
        request.metadata = [entry, entry]
        request.payload = [8, 1]
        var e = SessionrpcV1.Envelope()
        e.callId = UInt64.max - 1
        e.kind = .request(request)
        #expect(try roundTrip(e) == e)
        var response = SessionrpcV1.Response()
        response.result = .payload([])  // set but empty differs from unset
        e.kind = .response(response)
        #expect(try roundTrip(e) == e)
        #expect(try roundTrip(SessionrpcV1.Response()) == SessionrpcV1.Response())
    }

    // MARK: What proto3 JSON allows

    @Test("the .proto names work as well as the JSON names; null means the default")
    func namesAndNull() throws {
        let r = try SessionsV1.CreateSessionRequest(json: try ProtoJSON.parse(#"{"conversation_id": "c1", "channelId": "web", "messageId": null, "text": null}"#))
        #expect(r.conversationId == "c1" && r.channelId == "web" && r.messageId.isEmpty && r.text.isEmpty)
        let empty = try SessionsV1.ChannelRequest(json: try ProtoJSON.parse(#"{"channel": null}"#))
        #expect(empty.channel == nil)
        #expect(try SessionsV1.ChannelRequest(json: .null) == SessionsV1.ChannelRequest())
        #expect(try SessionsV1.ListChannelsRequest(json: try ProtoJSON.parse("{}")) == SessionsV1.ListChannelsRequest())
    }

    @Test("integers: numbers or strings, exact, with whole exponents; enums by name or number")
    func integers() throws {
        func channel(_ text: String) throws -> SessionsV1.Channel { try SessionsV1.Channel(json: try ProtoJSON.parse(text)) }
        #expect(try channel(#"{"capacityWeight": "42"}"#).capacityWeight == 42)
        #expect(try channel(#"{"capacityWeight": -2147483648}"#).capacityWeight == Int32.min)
        #expect(try channel(#"{"capacityWeight": 1e3}"#).capacityWeight == 1000)
        #expect(try channel(#"{"capacityWeight": 2.0}"#).capacityWeight == 2)
        #expect(try channel(#"{"customerInactivityTimeoutMs": "9223372036854775807"}"#).customerInactivityTimeoutMs == Int64.max)
        #expect(try channel(#"{"customerInactivityTimeoutMs": 9007199254740993}"#).customerInactivityTimeoutMs == 9_007_199_254_740_993)
        #expect(try channel(#"{"customerInactivityTimeoutMs": "-9223372036854775808"}"#).customerInactivityTimeoutMs == Int64.min)
        #expect(try channel(#"{"type": "ENHANCED_SMS", "capacityModel": 2}"#).type == .enhancedSms)
        #expect(try channel(#"{"capacityModel": 2}"#).capacityModel == .statusBased)
        let ping = try SessionrpcV1.Ping(json: try ProtoJSON.parse(#"{"opaque": "18446744073709551615"}"#))
        #expect(ping.opaque == UInt64.max)
        // Values built in Swift (not parsed) work too.
        #expect(try SessionsV1.Channel(json: .object([("capacityWeight", .number(7))])).capacityWeight == 7)
    }

    @Test("base64: standard and URL-safe, padded or not")
    func base64() throws {
        for text in ["+/8=", "+/8", "-_8=", "-_8"] {
            let p = try GrpcTesting.Payload(json: .object([("body", .string(text))]))
            #expect(p.body == [0xFB, 0xFF], "\(text)")
        }
        #expect(ProtoJSON.base64Decode("") == [])
        #expect(ProtoJSON.base64Decode("aGVsbG8=") == Array("hello".utf8))
        for bad in ["a", "abcde", "ab=c", "ab===", "a b", "ab$d", "abc=="] {
            #expect(ProtoJSON.base64Decode(bad) == nil, "\(bad)")
        }
    }

    // MARK: Errors

    @Test("an unknown field is named with its message, at any depth")
    func unknownField() throws {
        let top = try decodingError(SessionsV1.ChannelRequest.self, #"{"foo": 1}"#)
        #expect(top?.description.hasPrefix("unknown field 'foo' in sessions.v1.ChannelRequest") == true, "\(String(describing: top))")
        let nested = try decodingError(SessionsV1.ChannelRequest.self, #"{"channel": {"id": "x", "capacity_weight": 1, "weight": 2}}"#)
        #expect(nested?.path == "channel")
        #expect(nested?.description.hasPrefix("channel: unknown field 'weight' in sessions.v1.Channel") == true, "\(String(describing: nested))")
        // A near miss in case or underscores is pointed at.
        let miss = try decodingError(SessionsV1.GetSessionRequest.self, #"{"sessionID": "s"}"#)
        #expect(miss?.reason.contains("did you mean 'sessionId'") == true, "\(String(describing: miss))")
        let empty = try decodingError(SessionsV1.ListChannelsRequest.self, #"{"x": 1}"#)
        #expect(empty?.reason == "unknown field 'x' in sessions.v1.ListChannelsRequest (it has no fields)")
    }

    @Test("a value of the wrong type names the field's path")
    func wrongType() throws {
        let cases: [(String, String, String)] = [
            (#"{"channel": {"capacityWeight": true}}"#, "channel.capacityWeight", "expected an int32"),
            (#"{"channel": {"id": 5}}"#, "channel.id", "expected a string, got the number 5"),
            (#"{"channel": {"inactivateActionHidden": "true"}}"#, "channel.inactivateActionHidden", "expected true or false"),
            (#"{"channel": {"customerInactivityTimeoutMs": "12x"}}"#, "channel.customerInactivityTimeoutMs", "expected an int64"),
            (#"{"channel": [1]}"#, "channel", "expected a JSON object for message sessions.v1.Channel, got an array"),
        ]
        for (text, path, fragment) in cases {
            let error = try decodingError(SessionsV1.ChannelRequest.self, text)
            #expect(error?.path == path, "\(text): \(String(describing: error))")
            #expect(error?.reason.contains(fragment) == true, "\(text): \(String(describing: error))")
        }
        let top = try decodingError(SessionsV1.ChannelRequest.self, "[]")
        #expect(top?.path == "" && top?.reason.contains("expected a JSON object") == true)
        let list = try decodingError(SessionsV1.RepRequest.self, #"{"rep": {"permissions": "MESSAGING_AGENT"}}"#)
        #expect(list?.path == "rep.permissions" && list?.reason.contains("expected an array") == true, "\(String(describing: list))")
        let element = try decodingError(SessionsV1.ListSessionsResponse.self, #"{"sessions": [{}, {"version": false}]}"#)
        #expect(element?.path == "sessions[1].version", "\(String(describing: element))")
        let null = try decodingError(SessionsV1.RepRequest.self, #"{"rep": {"permissions": [null]}}"#)
        #expect(null?.path == "rep.permissions[0]", "\(String(describing: null))")
    }

    @Test("numbers out of range or not whole are refused")
    func ranges() throws {
        let cases: [(String, String)] = [
            (#"{"capacityWeight": 2147483648}"#, "out of range for int32"),
            (#"{"capacityWeight": "-2147483649"}"#, "out of range for int32"),
            (#"{"capacityWeight": 1.5}"#, "not an integer"),
            (#"{"capacityWeight": 1e-1}"#, "not an integer"),
            (#"{"capacityWeight": 1e400}"#, "out of range for int32"),
            (#"{"customerInactivityTimeoutMs": 9223372036854775808}"#, "out of range for int64"),
            (#"{"customerInactivityTimeoutMs": "-9223372036854775809"}"#, "out of range for int64"),
            (#"{"customerInactivityTimeoutMs": " 1"}"#, "expected an int64"),
        ]
        for (text, fragment) in cases {
            let error = try decodingError(SessionsV1.Channel.self, text)
            #expect(error?.reason.contains(fragment) == true, "\(text): \(String(describing: error))")
        }
        let negative = try decodingError(SessionrpcV1.Ping.self, #"{"opaque": -1}"#)
        #expect(negative?.reason.contains("out of range for uint64") == true)
        let status = try decodingError(SessionrpcV1.Response.self, #"{"statusCode": 4294967296}"#)
        #expect(status?.reason.contains("out of range for uint32") == true)
    }

    @Test("unknown enum names and numbers are refused with the valid ones listed")
    func badEnum() throws {
        let name = try decodingError(SessionsV1.SetPresenceRequest.self, #"{"presence": "ONLINE"}"#)
        #expect(name?.path == "presence")
        #expect(name?.reason == #"unknown sessions.v1.Presence value "ONLINE"; expected one of PRESENCE_UNSPECIFIED, OFFLINE, AVAILABLE, BUSY"#, "\(String(describing: name))")
        // proto3 JSON names are exact.
        #expect(try decodingError(SessionsV1.SetPresenceRequest.self, #"{"presence": "busy"}"#) != nil)
        let number = try decodingError(SessionsV1.SetPresenceRequest.self, #"{"presence": 9}"#)
        #expect(number?.reason.contains("unknown sessions.v1.Presence number 9") == true, "\(String(describing: number))")
        let type = try decodingError(SessionsV1.SetPresenceRequest.self, #"{"presence": true}"#)
        #expect(type?.reason.contains("expected an enum name of sessions.v1.Presence") == true)
    }

    @Test("invalid base64, NUL in strings, duplicates and two oneof members are refused")
    func otherErrors() throws {
        let b64 = try decodingError(GrpcTesting.SimpleRequest.self, #"{"payload": {"body": "not base64!"}}"#)
        #expect(b64?.path == "payload.body" && b64?.reason.contains("not valid base64") == true, "\(String(describing: b64))")
        let nul = try decodingError(SessionsV1.GetSessionRequest.self, #"{"sessionId": "a\u0000b"}"#)
        #expect(nul?.reason.contains("NUL") == true)
        let twice = try decodingError(SessionsV1.GetSessionRequest.self, #"{"sessionId": "a", "session_id": "b"}"#)
        #expect(twice?.reason == "field 'sessionId' of sessions.v1.GetSessionRequest is given twice ('sessionId' and 'session_id')", "\(String(describing: twice))")
        let oneof = try decodingError(SessionrpcV1.Envelope.self, #"{"callId": 1, "ping": {}, "pong": {"opaque": 2}}"#)
        #expect(oneof?.reason == "oneof 'kind' has more than one field set ('ping' and 'pong')", "\(String(describing: oneof))")
        // A null member does not count as set.
        let one = try SessionrpcV1.Envelope(json: try ProtoJSON.parse(#"{"ping": null, "pong": {"opaque": "2"}}"#))
        #expect(one.kind == .pong({ var p = SessionrpcV1.Pong(); p.opaque = 2; return p }()))
    }
}

@Suite("ProtoSchema.sessionAPI")
struct ProtoSchemaTests {
    let schema = ProtoSchema.sessionAPI

    @Test("every service of the protos, with its methods, wire paths and message types")
    func services() throws {
        let names = schema.services.map(\.fullName)
        for name in ["grpc.health.v1.Health", "sessions.v1.SessionService", "sessions.v1.EventService", "grpc.testing.TestService"] {
            #expect(names.contains(name))
        }
        let watch = try #require(schema.services(named: "EventService").first?.method(named: "WatchEvents"))
        #expect(watch.path == "/sessions.v1.EventService/WatchEvents")
        #expect(watch.serverStreaming)
        #expect(watch.requestType == "sessions.v1.WatchEventsRequest" && watch.responseType == "sessions.v1.Event")
        #expect(schema.services(named: "sessions.v1.SessionService").count == 1)
        #expect(schema.services(named: "Nope").isEmpty)
        // Every method's types are described.
        for service in schema.services {
            for method in service.methods {
                #expect(schema.message(named: method.requestType) != nil, "\(method.requestType)")
                #expect(schema.message(named: method.responseType) != nil, "\(method.responseType)")
            }
        }
    }

    @Test("messages with their fields, enums with their values")
    func messagesAndEnums() throws {
        let channel = try #require(schema.message(named: "sessions.v1.Channel"))
        let weight = try #require(channel.fields.first { $0.name == "capacity_weight" })
        #expect(weight.jsonName == "capacityWeight" && weight.type == "int32" && weight.kind == .scalar && !weight.repeated && weight.number == 4)
        let rep = try #require(schema.message(named: "Rep"))
        let permissions = try #require(rep.fields.first { $0.jsonName == "permissions" })
        #expect(permissions.repeated && permissions.kind == .enumeration && permissions.type == "sessions.v1.Permission")
        let status = try #require(schema.enumeration(named: "grpc.health.v1.HealthCheckResponse.ServingStatus"))
        #expect(status.values.map(\.name) == ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"])
        #expect(schema.enumeration(named: "ServingStatus")?.fullName == status.fullName)
    }

    @Test("a method's closures turn JSON into request bytes and response bytes into JSON")
    func conversions() throws {
        let create = try #require(schema.services(named: "ChannelService").first?.method(named: "CreateChannel"))
        let bytes = try create.encodeRequest(try ProtoJSON.parse(#"{"channel": {"id": "web", "type": "ENHANCED_SMS", "customerInactivityTimeoutMs": "60000"}}"#))
        let request = try SessionsV1.ChannelRequest(serializedBytes: bytes)
        #expect(request.channel?.id == "web" && request.channel?.type == .enhancedSms && request.channel?.customerInactivityTimeoutMs == 60000)
        var response = SessionsV1.ChannelResponse()
        response.channel = request.channel
        let json = try create.decodeResponse(response.serializedBytes())
        #expect(json == response.jsonObject())
        #expect(throws: ProtoJSONDecodingError.self) { try create.encodeRequest(.object([("nope", .null)])) }
        #expect(throws: ProtoDecodingError.self) { try create.decodeResponse([0xFF, 0xFF, 0xFF]) }
    }
}
