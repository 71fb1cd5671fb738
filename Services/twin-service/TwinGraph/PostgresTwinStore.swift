import Foundation
import Logging
import PostgresNIO
import Synchronization
import TwinflowCodec
import TwinflowPostgres

/// The scaled store: PostgreSQL through postgres-nio, shared by every twin-service instance.
///
/// Reads go through a pool of connections. Writes run on ``PostgresWriter``'s connection, a batch
/// per transaction: rows read for a write are locked (`FOR UPDATE`), so two instances writing one
/// twin take turns, and a twin's `sequence` is counted in its row. The batch's events go to the
/// outbox as one row whose positions are taken from a counter row in the same transaction: the
/// counter's lock is held until the commit, so positions are handed out in commit order across all
/// instances, and a reader that sees a position sees every one before it. The relay that
/// publishes the outbox holds a session advisory lock (``relayTurn(committedElsewhere:)``).
public final class PostgresTwinStore: TwinStore {
    let client: PostgresClient
    let clientTask: Task<Void, Never>
    let writer: PostgresWriter
    let parsedTwins: ParsedTwinCache
    /// This process's newest outbox entries, for the relay when it runs here (see ``outbox(after:limit:)``).
    let recentEvents: OutboxBuffer
    /// The last outbox position committed anywhere, as far as this process heard (its own commits,
    /// and the notifications the relay's turn listens for); nil when it cannot tell.
    let newestCommitted = NewestCommitted()
    let url: DatabaseURL
    let logger: Logger
    /// How often an instance without the relay's turn asks for it.
    let relayTurnRetry: Duration
    /// How often the instance with the turn checks that its lock connection answers (within twice that).
    let relayTurnCheck: Duration

    /// Opens the store, creating or migrating its schema; a new database starts with `initialRoutes`.
    /// `connections`: the read pool's size (the writer has a connection of its own). A statement of
    /// either (a write, a model upload, the relay's clean-up) that waits longer than `lockTimeout`
    /// for a lock another session holds fails as the store failing (503 to a REST client, a batch of
    /// commands tried again), as SQLite's busy timeout (see ``DatabaseURL/sessionParameters(lockTimeout:)``). Throws
    /// ``Unreachable`` when the database does not answer within `startupLimit`.
    public init(
        url: DatabaseURL, connections: Int = 8, initialRoutes: [EventRoute] = EventRoute.defaults,
        parsedTwinCacheBytes: Int = ParsedTwinCache.defaultCapacityBytes, relayTurnRetry: Duration = .seconds(1),
        relayTurnCheck: Duration = .seconds(2), lockTimeout: Duration = .seconds(10), startupLimit: Duration = .seconds(15),
        logger: Logger
    ) async throws {
        self.url = url
        self.logger = logger
        self.relayTurnRetry = relayTurnRetry
        self.relayTurnCheck = relayTurnCheck
        parsedTwins = ParsedTwinCache(capacityBytes: parsedTwinCacheBytes)
        recentEvents = OutboxBuffer(completeAfter: .max)
        let sessions = DatabaseURL.sessionParameters(lockTimeout: lockTimeout)
        let client = PostgresClient(
            configuration: try url.clientConfiguration(connections: connections, parameters: sessions), backgroundLogger: logger)
        self.client = client
        clientTask = Task { await client.run() }
        writer = PostgresWriter(configuration: try url.connectionConfiguration(parameters: sessions), logger: logger)
        do {
            try await Self.within(startupLimit, or: Unreachable(url: url, limit: startupLimit)) {
                try await Self.prepare(client, initialRoutes: initialRoutes, logger: logger)
            }
            for try await last in try await client.query("SELECT last_given FROM twin_outbox_counter WHERE id = 1", logger: logger).decode(
                Int64.self)
            {
                recentEvents.restart(completeAfter: last)
            }
        } catch {
            close()
            throw error
        }
    }

    /// The database did not answer at startup.
    public struct Unreachable: Error, CustomStringConvertible {
        var url: DatabaseURL
        var limit: Duration
        public var description: String {
            "the database \(url.database) at \(url.host):\(url.port) did not answer within \(limit.components.seconds) s"
        }
    }

