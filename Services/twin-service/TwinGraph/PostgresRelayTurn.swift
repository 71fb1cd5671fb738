import Logging
import PostgresNIO
import Synchronization
import TwinflowPostgres
import TwinflowRuntime

/// The relay's turn on a shared PostgreSQL store: a session advisory lock on a connection of its
/// own, held as long as that connection lives. When the process holding it dies, PostgreSQL ends
/// its session and frees the lock, and the next instance that asks (every `retry`) takes it.
/// While it is held, the connection listens for commits (each notification names the last outbox
/// position of its transaction), and `committed` hears of each: nil once listening has begun.
///
/// The connection is asked a question every `check`; when one finds no answer within twice that
/// (a connection gone half-open, a server that hangs), the connection is closed and the turn given
/// up, at most three times `check` after the last answer: the instance must not go on relaying
/// while PostgreSQL, having lost its session, lets another take the lock.
final class PostgresRelayTurn: RelayTurn {
    private let connection: PostgresConnection
    private let listening: Task<Void, Never>
    private let checking: Task<Void, Never>

    var isHeld: Bool { !connection.isClosed }

    private init(
        connection: PostgresConnection, check: Duration, committed: @escaping @Sendable (Int64?) -> Void,
        committedElsewhere: @escaping @Sendable () -> Void, logger: Logger
    ) {
        self.connection = connection
        checking = Task {
            while !Task.isCancelled, !connection.isClosed {
                try? await Task.sleep(for: check)
                guard !Task.isCancelled else { return }
                guard await Self.answers(connection, within: check * 2, logger: logger) else {
                    // Released meanwhile, or closed by the server: nothing to give up.
                    guard !Task.isCancelled, !connection.isClosed else { return }
                    logger.error("the relay's lock connection does not answer; giving up the turn", metadata: ["limit": "\(check * 2)"])
                    try? await connection.close()
                    return
                }
            }
        }
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
                logger.debug("relay turn stopped listening", metadata: ["error": .error(error)])
            }
            // The connection is gone (or the turn released): what it heard of commits is no longer
            // kept current, and the relay finds the turn lost.
            committed(nil)
            committedElsewhere()
        }
    }

    func release() async {
        checking.cancel()
        listening.cancel()
        try? await connection.close()
    }

    /// Whether `connection` answers a query within `limit`. A query with no answer is left to fail
    /// when the connection closes: waiting for it would wait as long as the connection hangs.
    private static func answers(_ connection: PostgresConnection, within limit: Duration, logger: Logger) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let answer = FirstAnswer(continuation)
            Task {
                do {
                    for try await _ in try await connection.query("SELECT 1", logger: logger).decode(Int.self) {}
                    answer.give(true)
                } catch {
                    answer.give(false)
                }
            }
            Task {
                try? await Task.sleep(for: limit)
                answer.give(false)
            }
        }
    }

    /// Waits until this process holds the lock; `retry` apart between attempts, and a connection
    /// failure is retried the same way (the relay has nothing to do until then).
    static func acquire(
        configuration: PostgresConnection.Configuration, retry: Duration, check: Duration, committed: @escaping @Sendable (Int64?) -> Void,
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
                    return PostgresRelayTurn(
                        connection: connection, check: check, committed: committed, committedElsewhere: committedElsewhere, logger: logger)
                }
                try? await connection.close()
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                logger.warning("cannot ask for the relay's turn", metadata: ["error": .error(error)])
            }
            try await Task.sleep(for: retry)
        }
    }
}

/// Resumes a continuation with the first answer given; later ones are dropped.
private final class FirstAnswer: Sendable {
    private let continuation: Mutex<CheckedContinuation<Bool, Never>?>

    init(_ continuation: CheckedContinuation<Bool, Never>) {
        self.continuation = Mutex(continuation)
    }

    func give(_ answer: Bool) {
        continuation.withLock { $0.take() }?.resume(returning: answer)
    }
}

extension PostgresTwinStore {
    public func relayTurn(committedElsewhere: @escaping @Sendable () -> Void) async throws -> any RelayTurn {
        try await PostgresRelayTurn.acquire(
            configuration: try url.connectionConfiguration(parameters: DatabaseURL.keepaliveParameters), retry: relayTurnRetry, check: relayTurnCheck,
            committed: { [newestCommitted] position in
                if let position { newestCommitted.note(position) } else { newestCommitted.forget() }
            },
            committedElsewhere: committedElsewhere, logger: logger)
    }
}
