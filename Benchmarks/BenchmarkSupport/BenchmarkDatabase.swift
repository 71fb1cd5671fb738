import Foundation
import Logging
import PostgresNIO
import TwinflowPostgres

/// A new empty PostgreSQL database for one benchmark run, on the server a user's URL names (its
/// user must be allowed to create databases). The databases that earlier runs left with the same
/// prefix are dropped first: a run's services may still hold its own when it ends.
public final class BenchmarkDatabase: Sendable {
    /// The new database's URL.
    public let url: String
    private let name: String

    public init(onServerOf text: String, prefix: String) async throws {
        let server = try DatabaseURL(text)
        name = "\(prefix)_\(UInt32.random(in: 0...UInt32.max))"
        url = server.naming(database: name)
        var logger = Logger(label: "benchmark-database")
        logger.logLevel = .error
        let connection = try await PostgresConnection.connect(configuration: try server.connectionConfiguration(), id: 1, logger: logger)
        do {
            var earlier: [String] = []
            for try await database in try await connection.query(
                "SELECT datname FROM pg_database WHERE datname LIKE \(prefix + "\\_%")", logger: logger
            ).decode(String.self) {
                earlier.append(database)
            }
            for database in earlier {
                try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(database)"), logger: logger)
            }
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}
