import Foundation
import GRDB
import TwinflowCodec
import TwinflowSQLite

/// A write transaction of ``SQLiteTwinStore``: valid only inside the database transaction that made it.
struct SQLiteTransaction: TwinStoreTransaction {
    let db: Database
    /// When the transaction began: the time idempotency keys are recorded with.
    let now: String
    let parsedTwins: ParsedTwinCache
    let collector: OutboxCollector
    private let selectTwinState: BatchStatement
    private let upsertTwin: BatchStatement
    private let updatePreparedTwin: BatchStatement
    private let insertOutbox: BatchStatement
    private let insertKey: BatchStatement
    /// The position of the transaction's first outbox entry, if it emits any.
    private let firstOutboxPosition: Int64

    init(db: Database, now: String, parsedTwins: ParsedTwinCache, collector: OutboxCollector) throws {
        self.db = db
        self.now = now
        self.parsedTwins = parsedTwins
        self.collector = collector
        firstOutboxPosition = try Self.lastOutboxPosition(db) + 1
        selectTwinState = try BatchStatement(db, "SELECT version, revision, sequence, document IS NOT NULL FROM twins WHERE id = ?")
        upsertTwin = try BatchStatement(
            db,
            """
            INSERT INTO twins (id, model, version, revision, sequence, document) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET model = excluded.model, version = excluded.version, revision = excluded.revision,
                sequence = excluded.sequence, document = excluded.document
            """
        )
        updatePreparedTwin = try BatchStatement(
            db,
            """
            UPDATE twins SET model = ?, version = ?, revision = ?, sequence = ?, document = ?
            WHERE id = ? AND version = ? AND revision = ? AND sequence = ? AND document IS NOT NULL
            """
        )
        insertOutbox = try BatchStatement(db, Self.insertOutboxRow)
        insertKey = try BatchStatement(db, "INSERT INTO idempotency_keys (key, recorded) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
    }

    func twin(_ id: String) throws -> (live: StoredTwin?, lastVersion: Int64, lastSequence: Int64) {
        guard let state = try twinState(id) else { return (nil, 0, 0) }
        guard state.live else { return (nil, state.version, state.lastSequence) }
        if let cached = parsedTwins.twin(id, version: state.version, revision: state.revision) {
            return (cached, state.version, state.lastSequence)
        }
        guard
            let full = try Row.fetchOne(db.cachedStatement(sql: "SELECT id, model, version, document FROM twins WHERE id = ?"), arguments: [id])
        else { return (nil, state.version, state.lastSequence) }
        let twin = try SQLiteTwinStore.twin(from: full)
        parsedTwins.remember(twin, revision: state.revision, lastSequence: state.lastSequence)
        return (twin, state.version, state.lastSequence)
    }

    func twinState(_ id: String) throws -> TwinRowState? {
        guard try selectTwinState.step(.text(id)) else { return nil }
        defer { selectTwinState.reset() }
        return TwinRowState(
            live: selectTwinState.integer(3) != 0, version: selectTwinState.integer(0), revision: selectTwinState.integer(1),
            lastSequence: selectTwinState.integer(2)
        )
    }

    func putTwin(_ twin: StoredTwin, revision: Int64, serialized document: [UInt8], notification: PendingEvent, sequence: Int64) throws {
        parsedTwins.remember(twin, revision: revision, lastSequence: sequence)
        try upsertTwin.step(.text(twin.id), .text(twin.model), .integer(twin.version), .integer(revision), .integer(sequence), .textBytes(document))
        try insert(notification.numbered(sequence))
    }

    func putTwin(
        _ twin: StoredTwin, revision: Int64, serialized document: [UInt8], notification: PendingEvent,
        ifStillAt base: (version: Int64, revision: Int64, lastSequence: Int64)
    ) throws -> Int64? {
        let sequence = base.lastSequence + 1
        try updatePreparedTwin.step(
            .text(twin.model), .integer(twin.version), .integer(revision), .integer(sequence), .textBytes(document), .text(twin.id),
            .integer(base.version), .integer(base.revision), .integer(base.lastSequence)
        )
        guard db.changesCount > 0 else { return nil }
        parsedTwins.remember(twin, revision: revision, lastSequence: sequence, unlessNewer: true)
        try insert(notification.numbered(sequence))
        return sequence
    }

    func deleteTwin(_ id: String) throws {
        try db.cachedStatement(sql: "UPDATE twins SET document = NULL, version = version + 1, revision = ? WHERE id = ?")
            .execute(arguments: [RandomID.int64(), id])
    }

    func relationship(sourceID: String, id: String) throws -> (live: StoredRelationship?, lastVersion: Int64) {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT * FROM relationships WHERE source_id = ? AND id = ?"), arguments: [sourceID, id]
            )
        else { return (nil, 0) }
        let live = row["document"] == nil ? nil : try SQLiteTwinStore.relationship(from: row)
        return (live, row["version"])
    }

