import PostgresTestSupport
import Foundation
import SessionCore
import Testing

@testable import SessionStorage

/// The database going away and coming back, on a private PostgreSQL server
/// (stopping the shared one would break the tests running beside this one).
@Suite struct PostgresOutageTests {
    @Test func aStoppedDatabaseIsUnavailableAndTheStoreRecoversWhenItReturns() throws {
        let server = try PostgresTestServer.start()
        defer { server.destroy() }
        let url = try server.makeDatabase()
        let store = try PostgresStore(url: url, options: .forTests)
        try store.write { try $0.insertChannel(Fixtures.plainChannel("before")) }
        #expect(try store.read { try $0.channel(id: "before") } != nil)

        try server.stop()
        for attempt in 0..<2 {
            let started = ContinuousClock.now
            let writeError = #expect(throws: PostgresStoreError.self) {
                try store.write { try $0.insertChannel(Fixtures.plainChannel("during-\(attempt)")) }
            }
            let readError = #expect(throws: PostgresStoreError.self) { _ = try store.read { try $0.channel(id: "before") } }
            let elapsed = ContinuousClock.now - started
            #expect(elapsed < .seconds(5), "an unreachable database must fail fast, took \(elapsed)")
            for error in [writeError, readError] {
                guard case .unavailable(let message) = error else {
                    Issue.record("expected unavailable, got \(String(describing: error))")
                    continue
                }
                #expect(message.contains("127.0.0.1"), "\(message)")
            }
        }

        try server.restart()
        // The same store, without re-creating it: the next calls succeed.
        try store.write { try $0.insertChannel(Fixtures.plainChannel("after")) }
        #expect(try store.read { try $0.channels(after: nil, limit: 10).map(\.id) } == ["after", "before"])
        let token = APIToken(hash: [7], role: .admin, name: "ops", createdAt: Fixtures.t0)
        try store.insertToken(token)
        #expect(try store.token(hash: [7]) == token)
    }

    /// Idle pooled connections that a restart killed are replaced without
    /// failing the first call after the restart.
    @Test func aRestartBetweenCallsCostsNoFailedCall() throws {
        let server = try PostgresTestServer.start()
        defer { server.destroy() }
        let store = try PostgresStore(url: try server.makeDatabase(), options: .forTests)
        // Fill both pools with idle connections.
        runOnThreads(4) { index in
            _ = try? store.write { try $0.insertChannel(Fixtures.plainChannel("c\(index)")) }
            _ = try? store.read { try $0.channels(after: nil, limit: 10) }
        }
        try server.stop()
        try server.restart()
        try store.write { try $0.insertChannel(Fixtures.plainChannel("after")) }
        #expect(try store.read { try $0.channels(after: nil, limit: 10).count } == 5)
    }

    @Test func anUnreachableDatabaseFailsTheStoreQuickly() throws {
        let port = try PostgresTestServer.freePort()
        let started = ContinuousClock.now
        let error = #expect(throws: PostgresStoreError.self) {
            _ = try PostgresStore(url: "postgres://postgres@127.0.0.1:\(port)/nothing", options: .forTests)
        }
        #expect(ContinuousClock.now - started < .seconds(5))
        guard case .unavailable(let message) = error else {
            Issue.record("expected unavailable, got \(String(describing: error))")
            return
        }
        #expect(message.contains("postgres://postgres@127.0.0.1:\(port)/nothing"), "\(message)")
    }
}
