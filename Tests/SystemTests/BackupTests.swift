import Foundation
import SessionAPI
import SessionClient
import Testing

@Suite("sessiond backup with a real sessiond")
struct BackupTests {
    @Test("a backup taken under write load holds every change acknowledged before it began; restored, it serves them")
    func backupWhileServing() async throws {
        let dir = makeTemporaryDirectory()
        let restoredDir = makeTemporaryDirectory()
        let out = makeTemporaryDirectory()
        defer { removeDirectory(dir); removeDirectory(restoredDir); removeDirectory(out) }
        let copy = out + "/copy"
        let daemon = try DaemonProcess.start(dataDirectory: dir, arguments: ["--operator-token", TenantTests.operatorToken])
        var acknowledged: [String: SessionsV1.SessionStatus] = [:]
        var tenantAcknowledged: [String] = []
        var tenantAdmin = ""
        try await daemon.withLogOnFailure {
            let admin = try daemon.client()
            defer { admin.close() }
            try await setUpChannelAndReps(admin, reps: 4, capacity: 100)
            // A second tenant: its database is copied too.
            let op = try daemon.client(token: TenantTests.operatorToken)
            defer { op.close() }
            var create = SessionsV1.CreateTenantRequest()
            create.id = "acme"
            tenantAdmin = try await op.tenants.createTenant(create).adminToken!.token
            let acme = try daemon.client(token: tenantAdmin)
            defer { acme.close() }
            try await setUpChannelAndReps(acme, reps: 1, capacity: 100)
            for n in 0..<10 {
                tenantAcknowledged.append(try await customerMessage(acme, conversation: "a\(n)", channel: "web", message: "am\(n)").session!.id)
            }
            for n in 0..<40 {
                let session = try await customerMessage(admin, conversation: "b\(n)", channel: "web", message: "m\(n)").session!
                acknowledged[session.id] = session.status
                if n % 3 == 0 {
                    var end = SessionsV1.EndSessionRequest()
                    end.sessionId = session.id
                    acknowledged[session.id] = try await admin.sessions.endSession(end).session!.status
                }
            }
            // More writes while the backup runs (their outcome in the copy is either way).
            let writer = Task {
                for n in 40..<400 { _ = try? await customerMessage(admin, conversation: "b\(n)", channel: "web", message: "m\(n)") }
            }
            let (status, output) = try DaemonProcess.runToExit(arguments: ["backup", copy, "--data-dir", dir])
            #expect(status == 0, "\(output)")
            #expect(output.contains("backed up"))
            await writer.value
            // A backup never overwrites.
            let again = try DaemonProcess.runToExit(arguments: ["backup", copy, "--data-dir", dir])
            #expect(again.status == 73)
        }
        var info = stat()
        #expect(stat(copy, &info) == 0 && info.st_mode & 0o777 == 0o700)
        for file in ["/sessions.sqlite", "/tenants/acme/sessions.sqlite"] {
            #expect(stat(copy + file, &info) == 0 && info.st_mode & 0o777 == 0o600, "\(file)")
            #expect(!FileManager.default.fileExists(atPath: copy + file + "-wal"))
        }
        #expect(daemon.terminate() == 0)

        // Restore: the copy is a data directory.
        try FileManager.default.removeItem(atPath: restoredDir)
        try FileManager.default.copyItem(atPath: copy, toPath: restoredDir)
        let restored = try DaemonProcess.start(dataDirectory: restoredDir)
        try await restored.withLogOnFailure {
            let admin = try restored.client()
            defer { admin.close() }
            let acme = try restored.client(token: tenantAdmin)
            defer { acme.close() }
            for id in tenantAcknowledged {
                var get = SessionsV1.GetSessionRequest()
                get.sessionId = id
                #expect(try await acme.sessions.getSession(get).session?.status == .active, "tenant acme: \(id)")
            }
            for (id, status) in acknowledged {
                var get = SessionsV1.GetSessionRequest()
                get.sessionId = id
                let session = try await admin.sessions.getSession(get).session
                #expect(session?.status == status, "\(id)")
            }
            // And it takes new writes.
            #expect(try await customerMessage(admin, conversation: "after-restore", channel: "web", message: "x").session?.status == .active)
        }
        #expect(restored.terminate() == 0)
    }

    @Test("no database in the data directory: exit 66, nothing written")
    func nothingToBackUp() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let (status, output) = try DaemonProcess.runToExit(arguments: ["backup", dir + "/copy", "--data-dir", dir + "/none"])
        #expect(status == 66, "\(output)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/copy"))
    }
}
