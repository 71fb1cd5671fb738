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
