import Logging

/// An error whose `description` leaves out what an operator needs to act on it (PostgreSQL's
/// errors keep the server's message out of theirs), with a description that says it.
public protocol DetailedError: Error {
    /// What failed: codes and the server's message (which may quote a value it refused), never a
    /// query's text or its bound values.
    var detailedDescription: String { get }
}

extension String {
    /// `error` as logs, readiness details and dead-letter reasons show it: a ``DetailedError``'s
    /// ``DetailedError/detailedDescription``, any other error's description.
    public init(describingError error: any Error) {
        self = (error as? any DetailedError)?.detailedDescription ?? "\(error)"
    }
}

extension Logger.MetadataValue {
    /// `error` as a log line's value, as ``Swift/String/init(describingError:)`` describes it.
    public static func error(_ error: any Error) -> Self {
        .string(String(describingError: error))
    }
}
