import PostgresNIO
import TwinflowCodec

/// A write transaction of ``PostgresTwinStore``, on the writer's connection inside its `BEGIN`.
///
/// In ``Mode/deferring`` (a batch's first run) the two steps of a command that a batch repeats most,
/// recording its idempotency key and storing a patch prepared against the twin as last known, are
/// taken on trust and checked together later, in one statement each: the patches before any other
/// step touches a twin that one of them changed, and both before the commit. When a check fails (a key recorded before, a twin another instance changed),
/// the batch is rolled back and run again in ``Mode/immediate``, where every step is its own
/// statement and each write has a savepoint.
final class PostgresTransaction: TwinStoreTransaction {
    enum Mode {
        case deferring, immediate
    }

    let db: PostgresWriterConnection
    let mode: Mode
    /// When the transaction began: the time idempotency keys are recorded with.
    let now: String
    let parsedTwins: ParsedTwinCache
    /// The events of the writes so far, in order; numbered by the outbox when the batch is stored.
    var events: [PendingEvent] = []
    private var deferredKeys: [String] = []
    private var deferredKeySet: Set<String> = []
    private var deferredUpdates: [String: DeferredUpdate] = [:]

    /// A patch stored on trust: the row it expects (`base`) and what it leaves.
    private struct DeferredUpdate {
        var base: (version: Int64, revision: Int64, sequence: Int64)
        var twin: StoredTwin
        var revision: Int64
        var sequence: Int64
        var document: String
    }

    init(db: PostgresWriterConnection, mode: Mode, now: String, parsedTwins: ParsedTwinCache) {
        self.db = db
        self.mode = mode
        self.now = now
        self.parsedTwins = parsedTwins
    }

    func twin(_ id: String) throws -> (live: StoredTwin?, lastVersion: Int64, lastSequence: Int64) {
        guard PostgresTwinStore.isStorable(id) else { return (nil, 0, 0) }
        try checkDeferredUpdate(of: id)
        let rows = try db.query(
            "SELECT model, version, revision, sequence, document FROM twin_twins WHERE id = \(id) FOR UPDATE"
        ).rows
        guard let row = rows.first else { return (nil, 0, 0) }
        let (model, version, revision, sequence, document) = try row.decode((String?, Int64, Int64, Int64, String?).self)
        guard let document else { return (nil, version, sequence) }
        if let cached = parsedTwins.twin(id, version: version, revision: revision) { return (cached, version, sequence) }
        let twin = StoredTwin(id: id, model: model ?? "", version: version, document: try JSONValue.parse(document))
        parsedTwins.remember(twin, revision: revision, lastSequence: sequence)
        return (twin, version, sequence)
    }

    func twinState(_ id: String) throws -> TwinRowState? {
        guard PostgresTwinStore.isStorable(id) else { return nil }
        try checkDeferredUpdate(of: id)
        let rows = try db.query(
            "SELECT version, revision, sequence, document IS NOT NULL FROM twin_twins WHERE id = \(id) FOR UPDATE"
        ).rows
        guard let row = rows.first else { return nil }
        let (version, revision, sequence, live) = try row.decode((Int64, Int64, Int64, Bool).self)
        return TwinRowState(live: live, version: version, revision: revision, lastSequence: sequence)
    }

    /// The row is written only if its sequence is still the one before `sequence` (another instance
    /// may have made the twin since this transaction read it); otherwise the batch is run again.
    func putTwin(_ twin: StoredTwin, revision: Int64, serialized document: [UInt8], notification: PendingEvent, sequence: Int64) throws {
        try checkDeferredUpdate(of: twin.id)
        let text = String(decoding: document, as: UTF8.self)
        let written = try db.changes(
            """
            INSERT INTO twin_twins (id, model, version, revision, sequence, document)
            VALUES (\(twin.id), \(twin.model), \(twin.version), \(revision), \(sequence), \(text))
            ON CONFLICT (id) DO UPDATE SET model = excluded.model, version = excluded.version, revision = excluded.revision,
                sequence = excluded.sequence, document = excluded.document
            WHERE twin_twins.sequence = excluded.sequence - 1
            """
        )
        guard written == 1 else { throw PostgresStoreConflict(reason: "twin \(twin.id) changed during the write") }
        parsedTwins.remember(twin, revision: revision, lastSequence: sequence)
        events.append(notification.numbered(sequence))
    }

