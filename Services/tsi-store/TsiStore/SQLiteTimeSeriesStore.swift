import Foundation
import GRDB
import Synchronization
import TwinflowCodec
import TwinflowSQLite

/// The embedded store: one SQLite file in WAL mode through GRDB. A batch is one write transaction
/// (GRDB's writer, off the cooperative pool); queries run concurrently on its reader pool.
///
/// Raw events are rows of `events`, appended; one unique index by series, time and event ID serves
/// ranges and drops repeats (a repeat of a source event has its ID and its time); `rollups` (and `hourly_rollups`) hold per series, variable and minute (hour) the count,
/// sum, minimum, maximum, first and last (with their times), updated in the events' transaction.
public final class SQLiteTimeSeriesStore: TimeSeriesStore {
    private let pool: DatabasePool
    private let checkpointer: WALCheckpointer
    private let retention: RetentionPolicy
    /// Series IDs by name, and variables with a type already merged into `variables`; both only
    /// grow, and only after the transaction that wrote them committed.
    private let seriesIDs = Mutex([String: Int64]())
    private let knownVariables = Mutex(Set<VariableType>())

    struct VariableType: Hashable {
        var series: Int64
        var name: String
        var type: String
    }

    static let schemaVersion = 1

    /// Portable SQL (PostgreSQL takes it with BYTEA for BLOB): `rollups` per minute, and the same
    /// per hour in `hourly_rollups` (so a month of hourly buckets reads 720 rows, not 43,200),
    /// `start` in milliseconds; `variable` `''` counts the series' events.
    static let schema = """
        CREATE TABLE series (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE variables (series INTEGER NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, PRIMARY KEY (series, name)) WITHOUT ROWID;
        CREATE TABLE events (series INTEGER NOT NULL, time INTEGER NOT NULL, event_id TEXT NOT NULL, body BLOB NOT NULL);
        CREATE UNIQUE INDEX events_by_time ON events (series, time, event_id);
        CREATE TABLE rollups (
            series INTEGER NOT NULL, variable TEXT NOT NULL, start INTEGER NOT NULL, count INTEGER NOT NULL, sum REAL NOT NULL,
            min REAL NOT NULL, max REAL NOT NULL, first_time INTEGER NOT NULL, first REAL NOT NULL, last_time INTEGER NOT NULL,
            last REAL NOT NULL, PRIMARY KEY (series, variable, start)) WITHOUT ROWID;
        CREATE TABLE hourly_rollups (
            series INTEGER NOT NULL, variable TEXT NOT NULL, start INTEGER NOT NULL, count INTEGER NOT NULL, sum REAL NOT NULL,
            min REAL NOT NULL, max REAL NOT NULL, first_time INTEGER NOT NULL, first REAL NOT NULL, last_time INTEGER NOT NULL,
            last REAL NOT NULL, PRIMARY KEY (series, variable, start)) WITHOUT ROWID;
        CREATE TABLE probe (id INTEGER PRIMARY KEY CHECK (id = 1), time INTEGER NOT NULL);
        """

    /// Opens (creating if needed) the store at `path`. `synchronous`: SQLite's setting (`NORMAL`
    /// keeps every commit through a crash of the process, `FULL` also through a power loss).
    public init(path: String, retention: RetentionPolicy = .default, synchronous: String = "NORMAL") throws {
        guard ["NORMAL", "FULL", "EXTRA"].contains(synchronous) else {
            throw DatabaseError(message: "synchronous must be NORMAL, FULL or EXTRA, not \(synchronous)")
        }
        self.retention = retention
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var configuration = Configuration()
        // A store another process has just closed may still be locked for a moment.
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // Larger pages: a batch of a thousand twins' events dirties a leaf per twin, and each
            // goes to the write-ahead log whole. Only takes effect on a new file.
            try db.execute(sql: "PRAGMA page_size = 16384")
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
            try db.execute(sql: "PRAGMA cache_size = -65536")
            try db.execute(sql: "PRAGMA secure_delete = FAST")
            try db.execute(sql: "PRAGMA mmap_size = 268435456")
            // Checkpoints run beside the writer (see `checkpoint()`); this is a backstop.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 10000")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
        checkpointer = try WALCheckpointer(path: path, synchronous: synchronous)
        try pool.write { db in
            if try Int.fetchOne(db, sql: "PRAGMA user_version") == 0 {
                try db.execute(sql: Self.schema)
                try db.execute(sql: "PRAGMA user_version = \(Self.schemaVersion)")
            }
        }
    }

    public func ingest(_ events: [StoredEvent], now: Int64) async throws -> IngestReport {
        guard !events.isEmpty else { return IngestReport() }
        let eventCutoff = now - retention.events
        let rollupCutoff = minuteStart(now - retention.rollups)
        let (report, newSeries, newVariables) = try await pool.write { db in
            try self.write(events, eventCutoff: eventCutoff, rollupCutoff: rollupCutoff, db)
        }
        if !newSeries.isEmpty { seriesIDs.withLock { $0.merge(newSeries) { old, _ in old } } }
        if !newVariables.isEmpty { knownVariables.withLock { $0.formUnion(newVariables) } }
        return report
    }

