import Foundation
import GRDB
import TwinflowCodec
import TwinflowSQLite

/// The embedded store: one SQLite file in WAL mode through GRDB. Writes are serialized by GRDB's
/// writer and run off the cooperative pool; reads run concurrently on its reader pool.
public final class SQLiteTwinStore: TwinStore {
    private let pool: DatabasePool
    /// Twins as the writer last parsed or wrote them, so a write need not parse the document again.
    private let parsedTwins: ParsedTwinCache
    private let recentEvents: OutboxBuffer
    private let checkpointer: WALCheckpointer

    /// Opens (creating if needed) the store at `path`; a new store starts with `initialRoutes`.
    /// `synchronous`: SQLite's setting. `NORMAL` (the default) keeps every commit through a crash of
    /// the process; `FULL` also through a crash of the machine (a power loss), at an fsync per commit.
    /// `parsedTwinCacheBytes` bounds the memory of the parsed twins kept for writes; `busyTimeout` is
    /// how long a write waits for another connection's lock before it fails (503 to a REST client).
    public init(
        path: String, initialRoutes: [EventRoute] = EventRoute.defaults, synchronous: String = "NORMAL",
        parsedTwinCacheBytes: Int = ParsedTwinCache.defaultCapacityBytes, busyTimeout: Duration = .seconds(10)
    ) throws {
        parsedTwins = ParsedTwinCache(capacityBytes: parsedTwinCacheBytes)
        guard ["NORMAL", "FULL", "EXTRA"].contains(synchronous) else {
            throw DatabaseError(message: "synchronous must be NORMAL, FULL or EXTRA, not \(synchronous)")
        }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var configuration = Configuration()
        // A store another process has just closed may still be locked for a moment.
        configuration.busyMode = .timeout(Double(busyTimeout.components.seconds) + Double(busyTimeout.components.attoseconds) / 1e18)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
            try db.execute(sql: "PRAGMA cache_size = -65536")
            // Deleted content is zeroed where its page is written anyway, not by writing pages only
            // for that (Debian builds SQLite with secure_delete on: every delivered outbox row cost a write).
            try db.execute(sql: "PRAGMA secure_delete = FAST")
            try db.execute(sql: "PRAGMA mmap_size = 268435456")
            // Checkpoints run on a connection of their own (see `checkpoint()`); this is a backstop.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 100000")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
        checkpointer = try WALCheckpointer(path: path, synchronous: synchronous)
        try pool.write { db in
            switch try Int.fetchOne(db, sql: "PRAGMA user_version") {
            case 0:
                try db.execute(sql: Self.schema)
                for route in initialRoutes {
                    try db.execute(
                        sql: "INSERT INTO event_routes (id, endpoint_name, filter) VALUES (?, ?, ?)",
                        arguments: [route.id, route.endpointName, route.filter]
                    )
                }
            case 1:
                try db.execute(sql: "ALTER TABLE twins ADD COLUMN revision INTEGER NOT NULL DEFAULT 0")
                try Self.packOutbox(db)
            case 2:
                try Self.packOutbox(db)
            default:
                break
            }
            try db.execute(sql: "PRAGMA user_version = \(Self.schemaVersion)")
        }
        recentEvents = OutboxBuffer(completeAfter: try pool.read(SQLiteTransaction.lastOutboxPosition))
    }

    static let schemaVersion = 3

    /// Schema 3 keeps a transaction's outbox entries in one row: the entries of the first schemas'
    /// row-per-event table move into such rows (at most ``migratedRowSize`` entries each, a new row
    /// at any gap in positions), positions kept.
    private static func packOutbox(_ db: Database) throws {
        try db.execute(sql: outboxSchema)
        let insert = try BatchStatement(db, SQLiteTransaction.insertOutboxRow)
        var chunk: [OutboxEntry] = []
        let rows = try Row.fetchCursor(db, sql: "SELECT position, twin_id, attributes, data FROM outbox ORDER BY position")
        while let row = try rows.next() {
            let position: Int64 = row["position"]
            if let last = chunk.last, last.position + 1 != position || chunk.count == migratedRowSize {
                try SQLiteTransaction.store(chunk, as: insert)
                chunk.removeAll()
            }
            let event = try OutboxPacking.storedEvent(
                twinID: row["twin_id"], attributes: (row["attributes"] as String).utf8, data: Array(row["data"] as Data)
            )
            chunk.append(OutboxEntry(position: position, event: event))
        }
        try SQLiteTransaction.store(chunk, as: insert)
        // Positions go on from the last one ever given out, not from the last one still undelivered.
        if let last = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"),
            last > (try SQLiteTransaction.lastOutboxPosition(db))
        {
            try db.execute(sql: "DELETE FROM sqlite_sequence WHERE name = 'outbox_batches'")
            try db.execute(sql: "INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox_batches', ?)", arguments: [last])
        }
        try db.execute(sql: "DROP TABLE outbox")
    }

