import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization
import TwinflowCodec
import TwinflowPostgres

/// The scaled store: PostgreSQL through postgres-nio, shared by every tsi-store instance, each of
/// which answers queries over all of it. The tables are those of ``SQLiteTimeSeriesStore`` with a
/// `tsi_` prefix, text compared bytewise (`COLLATE "C"`) as SQLite does. A batch takes a few statements whatever its size: series IDs, then per share of
/// its series one transaction of the events (`unnest` arrays, repeats dropped by the primary key,
/// the stored ones returned), the minute and hour rollups and the variables, each upserted in key
/// order so that two transactions never wait on each other in a cycle.
public final class PostgresTimeSeriesStore: TimeSeriesStore {
    private let client: PostgresClient
    private let retention: RetentionPolicy
    /// Transactions that write one batch at once, each for a share of its series.
    private let writers: Int
    private let logger: Logger
    /// The schema migration, run once by the first call that needs the database (again after a failure).
    private let schema = Mutex<Task<Void, any Error>?>(nil)
    /// Series IDs by name, and variable types already merged in the database, both only after the
    /// transaction that wrote them committed. Series IDs never change; a type only widens.
    private let seriesIDs = Mutex([String: Int64]())
    private let knownVariables = Mutex(Set<VariableTypeKey>())

    struct VariableTypeKey: Hashable {
        var series: Int64
        var name: String
        var type: String
    }

    static let migrations = SchemaMigrations(
        component: "tsi-store",
        steps: [
            """
            CREATE TABLE tsi_series (id BIGSERIAL PRIMARY KEY, name TEXT COLLATE "C" NOT NULL UNIQUE);
            CREATE TABLE tsi_variables (
                series BIGINT NOT NULL, name TEXT COLLATE "C" NOT NULL, type TEXT NOT NULL, PRIMARY KEY (series, name));
            CREATE TABLE tsi_events (
                series BIGINT NOT NULL, time BIGINT NOT NULL, event_id TEXT COLLATE "C" NOT NULL, body BYTEA NOT NULL,
                PRIMARY KEY (series, time, event_id));
            CREATE TABLE tsi_rollups (
                series BIGINT NOT NULL, variable TEXT COLLATE "C" NOT NULL, start BIGINT NOT NULL, count BIGINT NOT NULL, sum DOUBLE PRECISION NOT NULL,
                min DOUBLE PRECISION NOT NULL, max DOUBLE PRECISION NOT NULL, first_time BIGINT NOT NULL, first DOUBLE PRECISION NOT NULL,
                last_time BIGINT NOT NULL, last DOUBLE PRECISION NOT NULL, PRIMARY KEY (series, variable, start));
            CREATE TABLE tsi_hourly_rollups (LIKE tsi_rollups INCLUDING ALL);
            CREATE TABLE tsi_probe (id INTEGER PRIMARY KEY CHECK (id = 1), time BIGINT NOT NULL)
            """
        ])

    /// A store on `client`, which must be running (it is one of tsi-store's services). The schema
    /// is created or migrated by the first call.
    public init(client: PostgresClient, retention: RetentionPolicy = .default, writers: Int = 2, logger: Logger) {
        self.client = client
        self.writers = max(1, writers)
        self.retention = retention
        self.logger = logger
    }

    private func schemaReady() async throws {
        let task = schema.withLock { current in
            if let current { return current }
            let migration = Task<Void, any Error> { [client, logger] in try await Self.migrations.apply(on: client, logger: logger) }
            current = migration
            return migration
        }
        do {
            try await task.value
        } catch {
            schema.withLock { current in if current == task { current = nil } }
            throw error
        }
    }