    private func write(
        _ events: [StoredEvent], eventCutoff: Int64, rollupCutoff: Int64, _ db: Database
    ) throws -> (
        IngestReport, [String: Int64], Set<VariableType>
    ) {
        var report = IngestReport()
        var newSeries: [String: Int64] = [:]
        let insertSeries = try BatchStatement(db, "INSERT INTO series (name) VALUES (?) ON CONFLICT (name) DO UPDATE SET name = name RETURNING id")
        let insertEvent = try BatchStatement(db, "INSERT INTO events (series, time, event_id, body) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING")
        var rollups = RollupBatch(rollupCutoff: rollupCutoff)
        var lastSeries: (name: String, id: Int64)?
        for event in events {
            guard event.time >= eventCutoff else {
                report.expired += 1
                continue
            }
            let series: Int64
            if let lastSeries, lastSeries.name == event.series {
                series = lastSeries.id
            } else if let known = newSeries[event.series] ?? seriesIDs.withLock({ $0[event.series] }) {
                series = known
            } else {
                guard try insertSeries.step(.text(event.series)) else { throw DatabaseError(message: "no id for series \(event.series)") }
                series = insertSeries.integer(0)
                insertSeries.reset()
                newSeries[event.series] = series
            }
            lastSeries = (event.series, series)
            try insertEvent.step(.integer(series), .integer(event.time), .text(event.id), .blob(event.body))
            let inserted = insertEvent.changes > 0
            insertEvent.reset()
            guard inserted else {
                report.duplicates += 1
                continue
            }
            report.stored += 1
            rollups.add(event, series: series)
        }
        for (table, rows) in [("rollups", rollups.minutes), ("hourly_rollups", rollups.hours)] {
            let upsert = try BatchStatement(
                db,
                """
                INSERT INTO \(table) (series, variable, start, count, sum, min, max, first_time, first, last_time, last)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (series, variable, start) DO UPDATE SET
                    count = count + excluded.count, sum = \(rollupSumSQL("sum", "excluded.sum")), min = MIN(min, excluded.min), max = MAX(max, excluded.max),
                    first = CASE WHEN excluded.first_time < first_time THEN excluded.first ELSE first END,
                    first_time = MIN(first_time, excluded.first_time),
                    last = CASE WHEN excluded.last_time >= last_time THEN excluded.last ELSE last END,
                    last_time = MAX(last_time, excluded.last_time)
                """)
            for (key, cell) in rows {
                try upsert.step(
                    .integer(key.series), .text(key.variable), .integer(key.minute), .integer(cell.count), .double(cell.sum), .double(cell.min),
                    .double(cell.max), .integer(cell.firstTime), .double(cell.first), .integer(cell.lastTime), .double(cell.last))
            }
            upsert.reset()
        }
        var newVariables = Set<VariableType>()
        let known = knownVariables.withLock { known in
            rollups.types.filter { known.contains(VariableType(series: $0.key.series, name: $0.key.name, type: $0.value)) }
        }
        let upsertVariable = try BatchStatement(
            db,
            """
            INSERT INTO variables (series, name, type) VALUES (?, ?, ?) ON CONFLICT (series, name) DO UPDATE SET type =
                CASE WHEN type = excluded.type THEN type WHEN type IN ('Long', 'Double') AND excluded.type IN ('Long', 'Double') THEN 'Double'
                ELSE 'Dynamic' END
            """)
        for (key, type) in rollups.types where known[key] == nil {
            try upsertVariable.step(.integer(key.series), .text(key.name), .text(type))
            newVariables.insert(VariableType(series: key.series, name: key.name, type: type))
        }
        upsertVariable.reset()
        return (report, newSeries, newVariables)
    }

    private func seriesID(_ name: String, _ db: Database) throws -> Int64? {
        if let known = seriesIDs.withLock({ $0[name] }) { return known }
        return try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM series WHERE name = ?"), arguments: [name])
    }

    public func events(series: String, from: Int64, to: Int64, after cursor: EventCursor?, limit: Int) async throws -> [EventRow] {
        try await pool.read { db in
            guard let id = try self.seriesID(series, db) else { return [] }
            let start = cursor ?? EventCursor(time: from, id: "")
            let rows = try Row.fetchCursor(
                db.cachedStatement(
                    sql: """
                        SELECT event_id, time, body FROM events WHERE series = ? AND time >= ? AND time < ?
                        AND (time > ? OR (time = ? AND event_id > ?)) ORDER BY time, event_id LIMIT ?
                        """),
                arguments: [id, from, to, start.time, start.time, start.id, limit])
            var result: [EventRow] = []
            while let row = try rows.next() {
                let body: Data = row[2]
                result.append(EventRow(cursor: EventCursor(time: row[1], id: row[0]), body: Array(body)))
            }
            return result
        }
    }