    /// The most entries a migrated outbox row takes (a transaction's row takes its batch's).
    static let migratedRowSize = 10_000

    /// One row per write transaction that emitted events: its entries, packed (see ``OutboxPacking``),
    /// at consecutive positions from `first_position` to `last_position`. AUTOINCREMENT keeps the last
    /// position ever given out when every row has been delivered and deleted. `outbox_delivered`
    /// holds the position delivered through, so a row delivered in part is not sent again from its
    /// start after a restart.
    static let outboxSchema = """
        CREATE TABLE outbox_batches (
            last_position INTEGER PRIMARY KEY AUTOINCREMENT, first_position INTEGER NOT NULL, events BLOB NOT NULL);
        CREATE TABLE outbox_delivered (id INTEGER PRIMARY KEY CHECK (id = 1), through INTEGER NOT NULL);
        """

    /// Portable SQL: the same tables serve PostgreSQL. A deleted twin or relationship keeps its row
    /// (document NULL) so its version and its twin's event sequence keep counting.
    static let schema = """
        CREATE TABLE models (
            id TEXT PRIMARY KEY, definition TEXT NOT NULL, upload_time TEXT NOT NULL,
            decommissioned INTEGER NOT NULL DEFAULT 0, upload_order INTEGER NOT NULL);
        CREATE TABLE twins (
            id TEXT PRIMARY KEY, model TEXT, version INTEGER NOT NULL, revision INTEGER NOT NULL DEFAULT 0,
            sequence INTEGER NOT NULL DEFAULT 0, document TEXT);
        CREATE TABLE relationships (
            source_id TEXT NOT NULL, id TEXT NOT NULL, name TEXT, target_id TEXT,
            version INTEGER NOT NULL, document TEXT, PRIMARY KEY (source_id, id));
        CREATE INDEX relationships_by_target ON relationships (target_id, source_id, id, name)
            WHERE document IS NOT NULL;
        \(outboxSchema)
        CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, recorded TEXT NOT NULL);
        CREATE TABLE event_routes (id TEXT PRIMARY KEY, endpoint_name TEXT NOT NULL, filter TEXT NOT NULL);
        """