    func relationships(sourceID: String, name: String?) throws -> [StoredRelationship] {
        try SQLiteTwinStore.relationships(db, sourceID: sourceID, name: name)
    }

    func incomingRelationships(targetID: String) throws -> [StoredRelationship] {
        try Row.fetchAll(
            db.cachedStatement(sql: "SELECT * FROM relationships WHERE target_id = ? AND document IS NOT NULL ORDER BY source_id, id"),
            arguments: [targetID]
        ).map(SQLiteTwinStore.relationship(from:))
    }

    func putRelationship(_ relationship: StoredRelationship) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO relationships (source_id, id, name, target_id, version, document) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (source_id, id) DO UPDATE SET name = excluded.name, target_id = excluded.target_id,
                    version = excluded.version, document = excluded.document
                """
        ).execute(arguments: [
            relationship.sourceID, relationship.id, relationship.name, relationship.targetID, relationship.version,
            relationship.document.jsonString(),
        ])
    }

    func deleteRelationship(sourceID: String, id: String) throws {
        try db.cachedStatement(sql: "UPDATE relationships SET document = NULL, version = version + 1 WHERE source_id = ? AND id = ?")
            .execute(arguments: [sourceID, id])
    }

    func emit(_ event: PendingEvent) throws -> Int64 {
        guard event.sequenced else {
            try insert(event)
            return 0
        }
        guard
            let sequence = try Int64.fetchOne(
                db.cachedStatement(sql: "UPDATE twins SET sequence = sequence + 1 WHERE id = ? RETURNING sequence"), arguments: [event.twinID]
            )
        else { throw ServiceError.twinNotFound(event.twinID) }
        try insert(event.numbered(sequence))
        return sequence
    }

    /// The last outbox position given out (0 before the first).
    static func lastOutboxPosition(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT seq FROM sqlite_sequence WHERE name = 'outbox_batches'")) ?? 0
    }

    /// Entries are collected, and stored as one row by ``storeOutbox()`` when the writes are done.
    private func insert(_ event: PendingEvent) throws {
        collector.entries.append(OutboxEntry(position: firstOutboxPosition + Int64(collector.entries.count), event: event))
    }

    /// Stores the entries collected (those of writes rolled back to their savepoint are gone) as one row.
    func storeOutbox() throws {
        try Self.store(collector.entries, as: insertOutbox)
    }

    static let insertOutboxRow = "INSERT INTO outbox_batches (last_position, first_position, events) VALUES (?, ?, ?)"

    /// Stores entries at consecutive positions as one outbox row (nothing when there are none).
    static func store(_ entries: [OutboxEntry], as insert: BatchStatement) throws {
        guard let first = entries.first, let last = entries.last else { return }
        precondition(last.position - first.position == Int64(entries.count - 1), "an outbox row holds consecutive positions")
        try insert.step(.integer(last.position), .integer(first.position), .blob(OutboxPacking.pack(entries)))
    }

    func recordOnce(_ key: String) throws -> Bool {
        try insertKey.step(.text(key), .text(now))
        return db.changesCount > 0
    }
}
