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
    private let client: PostgresClient
    private let clientTask: Task<Void, Never>
    private let writer: PostgresWriter
    private let parsedTwins: ParsedTwinCache
    /// This process's newest outbox entries, for the relay when it runs here (see ``outbox(after:limit:)``).
    private let recentEvents: OutboxBuffer
    /// The last outbox position committed anywhere, as far as this process heard (its own commits,
    /// and the notifications the relay's turn listens for); nil when it cannot tell.
    let newestCommitted = NewestCommitted()
    let url: DatabaseURL
    let logger: Logger
    /// How often an instance without the relay's turn asks for it.
    let relayTurnRetry: Duration

    /// Opens the store, creating or migrating its schema; a new database starts with `initialRoutes`.
    /// `connections`: the read pool's size (the writer has a connection of its own). Throws
    /// ``Unreachable`` when the database does not answer within `startupLimit`.
    public init(
        url: DatabaseURL, connections: Int = 8, initialRoutes: [EventRoute] = EventRoute.defaults,
        parsedTwinCacheBytes: Int = ParsedTwinCache.defaultCapacityBytes, relayTurnRetry: Duration = .seconds(1),
        startupLimit: Duration = .seconds(15), logger: Logger
    ) async throws {
        self.url = url
        self.logger = logger
        self.relayTurnRetry = relayTurnRetry
        parsedTwins = ParsedTwinCache(capacityBytes: parsedTwinCacheBytes)
        recentEvents = OutboxBuffer(completeAfter: .max)
        let client = PostgresClient(configuration: try url.clientConfiguration(connections: connections), backgroundLogger: logger)
        self.client = client
        clientTask = Task { await client.run() }
        writer = PostgresWriter(configuration: try url.connectionConfiguration(), logger: logger)
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

    // MARK: Reads

    public func twin(_ id: String) async throws -> StoredTwin? {
        let rows = try await client.query(
            "SELECT id, model, version, document FROM twin_twins WHERE id = \(id) AND document IS NOT NULL", logger: logger)
        for try await (id, model, version, document) in rows.decode((String, String?, Int64, String).self) {
            return StoredTwin(id: id, model: model ?? "", version: version, document: try JSONValue.parse(document))
        }
        return nil
    }

    public func twins(after id: String?, limit: Int) async throws -> [StoredTwin] {
        let rows = try await client.query(
            """
            SELECT id, model, version, document FROM twin_twins WHERE id > \(id ?? "") AND document IS NOT NULL ORDER BY id LIMIT \(limit)
            """, logger: logger)
        var twins: [StoredTwin] = []
        for try await (id, model, version, document) in rows.decode((String, String?, Int64, String).self) {
            twins.append(StoredTwin(id: id, model: model ?? "", version: version, document: try JSONValue.parse(document)))
        }
        return twins
    }

    public func knownTwin(_ id: String) -> KnownTwin? { parsedTwins.latest(id) }

    /// A write that meets a twin it was not prepared against reads it in the transaction (a round
    /// trip for each); a batch's unknown twins are read here instead, in one statement.
    public func learnTwins(_ ids: [String]) async throws {
        let unknown = ids.filter { parsedTwins.latest($0) == nil }
        guard !unknown.isEmpty else { return }
        let rows = try await client.query(
            """
            SELECT id, model, version, revision, sequence, document FROM twin_twins WHERE id = ANY(\(unknown)::text[]) AND document IS NOT NULL
            """, logger: logger)
        for try await (id, model, version, revision, sequence, document) in rows.decode((String, String?, Int64, Int64, Int64, String).self) {
            let twin = StoredTwin(id: id, model: model ?? "", version: version, document: try JSONValue.parse(document))
            parsedTwins.remember(twin, revision: revision, lastSequence: sequence, unlessNewer: true)
        }
    }

    public func remember(_ twin: KnownTwin) {
        parsedTwins.remember(twin.twin, revision: twin.revision, lastSequence: twin.lastSequence)
    }

    public func relationship(sourceID: String, id: String) async throws -> StoredRelationship? {
        let rows = try await client.query(
            """
            SELECT source_id, id, name, target_id, version, document FROM twin_relationships
            WHERE source_id = \(sourceID) AND id = \(id) AND document IS NOT NULL
            """, logger: logger)
        for try await row in rows { return try Self.relationship(from: row) }
        return nil
    }

    public func relationships(sourceID: String, name: String?) async throws -> [StoredRelationship] {
        var relationships: [StoredRelationship] = []
        for try await row in try await client.query(Self.relationshipsQuery(sourceID: sourceID, name: name), logger: logger) {
            if let relationship = try Self.relationship(from: row) { relationships.append(relationship) }
        }
        return relationships
    }

    static func relationshipsQuery(sourceID: String, name: String?) -> PostgresQuery {
        if let name {
            return """
                SELECT source_id, id, name, target_id, version, document FROM twin_relationships
                WHERE source_id = \(sourceID) AND name = \(name) AND document IS NOT NULL ORDER BY id
                """
        }
        return """
            SELECT source_id, id, name, target_id, version, document FROM twin_relationships
            WHERE source_id = \(sourceID) AND document IS NOT NULL ORDER BY id
            """
    }

    public func incomingLinks(targetID: String) async throws -> [IncomingLink]? {
        let rows = try await client.query(
            """
            SELECT t.id IS NOT NULL, r.source_id, r.id, r.name
            FROM (SELECT 1) AS one
            LEFT JOIN twin_twins AS t ON t.id = \(targetID) AND t.document IS NOT NULL
            LEFT JOIN twin_relationships AS r ON t.id IS NOT NULL AND r.target_id = \(targetID) AND r.document IS NOT NULL
            ORDER BY r.source_id, r.id
            """, logger: logger)
        var links: [IncomingLink] = []
        var exists = false
        for try await (found, sourceID, id, name) in rows.decode((Bool, String?, String?, String?).self) {
            exists = found
            if let sourceID, let id { links.append(IncomingLink(sourceID: sourceID, id: id, name: name ?? "")) }
        }
        return exists ? links : nil
    }

    /// A relationship from the columns `source_id, id, name, target_id, version, document`; nil when deleted.
    static func relationship(from row: PostgresRow) throws -> StoredRelationship? {
        let (sourceID, id, name, targetID, version, document) = try row.decode((String, String, String?, String?, Int64, String?).self)
        guard let document else { return nil }
        return StoredRelationship(
            sourceID: sourceID, id: id, name: name ?? "", targetID: targetID ?? "", version: version, document: try JSONValue.parse(document))
    }

    // MARK: Writes

    /// A batch runs first deferring (see ``PostgresTransaction``), without a savepoint per write;
    /// when a write throws or what was deferred does not hold, it is rolled back and run again step
    /// by step with a savepoint per write, so a failed write leaves nothing behind and the others
    /// commit. A transaction that another instance's deadlocks with, or that read a row another
    /// instance then wrote, is run again (at most ``conflictAttempts`` times).
    public func write(_ writes: [StoreWrite]) async throws -> [Result<any Sendable, any Error>] {
        let (parsedTwins, recentEvents, newestCommitted) = (parsedTwins, recentEvents, newestCommitted)
        return try await writer.perform { db in
            var attempt = 0
            while true {
                attempt += 1
                do {
                    if let results = try Self.write(
                        writes, db, mode: .deferring, parsedTwins: parsedTwins, recentEvents: recentEvents, newestCommitted: newestCommitted)
                    {
                        return results
                    }
                    guard
                        let results = try Self.write(
                            writes, db, mode: .immediate, parsedTwins: parsedTwins, recentEvents: recentEvents, newestCommitted: newestCommitted)
                    else {
                        preconditionFailure("a batch with a savepoint per write keeps going past failed writes")
                    }
                    return results
                } catch  where attempt < Self.conflictAttempts && Self.isConflict(error) {
                    continue
                }
            }
        }
    }

    static let conflictAttempts = 8

    /// PostgreSQL refused what one write holds (a data exception, such as a NUL character in a text,
    /// which SQLite stores): that write fails alone, the others of its batch commit.
    private static func isRefusalOfTheWrite(_ error: PSQLError) -> Bool {
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("22")
    }

    private static func isConflict(_ error: any Error) -> Bool {
        if error is PostgresStoreConflict { return true }
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        // serialization_failure, deadlock_detected
        return state == "40001" || state == "40P01"
    }

    /// One transaction of the batch; nil (and rolled back) when a write failed, or what was deferred
    /// did not hold, in ``PostgresTransaction/Mode/deferring``.
    private static func write(
        _ writes: [StoreWrite], _ db: PostgresWriterConnection, mode: PostgresTransaction.Mode, parsedTwins: ParsedTwinCache,
        recentEvents: OutboxBuffer, newestCommitted: NewestCommitted
    ) throws -> [Result<any Sendable, any Error>]? {
        try db.query("BEGIN")
        do {
            let transaction = PostgresTransaction(db: db, mode: mode, now: Timestamp.now(), parsedTwins: parsedTwins)
            var results: [Result<any Sendable, any Error>] = []
            results.reserveCapacity(writes.count)
            for write in writes {
                switch mode {
                case .deferring:
                    do {
                        results.append(.success(try write(transaction)))
                    } catch let error as PSQLError where !Self.isRefusalOfTheWrite(error) {
                        throw error
                    } catch {
                        try db.query("ROLLBACK")
                        return nil
                    }
                case .immediate:
                    try db.query("SAVEPOINT store_write")
                    let collected = transaction.events.count
                    do {
                        results.append(.success(try write(transaction)))
                        try db.query("RELEASE SAVEPOINT store_write")
                    } catch let error as PSQLError where !Self.isRefusalOfTheWrite(error) {
                        throw error
                    } catch let error as PostgresStoreConflict {
                        throw error
                    } catch let error as PSQLError {
                        try db.query("ROLLBACK TO SAVEPOINT store_write")
                        transaction.events.removeSubrange(collected...)
                        let reason = error.serverInfo?[.message] ?? "a data exception"
                        results.append(.failure(ServiceError.invalidArgument("The store cannot hold a value of this request: \(reason).")))
                    } catch {
                        try db.query("ROLLBACK TO SAVEPOINT store_write")
                        transaction.events.removeSubrange(collected...)
                        results.append(.failure(error))
                    }
                }
            }
            do {
                try transaction.checkDeferred()
            } catch is PostgresDeferredMismatch {
                try db.query("ROLLBACK")
                return nil
            } catch let error as PSQLError where Self.isRefusalOfTheWrite(error) {
                // Which write's key or patch was refused shows when the batch runs step by step.
                try db.query("ROLLBACK")
                return nil
            }
            let stored = try storeOutbox(transaction.events, db)
            try db.query("COMMIT")
            recentEvents.append(stored)
            if let last = stored.last?.position { newestCommitted.note(last, ifKnown: true) }
            return results
        } catch {
            if !db.connection.isClosed { _ = try? db.query("ROLLBACK") }
            throw error
        }
    }

    /// The events as one outbox row at the next positions, taken from the counter row (locked until
    /// the commit), and a notification for the relay.
    private static func storeOutbox(_ events: [PendingEvent], _ db: PostgresWriterConnection) throws -> [OutboxEntry] {
        guard !events.isEmpty else { return [] }
        let entries = events.enumerated().map { OutboxEntry(position: Int64($0.offset), event: $0.element) }
        let packed = ByteBuffer(bytes: OutboxPacking.pack(entries))
        let count = Int64(events.count)
        let rows = try db.query(
            """
            WITH given AS (UPDATE twin_outbox_counter SET last_given = last_given + \(count) WHERE id = 1 RETURNING last_given),
                stored AS (INSERT INTO twin_outbox (last_position, first_position, events)
                    SELECT last_given, last_given - \(count) + 1, \(packed) FROM given RETURNING last_position)
            SELECT stored.last_position FROM stored, pg_notify(\(outboxChannel), stored.last_position::text)
            """
        ).rows
        guard let row = rows.first else { throw PostgresStoreConflict(reason: "the outbox counter is missing") }
        let last = try row.decode(Int64.self)
        return entries.map { OutboxEntry(position: last - count + 1 + $0.position, event: $0.event) }
    }

    // MARK: Outbox

    /// What was delivered is not handed out again, even to a relay that starts from the beginning.
    public func outbox(after position: Int64, limit: Int) async throws -> [OutboxEntry] {
        if let recent = recentEvents.consecutiveEntries(after: position, limit: limit) { return recent }
        if let newest = newestCommitted.position, position >= newest { return [] }
        let after = try await deliveredThrough(atLeast: position)
        let rows = try await client.query(
            "SELECT first_position, events FROM twin_outbox WHERE last_position > \(after) ORDER BY last_position LIMIT \(limit)",
            logger: logger)
        var packedRows: [(first: Int64, events: ByteBuffer)] = []
        for try await row in rows.decode((Int64, ByteBuffer).self) { packedRows.append(row) }
        return try Self.entries(of: packedRows, after: after, limit: limit)
    }

    private static func entries(of rows: [(first: Int64, events: ByteBuffer)], after: Int64, limit: Int) throws -> [OutboxEntry] {
        var entries: [OutboxEntry] = []
        for row in rows where entries.count < limit {
            let unpacked = try OutboxPacking.unpack(Array(buffer: row.events), firstPosition: row.first)
            entries += unpacked.drop { $0.position <= after }.prefix(limit - entries.count)
        }
        return entries
    }

    private func deliveredThrough(atLeast position: Int64) async throws -> Int64 {
        var through = position
        for try await delivered in try await client.query("SELECT through FROM twin_outbox_delivered WHERE id = 1", logger: logger).decode(
            Int64.self)
        {
            through = max(through, delivered)
        }
        return through
    }

    public func removeFromOutbox(through position: Int64) async throws {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("UPDATE twin_outbox_delivered SET through = GREATEST(through, \(position)) WHERE id = 1", logger: logger)
            try await connection.query("DELETE FROM twin_outbox WHERE last_position <= \(position)", logger: logger)
        }
        recentEvents.remove(through: position)
    }

    /// PostgreSQL checkpoints by itself.
    public func checkpoint() async throws {}

    @discardableResult
    public func forgetKeys(recordedBefore time: String) async throws -> KeyPurge {
        var purge = KeyPurge()
        while true {
            let started = ContinuousClock.now
            var deleted = 0
            for try await count in try await client.query(
                """
                WITH deleted AS (
                    DELETE FROM twin_idempotency_keys WHERE key IN (
                        SELECT key FROM twin_idempotency_keys WHERE recorded < \(time) ORDER BY recorded LIMIT \(Self.keyPurgeChunk))
                    RETURNING 1)
                SELECT count(*) FROM deleted
                """, logger: logger
            ).decode(Int.self) {
                deleted = count
            }
            purge.forgotten += deleted
            purge.steps += 1
            purge.longestStep = max(purge.longestStep, ContinuousClock.now - started)
            if deleted < Self.keyPurgeChunk { return purge }
        }
    }

    static let keyPurgeChunk = 2000

    /// A write through the writer's connection, as commands and REST writes take.
    public func probeWrite() async throws {
        _ = try await writer.perform { db in
            try db.query("INSERT INTO twin_probe (id, time) VALUES (1, \(Timestamp.now())) ON CONFLICT (id) DO UPDATE SET time = excluded.time")
        }
    }

    // MARK: Models and event routes

    public func catalogVersion() async throws -> Int64? {
        for try await version in try await client.query("SELECT version FROM twin_catalog WHERE id = 1", logger: logger).decode(Int64.self) {
            return version
        }
        return 0
    }

    /// Runs `change` in a transaction that also moves the catalog's version on.
    @discardableResult
    private func changeCatalog<Result: Sendable>(_ change: (PostgresConnection) async throws -> Result) async throws -> Result {
        try await client.withTransaction(logger: logger) { connection in
            let result = try await change(connection)
            try await connection.query("UPDATE twin_catalog SET version = version + 1 WHERE id = 1", logger: logger)
            return result
        }
    }

    public func eventRoutes() async throws -> [EventRoute] {
        var routes: [EventRoute] = []
        for try await (id, endpoint, filter) in try await client.query(
            "SELECT id, endpoint_name, filter FROM twin_event_routes ORDER BY id", logger: logger
        ).decode((String, String, String).self) {
            routes.append(EventRoute(id: id, endpointName: endpoint, filter: filter))
        }
        return routes
    }

    public func putEventRoute(_ route: EventRoute) async throws {
        try await changeCatalog { connection in
            try await connection.query(
                """
                INSERT INTO twin_event_routes (id, endpoint_name, filter) VALUES (\(route.id), \(route.endpointName), \(route.filter))
                ON CONFLICT (id) DO UPDATE SET endpoint_name = excluded.endpoint_name, filter = excluded.filter
                """, logger: logger)
        }
    }

    public func deleteEventRoute(_ id: String) async throws -> Bool {
        try await changeCatalog { connection in
            var deleted = false
            for try await _ in try await connection.query("DELETE FROM twin_event_routes WHERE id = \(id) RETURNING id", logger: logger) {
                deleted = true
            }
            return deleted
        }
    }

    // MARK: Models

    public func models() async throws -> [StoredModel] {
        var models: [StoredModel] = []
        for try await (id, definition, uploadTime, decommissioned) in try await client.query(
            "SELECT id, definition, upload_time, decommissioned FROM twin_models ORDER BY upload_order", logger: logger
        ).decode((String, String, String, Bool).self) {
            models.append(
                StoredModel(id: id, definition: try JSONValue.parse(definition), uploadTime: uploadTime, decommissioned: decommissioned))
        }
        return models
    }

    public func addModels(_ models: [StoredModel]) async throws {
        try await changeCatalog { connection in
            for model in models {
                try await connection.query(
                    """
                    INSERT INTO twin_models (id, definition, upload_time, decommissioned)
                    VALUES (\(model.id), \(model.definition.jsonString()), \(model.uploadTime), \(model.decommissioned))
                    """, logger: logger)
            }
        }
    }

    public func setDecommissioned(model id: String, _ decommissioned: Bool) async throws {
        try await changeCatalog { connection in
            try await connection.query("UPDATE twin_models SET decommissioned = \(decommissioned) WHERE id = \(id)", logger: logger)
        }
    }

    public func deleteModel(_ id: String) async throws {
        try await changeCatalog { connection in try await connection.query("DELETE FROM twin_models WHERE id = \(id)", logger: logger) }
    }
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
