import Foundation
import Testing

/// `sessionctl call` (any method, proto3 JSON in and out) and `sessionctl describe`, against a real server.
@Suite("sessionctl call and describe")
struct CallDescribeTests {
    private func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
    }

    @Test("a unary call creates a channel and another reads it back; -d @file and -d @- work; .proto names too")
    func unaryRoundTrip() async throws {
        try await withServer { server in
            let env = server.env
            let created = try await sessionctl(["call", "ChannelService/CreateChannel", "-d",
                #"{"channel": {"id": "web", "type": "ENHANCED_WEB_CHAT_V2", "customerInactivityTimeoutMs": "600000"}}"#], env: env)
            #expect(created.status == 0, "\(created)")
            #expect(created.stdout.contains("\n  "), "indented by default: \(created)")
            let channel = try #require(try object(created.stdout)["channel"] as? [String: Any])
            #expect(channel["id"] as? String == "web")
            #expect(channel["type"] as? String == "ENHANCED_WEB_CHAT_V2")
            #expect(channel["customerInactivityTimeoutMs"] as? String == "600000")

            let read = try await sessionctl(["call", "sessions.v1.ChannelService/GetChannel", "-d", #"{"channel_id": "web"}"#, "--compact"], env: env)
            #expect(read.status == 0, "\(read)")
            #expect(read.stdout.split(separator: "\n").count == 1, "--compact prints one line: \(read)")
            let again = try #require(try object(read.stdout)["channel"] as? [String: Any])
            #expect(again["type"] as? String == "ENHANCED_WEB_CHAT_V2" && again["customerInactivityTimeoutMs"] as? String == "600000")

            // A request from a file, then one from standard input.
            let file = server.directory + "/request.json"
            try Data(#"{"conversationId": "c1", "channelId": "web", "messageId": "m1", "text": "hello"}"#.utf8).write(to: URL(fileURLWithPath: file))
            let posted = try await sessionctl(["call", "SessionService/PostCustomerMessage", "-d", "@" + file], env: env)
            #expect(posted.status == 0, "\(posted)")
            let session = try #require(try object(posted.stdout)["session"] as? [String: Any])
            let id = try #require(session["id"] as? String)
            #expect(session["status"] as? String == "WAITING" || session["status"] as? String == "NEW", "\(session)")

            let got = try await sessionctl(["call", "SessionService/GetSession", "-d", "@-"], env: env, stdin: Data(#"{"sessionId": "\#(id)"}"#.utf8))
            #expect(got.status == 0, "\(got)")
            let fetched = try #require(try object(got.stdout)["session"] as? [String: Any])
            #expect(fetched["id"] as? String == id && fetched["conversationId"] as? String == "c1")

            // No -d is {}: ListChannels takes nothing.
            let list = try await sessionctl(["call", "ChannelService/ListChannels"], env: env)
            #expect(list.status == 0 && list.stdout.contains("\"web\""), "\(list)")
        }
    }

    @Test("a server-streaming call prints one JSON line per message until the stream ends, then its status")
    func streaming() async throws {
        try await withServer({ $0.hostTestService = true }) { server in
            let env = server.env
            let r = try await sessionctl(["call", "grpc.testing.TestService/StreamingOutputCall", "-d",
                #"{"responseParameters": [{"size": 1}, {"size": 2}, {"size": 3}]}"#], env: env)
            #expect(r.status == 0, "\(r)")
            let lines = r.stdout.split(separator: "\n").map(String.init)
            #expect(lines == [#"{"payload":{"type":"COMPRESSABLE","body":"AA=="}}"#,
                              #"{"payload":{"type":"COMPRESSABLE","body":"AAA="}}"#,
                              #"{"payload":{"type":"COMPRESSABLE","body":"AAAA"}}"#], "\(r)")
            // A stream that ends with an error: the messages before it, then code: message and 10 + code.
            let failed = try await sessionctl(["call", "TestService/StreamingOutputCall", "-d",
                #"{"responseParameters": [{"size": 1}], "responseStatus": {"code": 9, "message": "nope"}}"#], env: env)
            #expect(failed.status == 19, "\(failed)")
            #expect(failed.stdout.split(separator: "\n").count == 1, "\(failed)")
            #expect(failed.stderr.contains("FAILED_PRECONDITION: nope"), "\(failed)")

            // A stream that stays open (WatchEvents) prints events as they happen.
            #expect(try await sessionctl(["channels", "create", "web", "--type", "enhanced-web-chat-v2"], env: env).status == 0)
            let watch = try Running("sessionctl", ["call", "EventService/WatchEvents", "-d", #"{"afterCursor": "0"}"#], environment: cleanEnvironment(env))
            #expect(try await sessionctl(["sessions", "create", "--conversation", "c1", "--channel", "web"], env: env).status == 0)
            let arrived = await watch.wait(upTo: 30) { out, _ in out.contains(#""cursor":"1""#) }
            let result = watch.stop()
            #expect(arrived, "\(result)")
            let event = try object(String(result.stdout.split(separator: "\n")[0]))
            #expect(event["toStatus"] as? String != nil && event["sessionId"] as? String != nil, "\(event)")
        }
    }

    @Test("server errors exit 10 + code with code: message; -H metadata replaces --token")
    func errors() async throws {
        try await withServer { server in
            let notFound = try await sessionctl(["call", "SessionService/GetSession", "-d", #"{"sessionId": "missing"}"#], env: server.env)
            #expect(notFound.status == 15, "\(notFound)")
            #expect(notFound.stderr.contains("NOT_FOUND: "), "\(notFound)")
            // Authorization through -H, without --token.
            let env = ["SESSIONCTL_SERVER": server.address]
            let ok = try await sessionctl(["call", "TokenService/WhoAmI", "-H", "Authorization: Bearer \(TestServer.adminToken)"], env: env)
            #expect(ok.status == 0 && ok.stdout.contains("ADMIN"), "\(ok)")
            let bad = try await sessionctl(["call", "TokenService/WhoAmI", "-H", "authorization: Bearer wrong", "--token", TestServer.adminToken], env: env)
            #expect(bad.status == 26, "\(bad)")
            let none = try await sessionctl(["call", "TokenService/WhoAmI"], env: env)
            #expect(none.status == 26, "\(none)")
        }
    }

    @Test("bad JSON, bad fields, unknown methods and bad headers are usage errors found before connecting",
          arguments: [
              (["call", "SessionService/GetSession", "-d", #"{"sessionId": "s",}"#], "invalid JSON at byte 18"),
              (["call", "SessionService/GetSession", "-d", "{"], "invalid JSON at byte 1"),
              (["call", "SessionService/GetSession", "-d", #"{"sessionid": "s"}"#], "unknown field 'sessionid' in sessions.v1.GetSessionRequest; did you mean 'sessionId'?"),
              (["call", "SessionService/GetSession", "-d", #"{"sessionId": 5}"#], "sessionId: expected a string"),
              (["call", "ChannelService/CreateChannel", "-d", #"{"channel": {"capacityWeight": 3000000000}}"#], "channel.capacityWeight: 3000000000 is out of range for int32"),
              (["call", "ChannelService/CreateChannel", "-d", #"{"channel": {"type": "SMS"}}"#], "unknown sessions.v1.ChannelType value \"SMS\""),
              (["call", "SessionService/GetSession", "-d", "@/nonexistent/request.json"], "cannot read the file"),
              (["call", "SessionService/GetSesion"], "did you mean GetSession?"),
              (["call", "SessionServce/GetSession"], "did you mean sessions.v1.SessionService?"),
              (["call", "Nothing/Here"], "the services are"),
              (["call", "GetSession"], "is not Service/Method"),
              (["call", "sessions.v1.SessionService"], "is a service; name one of its methods, e.g. SessionService/CreateSession"),
              (["call", "SessionService/GetSession", "-H", "novalue"], "'key: value'"),
              (["call", "SessionService/GetSession", "-H", "x-data-bin: %%%"], "must be base64"),
              (["describe", "Chanel"], "did you mean"),
          ] as [([String], String)])
    func usageErrors(arguments: [String], message: String) async throws {
        let r = try await sessionctl(arguments + ["--server", deadServer])
        #expect(r.status == exitUsage, "\(arguments): \(r)")
        #expect(r.stderr.contains(message), "\(arguments): expected '\(message)' in: \(r)")
    }

    @Test("describe lists services and methods, a method's fields, a message, an enum; --json is machine-readable")
    func describe() async throws {
        let all = try await sessionctl(["describe"])
        #expect(all.status == 0, "\(all)")
        for text in ["sessions.v1.SessionService", "  CreateSession  ", "sessions.v1.CreateSessionRequest → sessions.v1.SessionResponse",
                     "WatchEvents", "sessions.v1.WatchEventsRequest → stream sessions.v1.Event", "grpc.health.v1.Health"] {
            #expect(all.stdout.contains(text), "'\(text)' missing in: \(all.stdout)")
        }
        let service = try await sessionctl(["describe", "RepService"])
        #expect(service.status == 0 && service.stdout.hasPrefix("sessions.v1.RepService\n") && service.stdout.contains("SetPresence"), "\(service)")
        #expect(!service.stdout.contains("SessionService"))

        let method = try await sessionctl(["describe", "ChannelService/CreateChannel"])
        #expect(method.status == 0, "\(method)")
        for text in ["request sessions.v1.ChannelRequest", "response sessions.v1.ChannelResponse", "channel  sessions.v1.Channel",
                     "customerInactivityTimeoutMs", "int64", "[proto name customer_inactivity_timeout_ms]",
                     "enum sessions.v1.CapacityModel (CAPACITY_MODEL_UNSPECIFIED, TAB_BASED, STATUS_BASED)"] {
            #expect(method.stdout.contains(text), "'\(text)' missing in: \(method.stdout)")
        }
        let message = try await sessionctl(["describe", "Rep"])
        #expect(message.status == 0 && message.stdout.contains("permissions   repeated enum sessions.v1.Permission"), "\(message)")
        let e = try await sessionctl(["describe", "grpc.health.v1.HealthCheckResponse.ServingStatus"])
        #expect(e.status == 0 && e.stdout.contains("SERVICE_UNKNOWN = 3"), "\(e)")

        let json = try await sessionctl(["describe", "--json"])
        let services = try #require(try object(json.stdout)["services"] as? [[String: Any]], "\(json)")
        let events = try #require(services.first { $0["name"] as? String == "sessions.v1.EventService" })
        let watch = try #require((events["methods"] as? [[String: Any]])?.first { $0["name"] as? String == "WatchEvents" })
        #expect(watch["serverStreaming"] as? Bool == true && watch["path"] as? String == "/sessions.v1.EventService/WatchEvents")
        let methodJSON = try object(try await sessionctl(["describe", "RepService/CreateRep", "--json"]).stdout)
        let messages = try #require(methodJSON["messages"] as? [[String: Any]])
        #expect(messages.map { $0["name"] as? String } == ["sessions.v1.RepRequest", "sessions.v1.RepResponse", "sessions.v1.Rep"])
        let rep = try #require(messages.last?["fields"] as? [[String: Any]])
        #expect(rep.contains { $0["jsonName"] as? String == "displayName" && $0["name"] as? String == "display_name" && $0["type"] as? String == "string" })
        #expect((methodJSON["enums"] as? [[String: Any]])?.map { $0["name"] as? String } == ["sessions.v1.Presence", "sessions.v1.Permission"])
    }
}
