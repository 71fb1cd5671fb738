import BenchmarkSupport
import Foundation
import Logging

/// command-bench: patch commands from `twins.commands` applied by twin-service (the release binary
/// beside this one, given this process's environment) on a devbroker, with their notifications on
/// `eventgrid.twin-events`. Two modes:
///
/// - throughput (the default): `COMMAND_BENCH_COMMANDS` commands (200,000) for `COMMAND_BENCH_TWINS`
///   twins (10,000) wait on the topic before twin-service starts; commands per second until the last
///   notification, the median of `COMMAND_BENCH_RUNS` runs (3).
/// - latency (`--latency` or `COMMAND_BENCH_MODE=latency`): commands paced at each of
///   `COMMAND_BENCH_RATES` commands a second (`100,1000`) for `COMMAND_BENCH_SECONDS` seconds (10)
///   each; p50 and p99 from a command's hand-off to the producer to its Twin.Update's arrival.
///
/// Either mode fails when a notification is lost. `COMMAND_BENCH_LOSE_ONE=1` sends one command (of
/// each latency phase) to a twin that does not exist, so its notification never comes: it shows that failure.
///
///     swift build -c release --product devbroker --product twin-service --product command-bench && .build/release/command-bench
let environment = ProcessInfo.processInfo.environment
let twins = Int(environment["COMMAND_BENCH_TWINS"] ?? "") ?? 10_000
let losingOne = environment["COMMAND_BENCH_LOSE_ONE"] == "1"
let logger = {
    var logger = Logger(label: "command-bench")
    logger.logLevel = .warning
    return logger
}()

await runBenchmark("command-bench") {
    if CommandLine.arguments.dropFirst().contains("--latency") || environment["COMMAND_BENCH_MODE"] == "latency" {
        try await measureLatency()
    } else {
        try await measureThroughput()
    }
}

func measureThroughput() async throws {
    let commands = Int(environment["COMMAND_BENCH_COMMANDS"] ?? "") ?? 200_000
    let runs = max(1, Int(environment["COMMAND_BENCH_RUNS"] ?? "") ?? 3)
    // This machine's speed varies from run to run, so the benchmark runs `COMMAND_BENCH_RUNS` times,
    // each on a fresh broker and store, and reports the median.
    var measured: [(steady: Double, overall: Double)] = []
    for run in 1...runs {
        let result = try await ThroughputRun(twins: twins, commands: commands, losingOne: losingOne, logger: logger).measure()
        print("run \(run) of \(runs): \(String(format: "%.0f", result.steady)) commands/s, \(String(format: "%.0f", result.overall)) from start")
        measured.append(result)
    }
    let steady = median(measured.map(\.steady))
    let overall = median(measured.map(\.overall))
    print("")
    print("patch commands applied, notifications delivered   \(String(format: "%10.0f", steady)) commands/s, median of \(runs) (goal ≥ 20,000)")
    print("the same from twin-service's start (incl. join)   \(String(format: "%10.0f", overall)) commands/s, median")
    let summary: [String: Any] = [
        "mode": "throughput", "commands": commands, "twins": twins, "runs": runs, "commands_per_s": steady.rounded(),
        "commands_per_s_from_start": overall.rounded(), "commands_per_s_each_run": measured.map { $0.steady.rounded() },
    ]
    print(String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys]), as: UTF8.self))
}

func measureLatency() async throws {
    let rates = (environment["COMMAND_BENCH_RATES"] ?? "100,1000").split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
    let seconds = max(1, Int(environment["COMMAND_BENCH_SECONDS"] ?? "") ?? 10)
    guard !rates.isEmpty else { throw BenchmarkError("COMMAND_BENCH_RATES names no rate: \(environment["COMMAND_BENCH_RATES"] ?? "")") }
    let goalMilliseconds = 15.0
    let phases = try await LatencyRun(twins: twins, rates: rates, secondsPerRate: seconds, losingOne: losingOne, logger: logger).measure()
    print("")
    print("command produced on twins.commands → its Twin.Update read from eventgrid.twin-events (\(twins) twins, \(seconds) s a rate)")
    print("| commands/s | commands | p50 ms | p99 ms | max ms | goal: p99 < \(Int(goalMilliseconds)) ms |")
    print("|------------|----------|--------|--------|--------|-------------------|")
    for phase in phases {
        let met = phase.percentile(99) < goalMilliseconds ? "met" : "missed"
        print(
            "| \(String(format: "%10d", phase.rate)) | \(String(format: "%8d", phase.commands)) | "
                + "\(String(format: "%6.2f", phase.percentile(50))) | \(String(format: "%6.2f", phase.percentile(99))) | "
                + "\(String(format: "%6.2f", phase.milliseconds.last ?? 0)) | \(met.padding(toLength: 17, withPad: " ", startingAt: 0)) |")
    }
    var summary: [String: Any] = ["mode": "latency", "twins": twins, "seconds_per_rate": seconds, "goal_p99_ms": goalMilliseconds]
    for phase in phases {
        summary["commands_at_\(phase.rate)_per_s"] = phase.commands
        summary["p50_ms_at_\(phase.rate)_per_s"] = (phase.percentile(50) * 100).rounded() / 100
        summary["p99_ms_at_\(phase.rate)_per_s"] = (phase.percentile(99) * 100).rounded() / 100
    }
    print(String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys]), as: UTF8.self))
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
