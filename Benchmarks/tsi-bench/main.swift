import BenchmarkSupport
import Foundation
import Histogram
import Logging
import TwinflowTestSupport

/// tsi-bench: tsi-forwarder and tsi-store (the release binaries beside this one) on a devbroker.
///
/// - Throughput: `TSI_BENCH_EVENTS` events (200,000) of `TSI_BENCH_TWINS` twins (1,000) through
///   one tsi-forwarder, then through one tsi-store, each in steady state (see `ThroughputRun`).
/// - Queries: `aggregateSeries` over `TSI_BENCH_QUERY_EVENTS` (1,000,000) stored events of one
///   twin over 30 days: one-minute buckets over a day and one-hour buckets over the month,
///   `TSI_BENCH_QUERIES` (200) of each, p50 and p99.
/// - Latency: telemetry on `eventhub.telemetry` at `TSI_BENCH_RATE` a second (1,000) for
///   `TSI_BENCH_SECONDS` (10) until it is visible in a query, p50 and p99.
///
/// - tsi-store ingest into PostgreSQL: the same run as the store's, with `TWINFLOW_DATABASE_URL` on a
///   new local cluster (PostgreSQL's default settings, fsync on) the benchmark starts and removes, or
///   on the empty database `TSI_BENCH_DATABASE_URL` names.
///
/// `TSI_BENCH_PARTS` (`forwarder,store,store-postgres,queries,latency`) chooses the parts; the goals
/// count only those run.
/// `TSI_BENCH_DUMP=1` lists the latency run's events slower than 100 ms, with when they were sent.
///
///     make bench-tsi
///     TSI_BENCH_EVENTS=20000 TSI_BENCH_QUERY_EVENTS=50000 TSI_BENCH_QUERIES=20 TSI_BENCH_RATE=200 TSI_BENCH_SECONDS=3 .build/debug/tsi-bench
let environment = ProcessInfo.processInfo.environment
let events = Int(environment["TSI_BENCH_EVENTS"] ?? "") ?? 200_000
let twins = Int(environment["TSI_BENCH_TWINS"] ?? "") ?? 1_000
let queryEvents = Int(environment["TSI_BENCH_QUERY_EVENTS"] ?? "") ?? 1_000_000
let queries = Int(environment["TSI_BENCH_QUERIES"] ?? "") ?? 200
let rate = Int(environment["TSI_BENCH_RATE"] ?? "") ?? 1_000
let seconds = Int(environment["TSI_BENCH_SECONDS"] ?? "") ?? 10
let parts = Set((environment["TSI_BENCH_PARTS"] ?? "forwarder,store,store-postgres,queries,latency").split(separator: ",").map(String.init))
let throughputGoal = 60_000.0
let postgresGoal = 30_000.0
let queryGoal = 20.0
let latencyGoal = 500.0
// The mock broker keeps about 5 MiB a partition; a run's events (about 400 bytes each) must all stay.
let partitions = 64
let logger = {
    var logger = Logger(label: "tsi-bench")
    logger.logLevel = .warning
    return logger
}()

func milliseconds(_ histogram: Histogram<UInt64>, _ percentile: Double) -> Double {
    (Double(histogram.valueAtPercentile(percentile)) / 10).rounded() / 100
}

func format(_ value: Double) -> String { String(format: "%.2f", value) }

