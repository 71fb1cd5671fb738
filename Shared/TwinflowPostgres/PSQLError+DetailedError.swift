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
