import PostgresNIO
import TwinflowRuntime

extension PSQLError: DetailedError {
    /// The server's severity, SQLSTATE and message (`PostgreSQL ERROR 55P03: canceling statement
    /// due to lock timeout`), or the client's code and what it met (`PostgreSQL connectionError:
    /// connection refused`).
    public var detailedDescription: String {
        if let info = serverInfo {
            let severity = info[.severity] ?? info[.localizedSeverity] ?? "ERROR"
            return "PostgreSQL \(severity) \(info[.sqlState] ?? "?"): \(info[.message] ?? "no message")"
        }
        guard let underlying else { return "PostgreSQL \(code)" }
        return "PostgreSQL \(code): \(String(describingError: underlying))"
    }
}

extension PostgresTransactionError: DetailedError {
    /// Which step of the transaction failed, with that step's error as ``Swift/String/init(describingError:)``
    /// describes it (`transaction: PostgreSQL ERROR 55P03: canceling statement due to lock timeout`).
    public var detailedDescription: String {
        let steps: [(String, (any Error)?)] = [
            ("begin", beginError), ("transaction", closureError), ("rollback", rollbackError), ("commit", commitError),
        ]
        let failed = steps.compactMap { step, error in error.map { "\(step): \(String(describingError: $0))" } }
        return failed.isEmpty ? "PostgreSQL transaction failed" : failed.joined(separator: "; ")
    }
}