await runBenchmark("tsi-bench") {
    print(
        "tsi-bench: \(events) events of \(twins) twins, \(partitions) partitions; queries over \(queryEvents) events; latency at \(rate)/s for \(seconds) s"
    )
    let devbroker = try DevBrokerChild(
        partitions: partitions, topics: ThroughputRun.topics(run: 1) + ThroughputRun.topics(run: 2) + ThroughputRun.topics(run: 3))
    defer { devbroker.stop() }
    var table: [(figure: String, value: String, goal: String)] = []
    var summary: [String: Any] = ["events": events, "twins": twins, "query_events": queryEvents, "queries": queries, "lost": 0]
    var met = true
    /// One service's steady-state throughput, in the table and the summary.
    func throughput(
        _ part: ThroughputRun.Part, run: Int, label: String, key: String, goal: Double, environment: [String: String] = [:]
    ) async throws {
        let result = try await ThroughputRun(
            part: part, run: run, events: events, twins: twins, devbroker: devbroker, partitions: partitions, logger: logger,
            environment: environment
        ).measure()
        print("\(label): \(String(format: "%.0f", result.rate)) events/s (warm-up \(String(format: "%.1f", result.warmUp)) s)")
        table.append(("\(label) events/s", String(format: "%.0f", result.rate), "≥ \(Int(goal))"))
        summary[key] = result.rate.rounded()
        met = met && result.rate >= goal
    }
    if parts.contains("forwarder") {
        try await throughput(.forwarder, run: 1, label: "tsi-forwarder", key: "forwarder_events_per_s", goal: throughputGoal)
    }
    if parts.contains("store") {
        try await throughput(.store, run: 2, label: "tsi-store ingest", key: "store_events_per_s", goal: throughputGoal)
    }
    if parts.contains("store-postgres") {
        // An empty database of the user's (`TSI_BENCH_DATABASE_URL`), or one on a new cluster of ours.
        let cluster = environment["TSI_BENCH_DATABASE_URL"] == nil ? try PostgresCluster() : nil
        defer { cluster?.stop() }
        try await throughput(
            .store, run: 3, label: "tsi-store ingest into PostgreSQL", key: "store_postgres_events_per_s", goal: postgresGoal,
            environment: ["TWINFLOW_DATABASE_URL": try environment["TSI_BENCH_DATABASE_URL"] ?? cluster!.makeDatabase("tsibench")])
    }
    if parts.contains("queries") {
        let query = try await QueryRun(events: queryEvents, queries: queries, devbroker: devbroker, logger: logger).measure()
        print("queries: \(queryEvents) events loaded in \(String(format: "%.1f", query.loadSeconds)) s")
        let (dayP99, monthP99) = (milliseconds(query.day, 99), milliseconds(query.month, 99))
        table.append(("aggregateSeries PT1M over a day (\(queryEvents) events stored), p50", "\(format(milliseconds(query.day, 50))) ms", ""))
        table.append(("aggregateSeries PT1M over a day, p99", "\(format(dayP99)) ms", "< \(Int(queryGoal)) ms"))
        table.append(("aggregateSeries PT1H over 30 days, p50", "\(format(milliseconds(query.month, 50))) ms", ""))
        table.append(("aggregateSeries PT1H over 30 days, p99", "\(format(monthP99)) ms", "< \(Int(queryGoal)) ms"))
        summary["p50_ms_aggregate_day_pt1m"] = milliseconds(query.day, 50)
        summary["p99_ms_aggregate_day_pt1m"] = dayP99
        summary["p50_ms_aggregate_month_pt1h"] = milliseconds(query.month, 50)
        summary["p99_ms_aggregate_month_pt1h"] = monthP99
        met = met && dayP99 < queryGoal && monthP99 < queryGoal
    }
    if parts.contains("latency") {
        let latency = try await LatencyRun(rate: rate, seconds: seconds, devbroker: devbroker, logger: logger).measure()
        let latencyP99 = milliseconds(latency.histogram, 99)
        table.append(("eventhub.telemetry → visible in a query at \(rate)/s, p50", "\(format(milliseconds(latency.histogram, 50))) ms", ""))
        table.append(("eventhub.telemetry → visible in a query at \(rate)/s, p99", "\(format(latencyP99)) ms", "< \(Int(latencyGoal)) ms"))
        summary["latency_rate_per_s"] = rate
        summary["latency_samples"] = latency.events
        summary["p50_ms_telemetry_to_query"] = milliseconds(latency.histogram, 50)
        summary["p99_ms_telemetry_to_query"] = latencyP99
        summary["max_ms_telemetry_to_query"] = Double(latency.histogram.max / 10).rounded() / 100
        met = met && latencyP99 < latencyGoal
    }
    print("")
    print("| figure | value | goal |")
    print("| --- | --- | --- |")
    for row in table { print("| \(row.figure) | \(row.value) | \(row.goal) |") }
    print("lost: 0; goals \(met ? "met" : "missed")")
    summary["parts"] = parts.sorted()
    print(String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys]), as: UTF8.self))
}
