import ArgumentParser
import Foundation
import TwinflowCodec

/// `twinctl series ID`: one aggregate of a twin's time series per interval, from tsi-store's
/// `aggregateSeries`, as a table (with a sparkline when the output is a terminal).
struct SeriesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "series", abstract: "Print a twin's time series aggregated per interval (tsi-store's aggregateSeries).")

    @Option(help: "The time-series store (default: $TSI_URL or http://localhost:8084).")
    var store: String = ProcessInfo.processInfo.environment["TSI_URL"] ?? "http://localhost:8084"
    @Argument(help: "The twin ID (the time-series ID).") var id: String
    @Option(parsing: .unconditional, help: "Start: an RFC 3339 time, 'now', or relative to now such as -1h, -30m, -7d.") var from: String = "-1h"
    @Option(parsing: .unconditional, help: "End (exclusive), in the same forms.") var to: String = "now"
    @Option(help: "The interval, an ISO 8601 duration of whole minutes (PT1M, PT1H, P1D).") var interval: String = "PT1M"
    @Option(help: "The aggregate: avg, min, max, sum, count, first or last.") var agg: String = "avg"
    @Option(help: "The telemetry property, flattened (Front.Temperature).") var property: String = "Temperature"

    func validate() throws {
        guard ["avg", "min", "max", "sum", "count", "first", "last"].contains(agg) else {
            throw ValidationError("--agg must be avg, min, max, sum, count, first or last")
        }
    }

    func run() async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let start = try Self.time(from, now: now, option: "--from")
        let end = try Self.time(to, now: now, option: "--to")
        let variable: JSONValue =
            agg == "count"
            ? ["kind": "aggregate", "aggregation": ["tsx": .string("count($event['\(property)'])")]]
            : ["kind": "numeric", "value": ["tsx": .string("$event['\(property)']")], "aggregation": ["tsx": .string("\(agg)($value)")]]
        let body: JSONValue = [
            "aggregateSeries": [
                "timeSeriesId": [.string(id)],
                "searchSpan": ["from": .string(TimeSeriesTime.string(milliseconds: start)), "to": .string(TimeSeriesTime.string(milliseconds: end))],
                "interval": .string(interval), "inlineVariables": ["Value": variable], "projectedVariables": ["Value"],
            ]
        ]
        let answer = try await TwinServiceClient(base: store).send(.post, "/timeseries/query", body: body)
        let timestamps = answer["timestamps"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let values = answer["properties"]?.arrayValue?.first?["values"]?.arrayValue?.map(\.doubleValue) ?? []
        print(Self.table(timestamps: timestamps, values: values, heading: "\(agg)(\(property))"))
        if isatty(STDOUT_FILENO) != 0, values.count > 1 {
            print("")
            print(Self.sparkline(values))
        }
    }

    /// An RFC 3339 time, `now`, or `-<n><s|m|h|d>` before now.
    static func time(_ text: String, now: Int64, option: String) throws -> Int64 {
        if text == "now" { return now }
        if let milliseconds = TimeSeriesTime.milliseconds(from: text) { return milliseconds }
        let units: [Character: Int64] = ["s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000]
        if text.hasPrefix("-"), let unit = text.last.flatMap({ units[$0] }), let count = Int64(text.dropFirst().dropLast()), count >= 0,
            case let (span, overflow) = count.multipliedReportingOverflow(by: unit), !overflow,
            TimeSeriesTime.representable.contains(now - span)
        {
            return now - span
        }
        throw ValidationError("\(option) '\(text)' is not an RFC 3339 time, 'now', or relative such as -1h")
    }

    static func table(timestamps: [String], values: [Double?], heading: String) -> String {
        let width = max(24, timestamps.map(\.count).max() ?? 0)
        var lines = [
            "timestamp".padding(toLength: width, withPad: " ", startingAt: 0) + "  " + heading,
            String(repeating: "-", count: width) + "  " + String(repeating: "-", count: heading.count),
        ]
        for (index, timestamp) in timestamps.enumerated() {
            let value = index < values.count ? values[index] : nil
            lines.append(timestamp.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + (value.map(Self.number) ?? "-"))
        }
        return lines.joined(separator: "\n")
    }

    static func number(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(format: "%.4g", value)
    }

    /// ▁▂▃▄▅▆▇█ from the smallest value to the largest; a space where an interval has none.
    static func sparkline(_ values: [Double?]) -> String {
        let bars: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
        let present = values.compactMap { $0 }
        guard let low = present.min(), let high = present.max() else { return "" }
        return String(
            values.map { value -> Character in
                guard let value else { return " " }
                guard high > low else { return bars[3] }
                return bars[min(bars.count - 1, Int((value - low) / (high - low) * Double(bars.count - 1) + 0.5))]
            })
    }
}