    public func twin(_ id: String) async throws -> StoredTwin? {
        try await pool.read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT id, model, version, document FROM twins WHERE id = ? AND document IS NOT NULL"), arguments: [id]
            ).map(Self.twin(from:))
        }
    }

    public func twins(after id: String?, limit: Int) async throws -> [StoredTwin] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT id, model, version, document FROM twins WHERE id > ? AND document IS NOT NULL ORDER BY id LIMIT ?",
                arguments: [id ?? "", limit]
            ).map(Self.twin(from:))
        }
    }

    public func knownTwin(_ id: String) -> KnownTwin? {
        parsedTwins.latest(id)
    }

    /// A read in the writer costs about as much as one here: nothing to gain.
    public func learnTwins(_ ids: [String]) async throws {}

    public func remember(_ twin: KnownTwin) {
        parsedTwins.remember(twin.twin, revision: twin.revision, lastSequence: twin.lastSequence)
    }

    public func relationship(sourceID: String, id: String) async throws -> StoredRelationship? {
        try await pool.read { db in
            try Row.fetchOne(
                db,
                sql: "SELECT * FROM relationships WHERE source_id = ? AND id = ? AND document IS NOT NULL",
                arguments: [sourceID, id]
            ).map(Self.relationship(from:))
        }
    }

    public func relationships(sourceID: String, name: String?) async throws -> [StoredRelationship] {
        try await pool.read { db in try Self.relationships(db, sourceID: sourceID, name: name) }
    }

    static func relationships(_ db: Database, sourceID: String, name: String?) throws -> [StoredRelationship] {
        if let name {
            return try Row.fetchAll(
                db.cachedStatement(sql: "SELECT * FROM relationships WHERE source_id = ? AND name = ? AND document IS NOT NULL ORDER BY id"),
                arguments: [sourceID, name]
            ).map(Self.relationship(from:))
        }
        return try Row.fetchAll(
            db.cachedStatement(sql: "SELECT * FROM relationships WHERE source_id = ? AND document IS NOT NULL ORDER BY id"),
            arguments: [sourceID]
        ).map(Self.relationship(from:))
    }

    public func incomingLinks(targetID: String) async throws -> [IncomingLink]? {
        try await pool.read { db in
            guard try Self.twinExists(db, targetID) else { return nil }
            return try Row.fetchAll(
                db.cachedStatement(
                    sql: "SELECT source_id, id, name FROM relationships WHERE target_id = ? AND document IS NOT NULL ORDER BY source_id, id"
                ),
                arguments: [targetID]
            ).map { IncomingLink(sourceID: $0["source_id"], id: $0["id"], name: $0["name"]) }
        }
    }

    /// A batch runs first without a savepoint per write (two statements per write saved); when a write
    /// throws, that transaction is rolled back and the batch runs again with one, so the failed write
    /// leaves nothing behind and the others commit. A batch with a failed write (a refused command, a
    /// REST write refused in a group commit) so costs about twice as much as one without.
    public func write(_ writes: [StoreWrite]) async throws -> [Result<any Sendable, any Error>] {
        try await pool.writeWithoutTransaction { [parsedTwins, recentEvents] db in
            if let results = try Self.write(writes, db, parsedTwins: parsedTwins, recentEvents: recentEvents, savepointEach: false) {
                return results
            }
            guard let results = try Self.write(writes, db, parsedTwins: parsedTwins, recentEvents: recentEvents, savepointEach: true) else {
                preconditionFailure("a batch with a savepoint per write keeps going past failed writes")
            }
            return results
        }
    }

    /// Whether SQLite refused what one write asked for (a value too large, a constraint), rather than
    /// failing as a store: the write alone is refused, the batch goes on.
    static func isRefusalOfTheWrite(_ error: DatabaseError) -> Bool {
        [.SQLITE_TOOBIG, .SQLITE_CONSTRAINT, .SQLITE_MISMATCH, .SQLITE_RANGE].contains(error.resultCode.primaryResultCode)
    }

    /// One transaction of the batch; nil (and rolled back) when a write failed without `savepointEach`.
    private static func write(
        _ writes: [StoreWrite], _ db: Database, parsedTwins: ParsedTwinCache, recentEvents: OutboxBuffer, savepointEach: Bool
    ) throws -> [Result<any Sendable, any Error>]? {
        var results: [Result<any Sendable, any Error>] = []
        results.reserveCapacity(writes.count)
        var rolledBack = false
        try db.inTransaction(.immediate) {
            let collector = OutboxCollector()
            let transaction = try SQLiteTransaction(db: db, now: Timestamp.now(), parsedTwins: parsedTwins, collector: collector)
            let savepoint = try BatchStatement(db, "SAVEPOINT store_write")
            let release = try BatchStatement(db, "RELEASE SAVEPOINT store_write")
            let rollback = try BatchStatement(db, "ROLLBACK TO SAVEPOINT store_write")
            for write in writes {
                if savepointEach { try savepoint.step() }
                let collected = collector.entries.count
                do {
                    results.append(.success(try write(transaction)))
                } catch let error as DatabaseError where !db.isInsideTransaction || StoreFailure.matches(error) {
                    // SQLite rolled the whole transaction back, or the store failed (disk full, I/O error …):
                    // nothing of the batch stays, and the batch is tried again, not refused write by write.
                    throw error
                } catch {
                    guard savepointEach else {
                        rolledBack = true
                        return .rollback
                    }
                    try rollback.step()
                    collector.entries.removeSubrange(collected...)
                    if let error = error as? DatabaseError, Self.isRefusalOfTheWrite(error) {
                        let reason = error.message ?? "\(error.resultCode)"
                        results.append(.failure(ServiceError.invalidArgument("The store cannot hold a value of this request: \(reason).")))
                    } else {
                        results.append(.failure(error))
                    }
                }
                if savepointEach { try release.step() }
            }
            try transaction.storeOutbox()
            let committed = collector.entries
            if !committed.isEmpty {
                db.afterNextTransaction(onCommit: { _ in recentEvents.append(committed) })
            }
            return .commit
        }
        return rolledBack ? nil : results
    }

    /// Caps the database at `pages` pages (`nil`: SQLite's own cap), so that writes needing more
    /// fail as on a full disk: for tests.
    func capPages(at pages: Int?) async throws {
        try await pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA max_page_count = \(pages ?? 4_294_967_294)")
        }
    }

    /// The database's size in pages.
    func pageCount() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0 }
    }

    public func outbox(after position: Int64, limit: Int) async throws -> [OutboxEntry] {
        if let recent = recentEvents.entries(after: position, limit: limit) { return recent }
        return try await pool.read { db in
            // What was delivered is not handed out again, even to a relay that starts from the beginning.
            let after = max(position, try Int64.fetchOne(db, sql: "SELECT through FROM outbox_delivered") ?? 0)
            var entries: [OutboxEntry] = []
            let rows = try Row.fetchCursor(
                db, sql: "SELECT first_position, events FROM outbox_batches WHERE last_position > ? ORDER BY last_position", arguments: [after]
            )
            while entries.count < limit, let row = try rows.next() {
                let packed = try OutboxPacking.unpack(Array(row["events"] as Data), firstPosition: row["first_position"])
                entries += packed.drop { $0.position <= after }.prefix(limit - entries.count)
            }
            return entries
        }
    }

    public func outboxDeliveredThrough() async throws -> Int64 {
        let delivered = try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT through FROM outbox_delivered") ?? 0 }
        recentEvents.remove(through: delivered)
        return delivered
    }

    /// Notes the position delivered through and deletes the rows whose entries were all delivered;
    /// a row delivered in part stays until the rest of it is.
    public func removeFromOutbox(through position: Int64) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO outbox_delivered (id, through) VALUES (1, ?)
                    ON CONFLICT (id) DO UPDATE SET through = max(through, excluded.through)
                    """,
                arguments: [position]
            )
            try db.execute(sql: "DELETE FROM outbox_batches WHERE last_position <= ?", arguments: [position])
        }
        recentEvents.remove(through: position)
    }

    /// Rewrites the schema version in the database header (page 1) through the writer.
    public func probeWrite() async throws {
        try await pool.write { db in try db.execute(sql: "PRAGMA user_version = \(Self.schemaVersion)") }
    }

    /// Only this process writes the file: its relay always has the turn.
    public func relayTurn(committedElsewhere: @escaping @Sendable () -> Void) async throws -> any RelayTurn { SoleRelayTurn() }

    public func catalogVersion() async throws -> Int64? { nil }

    /// A passive checkpoint beside the writer (see ``WALCheckpointer``).
    public func checkpoint() async throws { try await checkpointer.checkpoint() }

    /// Keys are appended in time order, so their rowids grow with `recorded`: a binary search over
    /// rowids finds the last key to forget, with no index on `recorded` to keep up on every write.
    /// They are deleted in chunks of ``keyPurgeChunk``, each its own short write, so commands and
    /// REST writes get the writer between chunks and none waits on one long DELETE.
    @discardableResult
    public func forgetKeys(recordedBefore time: String) async throws -> KeyPurge {
        var purge = KeyPurge()
        guard let cutoff = try await pool.read({ db in try Self.lastKey(recordedBefore: time, db) }) else { return purge }
        while true {
            // Timed in the writer, commit included: how long other writes wait behind this step.
            let (deleted, done, took) = try await pool.writeWithoutTransaction { db -> (Int, Bool, Duration) in
                let started = ContinuousClock.now
                var deleted = 0
                var done = true
                try db.inTransaction {
                    guard let first = try Int64.fetchOne(db, sql: "SELECT MIN(rowid) FROM idempotency_keys"), first <= cutoff else { return .commit }
                    try db.execute(sql: "DELETE FROM idempotency_keys WHERE rowid <= ?", arguments: [min(cutoff, first + Self.keyPurgeChunk - 1)])
                    deleted = db.changesCount
                    done = first + Self.keyPurgeChunk > cutoff
                    return .commit
                }
                return (deleted, done, ContinuousClock.now - started)
            }
            purge.forgotten += deleted
            purge.steps += 1
            purge.longestStep = max(purge.longestStep, took)
            if done { return purge }
            await Task.yield()
        }
    }

    /// How many idempotency keys one purge step deletes at most.
    static let keyPurgeChunk: Int64 = 2000

    private static func lastKey(recordedBefore time: String, _ db: Database) throws -> Int64? {
        guard let first = try Int64.fetchOne(db, sql: "SELECT MIN(rowid) FROM idempotency_keys"),
            let last = try Int64.fetchOne(db, sql: "SELECT MAX(rowid) FROM idempotency_keys")
        else { return nil }
        var low = first
        var high = last
        var cutoff: Int64?
        while low <= high {
            let middle = low + (high - low) / 2
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT rowid, recorded FROM idempotency_keys WHERE rowid >= ? ORDER BY rowid LIMIT 1", arguments: [middle]
                )
            else { break }
            let rowid: Int64 = row[0]
            if (row[1] as String) < time {
                cutoff = rowid
                low = rowid + 1
            } else {
                high = middle - 1
            }
        }
        return cutoff
    }

    public func eventRoutes() async throws -> [EventRoute] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, endpoint_name, filter FROM event_routes ORDER BY id").map {
                EventRoute(id: $0["id"], endpointName: $0["endpoint_name"], filter: $0["filter"])
            }
        }
    }

    public func putEventRoute(_ route: EventRoute) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO event_routes (id, endpoint_name, filter) VALUES (?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET endpoint_name = excluded.endpoint_name, filter = excluded.filter
                    """,
                arguments: [route.id, route.endpointName, route.filter]
            )
        }
    }

    public func deleteEventRoute(_ id: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM event_routes WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }

    public func models() async throws -> [StoredModel] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM models ORDER BY upload_order").map { row in
                StoredModel(
                    id: row["id"],
                    definition: try JSONValue.parse(row["definition"] as String),
                    uploadTime: row["upload_time"],
                    decommissioned: row["decommissioned"]
                )
            }
        }
    }

    /// This process is the store's only writer and checks its model changes one at a time, so the
    /// model changes here do not check `expected` (the catalog has no version).
    public func addModels(_ models: [StoredModel], ifCatalogAt expected: Int64?) async throws -> Int64? {
        try await pool.write { db in
            var order = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(upload_order), 0) FROM models") ?? 0
            for model in models {
                order += 1
                try db.execute(
                    sql: "INSERT INTO models (id, definition, upload_time, decommissioned, upload_order) VALUES (?, ?, ?, ?, ?)",
                    arguments: [model.id, model.definition.jsonString(), model.uploadTime, model.decommissioned, order]
                )
            }
        }
        return nil
    }

    public func setDecommissioned(model id: String, _ decommissioned: Bool, ifCatalogAt expected: Int64?) async throws -> Int64? {
        try await pool.write { db in
            try db.execute(sql: "UPDATE models SET decommissioned = ? WHERE id = ?", arguments: [decommissioned, id])
        }
        return nil
    }

    public func deleteModel(_ id: String, ifCatalogAt expected: Int64?) async throws -> Int64? {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM models WHERE id = ?", arguments: [id])
        }
        return nil
    }

    private static func twinExists(_ db: Database, _ id: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM twins WHERE id = ? AND document IS NOT NULL"), arguments: [id]) != nil
    }

    /// A twin from the columns `id, model, version, document`, in that order.
    static func twin(from row: Row) throws -> StoredTwin {
        StoredTwin(id: row[0], model: row[1], version: row[2], document: try JSONValue.parse(row[3] as String))
    }

    static func relationship(from row: Row) throws -> StoredRelationship {
        StoredRelationship(
            sourceID: row["source_id"],
            id: row["id"],
            name: row["name"],
            targetID: row["target_id"],
            version: row["version"],
            document: try JSONValue.parse(row["document"] as String)
        )
    }
}