    /// The batch's series get their IDs first (a statement of their own); then its events are
    /// written by ``writers`` transactions at once, each for the series of its own share. When one
    /// fails after another committed, the batch is run again and the committed share's events are
    /// repeats, dropped: the batch's effect is the same.
    public func ingest(_ events: [StoredEvent], now: Int64) async throws -> IngestReport {
        guard !events.isEmpty else { return IngestReport() }
        try await schemaReady()
        let eventCutoff = now - retention.events
        let live = events.filter { $0.time >= eventCutoff }
        var report = IngestReport(expired: events.count - live.count)
        guard !live.isEmpty else { return report }
        let ids = try await seriesIDs(Set(live.map(\.series)))
        var shares = [[(event: StoredEvent, series: Int64)]](repeating: [], count: writers)
        for event in live {
            guard let id = ids[event.series] else { throw PostgresStoreError("no ID for series \(event.series)") }
            shares[Int(id % Int64(writers))].append((event, id))
        }
        let rollupCutoff = minuteStart(now - retention.rollups)
        let written = try await withThrowingTaskGroup(of: (Int, Set<VariableTypeKey>).self) { group in
            for share in shares where !share.isEmpty {
                group.addTask { try await self.write(share, rollupCutoff: rollupCutoff) }
            }
            var total = (stored: 0, variables: Set<VariableTypeKey>())
            for try await (stored, variables) in group {
                total.stored += stored
                total.variables.formUnion(variables)
            }
            return total
        }
        if !written.variables.isEmpty { knownVariables.withLock { $0.formUnion(written.variables) } }
        report.stored = written.stored
        report.duplicates = live.count - written.stored
        return report
    }

    /// The IDs of `names`, new series created (in name order, so that two instances never wait on
    /// each other in a cycle).
    private func seriesIDs(_ names: Set<String>) async throws -> [String: Int64] {
        var ids = seriesIDs.withLock { known in
            Dictionary(uniqueKeysWithValues: names.compactMap { name in known[name].map { (name, $0) } })
        }
        let missing = names.filter { ids[$0] == nil }.sorted()
        guard !missing.isEmpty else { return ids }
        let rows = try await client.query(
            """
            INSERT INTO tsi_series (name) SELECT unnest(\(missing)::text[]) ORDER BY 1
            ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id, name
            """, logger: logger)
        var created: [String: Int64] = [:]
        for try await (id, name) in rows.decode((Int64, String).self) { created[name] = id }
        seriesIDs.withLock { $0.merge(created) { old, _ in old } }
        ids.merge(created) { old, _ in old }
        return ids
    }

    /// One transaction: the events (repeats dropped by the primary key, the stored ones returned),
    /// then what the stored ones add to the minute and hour rollups and to the variables. Returns
    /// how many were stored, and the variable types written.
    private func write(_ events: [(event: StoredEvent, series: Int64)], rollupCutoff: Int64) async throws -> (Int, Set<VariableTypeKey>) {
        try await client.withTransaction(logger: logger) { connection in
            let inserted = try await connection.query(
                """
                INSERT INTO tsi_events (series, time, event_id, body)
                SELECT * FROM unnest(\(events.map(\.series))::bigint[], \(events.map(\.event.time))::bigint[],
                    \(events.map(\.event.id))::text[], \(events.map { ByteBuffer(bytes: $0.event.body) })::bytea[])
                ON CONFLICT DO NOTHING RETURNING series, time, event_id
                """, logger: logger)
            var storedKeys = Set<EventKey>()
            for try await (series, time, id) in inserted.decode((Int64, Int64, String).self) {
                storedKeys.insert(EventKey(series: series, time: time, id: id))
            }
            var rollups = RollupBatch(rollupCutoff: rollupCutoff)
            var stored = 0
            for (event, series) in events {
                // A repeat within the batch was stored once: only its first occurrence counts.
                guard storedKeys.remove(EventKey(series: series, time: event.time, id: event.id)) != nil else { continue }
                stored += 1
                rollups.add(event, series: series)
            }
            try await Self.upsert(rollups.minutes, into: "tsi_rollups", connection, logger)
            try await Self.upsert(rollups.hours, into: "tsi_hourly_rollups", connection, logger)
            let known = self.knownVariables.withLock { known in
                rollups.types.filter { known.contains(VariableTypeKey(series: $0.key.series, name: $0.key.name, type: $0.value)) }
            }
            let variables = rollups.types.filter { known[$0.key] == nil }.sorted { ($0.key.series, $0.key.name) < ($1.key.series, $1.key.name) }
            if !variables.isEmpty {
                try await connection.query(
                    """
                    INSERT INTO tsi_variables (series, name, type)
                    SELECT * FROM unnest(\(variables.map(\.key.series))::bigint[], \(variables.map(\.key.name))::text[], \(variables.map(\.value))::text[])
                    ON CONFLICT (series, name) DO UPDATE SET type = CASE WHEN tsi_variables.type = excluded.type THEN tsi_variables.type
                        WHEN tsi_variables.type IN ('Long', 'Double') AND excluded.type IN ('Long', 'Double') THEN 'Double' ELSE 'Dynamic' END
                    """, logger: logger)
            }
            return (stored, Set(variables.map { VariableTypeKey(series: $0.key.series, name: $0.key.name, type: $0.value) }))
        }
    }

