import Foundation
import GRDB
import TwinflowCodec

/// The embedded store: one SQLite file in WAL mode through GRDB. Writes are serialized by GRDB's
/// writer and run off the cooperative pool; reads run concurrently on its reader pool.
public final class SQLiteTwinStore: TwinStore {
    private let pool: DatabasePool

    /// Opens (creating if needed) the store at `path`.
    public init(path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // WAL with NORMAL sync: a commit survives a process crash without an fsync per write.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA cache_size = -65536")
            try db.execute(sql: "PRAGMA mmap_size = 268435456")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 10000")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
        try pool.write { db in
            try db.execute(sql: Self.schema)
        }
    }

    /// Portable SQL: the same tables serve PostgreSQL. A deleted twin or relationship keeps its row
    /// (document NULL) so its version keeps counting.
    static let schema = """
        CREATE TABLE IF NOT EXISTS models (
            id TEXT PRIMARY KEY, definition TEXT NOT NULL, upload_time TEXT NOT NULL,
            decommissioned INTEGER NOT NULL DEFAULT 0, upload_order INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS twins (
            id TEXT PRIMARY KEY, model TEXT, version INTEGER NOT NULL, document TEXT);
        CREATE TABLE IF NOT EXISTS relationships (
            source_id TEXT NOT NULL, id TEXT NOT NULL, name TEXT, target_id TEXT,
            version INTEGER NOT NULL, document TEXT, PRIMARY KEY (source_id, id));
        CREATE INDEX IF NOT EXISTS relationships_by_target ON relationships (target_id, source_id, id, name)
            WHERE document IS NOT NULL;
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

    public func relationship(sourceID: String, id: String) async throws -> StoredRelationship? {
        try await pool.read { db in
            try Row.fetchOne(
                db,
                sql: "SELECT * FROM relationships WHERE source_id = ? AND id = ? AND document IS NOT NULL",
                arguments: [sourceID, id]
            ).map(Self.relationship(from:))
        }
    }

    public func lastVersion(ofRelationship id: String, sourceID: String) async throws -> Int64 {
        try await pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT version FROM relationships WHERE source_id = ? AND id = ?", arguments: [sourceID, id]) ?? 0
        }
    }

    public func relationships(sourceID: String, name: String?) async throws -> [StoredRelationship] {
        try await pool.read { db in
            if let name {
                return try Row.fetchAll(
                    db,
                    sql: "SELECT * FROM relationships WHERE source_id = ? AND name = ? AND document IS NOT NULL ORDER BY id",
                    arguments: [sourceID, name]
                ).map(Self.relationship(from:))
            }
            return try Row.fetchAll(
                db,
                sql: "SELECT * FROM relationships WHERE source_id = ? AND document IS NOT NULL ORDER BY id",
                arguments: [sourceID]
            ).map(Self.relationship(from:))
        }
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

    public func incomingRelationships(targetID: String) async throws -> [StoredRelationship]? {
        try await pool.read { db in
            guard try Self.twinExists(db, targetID) else { return nil }
            return try Row.fetchAll(
                db.cachedStatement(sql: "SELECT * FROM relationships WHERE target_id = ? AND document IS NOT NULL ORDER BY source_id, id"),
                arguments: [targetID]
            ).map(Self.relationship(from:))
        }
    }

    public func commit(_ changes: [StoreChange]) async throws {
        try await pool.write { db in
            for change in changes {
                switch change {
                case .deleteTwin(let id, let expecting):
                    try Self.check(db, table: "twins", key: "id = ?", arguments: [id], expecting, what: "twin \(id)")
                    try db.execute(sql: "UPDATE twins SET document = NULL, version = version + 1 WHERE id = ?", arguments: [id])
                case .putRelationship(let relationship, let expecting):
                    try Self.check(
                        db, table: "relationships", key: "source_id = ? AND id = ?", arguments: [relationship.sourceID, relationship.id],
                        expecting, what: "relationship \(relationship.sourceID)/\(relationship.id)"
                    )
                    try db.execute(
                        sql: """
                            INSERT INTO relationships (source_id, id, name, target_id, version, document) VALUES (?, ?, ?, ?, ?, ?)
                            ON CONFLICT (source_id, id) DO UPDATE SET name = excluded.name, target_id = excluded.target_id,
                                version = excluded.version, document = excluded.document
                            """,
                        arguments: [
                            relationship.sourceID, relationship.id, relationship.name, relationship.targetID, relationship.version,
                            relationship.document.jsonString(),
                        ]
                    )
                case .deleteRelationship(let sourceID, let id, let expecting):
                    try Self.check(
                        db, table: "relationships", key: "source_id = ? AND id = ?", arguments: [sourceID, id], expecting,
                        what: "relationship \(sourceID)/\(id)"
                    )
                    try db.execute(
                        sql: "UPDATE relationships SET document = NULL, version = version + 1 WHERE source_id = ? AND id = ?",
                        arguments: [sourceID, id]
                    )
                }
            }
        }
    }

    public func modifyTwin<Result: Sendable>(
        _ id: String,
        _ change: @escaping @Sendable (_ current: StoredTwin?, _ lastVersion: Int64) throws -> (StoredTwin?, Result)
    ) async throws -> Result {
        try await pool.write { db in
            let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT id, model, version, document FROM twins WHERE id = ?"), arguments: [id])
            let lastVersion: Int64 = row?["version"] ?? 0
            let current = try row.flatMap { row -> StoredTwin? in row["document"] == nil ? nil : try Self.twin(from: row) }
            let (updated, result) = try change(current, lastVersion)
            if let updated {
                try db.cachedStatement(sql: Self.upsertTwin)
                    .execute(arguments: [updated.id, updated.model, updated.version, updated.document.jsonString()])
            }
            return result
        }
    }

    static let upsertTwin = """
        INSERT INTO twins (id, model, version, document) VALUES (?, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET model = excluded.model, version = excluded.version, document = excluded.document
        """

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

    public func addModels(_ models: [StoredModel]) async throws {
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
    }

    public func setDecommissioned(model id: String, _ decommissioned: Bool) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE models SET decommissioned = ? WHERE id = ?", arguments: [decommissioned, id])
        }
    }

    public func deleteModel(_ id: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM models WHERE id = ?", arguments: [id])
        }
    }

    private static func twinExists(_ db: Database, _ id: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM twins WHERE id = ? AND document IS NOT NULL"), arguments: [id]) != nil
    }

    private static func check(
        _ db: Database, table: String, key: String, arguments: StatementArguments, _ expecting: StoreExpectation, what: String
    ) throws {
        let row = try Row.fetchOne(db, sql: "SELECT version, document IS NOT NULL AS live FROM \(table) WHERE \(key)", arguments: arguments)
        let live = row.map { $0["live"] as Bool } ?? false
        switch expecting {
        case .absent where !live:
            return
        case .version(let version) where live && row!["version"] as Int64 == version:
            return
        default:
            throw StoreConflict(description: "\(what) changed meanwhile")
        }
    }

    private static func twin(from row: Row) throws -> StoredTwin {
        StoredTwin(id: row["id"], model: row["model"], version: row["version"], document: try JSONValue.parse(row["document"] as String))
    }

    private static func relationship(from row: Row) throws -> StoredRelationship {
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