    private static func within(_ limit: Duration, or timeout: Unreachable, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await body()
                return true
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            let finished = try await group.next() ?? false
            group.cancelAll()
            guard finished else { throw timeout }
        }
    }

    /// Migrates the schema and, in a new database, stores the initial routes.
    private static func prepare(_ client: PostgresClient, initialRoutes: [EventRoute], logger: Logger) async throws {
        try await Self.migrations.apply(on: client, logger: logger)
        try await client.withTransaction(logger: logger) { connection in
            let seeded = try await connection.query(
                "INSERT INTO twin_store_seeded (id) VALUES (1) ON CONFLICT (id) DO NOTHING RETURNING id", logger: logger)
            var first = false
            for try await _ in seeded { first = true }
            guard first else { return }
            for route in initialRoutes {
                try await connection.query(
                    "INSERT INTO twin_event_routes (id, endpoint_name, filter) VALUES (\(route.id), \(route.endpointName), \(route.filter))",
                    logger: logger)
            }
        }
    }

    /// Stops the writer and the pool.
    public func close() {
        writer.stop()
        clientTask.cancel()
    }

    deinit { close() }

    static let migrations = SchemaMigrations(
        component: "twin-service",
        steps: [
            """
            CREATE TABLE twin_models (
                id TEXT COLLATE "C" PRIMARY KEY, definition TEXT NOT NULL, upload_time TEXT NOT NULL,
                decommissioned BOOLEAN NOT NULL DEFAULT false, upload_order BIGSERIAL NOT NULL);
            CREATE TABLE twin_twins (
                id TEXT COLLATE "C" PRIMARY KEY, model TEXT, version BIGINT NOT NULL, revision BIGINT NOT NULL DEFAULT 0,
                sequence BIGINT NOT NULL DEFAULT 0, document TEXT) WITH (fillfactor = 70);
            CREATE TABLE twin_relationships (
                source_id TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, name TEXT COLLATE "C", target_id TEXT COLLATE "C",
                version BIGINT NOT NULL, document TEXT, PRIMARY KEY (source_id, id));
            CREATE INDEX twin_relationships_by_target ON twin_relationships (target_id, source_id, id, name) WHERE document IS NOT NULL;
            CREATE TABLE twin_outbox (last_position BIGINT PRIMARY KEY, first_position BIGINT NOT NULL, events BYTEA NOT NULL);
            CREATE TABLE twin_outbox_counter (id INTEGER PRIMARY KEY CHECK (id = 1), last_given BIGINT NOT NULL);
            INSERT INTO twin_outbox_counter (id, last_given) VALUES (1, 0);
            CREATE TABLE twin_outbox_delivered (id INTEGER PRIMARY KEY CHECK (id = 1), through BIGINT NOT NULL);
            INSERT INTO twin_outbox_delivered (id, through) VALUES (1, 0);
            CREATE TABLE twin_idempotency_keys (key TEXT COLLATE "C" PRIMARY KEY, recorded TEXT COLLATE "C" NOT NULL);
            CREATE INDEX twin_idempotency_keys_by_time ON twin_idempotency_keys USING brin (recorded);
            CREATE TABLE twin_event_routes (id TEXT COLLATE "C" PRIMARY KEY, endpoint_name TEXT NOT NULL, filter TEXT NOT NULL);
            CREATE TABLE twin_store_seeded (id INTEGER PRIMARY KEY CHECK (id = 1));
            CREATE TABLE twin_catalog (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
            INSERT INTO twin_catalog (id, version) VALUES (1, 0);
            CREATE TABLE twin_probe (id INTEGER PRIMARY KEY CHECK (id = 1), time TEXT NOT NULL)
            """
        ])

    /// The channel a commit with events notifies, so the relay (on any instance) wakes.
    static let outboxChannel = "twinflow_outbox"
    /// The advisory lock the relaying instance holds.
    static let relayLockKey: Int64 = 0x7477_696E_7265_6C79
}

/// The last outbox position committed anywhere, as far as this process heard; nil when it cannot tell
/// (then the relay reads the database).
final class NewestCommitted: Sendable {
    private let value = Mutex<Int64?>(nil)

    var position: Int64? { value.withLock { $0 } }

    /// `ifKnown`: only raise a position already known (this process's own commits do not tell
    /// of the others').
    func note(_ position: Int64, ifKnown: Bool = false) {
        value.withLock { newest in
            if let known = newest { newest = max(known, position) } else if !ifKnown { newest = position }
        }
    }

    func forget() { value.withLock { $0 = nil } }
}
