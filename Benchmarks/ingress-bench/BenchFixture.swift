import BenchmarkSupport
import Foundation
import Logging
import TwinGraph
import TwinflowCodec
import TwinflowKafka

/// A devbroker with each run's topics, and twin-service (the release binary beside this one) on a
/// store of `devices` thermostats, answering ingress's look-ups. twin-service consumes a commands
/// topic no run writes to, so it takes no CPU from ingress once the look-ups are done.
final class BenchFixture {
    static let partitions = 64

    let devbroker: DevBrokerChild
    let kafka: KafkaConfiguration
    let twinsURL: String
    private let service: ServiceChild

    init(devices: Int, runs: Int) async throws {
        // 64 partitions: the mock keeps about 5 MiB a partition, and a run's messages must all stay.
        devbroker = try DevBrokerChild(partitions: Self.partitions, topics: (1...runs).flatMap(Self.topics(run:)))
        kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
        let directory = FileManager.default.temporaryDirectory.appending(path: "ingress-bench-\(UUID())")
        let storePath = directory.appending(path: "twins.sqlite").path
        try await Self.load(devices: devices, into: storePath)
        let deadline = ContinuousClock.now + .seconds(10)
        while FileManager.default.fileExists(atPath: storePath + "-wal"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        service = try ServiceChild(
            "twin-service",
            environment: [
                "KAFKA_BOOTSTRAP_SERVERS": devbroker.bootstrap, "TWINFLOW_DATA_DIR": directory.path,
                Topics.variable(for: Topics.defaults.twinCommands): "ingress-bench.unused",
            ])
        twinsURL = "http://127.0.0.1:\(service.httpPort)"
        try await service.waitUntilAnswering()
    }

    /// The topics of run `run`: device messages, ingress's commands and dead letters, kcat's copy.
    static func topics(run: Int) -> [String] {
        [deviceTopic(run), commandsTopic(run), deadLetterTopic(run), kcatTopic(run)]
    }

    static func deviceTopic(_ run: Int) -> String { "ingress-bench.d2c.\(run)" }
    static func commandsTopic(_ run: Int) -> String { "ingress-bench.commands.\(run)" }
    static func deadLetterTopic(_ run: Int) -> String { "ingress-bench.deadletter.\(run)" }
    static func kcatTopic(_ run: Int) -> String { "ingress-bench.kcat.\(run)" }

    static func deviceID(_ index: Int) -> String { "thermo-\(index)" }

    func checkServiceRunning() throws {
        try service.checkRunning()
    }

    func stop() {
        service.stop()
        devbroker.stop()
    }

    private static func load(devices: Int, into storePath: String) async throws {
        let graph = try await DigitalTwinGraph(store: SQLiteTwinStore(path: storePath))
        let folder = URL(filePath: #filePath).deletingLastPathComponent().appending(path: "../../deploy/models/seed")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }.sorted()
        _ = try await graph.addModels(.array(try files.map { try JSONValue.parse(Array(try Data(contentsOf: folder.appending(path: $0)))) }))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for index in stride(from: worker, to: devices, by: 8) {
                        try await graph.putTwin(
                            deviceID(index), body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20])
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
