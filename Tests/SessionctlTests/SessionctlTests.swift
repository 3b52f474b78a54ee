import Foundation
import SessionAPI
import SessionClient
import Testing

/// The `sessionctl` binary as a user runs it: argument placement, --version,
/// SESSIONCTL_JSON, the range checks it makes before calling, and
/// `events watch --from now` against a real server.
@Suite("sessionctl")
struct SessionctlTests {
    // MARK: --version

    @Test("--version prints the version and the git commit, for sessionctl and sessiond")
    func version() async throws {
        for binary in ["sessionctl", "sessiond"] {
            let r = try await Running(binary, ["--version"], environment: cleanEnvironment()).finish()
            #expect(r.status == 0, "\(binary): \(r)")
            let line = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let pattern = #/^(sessionctl|sessiond) \d+\.\d+\.\d+ \(commit ([0-9a-f]{7,40}|unknown)\)$/#
            #expect(line.wholeMatch(of: pattern) != nil, "\(binary) printed '\(line)'")
            #expect(line.hasPrefix(binary + " "))
        }
    }

    // MARK: Global options anywhere

    @Test("global options work before, between and after subcommands, also as --opt=value")
    func globalOptionPlacement() async throws {
        try await withServer { server in
            let s = server.address, t = TestServer.adminToken
            let placements: [[String]] = [
                ["--server", s, "--token", t, "health"],
                ["health", "--server", s, "--token", t],
                ["--server=\(s)", "health", "--token=\(t)"],
                ["--server", s, "--token", t, "--json", "sessions", "list"],
                ["--token", t, "sessions", "--server", s, "list", "--json"],
                ["sessions", "list", "--server", s, "--token", t, "--json"],
                ["--json", "--timeout", "5", "sessions", "--token=\(t)", "list", "--server=\(s)", "--status", "waiting"],
                ["--timeout=5", "--server", s, "--token", t, "clock", "now"],
            ]
            for arguments in placements {
                let r = try await sessionctl(arguments)
                #expect(r.status == 0, "\(arguments): \(r)")
                if arguments.contains("--json") {
                    #expect(r.stdout.hasPrefix("{"), "\(arguments) did not print JSON: \(r)")
                }
            }
            // A later occurrence wins, wherever the earlier one stood.
            let r = try await sessionctl(["--server", deadServer, "health", "--server", s])
            #expect(r.status == 0, "\(r)")
        }
    }

