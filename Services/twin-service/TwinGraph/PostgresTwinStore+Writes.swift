import Foundation
import Logging
import PostgresNIO
import Synchronization
import TwinflowCodec
import TwinflowPostgres

extension PostgresTwinStore {
    /// A batch runs first deferring (see ``PostgresTransaction``), without a savepoint per write;
    /// when a write throws or what was deferred does not hold, it is rolled back and run again step
    /// by step with a savepoint per write, so a failed write leaves nothing behind and the others
    /// commit. A transaction that another instance's deadlocks with, or that read a row another
    /// instance then wrote, is run again (at most ``conflictAttempts`` times).
    public func write(_ writes: [StoreWrite]) async throws -> [Result<any Sendable, any Error>] {
        let (parsedTwins, recentEvents, newestCommitted) = (parsedTwins, recentEvents, newestCommitted)
        return try await writer.perform { db in
            var attempt = 0
            while true {
                attempt += 1
                do {
                    if let results = try Self.write(
                        writes, db, mode: .deferring, parsedTwins: parsedTwins, recentEvents: recentEvents, newestCommitted: newestCommitted)
                    {
                        return results
                    }
                    guard
                        let results = try Self.write(
                            writes, db, mode: .immediate, parsedTwins: parsedTwins, recentEvents: recentEvents, newestCommitted: newestCommitted)
                    else {
                        preconditionFailure("a batch with a savepoint per write keeps going past failed writes")
                    }
                    return results
                } catch  where attempt < Self.conflictAttempts && Self.isConflict(error) {
                    continue
                }
            }
        }
    }

    static let conflictAttempts = 8

    /// PostgreSQL refused what one write holds (a data exception, such as a NUL character in a text,
    /// which SQLite stores): that write fails alone, the others of its batch commit.
    static func isRefusalOfTheWrite(_ error: PSQLError) -> Bool {
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("22")
    }

    static func isConflict(_ error: any Error) -> Bool {
        if error is PostgresStoreConflict { return true }
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        // serialization_failure, deadlock_detected
        return state == "40001" || state == "40P01"
    }

    /// One transaction of the batch; nil (and rolled back) when a write failed, or what was deferred
    /// did not hold, in ``PostgresTransaction/Mode/deferring``.
    static func write(
        _ writes: [StoreWrite], _ db: PostgresWriterConnection, mode: PostgresTransaction.Mode, parsedTwins: ParsedTwinCache,
        recentEvents: OutboxBuffer, newestCommitted: NewestCommitted
    ) throws -> [Result<any Sendable, any Error>]? {
        try db.query("BEGIN")
        do {
            let transaction = PostgresTransaction(db: db, mode: mode, now: Timestamp.now(), parsedTwins: parsedTwins)
            var results: [Result<any Sendable, any Error>] = []
            results.reserveCapacity(writes.count)
            for write in writes {
                switch mode {
                case .deferring:
                    do {
                        results.append(.success(try write(transaction)))
                    } catch let error as PSQLError where !Self.isRefusalOfTheWrite(error) {
                        throw error
                    } catch {
                        try db.query("ROLLBACK")
                        return nil
                    }
                case .immediate:
                    try db.query("SAVEPOINT store_write")
                    let collected = transaction.events.count
                    do {
                        results.append(.success(try write(transaction)))
                        try db.query("RELEASE SAVEPOINT store_write")
                    } catch let error as PSQLError where !Self.isRefusalOfTheWrite(error) {
                        throw error
                    } catch let error as PostgresStoreConflict {
                        throw error
                    } catch let error as PSQLError {
                        try db.query("ROLLBACK TO SAVEPOINT store_write")
                        transaction.events.removeSubrange(collected...)
                        let reason = error.serverInfo?[.message] ?? "a data exception"
                        results.append(.failure(ServiceError.invalidArgument("The store cannot hold a value of this request: \(reason).")))
                    } catch {
                        try db.query("ROLLBACK TO SAVEPOINT store_write")
                        transaction.events.removeSubrange(collected...)
                        results.append(.failure(error))
                    }
                }
            }
            do {
                try transaction.checkDeferred()
            } catch is PostgresDeferredMismatch {
                try db.query("ROLLBACK")
                return nil
            } catch let error as PSQLError where Self.isRefusalOfTheWrite(error) {
                // Which write's key or patch was refused shows when the batch runs step by step.
                try db.query("ROLLBACK")
                return nil
            }
            let stored = try storeOutbox(transaction.events, db)
            try db.query("COMMIT")
            recentEvents.append(stored)
            if let last = stored.last?.position { newestCommitted.note(last, ifKnown: true) }
            return results
        } catch {
            if !db.connection.isClosed { _ = try? db.query("ROLLBACK") }
            throw error
        }
    }

    /// The events as one outbox row at the next positions, taken from the counter row (locked until
    /// the commit), and a notification for the relay.
    static func storeOutbox(_ events: [PendingEvent], _ db: PostgresWriterConnection) throws -> [OutboxEntry] {
        guard !events.isEmpty else { return [] }
        let entries = events.enumerated().map { OutboxEntry(position: Int64($0.offset), event: $0.element) }
        let packed = ByteBuffer(bytes: OutboxPacking.pack(entries))
        let count = Int64(events.count)
        let rows = try db.query(
            """
            WITH given AS (UPDATE twin_outbox_counter SET last_given = last_given + \(count) WHERE id = 1 RETURNING last_given),
                stored AS (INSERT INTO twin_outbox (last_position, first_position, events)
                    SELECT last_given, last_given - \(count) + 1, \(packed) FROM given RETURNING last_position)
            SELECT stored.last_position FROM stored, pg_notify(\(outboxChannel), stored.last_position::text)
            """
        ).rows
        guard let row = rows.first else { throw PostgresStoreConflict(reason: "the outbox counter is missing") }
        let last = try row.decode(Int64.self)
        return entries.map { OutboxEntry(position: last - count + 1 + $0.position, event: $0.event) }
    }
}
