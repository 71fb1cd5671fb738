import BenchmarkSupport
import Foundation
import Histogram
import Logging
import TwinBenchSupport

/// propagator-bench: the propagator (the release binary beside this one) on a devbroker, with
/// twin-service holding the seed scenario (`PROPAGATOR_BENCH_ROOMS` Rooms, 10,000, each with a
/// Thermostat by `rel_has_thermostat`).
///
/// - Throughput: `PROPAGATOR_BENCH_UPDATES` thermostat Twin.Updates (200,000), written to a topic
///   of the run's, through one propagator in steady state (see `ThroughputRun`); the median of
///   `PROPAGATOR_BENCH_RUNS` runs (3). Every update must make exactly one room command.
/// - Latency: thermostat patch commands at `PROPAGATOR_BENCH_RATE` a second (1,000) for
///   `PROPAGATOR_BENCH_SECONDS` (10) through twin-service and the propagator on the contract's
///   topics (`PROPAGATOR_BENCH_LATENCY_PARTITIONS`, 8, a topic): a thermostat's Twin.Update to its
///   room's Twin.Update, p50 and p99 from an HdrHistogram, and the p99 of each second; beside them,
///   each process's share of a core while it ran. `PROPAGATOR_BENCH_HOPS=1` also times each hop by
///   the broker's timestamps (a consumer more of `twins.commands` on the measured path).
///
/// `PROPAGATOR_BENCH_LOSE_ONE=1` sends one update of a thermostat with no room in each part, to
/// show the failure.
///
///     swift build -c release --product devbroker --product twin-service --product propagator --product propagator-bench && .build/release/propagator-bench
let environment = ProcessInfo.processInfo.environment
let rooms = Int(environment["PROPAGATOR_BENCH_ROOMS"] ?? "") ?? 10_000
let updates = Int(environment["PROPAGATOR_BENCH_UPDATES"] ?? "") ?? 200_000
let runs = max(1, Int(environment["PROPAGATOR_BENCH_RUNS"] ?? "") ?? 3)
let rate = Int(environment["PROPAGATOR_BENCH_RATE"] ?? "") ?? 1_000
let seconds = Int(environment["PROPAGATOR_BENCH_SECONDS"] ?? "") ?? 10
let losingOne = environment["PROPAGATOR_BENCH_LOSE_ONE"] == "1"
let measuringHops = environment["PROPAGATOR_BENCH_HOPS"] == "1"
let latencyPartitions = Int(environment["PROPAGATOR_BENCH_LATENCY_PARTITIONS"] ?? "") ?? 8
let parts = Set((environment["PROPAGATOR_BENCH_PARTS"] ?? "throughput,latency").split(separator: ",").map(String.init))
let throughputGoal = 20_000.0
let latencyGoal = 20.0
// The mock broker keeps about 5 MiB a partition; a run's updates (about 400 bytes each) must all stay.
let partitions = 64
let logger = {
    var logger = Logger(label: "propagator-bench")
    logger.logLevel = .warning
    return logger
}()

await runBenchmark("propagator-bench") {
    print(
        "propagator-bench: \(rooms) rooms; \(updates) updates, \(runs) run(s), \(partitions) partitions; latency at \(rate)/s for \(seconds) s on \(latencyPartitions) partitions"
    )
    var results: [ThroughputRun.Result] = []
    if parts.contains("throughput") {
        let fixture = try await TwinFixture(
            rooms: rooms, partitions: partitions, topics: (1...runs).flatMap(ThroughputRun.topics(run:)), commandsTopic: "propagator-bench.unused")
        defer { fixture.stop() }
        for run in 1...runs {
            let result = try await ThroughputRun(
                run: run, updates: updates, fixture: fixture, partitions: partitions, losingOne: losingOne, logger: logger
            ).measure()
            print("run \(run) of \(runs): \(String(format: "%.0f", result.rate)) updates/s (warm-up \(String(format: "%.1f", result.warmUp)) s)")
            results.append(result)
        }
    }
    let throughput = results.isEmpty ? 0 : median(results.map(\.rate))

    let latencyFixture = try await TwinFixture(rooms: rooms, partitions: latencyPartitions, topics: [])
    defer { latencyFixture.stop() }
    let latency = try await LatencyRun(
        rate: rate, seconds: seconds, fixture: latencyFixture, losingOne: losingOne, measuringHops: measuringHops, logger: logger
    ).measure()
    let p50 = Double(latency.histogram.valueAtPercentile(50)) / 1000
    let p99 = Double(latency.histogram.valueAtPercentile(99)) / 1000
    let maximum = Double(latency.histogram.max) / 1000
    print("latency at \(rate)/s: \(latency.updates) room updates, p50 \(String(format: "%.2f", p50)) ms, p99 \(String(format: "%.2f", p99)) ms")
    if measuringHops {
        guard latency.propagatorHop.totalCount > 0 else {
            throw BenchmarkError("PROPAGATOR_BENCH_HOPS=1, but no update was timed hop by hop (no room command read from twins.commands)")
        }
        print(
            "  by the broker's timestamps: propagator hop p50/p99 \(latency.propagatorHop.valueAtPercentile(50) / 1000)/\(latency.propagatorHop.valueAtPercentile(99) / 1000) ms, "
                + "twin-service hop p50/p99 \(latency.twinServiceHop.valueAtPercentile(50) / 1000)/\(latency.twinServiceHop.valueAtPercentile(99) / 1000) ms"
        )
    }

    print("  p99 by second: \(latency.p99BySecond.map { String(format: "%.1f", $0) }.joined(separator: " ")) ms")
    print("  CPU (cores): \(latency.cpu)")

    print("")
    print("| figure | value | goal |")
    print("| --- | --- | --- |")
    print("| propagated updates/s (median of \(runs)) | \(String(format: "%.0f", throughput)) | ≥ \(Int(throughputGoal)) |")
    print("| thermostat → room Twin.Update at \(rate)/s, p50 | \(String(format: "%.2f", p50)) ms | |")
    print("| thermostat → room Twin.Update at \(rate)/s, p99 | \(String(format: "%.2f", p99)) ms | < \(Int(latencyGoal)) ms |")
    print("lost: 0; goals \(throughput >= throughputGoal && p99 < latencyGoal ? "met" : "missed")")
    let summary: [String: Any] = [
        "rooms": rooms, "updates": updates, "runs": runs, "propagated_per_s": throughput.rounded(),
        "propagated_per_s_each_run": results.map { $0.rate.rounded() }, "latency_rate_per_s": rate, "latency_samples": latency.updates,
        "p50_ms_thermostat_to_room": (p50 * 100).rounded() / 100, "p99_ms_thermostat_to_room": (p99 * 100).rounded() / 100,
        "max_ms_thermostat_to_room": (maximum * 100).rounded() / 100, "lost": 0,
    ]
    print(String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys]), as: UTF8.self))
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
