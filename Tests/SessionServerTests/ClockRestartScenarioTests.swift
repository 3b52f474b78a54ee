import SessionAPI
import SessionClient
import Testing

/// The test clock across restarts: its offset is durable and it never goes back.
@Suite("Test clock across restarts")
struct ClockRestartScenarioTests {
    @Test("an advanced test clock survives a restart on the same data directory and never goes backwards")
    func offsetSurvivesRestart() async throws {
        let dir = TestDaemon.makeTemporaryDirectory()
        defer { TestDaemon.removeDirectory(dir) }

        let first = try TestDaemon(directory: dir)
        let before: Int64
        do {
            let start = try await first.now()
            try await first.advance(Millis.hour)
            before = try await first.now()
            #expect(before >= start + Millis.hour)
        } catch {
            await first.stop(removingDirectory: false)
            throw error
        }
        await first.stop(removingDirectory: false)

        // Same pinned wall-clock base: only the persisted offset can keep the time.
        let second = try TestDaemon(directory: dir)
        do {
            let after = try await second.now()
            #expect(after >= before, "the clock went back by \(before - after) ms across a restart")
            try await second.advance(Millis.minute)
            #expect(try await second.now() >= before + Millis.minute)
        } catch {
            await second.stop(removingDirectory: false)
            throw error
        }
        await second.stop(removingDirectory: false)

        // Restarted with an earlier wall clock than before: the time reached is a floor.
        let third = try TestDaemon(directory: dir, clockStart: TestDaemon.clockStart - Millis.day)
        let reached = try await third.now()
        #expect(reached >= before + Millis.minute, "the clock went back by \(before + Millis.minute - reached) ms")
        await third.stop()
    }
}