    struct EventKey: Hashable {
        var series: Int64
        var time: Int64
        var id: String
    }

    private static func upsert(_ cells: [RollupKey: RollupCell], into table: String, _ connection: PostgresConnection, _ logger: Logger) async throws
    {
        guard !cells.isEmpty else { return }
        let rows = cells.sorted { ($0.key.series, $0.key.variable, $0.key.minute) < ($1.key.series, $1.key.variable, $1.key.minute) }
        var query = PostgresQuery(unsafeSQL: "")
        query.sql = """
            INSERT INTO \(table) (series, variable, start, count, sum, min, max, first_time, first, last_time, last)
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::float8[], $6::float8[], $7::float8[],
                $8::bigint[], $9::float8[], $10::bigint[], $11::float8[])
            ON CONFLICT (series, variable, start) DO UPDATE SET
                count = \(table).count + excluded.count, sum = \(rollupSumSQL("\(table).sum", "excluded.sum")),
                min = LEAST(\(table).min, excluded.min), max = GREATEST(\(table).max, excluded.max),
                first = CASE WHEN excluded.first_time < \(table).first_time THEN excluded.first ELSE \(table).first END,
                first_time = LEAST(\(table).first_time, excluded.first_time),
                last = CASE WHEN excluded.last_time >= \(table).last_time THEN excluded.last ELSE \(table).last END,
                last_time = GREATEST(\(table).last_time, excluded.last_time)
            """
        query.binds.append(rows.map(\.key.series))
        query.binds.append(rows.map(\.key.variable))
        query.binds.append(rows.map(\.key.minute))
        query.binds.append(rows.map(\.value.count))
        query.binds.append(rows.map(\.value.sum))
        query.binds.append(rows.map(\.value.min))
        query.binds.append(rows.map(\.value.max))
        query.binds.append(rows.map(\.value.firstTime))
        query.binds.append(rows.map(\.value.first))
        query.binds.append(rows.map(\.value.lastTime))
        query.binds.append(rows.map(\.value.last))
        try await connection.query(query, logger: logger)
    }

    private func seriesID(_ name: String) async throws -> Int64? {
        if let known = seriesIDs.withLock({ $0[name] }) { return known }
        for try await id in try await client.query("SELECT id FROM tsi_series WHERE name = \(name)", logger: logger).decode(Int64.self) {
            return id
        }
        return nil
    }

    public func events(series: String, from: Int64, to: Int64, after cursor: EventCursor?, limit: Int) async throws -> [EventRow] {
        try await schemaReady()
        guard let id = try await seriesID(series) else { return [] }
        let start = cursor ?? EventCursor(time: from, id: "")
        let rows = try await client.query(
            """
            SELECT event_id, time, body FROM tsi_events WHERE series = \(id) AND time >= \(from) AND time < \(to)
            AND (time, event_id) > (\(start.time), \(start.id)) ORDER BY time, event_id LIMIT \(limit)
            """, logger: logger)
        var result: [EventRow] = []
        for try await (eventID, time, body) in rows.decode((String, Int64, ByteBuffer).self) {
            result.append(EventRow(cursor: EventCursor(time: time, id: eventID), body: Array(buffer: body)))
        }
        return result
    }

