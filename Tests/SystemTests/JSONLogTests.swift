import Foundation
import SessionAPI
import Testing

@Suite("Logs as JSON lines with a real sessiond")
struct JSONLogTests {
    @Test("--log-format json: every line one JSON object; the start-up line names version, address and store; debug logs one access line per call")
    func jsonLines() async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let daemon = try DaemonProcess.start(dataDirectory: dir, arguments: ["--log-format", "json", "--log-level", "debug"])
        try await daemon.withLogOnFailure {
            let admin = try daemon.client()
            defer { admin.close() }
            try await setUpChannelAndReps(admin, reps: 1, capacity: 10)
            var missing = SessionsV1.GetSessionRequest()
            missing.sessionId = "ses_missing"
            await #expect(throws: (any Error).self) { _ = try await admin.sessions.getSession(missing) }
        }
        #expect(daemon.terminate() == 0)
        let lines = daemon.logText.split(separator: "\n").map(String.init)
        var objects: [[String: String]] = []
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
            #expect(object != nil, "not a JSON object of strings: \(line)")
            if let object { objects.append(object) }
        }
        #expect(objects.allSatisfy { $0["time"] != nil && $0["level"] != nil && $0["message"] != nil })
        let starting = objects.first { $0["message"] == "started" }
        #expect(starting?["version"]?.isEmpty == false)
        #expect(starting?["store"]?.contains("sqlite") == true)
        #expect(starting?["address"] == "127.0.0.1:\(daemon.port)")
        #expect(objects.contains { $0["message"] == "listening" && $0["address"]?.hasPrefix("127.0.0.1:") == true })
        let calls = objects.filter { $0["message"] == "call" }
        #expect(calls.contains { $0["method"] == "/sessions.v1.ChannelService/CreateChannel" && $0["code"] == "OK" && $0["duration_us"] != nil && $0["peer"] != nil })
        #expect(calls.contains { $0["method"] == "/sessions.v1.SessionService/GetSession" && $0["code"] == "NOT_FOUND" })
    }

    @Test("an unknown --log-format is a usage error")
    func unknownFormat() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let (status, output) = try DaemonProcess.runToExit(arguments: ["--data-dir", dir, "--log-format", "xml"])
        #expect(status == 64)
        #expect(output.contains("--log-format 'xml' is not text or json"))
    }
}
