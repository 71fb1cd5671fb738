import Foundation

/// RFC 3339 UTC timestamps with milliseconds, as ADT writes them: `2026-11-26T17:00:00.123Z`.
public enum Timestamp {
    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)

    public static func string(from date: Date) -> String {
        date.formatted(style)
    }

    public static func now() -> String { string(from: Date()) }

    /// Parses RFC 3339 text, with or without fractional seconds.
    public static func date(from text: String) -> Date? {
        if let date = try? style.parse(text) { return date }
        return try? Date.ISO8601FormatStyle(timeZone: .gmt).parse(text)
    }
}
