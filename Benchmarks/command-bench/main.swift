import BenchmarkSupport
import Foundation
import Logging
import TwinGraph
import TwinflowCodec
import TwinflowKafka

/// command-bench: patch commands from `twins.commands` applied by twin-service (the release binary
/// beside this one) on a devbroker, counted as their notifications reach `eventgrid.twin-events`.
///
///     swift build -c release --product devbroker --product twin-service --product command-bench && .build/release/command-bench
let environment = ProcessInfo.processInfo.environment
let twins = Int(environment["COMMAND_BENCH_TWINS"] ?? "") ?? 10_000
let commands = Int(environment["COMMAND_BENCH_COMMANDS"] ?? "") ?? 200_000
let runs = max(1, Int(environment["COMMAND_BENCH_RUNS"] ?? "") ?? 3)
let logger = {
    var logger = Logger(label: "command-bench")
    logger.logLevel = .warning
    return logger
}()

// This machine's speed varies from run to run, so the benchmark runs `COMMAND_BENCH_RUNS` times
// (3 unless set), each on a fresh broker and store, and reports the median.
var measured: [(steady: Double, overall: Double)] = []
for run in 1...runs {
    let result = try await measureOnce()
    print("run \(run) of \(runs): \(String(format: "%.0f", result.steady)) commands/s, \(String(format: "%.0f", result.overall)) from start")
    measured.append(result)
}
let steady = median(measured.map(\.steady))
let overall = median(measured.map(\.overall))
print("")
print("patch commands applied, notifications delivered   \(String(format: "%10.0f", steady)) commands/s, median of \(runs) (goal ≥ 20,000)")
print("the same from twin-service's start (incl. join)   \(String(format: "%10.0f", overall)) commands/s, median")
let summary: [String: Any] = [
    "commands": commands, "twins": twins, "runs": runs, "commands_per_s": steady.rounded(), "commands_per_s_from_start": overall.rounded(),
    "commands_per_s_each_run": measured.map { $0.steady.rounded() },
]
print(String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys]), as: UTF8.self))

/// One run: twins loaded, commands produced, twin-service started, notifications counted.
func measureOnce() async throws -> (steady: Double, overall: Double) {
    let devbroker = try DevBrokerChild(partitions: 8, topics: [])
    defer { devbroker.stop() }
    let kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
    let directory = FileManager.default.temporaryDirectory.appending(path: "command-bench-\(UUID())")
    defer { try? FileManager.default.removeItem(at: directory) }

    // Twins straight into the store; twin-service relays their Create notifications when it starts.
    do {
        let graph = try await DigitalTwinGraph(store: SQLiteTwinStore(path: directory.appending(path: "twins.sqlite").path))
        _ = try await graph.addModels(try seedModels())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for index in stride(from: worker, to: twins, by: 8) {
                        try await graph.putTwin(
                            "thermo-\(index)", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20]
                        )
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: kafka), logger: logger)
    let patchTemplate = try JSONPatch(json: [["op": "replace", "path": "/Temperature", "value": 0]])
    for start in stride(from: 0, to: commands, by: 10_000) {
        let batch = (start..<min(start + 10_000, commands)).map { index in
            var patch = patchTemplate
            patch.operations[0] = .replace(path: patch.operations[0].path, value: .double(Double(index % 400) / 10))
            return TwinCommand(id: "bench-\(index)", twinID: "thermo-\(index % twins)", patch: patch).kafkaMessage(topic: Topics.defaults.twinCommands)
        }
        try await producer.send(batch)
    }
    await producer.shutdown()
    print("command-bench: \(commands) patch commands for \(twins) twins waiting on \(Topics.defaults.twinCommands)")

    let admin = try KafkaAdmin(configuration: kafka, logger: logger)
    let expected = twins + commands

    let service = Process()
    service.executableURL = URL(filePath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appending(path: "twin-service")
    var serviceEnvironment = environment
    serviceEnvironment["KAFKA_BOOTSTRAP_SERVERS"] = devbroker.bootstrap
    serviceEnvironment["TWINFLOW_DATA_DIR"] = directory.path
    serviceEnvironment["HTTP_PORT"] = "\(Int.random(in: 30000..<40000))"
    serviceEnvironment["LOG_LEVEL"] = environment["COMMAND_BENCH_SERVICE_LOG_LEVEL"] ?? "warning"
    service.environment = serviceEnvironment
    let started = ContinuousClock.now
    try service.run()
    defer {
        service.terminate()
        service.waitUntilExit()
    }

    // Notifications are counted by the topic's high watermarks every 10 ms: what the broker has
    // acknowledged, read without a consumer taking CPU from twin-service on this 2-core machine. The
    // twins' Create notifications go out first (the outbox keeps order), so the first count above
    // `twins` marks the first update.
    let deadline = ContinuousClock.now + .seconds(600)
    var eventPartitions: Int?  // known once twin-service has made the topic
    var notifications = 0
    var firstUpdate: ContinuousClock.Instant?
    var last: ContinuousClock.Instant?
    while notifications < expected, ContinuousClock.now < deadline, service.isRunning {
        try await Task.sleep(for: .milliseconds(10))
        guard let partitions = eventPartitions else {
            eventPartitions = try await admin.metadata().topic(named: Topics.defaults.twinEvents).flatMap { $0.error == nil ? $0.partitionCount : nil }
            continue
        }
        let delivered = Int(try await admin.highWatermarks(topic: Topics.defaults.twinEvents, partitions: partitions).reduce(0, +))
        let now = ContinuousClock.now
        if firstUpdate == nil, delivered > twins { firstUpdate = now }
        if delivered > notifications {
            notifications = delivered
            last = now
        }
    }
    guard notifications >= expected, let firstUpdate, let last else {
        throw BenchmarkError("only \(notifications) of \(expected) notifications arrived")
    }
    return (Double(commands) / (last - firstUpdate).seconds, Double(commands) / (last - started).seconds)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func seedModels() throws -> JSONValue {
    let folder = URL(filePath: #filePath).deletingLastPathComponent().appending(path: "../../deploy/models/seed").standardized
    let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }.sorted()
    return .array(try files.map { try JSONValue.parse(Array(try Data(contentsOf: folder.appending(path: $0)))) })
}