    func putTwin(
        _ twin: StoredTwin, revision: Int64, serialized document: [UInt8], notification: PendingEvent,
        ifStillAt base: (version: Int64, revision: Int64, lastSequence: Int64)
    ) throws -> Int64? {
        let sequence = base.lastSequence + 1
        let text = String(decoding: document, as: UTF8.self)
        switch mode {
        case .deferring:
            if var earlier = deferredUpdates[twin.id] {
                guard earlier.twin.version == base.version, earlier.revision == base.revision, earlier.sequence == base.lastSequence else {
                    return nil
                }
                earlier.twin = twin
                earlier.revision = revision
                earlier.sequence = sequence
                earlier.document = text
                deferredUpdates[twin.id] = earlier
            } else {
                deferredUpdates[twin.id] = DeferredUpdate(
                    base: (base.version, base.revision, base.lastSequence), twin: twin, revision: revision, sequence: sequence, document: text)
            }
        case .immediate:
            let written = try db.changes(
                """
                UPDATE twin_twins SET model = \(twin.model), version = \(twin.version), revision = \(revision), sequence = \(sequence),
                    document = \(text)
                WHERE id = \(twin.id) AND version = \(base.version) AND revision = \(base.revision) AND sequence = \(base.lastSequence)
                    AND document IS NOT NULL
                """
            )
            guard written > 0 else { return nil }
        }
        parsedTwins.remember(twin, revision: revision, lastSequence: sequence, unlessNewer: true)
        events.append(notification.numbered(sequence))
        return sequence
    }

    func deleteTwin(_ id: String) throws {
        try checkDeferredUpdate(of: id)
        try db.query("UPDATE twin_twins SET document = NULL, version = version + 1, revision = \(RandomID.int64()) WHERE id = \(id)")
    }

    func relationship(sourceID: String, id: String) throws -> (live: StoredRelationship?, lastVersion: Int64) {
        let rows = try db.query(
            """
            SELECT source_id, id, name, target_id, version, document FROM twin_relationships
            WHERE source_id = \(sourceID) AND id = \(id) FOR UPDATE
            """
        ).rows
        guard let row = rows.first else { return (nil, 0) }
        let relationship = try PostgresTwinStore.relationship(from: row)
        return (relationship, try row.decode((String, String, String?, String?, Int64).self).4)
    }

    func relationships(sourceID: String, name: String?) throws -> [StoredRelationship] {
        let rows = try db.query(PostgresTwinStore.relationshipsQuery(sourceID: sourceID, name: name)).rows
        return try rows.compactMap(PostgresTwinStore.relationship(from:))
    }

    func incomingRelationships(targetID: String) throws -> [StoredRelationship] {
        let rows = try db.query(
            """
            SELECT source_id, id, name, target_id, version, document FROM twin_relationships
            WHERE target_id = \(targetID) AND document IS NOT NULL ORDER BY source_id, id
            """
        ).rows
        return try rows.compactMap(PostgresTwinStore.relationship(from:))
    }

    func putRelationship(_ relationship: StoredRelationship) throws {
        try db.query(
            """
            INSERT INTO twin_relationships (source_id, id, name, target_id, version, document)
            VALUES (\(relationship.sourceID), \(relationship.id), \(relationship.name), \(relationship.targetID), \(relationship.version),
                \(relationship.document.jsonString()))
            ON CONFLICT (source_id, id) DO UPDATE SET name = excluded.name, target_id = excluded.target_id,
                version = excluded.version, document = excluded.document
            """
        )
    }

