import Foundation
import Logging
import PostgresNIO
import Synchronization
import TwinflowCodec
import TwinflowPostgres

extension PostgresTwinStore {
    public func catalogVersion() async throws -> Int64? {
        for try await version in try await client.query("SELECT version FROM twin_catalog WHERE id = 1", logger: logger).decode(Int64.self) {
            return version
        }
        return 0
    }

    /// Runs `change` in a transaction that also moves the catalog's version on.
    @discardableResult
    func changeCatalog<Result: Sendable>(_ change: (PostgresConnection) async throws -> Result) async throws -> Result {
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
