import Logging
import PostgresNIO
import Synchronization
import TwinflowPostgres

/// The relay's turn on a shared PostgreSQL store: a session advisory lock on a connection of its
/// own, held as long as that connection lives. When the process holding it dies, PostgreSQL ends
/// its session and frees the lock, and the next instance that asks (every `retry`) takes it.
/// While it is held, the connection listens for commits (each notification names the last outbox
/// position of its transaction), and `committed` hears of each: nil once listening has begun.
final class PostgresRelayTurn: RelayTurn {
    private let connection: PostgresConnection
    private let listening: Task<Void, Never>

    var isHeld: Bool { !connection.isClosed }

    private init(
        connection: PostgresConnection, committed: @escaping @Sendable (Int64?) -> Void, committedElsewhere: @escaping @Sendable () -> Void,
        logger: Logger
    ) {
        self.connection = connection
        listening = Task {
            do {
                try await connection.listen(on: PostgresTwinStore.outboxChannel) { notifications in
                    committed(nil)
                    committedElsewhere()
                    for try await notification in notifications {
                        committed(Int64(notification.payload))
                        committedElsewhere()
                    }
                }
            } catch {
                logger.debug("relay turn stopped listening", metadata: ["error": "\(error)"])
            }
            // The connection is gone (or the turn released): the relay finds the turn lost.
            committedElsewhere()
        }
    }

    func release() async {
        listening.cancel()
        try? await connection.close()
    }

    /// Waits until this process holds the lock; `retry` apart between attempts, and a connection
    /// failure is retried the same way (the relay has nothing to do until then).
    static func acquire(
        configuration: PostgresConnection.Configuration, retry: Duration, committed: @escaping @Sendable (Int64?) -> Void,
        committedElsewhere: @escaping @Sendable () -> Void, logger: Logger
    ) async throws -> PostgresRelayTurn {
        var attempt = 0
        while true {
            try Task.checkCancellation()
            attempt += 1
            do {
                let connection = try await PostgresConnection.connect(configuration: configuration, id: attempt, logger: logger)
                var held = false
                do {
                    for try await granted in try await connection.query(
                        "SELECT pg_try_advisory_lock(\(PostgresTwinStore.relayLockKey))", logger: logger
                    ).decode(Bool.self) {
                        held = granted
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                if held {
                    logger.info("this instance relays the outbox")
                    return PostgresRelayTurn(connection: connection, committed: committed, committedElsewhere: committedElsewhere, logger: logger)
                }
                try? await connection.close()
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                logger.warning("cannot ask for the relay's turn", metadata: ["error": "\(error)"])
            }
            try await Task.sleep(for: retry)
        }
    }
}

extension PostgresTwinStore {
    public func relayTurn(committedElsewhere: @escaping @Sendable () -> Void) async throws -> any RelayTurn {
        try await PostgresRelayTurn.acquire(
            configuration: try url.connectionConfiguration(), retry: relayTurnRetry,
            committed: { [newestCommitted] position in
                if let position { newestCommitted.note(position) } else { newestCommitted.forget() }
            },
            committedElsewhere: committedElsewhere, logger: logger)
    }
}
