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

    /// Runs `change` in a transaction that first moves the catalog's version on, only from
    /// `expected` when given (else it throws ``CatalogMoved``). The catalog's row stays locked until
    /// the commit, so the changes of all instances take turns, and one checked against a version
    /// another instance has moved on meanwhile finds it moved once that instance committed.
    @discardableResult
    func changeCatalog<Result: Sendable>(
        ifAt expected: Int64? = nil, _ change: (PostgresConnection) async throws -> Result
    ) async throws -> (result: Result, version: Int64) {
        do {
            return try await changeCatalogOnce(ifAt: expected, change)
        } catch let error as PostgresTransactionError where error.closureError is CatalogMoved {
            throw CatalogMoved()
        }
    }

    private func changeCatalogOnce<Result: Sendable>(
        ifAt expected: Int64?, _ change: (PostgresConnection) async throws -> Result
    ) async throws -> (result: Result, version: Int64) {
        try await client.withTransaction(logger: logger) { connection in
            let rows =
                if let expected {
                    try await connection.query(
                        "UPDATE twin_catalog SET version = version + 1 WHERE id = 1 AND version = \(expected) RETURNING version", logger: logger)
                } else {
                    try await connection.query("UPDATE twin_catalog SET version = version + 1 WHERE id = 1 RETURNING version", logger: logger)
                }
            var version: Int64?
            for try await moved in rows.decode(Int64.self) { version = moved }
            guard let version else { throw CatalogMoved() }
            return (try await change(connection), version)
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
        }.result
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

    public func addModels(_ models: [StoredModel], ifCatalogAt expected: Int64?) async throws -> Int64? {
        try await changeCatalog(ifAt: expected) { connection in
            for model in models {
                try await connection.query(
                    """
                    INSERT INTO twin_models (id, definition, upload_time, decommissioned)
                    VALUES (\(model.id), \(model.definition.jsonString()), \(model.uploadTime), \(model.decommissioned))
                    """, logger: logger)
            }
        }.version
    }

    public func setDecommissioned(model id: String, _ decommissioned: Bool, ifCatalogAt expected: Int64?) async throws -> Int64? {
        try await changeCatalog(ifAt: expected) { connection in
            try await connection.query("UPDATE twin_models SET decommissioned = \(decommissioned) WHERE id = \(id)", logger: logger)
        }.version
    }

    public func deleteModel(_ id: String, ifCatalogAt expected: Int64?) async throws -> Int64? {
        try await changeCatalog(ifAt: expected) { connection in
            try await connection.query("DELETE FROM twin_models WHERE id = \(id)", logger: logger)
        }.version
    }
}