    public func aggregates(
        series: String, variables: [String], from: Int64, to: Int64, bucket: Int64, withEnds: Bool
    ) async throws
        -> [String: [BucketAggregate]]
    {
        try await schemaReady()
        guard let id = try await seriesID(series) else { return [:] }
        let table = bucket % 3_600_000 == 0 && from % 3_600_000 == 0 ? "tsi_hourly_rollups" : "tsi_rollups"
        var result: [String: [BucketAggregate]] = [:]
        for variable in Set(variables) {
            var query = PostgresQuery(unsafeSQL: "")
            query.sql = """
                SELECT start, count, sum, min, max, first, last FROM \(table)
                WHERE series = $1 AND variable = $2 AND start >= $3 AND start < $4 ORDER BY start
                """
            query.binds.append(id)
            query.binds.append(variable)
            query.binds.append(from)
            query.binds.append(to)
            var buckets: [BucketAggregate] = []
            let rows = try await client.query(query, logger: logger)
            for try await (start, count, sum, minimum, maximum, first, last) in rows.decode(
                (Int64, Int64, Double, Double, Double, Double, Double).self)
            {
                buckets.addRow(
                    index: Int((start - from) / bucket), count: count, sum: sum, min: minimum, max: maximum, first: first, last: last,
                    withEnds: withEnds)
            }
            result[variable] = buckets
        }
        return result
    }

    public func instances(after: String?, limit: Int) async throws -> [SeriesInstance] {
        try await schemaReady()
        let rows = try await client.query(
            """
            SELECT s.name, v.name, v.type FROM (SELECT id, name FROM tsi_series WHERE name > \(after ?? "") ORDER BY name LIMIT \(limit)) s
            LEFT JOIN tsi_variables v ON v.series = s.id ORDER BY s.name
            """, logger: logger)
        var instances: [SeriesInstance] = []
        for try await (name, variable, type) in rows.decode((String, String?, String?).self) {
            if instances.last?.id != name { instances.append(SeriesInstance(id: name, variables: [:])) }
            if let variable, let type { instances[instances.count - 1].variables[variable] = type }
        }
        return instances
    }

    /// Deletes in chunks of 10,000 rows, each its own statement, so ingest waits at most one chunk.
    public func applyRetention(now: Int64) async throws -> (events: Int, rollups: Int) {
        try await schemaReady()
        let eventCutoff = now - retention.events
        let rollupCutoff = minuteStart(now - retention.rollups)
        var series: [Int64] = []
        for try await id in try await client.query("SELECT id FROM tsi_series", logger: logger).decode(Int64.self) { series.append(id) }
        var deletedEvents = 0
        var deletedRollups = 0
        for id in series {
            deletedEvents += try await deleteChunks(
                "DELETE FROM tsi_events WHERE ctid IN (SELECT ctid FROM tsi_events WHERE series = $1 AND time < $2 LIMIT 10000) RETURNING 1", id,
                eventCutoff)
            for (table, cutoff) in [("tsi_rollups", rollupCutoff), ("tsi_hourly_rollups", hourStart(rollupCutoff))] {
                deletedRollups += try await deleteChunks(
                    "DELETE FROM \(table) WHERE ctid IN (SELECT ctid FROM \(table) WHERE series = $1 AND start < $2 LIMIT 10000) RETURNING 1", id,
                    cutoff)
            }
        }
        return (deletedEvents, deletedRollups)
    }

    /// Runs `delete` (a `DELETE … RETURNING 1` of at most 10,000 rows of a series before a cutoff)
    /// until it deletes fewer; the rows deleted.
    private func deleteChunks(_ delete: String, _ series: Int64, _ cutoff: Int64) async throws -> Int {
        var total = 0
        while true {
            var query = PostgresQuery(unsafeSQL: "WITH deleted AS (\(delete)) SELECT count(*) FROM deleted")
            query.binds.append(series)
            query.binds.append(cutoff)
            var deleted = 0
            for try await count in try await client.query(query, logger: logger).decode(Int.self) { deleted = count }
            total += deleted
            if deleted < 10_000 { return total }
        }
    }

    /// PostgreSQL checkpoints by itself.
    public func checkpoint() async throws {}

    public func probe() async throws {
        try await schemaReady()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await client.query(
            "INSERT INTO tsi_probe (id, time) VALUES (1, \(now)) ON CONFLICT (id) DO UPDATE SET time = excluded.time", logger: logger)
    }
}

/// A store's failure that is not the database's own error.
struct PostgresStoreError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
