import GRDB

/// A connection beside a store's writer that moves committed pages from the write-ahead log into
/// the database file, so that no commit of the writer has to. Without it, the commit that takes the
/// log past `wal_autocheckpoint` copies the whole log, and every write queued behind it waits.
public final class WALCheckpointer: Sendable {
    private let connection: DatabaseQueue

    /// Opens a connection to the store at `path` with the writer's `synchronous` setting.
    public init(path: String, synchronous: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous)") }
        connection = try DatabaseQueue(path: path, configuration: configuration)
    }

    /// A passive checkpoint: it never waits for the writer, nor the writer for it. Busy means
    /// another checkpoint runs (the writer's own, past `wal_autocheckpoint`): nothing to do.
    public func checkpoint() async throws {
        do {
            _ = try await connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
            return
        }
    }
}
