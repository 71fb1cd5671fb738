import BenchmarkSupport
import Foundation
import Logging

/// ingress-bench: device messages per second through one ingress instance (the release binary
/// beside this one) on a devbroker, with kcat's one-hop rate (consume the same messages, produce
/// them to another topic) measured beside it in the same run.
///
/// `INGRESS_BENCH_DEVICES` devices (10,000), each a thermostat twin in twin-service: a message
/// from each warms ingress up (group joined, twins and models looked up and cached), then
/// `INGRESS_BENCH_MESSAGES` device messages (200,000) are timed through it, steady state (see
/// `IngressRun`). The median of `INGRESS_BENCH_RUNS` runs (3). A run fails when a message produces
/// no command (lost or dead-lettered) or two; `INGRESS_BENCH_LOSE_ONE=1` sends one message from a
/// device with no twin to show that failure.
///
///     swift build -c release --product devbroker --product twin-service --product ingress --product ingress-bench && .build/release/ingress-bench
let environment = ProcessInfo.processInfo.environment
let messages = Int(environment["INGRESS_BENCH_MESSAGES"] ?? "") ?? 200_000
let devices = Int(environment["INGRESS_BENCH_DEVICES"] ?? "") ?? 10_000
let runs = max(1, Int(environment["INGRESS_BENCH_RUNS"] ?? "") ?? 3)
let losingOne = environment["INGRESS_BENCH_LOSE_ONE"] == "1"
let goal = 60_000.0
let logger = {
    var logger = Logger(label: "ingress-bench")
    logger.logLevel = .warning
    return logger
}()

await runBenchmark("ingress-bench") {
    print("ingress-bench: \(messages) device messages from \(devices) devices, \(runs) run(s), \(BenchFixture.partitions) partitions")
    let fixture = try await BenchFixture(devices: devices, runs: runs)
    defer { fixture.stop() }
    var results: [IngressRun.Result] = []
    for run in 1...runs {
        let result = try await IngressRun(run: run, messages: messages, devices: devices, fixture: fixture, losingOne: losingOne, logger: logger)
            .measure()
        print(
            "run \(run) of \(runs): ingress \(String(format: "%.0f", result.ingress)) msgs/s (warm-up \(String(format: "%.1f", result.warmUp)) s), "
                + "kcat one hop \(String(format: "%.0f", result.kcat)) msgs/s")
        results.append(result)
    }
    let ingress = median(results.map(\.ingress))
    let warmUp = median(results.map(\.warmUp))
    let kcat = median(results.map(\.kcat))
    print("")
    print("| work | msgs/s (median of \(runs)) | goal |")
    print("| --- | --- | --- |")
    print("| ingress: device messages → twin commands, delivered | \(String(format: "%.0f", ingress)) | ≥ \(Int(goal)) |")
    print("| warm-up: start, join, a message per device (\(devices) look-ups) | \(String(format: "%.1f", warmUp)) s | |")
    print("| kcat one hop: consume → produce the same messages | \(String(format: "%.0f", kcat)) | |")
    print("| ingress / kcat | \(String(format: "%.0f", ingress / kcat * 100))% | |")
    print("lost: 0; goal \(ingress >= goal ? "met" : "missed")")
    let summary: [String: Any] = [
        "messages": messages, "devices": devices, "runs": runs, "ingress_msgs_per_s": ingress.rounded(),
        "warm_up_s": (warmUp * 10).rounded() / 10, "kcat_msgs_per_s": kcat.rounded(),
        "ingress_to_kcat": (ingress / kcat * 100).rounded() / 100, "lost": 0, "goal_msgs_per_s": goal,
        "ingress_msgs_per_s_each_run": results.map { $0.ingress.rounded() }, "kcat_msgs_per_s_each_run": results.map { $0.kcat.rounded() },
    ]
    print(String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys]), as: UTF8.self))
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
