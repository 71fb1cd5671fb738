import Logging
import PostgresNIO

/// Versioned schema migrations for a component's tables (`tsi-store`, `twin-service`), applied at
/// startup in one transaction that holds an advisory lock on the component: instances starting at
/// once take turns, and each finds the schema the first one left. The version is a row of
/// `twinflow_schema`.
public struct SchemaMigrations: Sendable {
    public var component: String
    /// Migration `n` (from 1) takes the schema from version `n - 1` to `n`; each may hold several
    /// statements separated by semicolons.
    public var steps: [String]

    public init(component: String, steps: [String]) {
        self.component = component
        self.steps = steps
    }

    /// Applies the steps the database has not had yet; returns the version before them.
    @discardableResult
    public func apply(on client: PostgresClient, logger: Logger) async throws -> Int {
        try await client.withTransaction(logger: logger) { connection in
            // Sessions wait for locks a bounded time (DatabaseURL.sessionParameters): an instance waits
            // its turn however long another's migration takes, and a migration waits up to a minute for
            // the locks of the tables it alters (the instance does not start when it cannot have them).
            try await connection.query("SET LOCAL lock_timeout = 0", logger: logger)
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(component))::bigint)", logger: logger)
            try await connection.query("SET LOCAL lock_timeout = '60s'", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS twinflow_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)", logger: logger)
            var version = 0
            for try await found in try await connection.query(
                "SELECT version FROM twinflow_schema WHERE component = \(component)", logger: logger
            ).decode(Int.self) {
                version = found
            }
            guard version <= steps.count else {
                throw SchemaTooNew(component: component, found: version, known: steps.count)
            }
            for (index, step) in steps.enumerated().dropFirst(version) {
                for statement in step.split(separator: ";") where !statement.allSatisfy(\.isWhitespace) {
                    try await connection.query(PostgresQuery(unsafeSQL: String(statement)), logger: logger)
                }
                logger.info("schema migrated", metadata: ["component": "\(component)", "version": "\(index + 1)"])
            }
            try await connection.query(
                """
                INSERT INTO twinflow_schema (component, version) VALUES (\(component), \(steps.count))
                ON CONFLICT (component) DO UPDATE SET version = excluded.version
                """, logger: logger)
            return version
        }
    }

    /// The database was migrated by a newer release than this one.
    public struct SchemaTooNew: Error, Sendable, CustomStringConvertible {
        public var component: String
        public var found: Int
        public var known: Int
        public var description: String {
            "the database's \(component) schema is at version \(found); this release knows versions up to \(known)"
        }
    }
}
