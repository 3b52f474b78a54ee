import Foundation
import RPC
import SessionServer
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Daemon start-up failures in process")
struct StartupFailureTests {
    @Test("A daemon whose port is taken fails to start, writes nothing, and can be released (no trap in TimerSweeper.deinit)")
    func portTakenReleasesCleanly() async throws {
        let holder = try TestDaemon()
        let parent = TestDaemon.makeTemporaryDirectory()
        defer { TestDaemon.removeDirectory(parent) }
        var o = SessionDaemon.Options()
        o.server.host = "127.0.0.1"
        o.server.port = holder.port
        o.dataDirectory = parent + "/data"
        o.bootstrapAdminToken = TestDaemon.adminSecret
        var failure: SessionDaemonStartupError?
        do {
            // The daemon goes out of scope unstarted: before the fix, releasing its
            // never-resumed timer source trapped (SIGILL) and took the test process with it.
            let daemon = try SessionDaemon(options: o, logger: RPCServer(configuration: .init(), services: []).logger)
            try daemon.start()
        } catch {
            failure = error as? SessionDaemonStartupError
        }
        #expect(failure?.exitCode == 69)
        #expect(failure?.description == "cannot listen on 127.0.0.1:\(holder.port): address already in use")
        #expect(!FileManager.default.fileExists(atPath: o.dataDirectory))
        await holder.stop()
    }

    @Test("A sweeper that never started can be stopped and released")
    func unstartedSweeperReleases() throws {
        let daemon = try SessionDaemon(options: SessionDaemon.Options(), logger: RPCServer(configuration: .init(), services: []).logger)
        daemon.sweeper.stop()
        daemon.sweeper.stop()
    }
}
