import BenchmarkSupport
import Foundation
import Logging
import TwinGraph
import TwinflowCodec
import TwinflowKafka

/// A devbroker, and twin-service (the release binary beside this one) on a store of `rooms` Rooms,
/// each with a Thermostat by `rel_has_thermostat`: the seed scenario, loaded straight into the store.
final class PropagatorFixture {
    let devbroker: DevBrokerChild
    let kafka: KafkaConfiguration
    let twinService: ServiceChild
    let rooms: Int
    private let directory: URL

    /// `commandsTopic` is the topic twin-service reads its commands from (a topic no one writes to
    /// keeps it idle while the propagator alone is measured).
    init(rooms: Int, partitions: Int, topics: [String], commandsTopic: String = Topics.defaults.twinCommands) async throws {
        self.rooms = rooms
        devbroker = try DevBrokerChild(partitions: partitions, topics: topics)
        kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
        directory = FileManager.default.temporaryDirectory.appending(path: "propagator-bench-\(UUID())")
        let storePath = directory.appending(path: "twins.sqlite").path
        try await Self.load(rooms: rooms, into: storePath)
        // SQLite removes the write-ahead log when the loading store's last connection closes.
        let deadline = ContinuousClock.now + .seconds(10)
        while FileManager.default.fileExists(atPath: storePath + "-wal"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        twinService = try ServiceChild(
            "twin-service",
            environment: [
                "KAFKA_BOOTSTRAP_SERVERS": devbroker.bootstrap, "TWINFLOW_DATA_DIR": directory.path,
                Topics.variable(for: Topics.defaults.twinCommands): commandsTopic,
            ])
        try await twinService.waitUntilAnswering()
    }

    var twinsURL: String { "http://127.0.0.1:\(twinService.httpPort)" }

    static func thermostatID(_ index: Int) -> String { "thermo-\(index)" }
    static func roomID(_ index: Int) -> String { "room-\(index)" }

    /// A propagator on this fixture's twin-service, with `environment` on top, ready once its
    /// relationship view is loaded.
    func startPropagator(environment: [String: String] = [:]) async throws -> ServiceChild {
        let propagator = try ServiceChild(
            "propagator",
            environment: ["KAFKA_BOOTSTRAP_SERVERS": devbroker.bootstrap, "TWINS_URL": twinsURL].merging(environment) { _, new in new })
        try await propagator.waitUntilAnswering("/readyz", containing: "\(rooms) relationships", within: .seconds(120))
        return propagator
    }

    func stop() {
        twinService.stop()
        devbroker.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    private static func load(rooms: Int, into storePath: String) async throws {
        let graph = try await DigitalTwinGraph(store: SQLiteTwinStore(path: storePath))
        let folder = URL(filePath: #filePath).deletingLastPathComponent().appending(path: "../../deploy/models/seed").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }.sorted()
        _ = try await graph.addModels(.array(try files.map { try JSONValue.parse(Array(try Data(contentsOf: folder.appending(path: $0)))) }))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for index in stride(from: worker, to: rooms, by: 8) {
                        try await graph.putTwin(
                            thermostatID(index), body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20])
                        try await graph.putTwin(roomID(index), body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Room;1"]])
                        _ = try await graph.putRelationship(
                            roomID(index), "has-\(index)",
                            body: ["$targetId": .string(thermostatID(index)), "$relationshipName": "rel_has_thermostat"])
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
