import GRDB
import PostgresNIO
// postgres-nio's pool answers with its own error type when it cannot make a connection at all.
import _ConnectionPoolModule

/// Tells the store failing (unreachable, locked, out of space, its connection lost) from a request
/// it refused: a REST client is told to try again later (503), a batch from Kafka is tried again.
public enum StoreFailure {
    /// Whether `error` is the store failing rather than refusing what was asked of it.
    public static func matches(_ error: any Error) -> Bool {
        switch error {
        case let error as DatabaseError:
            return sqliteCodes.contains(error.resultCode.primaryResultCode)
        case let error as PSQLError:
            if error.code == .server {
                guard let state = error.serverInfo?[.sqlState] else { return false }
                // connection, insufficient resources, operator intervention, system error, rollback, lock not available
                return ["08", "53", "57", "58", "40"].contains(String(state.prefix(2))) || state == "55P03"
            }
            return [.clientClosedConnection, .serverClosedConnection, .connectionError, .uncleanShutdown, .poolClosed].contains(error.code)
        case let error as PostgresTransactionError:
            return [error.beginError, error.closureError, error.rollbackError, error.commitError].contains { $0.map(matches) ?? false }
        case is PostgresTwinStore.Unreachable, is PostgresWriterStopped:
            return true
        case let error as ConnectionPoolError:
            return error == .connectionCreationCircuitBreakerTripped || error == .poolShutdown
        default:
            return false
        }
    }

    private static let sqliteCodes: [ResultCode] = [
        .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_NOMEM, .SQLITE_CANTOPEN, .SQLITE_READONLY,
        .SQLITE_PROTOCOL, .SQLITE_INTERRUPT, .SQLITE_NOLFS,
    ]
}
