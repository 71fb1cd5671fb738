import Foundation
import Logging
import PostgresNIO
import Synchronization
import TwinflowCodec
import TwinflowPostgres

extension PostgresTwinStore {
    /// What was delivered is not handed out again, even to a relay that starts from the beginning;
    /// this process's own newest entries are handed out from memory up to where it last learned
    /// the outbox was delivered (``outboxDeliveredThrough()``, read by a relay taking its turn).
    public func outbox(after position: Int64, limit: Int) async throws -> [OutboxEntry] {
        if let recent = recentEvents.consecutiveEntries(after: position, limit: limit) { return recent }
        if let newest = newestCommitted.position, position >= newest { return [] }
        let after = try await deliveredThrough(atLeast: position)
        // A row holds a transaction's events, positions follow on without gaps from row to row: the
        // rows that start past `after + limit` hold none of the `limit` events asked for.
        let rows = try await client.query(
            """
            SELECT first_position, events FROM twin_outbox WHERE last_position > \(after) AND first_position <= \(after + Int64(limit))
            ORDER BY last_position LIMIT \(limit)
            """,
            logger: logger)
        var packedRows: [(first: Int64, events: ByteBuffer)] = []
        for try await row in rows.decode((Int64, ByteBuffer).self) { packedRows.append(row) }
        return try Self.entries(of: packedRows, after: after, limit: limit)
    }

    static func entries(of rows: [(first: Int64, events: ByteBuffer)], after: Int64, limit: Int) throws -> [OutboxEntry] {
        var entries: [OutboxEntry] = []
        for row in rows where entries.count < limit {
            let unpacked = try OutboxPacking.unpack(Array(buffer: row.events), firstPosition: row.first)
            entries += unpacked.drop { $0.position <= after }.prefix(limit - entries.count)
        }
        return entries
    }

    func deliveredThrough(atLeast position: Int64) async throws -> Int64 {
        var through = position
        for try await delivered in try await client.query("SELECT through FROM twin_outbox_delivered WHERE id = 1", logger: logger).decode(
            Int64.self)
        {
            through = max(through, delivered)
        }
        return through
    }

    public func outboxDeliveredThrough() async throws -> Int64 {
        let delivered = try await deliveredThrough(atLeast: 0)
        recentEvents.remove(through: delivered)
        return delivered
    }

    public func removeFromOutbox(through position: Int64) async throws {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("UPDATE twin_outbox_delivered SET through = GREATEST(through, \(position)) WHERE id = 1", logger: logger)
            try await connection.query("DELETE FROM twin_outbox WHERE last_position <= \(position)", logger: logger)
        }
        recentEvents.remove(through: position)
    }

    /// PostgreSQL checkpoints by itself.
    public func checkpoint() async throws {}

    @discardableResult
    public func forgetKeys(recordedBefore time: String) async throws -> KeyPurge {
        var purge = KeyPurge()
        while true {
            let started = ContinuousClock.now
            var deleted = 0
            for try await count in try await client.query(
                """
                WITH deleted AS (
                    DELETE FROM twin_idempotency_keys WHERE key IN (
                        SELECT key FROM twin_idempotency_keys WHERE recorded < \(time) ORDER BY recorded LIMIT \(Self.keyPurgeChunk))
                    RETURNING 1)
                SELECT count(*) FROM deleted
                """, logger: logger
            ).decode(Int.self) {
                deleted = count
            }
            purge.forgotten += deleted
            purge.steps += 1
            purge.longestStep = max(purge.longestStep, ContinuousClock.now - started)
            if deleted < Self.keyPurgeChunk { return purge }
        }
    }

    static let keyPurgeChunk = 2000

    /// A write through the writer's connection, as commands and REST writes take.
    public func probeWrite() async throws {
        _ = try await writer.perform { db in
            try db.query("INSERT INTO twin_probe (id, time) VALUES (1, \(Timestamp.now())) ON CONFLICT (id) DO UPDATE SET time = excluded.time")
        }
    }
}
