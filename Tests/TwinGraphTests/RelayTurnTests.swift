import Foundation
import Logging
import Testing
import TwinGraph
import TwinflowPostgres
import TwinflowTestSupport

/// The relay's turn on PostgreSQL: a session advisory lock held on a connection of its own.
@Suite struct RelayTurnTests {
    /// The server side of the lock connection stops answering (its backend process stopped, as a
    /// connection gone half-open would look): the holder gives the turn up within its check's
    /// limit, and once PostgreSQL frees the lock another instance takes it.
    @Test func aTurnWhoseConnectionStopsAnsweringIsGivenUp() async throws {
        let cluster = try PostgresCluster.shared()
        let database = try cluster.makeDatabase("relayturn")
        var logger = Logger(label: "relay-turn-test")
        logger.logLevel = .critical
        func store() async throws -> PostgresTwinStore {
            try await PostgresTwinStore(
                url: DatabaseURL(database), connections: 2, relayTurnRetry: .milliseconds(200), relayTurnCheck: .milliseconds(500),
                logger: logger)
        }
        let first = try await store()
        let second = try await store()
        defer {
            first.close()
            second.close()
        }
        let turn = try await first.relayTurn(committedElsewhere: {})
        #expect(turn.isHeld)
        let holder = try cluster.query(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            at: database)
        let backend = try #require(pid_t(holder), "the lock's backend: \(holder)")

        #expect(kill(backend, SIGSTOP) == 0)
        var stopped = true
        defer { if stopped { kill(backend, SIGCONT) } }
        let taken = Shared(false)
        let other = Task {
            let turn = try await second.relayTurn(committedElsewhere: {})
            taken.withLock { $0 = true }
            return turn
        }
        let givenUp = await eventually(timeout: .seconds(10)) { !turn.isHeld }
        let takenWhileStopped = taken.value
        #expect(kill(backend, SIGCONT) == 0)
        stopped = false
        #expect(givenUp, "the holder gave its turn up while its connection did not answer")
        #expect(!takenWhileStopped, "the stopped backend still held the lock")
        guard await eventually(timeout: .seconds(20), { taken.value }) else {
            other.cancel()
            Issue.record("the other instance did not take the turn once the lock was free")
            return
        }
        let secondTurn = try await other.value
        #expect(secondTurn.isHeld)
        await secondTurn.release()
        await turn.release()
    }
}
