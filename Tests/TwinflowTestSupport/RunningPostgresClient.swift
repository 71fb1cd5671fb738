import Logging
import PostgresNIO
import TwinflowPostgres

/// A PostgreSQL client running for as long as this object lives: a store under test uses
/// `client`, and the client stops when the test lets go of it.
public final class RunningPostgresClient: Sendable {
    public let client: PostgresClient
    public let logger: Logger
    private let running: Task<Void, Never>

    public init(url: String, connections: Int = 4) throws {
        var logger = Logger(label: "postgres-test")
        logger.logLevel = .warning
        self.logger = logger
        client = PostgresClient(configuration: try DatabaseURL(url).clientConfiguration(connections: connections), backgroundLogger: logger)
        running = Task { [client] in await client.run() }
    }

    deinit { running.cancel() }
}
