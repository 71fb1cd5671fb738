import Foundation
import Logging
import PostgresNIO
import Testing
import TwinGraph
import TwinflowPostgres
import TwinflowRuntime
import TwinflowTestSupport
import _ConnectionPoolModule

/// PostgreSQL's errors as twin-service tells them apart and describes them: the store failing or a
/// statement refused, with the server's code and message (postgres-nio's own description leaves
/// both out).
@Suite struct StoreFailureTests {
    let logger = Logger(label: "store-failure-test")

    @Test func aRefusedStatementIsDescribedWithTheServersCodeAndMessage() async throws {
        let url = try DatabaseURL(PostgresCluster.shared().makeDatabase("errors"))
        let connection = try await PostgresConnection.connect(configuration: url.connectionConfiguration(), id: 1, logger: logger)
        let error = try await #require(throws: PSQLError.self) { try await connection.query("SELECT 1 / 0", logger: logger) }
        try await connection.close()
        #expect(String(describingError: error) == "PostgreSQL ERROR 22012: division by zero")
        #expect(!StoreFailure.matches(error), "a statement refused is not the store failing")
    }

    /// A pool's transaction wraps the failing step's error: it is described by that step and that
    /// error, and told apart as the error itself is (a lock timeout in a transaction is the store
    /// failing; a statement refused in one is not).
    @Test func aFailedTransactionIsDescribedAndToldApartByTheStepThatFailed() async throws {
        let url = try PostgresCluster.shared().makeDatabase("errors")
        let running = try RunningPostgresClient(url: url)
        let refused = try await #require(throws: PostgresTransactionError.self) {
            try await running.client.withTransaction(logger: logger) { try await $0.query("SELECT 1 / 0", logger: logger) }
        }
        #expect(String(describingError: refused) == "transaction: PostgreSQL ERROR 22012: division by zero")
        #expect(!StoreFailure.matches(refused))
        let locked = try await #require(throws: PostgresTransactionError.self) {
            try await running.client.withTransaction(logger: logger) { connection in
                try await connection.query("DO $$ BEGIN RAISE EXCEPTION 'locked' USING ERRCODE = '55P03'; END $$", logger: logger)
            }
        }
        #expect(String(describingError: locked) == "transaction: PostgreSQL ERROR 55P03: locked")
        #expect(StoreFailure.matches(locked))
    }

    @Test func anUnreachableServerIsAStoreFailureNamingWhatHappened() async throws {
        var url = try DatabaseURL(PostgresCluster.shared().makeDatabase("errors"))
        url.port = unusedPort()
        let error = try await #require(throws: PSQLError.self) {
            try await PostgresConnection.connect(configuration: url.connectionConfiguration(), id: 1, logger: logger)
        }
        let text = String(describingError: error)
        #expect(text.hasPrefix("PostgreSQL connectionError: ") && text.contains("refused"), "\(text)")
        #expect(StoreFailure.matches(error))
    }

    /// The pool giving up on making connections (its circuit breaker) is the store failing: 503, not 500.
    @Test func thePoolGivingUpOnConnectionsIsAStoreFailure() {
        #expect(StoreFailure.matches(ConnectionPoolError.connectionCreationCircuitBreakerTripped))
        #expect(!StoreFailure.matches(ConnectionPoolError.requestCancelled), "a cancelled request is the client's doing")
    }
}