    /// Reads the rollup rows of the span in order (no sorting: the primary key's order) and
    /// combines consecutive rows of a bucket here; a bucket's first value is its first row's, its
    /// last value its last row's, since rows do not overlap in time.
    public func aggregates(
        series: String, variables: [String], from: Int64, to: Int64, bucket: Int64, withEnds: Bool
    ) async throws
        -> [String: [BucketAggregate]]
    {
        try await pool.read { db in
            guard let id = try self.seriesID(series, db) else { return [:] }
            // Whole hours read the hourly rollups.
            let table = bucket % 3_600_000 == 0 && from % 3_600_000 == 0 ? "hourly_rollups" : "rollups"
            let statement = try BatchStatement(
                db,
                "SELECT start, count, sum, min, max, first, last FROM \(table) WHERE series = ? AND variable = ? AND start >= ? AND start < ? ORDER BY start"
            )
            var result: [String: [BucketAggregate]] = [:]
            for variable in Set(variables) {
                var buckets: [BucketAggregate] = []
                var hasRow = try statement.step(.integer(id), .text(variable), .integer(from), .integer(to))
                while hasRow {
                    buckets.addRow(
                        index: Int((statement.integer(0) - from) / bucket), count: statement.integer(1), sum: statement.double(2),
                        min: statement.double(3), max: statement.double(4), first: statement.double(5), last: statement.double(6),
                        withEnds: withEnds)
                    hasRow = try statement.next()
                }
                statement.reset()
                result[variable] = buckets
            }
            return result
        }
    }

    public func instances(after: String?, limit: Int) async throws -> [SeriesInstance] {
        try await pool.read { db in
            let series = try Row.fetchAll(
                db, sql: "SELECT id, name FROM series WHERE name > ? ORDER BY name LIMIT ?", arguments: [after ?? "", limit])
            return try series.map { row in
                let variables = try Row.fetchAll(db, sql: "SELECT name, type FROM variables WHERE series = ?", arguments: [row[0] as Int64])
                // Names SQLite tells apart by their bytes may be one name to Swift (the same text in
                // two Unicode forms): they are listed once.
                return SeriesInstance(id: row[1], variables: Dictionary(variables.map { ($0[0], $0[1]) }, uniquingKeysWith: { first, _ in first }))
            }
        }
    }

    /// Deletes in chunks of 10,000 rows, each its own transaction, so ingest waits at most one
    /// chunk; what holds nothing old is found by a read (an index probe) and not written to.
    public func applyRetention(now: Int64) async throws -> (events: Int, rollups: Int) {
        let eventCutoff = now - retention.events
        let rollupCutoff = minuteStart(now - retention.rollups)
        let series = try await pool.read { db in try Int64.fetchAll(db, sql: "SELECT id FROM series") }
        var deletedEvents = 0
        var deletedRollups = 0
        for id in series {
            deletedEvents += try await deleteChunks(
                probe: "SELECT 1 FROM events WHERE series = ? AND time < ? LIMIT 1", [id, eventCutoff],
                delete: "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE series = ? AND time < ? LIMIT 10000)")
            let variables = try await pool.read { db in
                [""] + (try String.fetchAll(db, sql: "SELECT name FROM variables WHERE series = ?", arguments: [id]))
            }
            for variable in variables {
                for (table, cutoff) in [("rollups", rollupCutoff), ("hourly_rollups", hourStart(rollupCutoff))] {
                    deletedRollups += try await deleteChunks(
                        probe: "SELECT 1 FROM \(table) WHERE series = ? AND variable = ? AND start < ? LIMIT 1", [id, variable, cutoff],
                        delete: """
                            DELETE FROM \(table) WHERE series = ?1 AND variable = ?2 AND start IN
                            (SELECT start FROM \(table) WHERE series = ?1 AND variable = ?2 AND start < ?3 LIMIT 10000)
                            """)
                }
            }
        }
        return (deletedEvents, deletedRollups)
    }

    /// Runs `delete` (which takes `arguments` and deletes at most 10,000 rows) until it deletes
    /// fewer, when `probe` finds a row; the rows deleted.
    private func deleteChunks(probe: String, _ arguments: StatementArguments, delete: String) async throws -> Int {
        guard try await pool.read({ db in try Bool.fetchOne(db, sql: probe, arguments: arguments) ?? false }) else { return 0 }
        var total = 0
        while true {
            let deleted = try await pool.write { db in
                try db.execute(sql: delete, arguments: arguments)
                return db.changesCount
            }
            total += deleted
            if deleted < 10_000 { return total }
        }
    }

    /// A passive checkpoint beside the writer (see ``WALCheckpointer``).
    public func checkpoint() async throws { try await checkpointer.checkpoint() }

    public func probe() async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO probe (id, time) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET time = excluded.time", arguments: [now])
        }
    }
}
