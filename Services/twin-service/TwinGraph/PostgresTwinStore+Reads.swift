import Foundation
import Logging
import PostgresNIO
import Synchronization
import TwinflowCodec
import TwinflowPostgres

extension PostgresTwinStore {
    /// Whether PostgreSQL can hold `text` in a text column: not with U+0000, which it refuses
    /// outright. No stored ID has one, so a read by such an ID finds nothing instead of failing.
    static func isStorable(_ text: String) -> Bool { !text.utf8.contains(0) }

    public func twin(_ id: String) async throws -> StoredTwin? {
        guard Self.isStorable(id) else { return nil }
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
        let unknown = ids.filter { Self.isStorable($0) && parsedTwins.latest($0) == nil }
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
        guard Self.isStorable(sourceID), Self.isStorable(id) else { return nil }
        let rows = try await client.query(
            """
            SELECT source_id, id, name, target_id, version, document FROM twin_relationships
            WHERE source_id = \(sourceID) AND id = \(id) AND document IS NOT NULL
            """, logger: logger)
        for try await row in rows { return try Self.relationship(from: row) }
        return nil
    }

    public func relationships(sourceID: String, name: String?) async throws -> [StoredRelationship] {
        guard Self.isStorable(sourceID), name.map(Self.isStorable) ?? true else { return [] }
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
        guard Self.isStorable(targetID) else { return nil }
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
}