    func deleteRelationship(sourceID: String, id: String) throws {
        try db.query("UPDATE twin_relationships SET document = NULL, version = version + 1 WHERE source_id = \(sourceID) AND id = \(id)")
    }

    func emit(_ event: PendingEvent) throws -> Int64 {
        guard event.sequenced else {
            events.append(event)
            return 0
        }
        try checkDeferredUpdate(of: event.twinID)
        let rows = try db.query("UPDATE twin_twins SET sequence = sequence + 1 WHERE id = \(event.twinID) RETURNING sequence").rows
        guard let row = rows.first else { throw ServiceError.twinNotFound(event.twinID) }
        let sequence = try row.decode(Int64.self)
        events.append(event.numbered(sequence))
        return sequence
    }

    func recordOnce(_ key: String) throws -> Bool {
        switch mode {
        case .deferring:
            guard deferredKeySet.insert(key).inserted else { return false }
            deferredKeys.append(key)
            return true
        case .immediate:
            return try db.changes("INSERT INTO twin_idempotency_keys (key, recorded) VALUES (\(key), \(now)) ON CONFLICT (key) DO NOTHING") > 0
        }
    }

    /// Stores the deferred patches before a step that reads or writes the twin `id` (when one of them
    /// changed it).
    private func checkDeferredUpdate(of id: String) throws {
        guard deferredUpdates[id] != nil else { return }
        try storeDeferredUpdates()
    }

    /// Stores what was taken on trust, in two statements, and throws ``PostgresDeferredMismatch``
    /// when the database disagrees: a key was recorded before, or a twin is not as a patch expected.
    func checkDeferred() throws {
        if !deferredKeys.isEmpty {
            let keys = deferredKeys
            deferredKeys.removeAll()
            deferredKeySet.removeAll()
            let recorded = try db.changes(
                """
                INSERT INTO twin_idempotency_keys (key, recorded) SELECT unnest(\(keys)::text[]), \(now)
                ON CONFLICT (key) DO NOTHING
                """
            )
            guard recorded == keys.count else { throw PostgresDeferredMismatch() }
        }
        try storeDeferredUpdates()
    }

    private func storeDeferredUpdates() throws {
        if !deferredUpdates.isEmpty {
            let updates = deferredUpdates.values.sorted { $0.twin.id < $1.twin.id }
            deferredUpdates.removeAll()
            let written = try db.changes(
                """
                UPDATE twin_twins AS t SET model = u.model, version = u.version, revision = u.revision, sequence = u.sequence,
                    document = u.document
                FROM unnest(\(updates.map(\.twin.id))::text[], \(updates.map(\.twin.model))::text[], \(updates.map(\.twin.version))::int8[],
                    \(updates.map(\.revision))::int8[], \(updates.map(\.sequence))::int8[], \(updates.map(\.document))::text[],
                    \(updates.map(\.base.version))::int8[], \(updates.map(\.base.revision))::int8[], \(updates.map(\.base.sequence))::int8[])
                    AS u(id, model, version, revision, sequence, document, base_version, base_revision, base_sequence)
                WHERE t.id = u.id AND t.version = u.base_version AND t.revision = u.base_revision AND t.sequence = u.base_sequence
                    AND t.document IS NOT NULL
                """
            )
            guard written == updates.count else { throw PostgresDeferredMismatch() }
        }
    }
}

/// What a deferring transaction took on trust did not hold: the batch runs again, step by step.
struct PostgresDeferredMismatch: Error, CustomStringConvertible {
    var description: String { "a key or a twin was not as the batch expected; running it step by step" }
}

/// Another instance wrote what this transaction read: the batch runs again.
struct PostgresStoreConflict: Error, CustomStringConvertible {
    var reason: String
    var description: String { "write conflict: \(reason)" }
}
