import BenchmarkSupport
import Foundation
import Histogram
import Logging

/// pipeline-bench (`make bench`): the whole pipeline in release on a devbroker, every service the
/// release binary beside this one on the contract's topics (see `Pipeline`):
///
///     iothub.d2c → ingress → twins.commands → twin-service ─┬─ eventgrid.twin-events → propagator → twins.commands → twin-service (room)
///                                                           └─ eventhub.telemetry → tsi-forwarder → eventhub.tsi → tsi-store
///
/// twin-service holds `PIPELINE_BENCH_DEVICES` thermostats (1,000), each in a room by
/// `rel_has_thermostat`, loaded straight into its store. Every device message carries a unique
/// `Temperature` that increases for each device, a unique message ID and a recent `enqueuedTime`.
///
/// 1. Highest sustainable rate (`ThroughputRun`). A message from every device first warms the
///    pipeline up (groups joined, twins looked up, every room set). Then ingress is paused (SIGSTOP)
///    while `PIPELINE_BENCH_MESSAGES` messages (100,000) are produced round the devices, and kcat
///    copies them once (`kcat -C … | kcat -P …` with Twinflow's producer properties): the broker's
///    raw pass-through in the same run. Ingress goes on (SIGCONT); end to end is those messages over
///    the time from then until tsi-store has stored every one (its `twinflow_tsi_store_stored_total`)
///    and the Twin.Updates stopped with every room on its thermostat's last value (twin-service's
///    query API). Each stage's rate is its output's growth over the span from the sample before its
///    first growth to the sample of its last, all sampled at once every 20 ms without a consumer
///    taking CPU from the pipeline: ingress's `twinflow_ingress_commands_total`, the high watermarks
///    of `eventhub.telemetry` (one event per device message applied by twin-service),
///    `eventgrid.twin-events` (the thermostats' and the rooms' Twin.Updates) and `twins.commands`
///    (ingress's commands and the propagator's room commands), the propagator's
///    `twinflow_propagator_{propagated,coalesced}_total` (the thermostat changes it handled; it sends
///    one command per room and batch), `eventhub.tsi` (tsi-forwarder) and tsi-store's
///    `twinflow_tsi_store_stored_total`.
///    Lost = messages not stored in tsi-store + rooms not on their last value, counted when nothing
///    moved for 20 s; anything lost fails the run.
/// 2. Latency at fixed rates (`LatencyRun`), 1,000 and 10,000 messages/s for `PIPELINE_BENCH_SECONDS`
///    (10) each: device message (just before it is produced) → its room's Twin.Update with
///    `currentTemp` (a reader of its own on `eventgrid.twin-events`, matched by the unique value; a
///    later value of the same thermostat stands for one the propagator coalesced), and device message
///    → queryable in tsi-store (every tenth message goes to one probe device, whose events a poller
///    asks for with `getEvents` every 5 ms). p50 and p99 from HdrHistograms, and the p99 of each
///    second. Beside them, device message → its thermostat's Twin.Update (ingress and twin-service,
///    the first half of the way to the room), from the same reader, and each process's share of a
///    core while the messages went through.
///
/// The mock broker keeps about 5 MiB or 100,000 messages a partition and drops older ones. The
/// throughput run's pipeline gets `PIPELINE_BENCH_PARTS` partitions a topic (64): it is not paced,
/// and its messages (a few hundred bytes each on `iothub.d2c`, up to two Twin.Updates per message on
/// `eventgrid.twin-events`) stay whole, as kcat's copy checks (it must find every message of
/// `iothub.d2c`). Each fixed rate then runs on a pipeline of its own (a new devbroker and services),
/// paced by the producer, on the contract's 8 partitions a topic (`PIPELINE_BENCH_LATENCY_PARTS`),
/// what devbroker, `make run` and compose create, while its messages fit the mock's retention there
/// (up to 20,000), else on `PIPELINE_BENCH_PARTS`. Partitions are not free on the mock: every fetch
/// carries every partition, and a fetch returns as soon as one partition holds a message set.
///
/// `PIPELINE_BENCH_HOPS=1` also reads `twins.commands` and times each hop by the broker's timestamps
/// (a consumer more on the measured path).
///
/// `PIPELINE_BENCH_RATES` changes the fixed rates (`1000,10000`); the goal's p99 is that at 1,000/s,
/// else at the first rate. `PIPELINE_BENCH_LOSE_ONE=1` sends one message of the throughput run from a device with no twin:
/// ingress dead-letters it, tsi-store never stores it, and the run fails naming what was lost.
///
///     make bench
///     swift build -c release --product pipeline-bench (and devbroker, twin-service, ingress, propagator, tsi-forwarder, tsi-store)
///     PIPELINE_BENCH_MESSAGES=20000 PIPELINE_BENCH_DEVICES=200 PIPELINE_BENCH_SECONDS=3 .build/release/pipeline-bench
let environment = ProcessInfo.processInfo.environment
let messages = Int(environment["PIPELINE_BENCH_MESSAGES"] ?? "") ?? 100_000
let devices = max(2, Int(environment["PIPELINE_BENCH_DEVICES"] ?? "") ?? 1_000)
let seconds = max(1, Int(environment["PIPELINE_BENCH_SECONDS"] ?? "") ?? 10)
let partitions = max(1, Int(environment["PIPELINE_BENCH_PARTS"] ?? "") ?? 64)
let measuringHops = environment["PIPELINE_BENCH_HOPS"] == "1"
let contractPartitions = max(1, Int(environment["PIPELINE_BENCH_LATENCY_PARTS"] ?? "") ?? 8)
let losingOne = environment["PIPELINE_BENCH_LOSE_ONE"] == "1"
let rates = (environment["PIPELINE_BENCH_RATES"] ?? "1000,10000").split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
let throughputGoal = 20_000.0
let latencyGoal = 50.0
let logger = {
    var logger = Logger(label: "pipeline-bench")
    logger.logLevel = .warning
    return logger
}()