    @Test("a global option's value is taken as given, and text after the subcommand is left alone")
    func globalOptionValues() async throws {
        // A value that looks like a subcommand stays a value.
        var r = try await sessionctl(["--token", "sessions", "--server", deadServer, "health"])
        #expect(r.status == exitUnavailable, "\(r)")
        // Without a leaf the global options are dropped, and the group's help shows.
        r = try await sessionctl(["--server", deadServer, "sessions"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("SUBCOMMANDS"), "\(r)")
        // A value option without its value is a usage error.
        r = try await sessionctl(["health", "--server"])
        #expect(r.status == exitUsage, "\(r)")
        // --help of the root names the global options and where they may go.
        r = try await sessionctl(["--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("--server") && r.stdout.contains("before or"), "\(r)")
    }

    // MARK: SESSIONCTL_JSON

    @Test("SESSIONCTL_JSON accepts true|1|yes and false|0|no in any case, and refuses anything else")
    func jsonEnvironment() async throws {
        try await withServer { server in
            for value in ["true", "1", "yes", "TRUE", "Yes"] {
                let r = try await sessionctl(["clock", "now"], env: server.env.merging(["SESSIONCTL_JSON": value]) { $1 })
                #expect(r.status == 0, "\(value): \(r)")
                #expect(r.stdout.hasPrefix("{"), "SESSIONCTL_JSON=\(value) did not print JSON: \(r)")
            }
            for value in ["false", "0", "no", "FALSE", "No", ""] {
                let r = try await sessionctl(["clock", "now"], env: server.env.merging(["SESSIONCTL_JSON": value]) { $1 })
                #expect(r.status == 0, "\(value): \(r)")
                #expect(r.stdout.hasPrefix("now:"), "SESSIONCTL_JSON=\(value) printed: \(r)")
            }
            // --json wins over an off switch.
            let r = try await sessionctl(["clock", "now", "--json"], env: server.env.merging(["SESSIONCTL_JSON": "no"]) { $1 })
            #expect(r.stdout.hasPrefix("{"), "\(r)")
        }
        for value in ["maybe", "on", "2", "tru"] {
            let r = try await sessionctl(["health", "--server", deadServer], env: ["SESSIONCTL_JSON": value])
            #expect(r.status == exitUsage, "\(value): \(r)")
            #expect(r.stderr.contains("SESSIONCTL_JSON='\(value)' is not a boolean"), "\(value): \(r)")
        }
    }

    // MARK: Range checks (no server: a value the CLI accepts ends in UNAVAILABLE)

    @Test("range checks match the server's: what passes reaches the server, what fails is a usage error naming the range",
          arguments: [
              // Rep capacity 1...100.
              (["reps", "create", "a", "--name", "A", "--capacity", "1"], true, ""),
              (["reps", "create", "a", "--name", "A", "--capacity", "100"], true, ""),
              (["reps", "create", "a", "--name", "A", "--capacity", "0"], false, "between 1 and 100"),
              (["reps", "create", "a", "--name", "A", "--capacity", "101"], false, "between 1 and 100"),
              (["reps", "update", "a", "--capacity", "101"], false, "between 1 and 100"),
              // Channel weight 1...100.
              (["channels", "create", "c", "--type", "standard-sms", "--weight", "100"], true, ""),
              (["channels", "create", "c", "--type", "standard-sms", "--weight", "101"], false, "between 1 and 100"),
              (["channels", "create", "c", "--type", "standard-sms", "--weight", "0"], false, "between 1 and 100"),
              // Customer inactivity timeout 1m...24h, auto-end 10m...7d.
              (["channels", "create", "c", "--type", "enhanced-web-chat-v2", "--customer-inactivity-timeout", "1m"], true, ""),
              (["channels", "create", "c", "--type", "enhanced-web-chat-v2", "--customer-inactivity-timeout", "24h"], true, ""),
              (["channels", "create", "c", "--type", "enhanced-web-chat-v2", "--customer-inactivity-timeout", "59s"], false, "between 1m and 24h"),
              (["channels", "create", "c", "--type", "enhanced-web-chat-v2", "--customer-inactivity-timeout", "24h1s"], false, "between 1m and 24h"),
              (["channels", "create", "c", "--type", "standard-sms", "--auto-end-after", "10m"], true, ""),
              (["channels", "create", "c", "--type", "standard-sms", "--auto-end-after", "7d"], true, ""),
              (["channels", "create", "c", "--type", "standard-sms", "--auto-end-after", "9m"], false, "between 10m and 7d"),
              (["channels", "create", "c", "--type", "standard-sms", "--auto-end-after", "8d"], false, "between 10m and 7d"),
              // AdvanceClock 1ms...30d.
              (["clock", "advance", "30d"], true, ""),
              (["clock", "advance", "30d1ms"], false, "between 1ms and 30d"),
              // Page sizes: the server caps large ones and takes 0 as its default; negative is refused.
              (["sessions", "list", "--page-size", "5000"], true, ""),
              (["sessions", "list", "--page-size", "0"], true, ""),
              (["sessions", "list", "--page-size=-1"], false, "--page-size must be between 0"),
              (["events", "list", "s1", "--limit", "5000"], true, ""),
              (["events", "list", "s1", "--limit=-1"], false, "--limit must be between 0"),
              // A message needs text.
              (["sessions", "create", "--conversation", "c", "--channel", "x", "--message-id", "m"], false, "--message-id needs --text"),
              (["sessions", "customer-message", "--conversation", "c", "--message-id", "m"], false, "--text"),
              // Token names: 1 to 128 characters.
              (["tokens", "issue", "--name", String(repeating: "n", count: 128), "--role", "admin"], true, ""),
              (["tokens", "issue", "--name", String(repeating: "n", count: 129), "--role", "admin"], false, "1 to 128 characters"),
              // --from.
              (["events", "watch", "--from", "soon"], false, "is not now, beginning or a cursor"),
          ] as [([String], Bool, String)])
    func rangeChecks(arguments: [String], accepted: Bool, message: String) async throws {
        let r = try await sessionctl(arguments + ["--server", deadServer, "--timeout", "2"])
        if accepted {
            #expect(r.status == exitUnavailable, "\(arguments) should pass the CLI's checks: \(r)")
        } else {
            #expect(r.status == exitUsage, "\(arguments) should be refused: \(r)")
            #expect(r.stderr.contains(message), "\(arguments): expected '\(message)' in: \(r)")
        }
    }

    // MARK: events watch --from

    @Test("events watch starts from now by default; --from beginning and --from CURSOR replay")
    func watchFromNow() async throws {
        try await withServer { server in
            let env = server.env
            #expect(try await sessionctl(["channels", "create", "web", "--type", "enhanced-web-chat-v2"], env: env).status == 0)
            for i in 1...5 {
                let r = try await sessionctl(["sessions", "customer-message", "--conversation", "old-\(i)", "--channel", "web",
                                              "--message-id", "old-\(i)", "--text", "hi"], env: env)
                #expect(r.status == 0, "\(r)")
            }
            // Five sessions were created: cursors 1...5.
            let watch = try Running("sessionctl", ["events", "watch", "--json"], environment: cleanEnvironment(env))
            let started = await watch.wait(upTo: 90) { _, err in err.contains("watch: from now, after cursor") }
            #expect(started, "watch did not start: \(watch.err.text)")
            #expect(watch.err.text.contains("after cursor 5"), "\(watch.err.text)")
            let posted = try await sessionctl(["sessions", "customer-message", "--conversation", "new-1", "--channel", "web",
                                               "--message-id", "new-1", "--text", "hi"], env: env)
            #expect(posted.status == 0, "\(posted)")
            let arrived = await watch.wait(upTo: 20) { out, _ in out.contains("\"cursor\":\"6\"") }
            let result = watch.stop()
            #expect(arrived, "the new event did not arrive: \(result)")
            let lines = result.stdout.split(separator: "\n")
            #expect(lines.count == 1, "only the new event should be printed: \(result)")

            // The whole log on request, and after a given cursor.
            let all = try Running("sessionctl", ["events", "watch", "--from", "beginning"], environment: cleanEnvironment(env))
            #expect(await all.wait(upTo: 20) { out, _ in out.split(separator: "\n").count >= 6 }, "\(all.out.text)")
            #expect(all.stop().stdout.split(separator: "\n").count == 6)
            let after = try Running("sessionctl", ["events", "watch", "--from", "4"], environment: cleanEnvironment(env))
            #expect(await after.wait(upTo: 20) { out, _ in out.split(separator: "\n").count >= 2 }, "\(after.out.text)")
            let afterLines = after.stop().stdout.split(separator: "\n")
            #expect(afterLines.count == 2 && afterLines.first?.hasPrefix("5 ") == true, "\(afterLines)")
        }
    }

    @Test("events watch --from now on an empty log and on one session")
    func watchFromNowEmptyAndSession() async throws {
        try await withServer { server in
            let env = server.env
            let empty = try Running("sessionctl", ["events", "watch"], environment: cleanEnvironment(env))
            #expect(await empty.wait(upTo: 90) { _, err in err.contains("watch: from now, after cursor 0") }, "\(empty.err.text)")
            _ = empty.stop()

            #expect(try await sessionctl(["channels", "create", "web", "--type", "enhanced-web-chat-v2"], env: env).status == 0)
            let created = try await sessionctl(["sessions", "customer-message", "--conversation", "c1", "--channel", "web",
                                                "--message-id", "m1", "--text", "hi", "--json"], env: env)
            let object = try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any]
            let id = try #require((object?["session"] as? [String: Any])?["id"] as? String, "\(created)")
            #expect(try await sessionctl(["sessions", "create", "--conversation", "c2", "--channel", "web"], env: env).status == 0)
            let watch = try Running("sessionctl", ["events", "watch", "--session", id], environment: cleanEnvironment(env))
            #expect(await watch.wait(upTo: 90) { _, err in err.contains("watch: from now, after cursor 1") }, "\(watch.err.text)")
            #expect(try await sessionctl(["sessions", "end", id], env: env).status == 0)
            #expect(await watch.wait(upTo: 20) { out, _ in out.contains("ENDED") }, "\(watch.out.text)")
            let lines = watch.stop().stdout.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("3 "), "\(lines)")
        }
    }
}
