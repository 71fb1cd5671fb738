import Foundation
import Logging
import PostgresNIO

/// The PostgreSQL store's writer: one connection of its own, used from one thread of its own. A
/// write transaction's steps are synchronous (``TwinStoreTransaction``), so each waits for its
/// statement here, off the cooperative pool and off the connection's event loop. Jobs run one at a
/// time, in the order they came; a broken connection is opened again for the next job.
final class PostgresWriter: @unchecked Sendable {
    typealias Job = (PostgresWriterConnection) throws -> any Sendable

    // `condition` (a lock) guards `jobs` and `stopped`: what makes this class Sendable.
    private let condition = NSCondition()
    private var jobs: [(job: Job, done: CheckedContinuation<any Sendable, any Error>)] = []
    private var stopped = false
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger

    init(configuration: PostgresConnection.Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let thread = Thread { [self] in runJobs() }
        thread.name = "twinflow.postgres-writer"
        thread.start()
    }

    /// Runs `job` on the writer's thread with its connection; returns what it returned.
    func perform<Result: Sendable>(_ job: @escaping @Sendable (PostgresWriterConnection) throws -> Result) async throws -> Result {
        let result = try await withCheckedThrowingContinuation { (done: CheckedContinuation<any Sendable, any Error>) in
            condition.lock()
            guard !stopped else {
                condition.unlock()
                done.resume(throwing: PostgresWriterStopped())
                return
            }
            jobs.append(({ connection in try job(connection) }, done))
            condition.signal()
            condition.unlock()
        }
        guard let typed = result as? Result else { preconditionFailure("a writer job returned another type than it promised") }
        return typed
    }

    /// Ends the thread after the jobs already queued.
    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func runJobs() {
        var connection: PostgresConnection?
        var nextID = 1
        while true {
            condition.lock()
            while jobs.isEmpty, !stopped { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                try? connection?.close().wait()
                return
            }
            let (job, done) = jobs.removeFirst()
            condition.unlock()
            do {
                if connection == nil || connection?.isClosed == true {
                    connection = try PostgresConnection.connect(
                        on: PostgresConnection.defaultEventLoopGroup.next(), configuration: configuration, id: nextID, logger: logger
                    ).wait()
                    nextID += 1
                }
                guard let open = connection else { preconditionFailure("the writer connection was just opened") }
                done.resume(returning: try job(PostgresWriterConnection(connection: open, logger: logger)))
            } catch {
                done.resume(throwing: error)
            }
        }
    }
}

/// The writer's connection, as a job uses it: every statement waits for its result.
struct PostgresWriterConnection {
    let connection: PostgresConnection
    let logger: Logger

    @discardableResult
    func query(_ query: PostgresQuery) throws -> PostgresQueryResult {
        try connection.query(query, logger: logger).wait()
    }

    /// How many rows the statement changed.
    func changes(_ statement: PostgresQuery) throws -> Int {
        try query(statement).metadata.rows ?? 0
    }
}

struct PostgresWriterStopped: Error, CustomStringConvertible {
    var description: String { "the PostgreSQL store's writer has stopped" }
}