/// An interrupted run stops its children (devbroker, the services, kcat) before it ends.
let interruptions = [SIGINT, SIGTERM].map { number in
    signal(number, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
    source.setEventHandler {
        for signal in ["-CONT", "-TERM"] {
            let pkill = Process()
            pkill.executableURL = URL(filePath: "/usr/bin/pkill")
            pkill.arguments = [signal, "-P", "\(getpid())"]
            try? pkill.run()
            pkill.waitUntilExit()
        }
        FileHandle.standardError.write(Data("pipeline-bench interrupted; its children were stopped\n".utf8))
        exit(130)
    }
    source.resume()
    return source
}

/// A fixed-rate run's partitions a topic: the contract's 8 (what devbroker, `make run` and compose
/// create) while its messages fit the mock's retention there (up to 20,000, at up to two
/// Twin.Updates of about 600 bytes each, stay under 5 MiB a partition), else the throughput run's.
func latencyPartitions(rate: Int) -> Int { rate * seconds <= 20_000 ? contractPartitions : max(partitions, contractPartitions) }

/// How the fixed-rate runs keep every message from the mock's retention, for the output.
let retention =
    rates.map { "\($0)/s on \(latencyPartitions(rate: $0)) partitions" }.joined(separator: ", ") + ", each on a pipeline of its own, paced"

func format(_ value: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", value) }
func milliseconds(_ histogram: Histogram<UInt64>, _ percentile: Double) -> Double {
    (Double(histogram.valueAtPercentile(percentile)) / 10).rounded() / 100
}

await runBenchmark("pipeline-bench") {
    guard !rates.isEmpty else { throw BenchmarkError("PIPELINE_BENCH_RATES names no rate") }
    print(
        "pipeline-bench: \(messages) device messages from \(devices) devices, \(partitions) partitions a topic (not paced); "
            + "latency at \(rates.map(String.init).joined(separator: " and ")) msgs/s (paced) for \(seconds) s each")
    let throughputPipeline = try await Pipeline(devices: devices, partitions: partitions, logger: logger)
    let throughput: ThroughputRun.Result
    do {
        defer { throughputPipeline.stop() }
        throughput = try await ThroughputRun(pipeline: throughputPipeline, devices: devices, messages: messages, losingOne: losingOne).measure()
    }
    print(
        "throughput: \(format(throughput.endToEnd)) msgs/s end to end (\(messages) in \(format(throughput.seconds, 2)) s; warm-up \(format(throughput.warmUp, 1)) s), "
            + "kcat \(format(throughput.kcat)) msgs/s")
    var latencies: [(rate: Int, result: LatencyRun.Result)] = []
    var nextValue = ThroughputRun.value(devices + messages) + 1_000_000
    for rate in rates {
        let pipeline = try await Pipeline(devices: devices, partitions: latencyPartitions(rate: rate), logger: logger)
        defer { pipeline.stop() }
        let result = try await LatencyRun(
            pipeline: pipeline, devices: devices, rate: rate, seconds: seconds, firstValue: nextValue, measuringHops: measuringHops
        ).measure()
        nextValue += rate * seconds + 10 * devices + 1_000_000
        print(
            "latency at \(rate)/s (\(latencyPartitions(rate: rate)) partitions): device → room p50/p99 \(milliseconds(result.room, 50))/\(milliseconds(result.room, 99)) ms (\(result.room.totalCount)), "
                + "device → tsi-store p50/p99 \(milliseconds(result.tsi, 50))/\(milliseconds(result.tsi, 99)) ms (\(result.tsi.totalCount))")
        print("  device → room p99 by second: \(result.roomP99BySecond.map { String(format: "%.1f", $0) }.joined(separator: " ")) ms")
        print("  CPU (cores): \(result.cpu)")
        if measuringHops {
            guard let timed = result.hops.first?.histogram.totalCount, timed > 0 else {
                throw BenchmarkError("PIPELINE_BENCH_HOPS=1, but no message was timed hop by hop at \(rate)/s")
            }
            let hops = result.hops.map { "\($0.name) \($0.histogram.valueAtPercentile(50))/\($0.histogram.valueAtPercentile(99))" }
            print(
                "  hops p50/p99 ms by the broker's timestamps (\(timed) values): \(hops.joined(separator: ", "))"
            )
        }
        latencies.append((rate, result))
    }

    print("")
    print("| figure | value | goal |")
    print("| --- | --- | --- |")
    print(
        "| device messages/s end to end (device → stored in tsi-store and room updated) | \(format(throughput.endToEnd)) | ≥ \(Int(throughputGoal)) |"
    )
    for stage in throughput.stages {
        print("| \(stage.name): \(stage.count) messages | \(format(stage.rate))/s | |")
    }
    print("| kcat one hop (raw broker pass-through), same run | \(format(throughput.kcat))/s | |")
    print("| end to end / kcat | \(format(throughput.endToEnd / throughput.kcat * 100))% | |")
    for (rate, result) in latencies {
        let goal = rate == 1_000 ? "< \(Int(latencyGoal)) ms (p99)" : ""
        print(
            "| device → room currentTemp at \(rate)/s, p50 / p99 | \(milliseconds(result.room, 50)) / \(milliseconds(result.room, 99)) ms | \(goal) |"
        )
        print(
            "| of which device → thermostat Twin.Update (ingress, twin-service) at \(rate)/s, p50 / p99 | \(milliseconds(result.thermostat, 50)) / \(milliseconds(result.thermostat, 99)) ms | |"
        )
        print("| device → queryable in tsi-store at \(rate)/s, p50 / p99 | \(milliseconds(result.tsi, 50)) / \(milliseconds(result.tsi, 99)) ms | |")
    }
    print("| lost | 0 | 0 |")
    let atGoalRate = latencies.first { $0.rate == 1_000 }?.result ?? latencies[0].result
    let p99Room = milliseconds(atGoalRate.room, 99)
    print(
        "partitions: \(partitions) a topic for the unpaced throughput run; for the fixed rates \(retention); goals \(throughput.endToEnd >= throughputGoal && p99Room < latencyGoal ? "met" : "missed")"
    )
    var summary: [String: Any] = [
        "e2e_msgs_per_s": throughput.endToEnd.rounded(), "lost": 0, "p50_ms_device_to_room": milliseconds(atGoalRate.room, 50),
        "p99_ms_device_to_room": p99Room, "p50_ms_device_to_tsi": milliseconds(atGoalRate.tsi, 50),
        "p99_ms_device_to_tsi": milliseconds(atGoalRate.tsi, 99), "kcat_msgs_per_s": throughput.kcat.rounded(),
        "e2e_to_kcat": (throughput.endToEnd / throughput.kcat * 100).rounded() / 100, "messages": messages, "devices": devices,
        "partitions": partitions, "retention": "\(partitions) partitions for the throughput run; for the fixed rates \(retention)",
        "latency_seconds": seconds,
        "stage_msgs_per_s": Dictionary(uniqueKeysWithValues: throughput.stages.map { ($0.name, $0.rate.rounded()) }),
    ]
    for (rate, result) in latencies {
        summary["p50_ms_device_to_room_at_\(rate)"] = milliseconds(result.room, 50)
        summary["p99_ms_device_to_room_at_\(rate)"] = milliseconds(result.room, 99)
        summary["p50_ms_device_to_thermostat_at_\(rate)"] = milliseconds(result.thermostat, 50)
        summary["p99_ms_device_to_thermostat_at_\(rate)"] = milliseconds(result.thermostat, 99)
        summary["p50_ms_device_to_tsi_at_\(rate)"] = milliseconds(result.tsi, 50)
        summary["p99_ms_device_to_tsi_at_\(rate)"] = milliseconds(result.tsi, 99)
    }
    print(String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys]), as: UTF8.self))
}
