import BenchmarkSupport
import Foundation
import Histogram
import Logging
import TsiStore
import TwinflowCodec

/// `aggregateSeries` latency over `events` stored events of one twin, spread evenly over 30 days
/// up to the last whole hour: loaded straight into a store file, then answered by tsi-store (the release
/// binary beside this one) over HTTP. Two queries: one-minute buckets over the last day, and
/// one-hour buckets over the month; each asks avg, min, max and count, and is checked against the
/// number of events the span holds.
struct QueryRun {
    var events: Int
    var queries: Int
    var devbroker: DevBrokerChild
    var logger: Logger

    static let twin = "bench-query"
    static let month: Int64 = 30 * 86_400_000

    struct Result {
        var day: Histogram<UInt64>
        var month: Histogram<UInt64>
        var loadSeconds: Double
    }

    func measure() async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appending(path: "tsi-bench-query-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let end = Telemetry.now() / 3_600_000 * 3_600_000
        let start = end - Self.month
        let loading = ContinuousClock.now
        try await load(into: directory.appending(path: "timeseries.sqlite").path, from: start, to: end)
        let loadSeconds = (ContinuousClock.now - loading).seconds
        let store = try ServiceChild(
            "tsi-store",
            environment: [
                "KAFKA_BOOTSTRAP_SERVERS": devbroker.bootstrap, "TWINFLOW_DATA_DIR": directory.path,
                "TSI_STORE_EVENT_RETENTION": "P400D", "TSI_STORE_ROLLUP_RETENTION": "P400D",
                Topics.variable(for: Topics.defaults.timeSeries): "tsi-bench.query-unused",
            ])
        defer { store.stop() }
        try await store.waitUntilAnswering("/readyz", within: .seconds(120))
        let dayFrom = end - 86_400_000
        let day = try await latencies(
            port: store.httpPort, from: dayFrom, to: end, interval: "PT1M", buckets: 1440, expected: expectedCount(dayFrom, end, start, end))
        let month = try await latencies(port: store.httpPort, from: start, to: end, interval: "PT1H", buckets: 720, expected: events)
        return Result(day: day, month: month, loadSeconds: loadSeconds)
    }

    /// Event `i` is at `start + i * span / events`.
    private func time(_ index: Int, _ start: Int64, _ end: Int64) -> Int64 { start + Int64(index) * (end - start) / Int64(events) }

    private func expectedCount(_ from: Int64, _ to: Int64, _ start: Int64, _ end: Int64) -> Int {
        (0..<events).count {
            let t = time($0, start, end)
            return t >= from && t < to
        }
    }

    private func load(into path: String, from start: Int64, to end: Int64) async throws {
        let store = try SQLiteTimeSeriesStore(path: path, retention: RetentionPolicy(events: 400 * 86_400_000, rollups: 400 * 86_400_000))
        for batchStart in stride(from: 0, to: events, by: 10_000) {
            let batch = (batchStart..<min(batchStart + 10_000, events)).map { index in
                StoredEvent(
                    series: Self.twin, time: time(index, start, end), id: "q-\(index)",
                    values: ["Temperature": .double(15 + Double(index % 200) / 10), "Front.Humidity": .integer(Int64(index % 60))])
            }
            let report = try await store.ingest(batch, now: end)
            guard report.stored == batch.count else { throw BenchmarkError("loading stored \(report.stored) of \(batch.count) events") }
        }
    }

    private func latencies(port: Int, from: Int64, to: Int64, interval: String, buckets: Int, expected: Int) async throws -> Histogram<UInt64> {
        let body: JSONValue = [
            "aggregateSeries": [
                "timeSeriesId": [.string(Self.twin)],
                "searchSpan": ["from": .string(TimeSeriesTime.string(milliseconds: from)), "to": .string(TimeSeriesTime.string(milliseconds: to))],
                "interval": .string(interval),
                "inlineVariables": [
                    "Avg": ["kind": "numeric", "value": ["tsx": "$event.Temperature"], "aggregation": ["tsx": "avg($value)"]],
                    "Min": ["kind": "numeric", "value": ["tsx": "$event.Temperature"], "aggregation": ["tsx": "min($value)"]],
                    "Max": ["kind": "numeric", "value": ["tsx": "$event.Temperature"], "aggregation": ["tsx": "max($value)"]],
                    "Count": ["kind": "aggregate", "aggregation": ["tsx": "count()"]],
                ],
                "projectedVariables": ["Avg", "Min", "Max", "Count"],
            ]
        ]
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for round in 0..<(queries + 10) {
            let started = ContinuousClock.now
            let response = try await BenchHTTP.query(port: port, body)
            let elapsed = ContinuousClock.now - started
            let counts = BenchHTTP.values(response, "Count")
            guard counts.count == buckets else { throw BenchmarkError("\(interval): \(counts.count) buckets, not \(buckets)") }
            let total = counts.compactMap(\.integerValue).reduce(0, +)
            guard total == Int64(expected) else { throw BenchmarkError("\(interval): the buckets count \(total) events, not \(expected)") }
            // The first ten warm the connection and SQLite's page cache.
            if round >= 10 {
                histogram.record(UInt64(max(0, elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000)))
            }
        }
        return histogram
    }
}
