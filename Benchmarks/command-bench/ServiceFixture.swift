import BenchmarkSupport
import Foundation
import Logging
import TwinGraph
import TwinflowCodec
import TwinflowKafka
import TwinflowPostgres

/// A fresh devbroker and twin store with `twins` thermostats loaded, and the twin-service built
/// beside this executable, started on them with this process's environment. With
/// `TWINFLOW_DATABASE_URL` the store is a new database on that PostgreSQL server (see
/// ``BenchmarkDatabase``), and `COMMAND_BENCH_INSTANCES` (1) twin-service instances share it; otherwise one instance
/// on a new SQLite file.
final class ServiceFixture {
    let devbroker: DevBrokerChild
    let kafka: KafkaConfiguration
    let twins: Int
    let instances: Int
    private let directory: URL
    private let database: BenchmarkDatabase?
    private var services: [ServiceChild] = []
    private(set) var started: ContinuousClock.Instant?

    init(twins: Int) async throws {
        self.twins = twins
        let environment = ProcessInfo.processInfo.environment
        let requested = environment["COMMAND_BENCH_INSTANCES"].map { Int($0) ?? 0 } ?? 1
        let server = environment["TWINFLOW_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
        guard requested >= 1, requested == 1 || server != nil else {
            throw BenchmarkError("COMMAND_BENCH_INSTANCES must be a number of instances, more than one only with TWINFLOW_DATABASE_URL")
        }
        devbroker = try DevBrokerChild(partitions: 8, topics: [])
        kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
        directory = FileManager.default.temporaryDirectory.appending(path: "command-bench-\(UUID())")
        if let server {
            instances = requested
            let database = try await BenchmarkDatabase(onServerOf: server, prefix: "commandbench")
            self.database = database
            var logger = Logger(label: "command-bench")
            logger.logLevel = .error
            let store = try await PostgresTwinStore(url: DatabaseURL(database.url), connections: 8, logger: logger)
            defer { store.close() }
            try await Self.load(twins: twins, into: store)
            return
        }
        instances = 1
        database = nil
        let storePath = directory.appending(path: "twins.sqlite").path
        try await Self.load(twins: twins, into: SQLiteTwinStore(path: storePath))
        // SQLite removes the write-ahead log when the store's last connection closes: twin-service
        // opening the store while a checkpoint of the loading store still runs finds it locked.
        let deadline = ContinuousClock.now + .seconds(10)
        while FileManager.default.fileExists(atPath: storePath + "-wal"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Twins straight into the store; twin-service relays their Create notifications when it starts.
    private static func load(twins: Int, into store: any TwinStore) async throws {
        let graph = try await DigitalTwinGraph(store: store)
        _ = try await graph.addModels(try seedModels())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for index in stride(from: worker, to: twins, by: 8) {
                        try await graph.putTwin(
                            twinID(index), body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20])
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// The id of the `index`th twin loaded.
    static func twinID(_ index: Int) -> String { "thermo-\(index)" }

    /// A twin no command may find: its command is refused and dead-lettered, so no notification follows.
    static let missingTwinID = "thermo-missing"

    /// Starts the twin-service instances. Their environment is this process's, with the broker,
    /// store and port set, so `KAFKA_CONFIG_*` variables given to the benchmark reach them.
    func startService() throws {
        started = .now
        for _ in 0..<instances {
            var environment = ["KAFKA_BOOTSTRAP_SERVERS": devbroker.bootstrap, "TWINFLOW_DATA_DIR": directory.path]
            if let database { environment["TWINFLOW_DATABASE_URL"] = database.url }
            environment["LOG_LEVEL"] = ProcessInfo.processInfo.environment["COMMAND_BENCH_SERVICE_LOG_LEVEL"] ?? "warning"
            services.append(try ServiceChild("twin-service", environment: environment))
        }
    }

    var serviceIsRunning: Bool { !services.isEmpty && services.allSatisfy(\.isRunning) }

    /// Throws when a twin-service instance has exited: nothing more will arrive from it.
    func checkServiceRunning() throws {
        for service in services { try service.checkRunning() }
    }

    /// A fixture given up on (its init or run threw) stops its children too.
    deinit { stop() }

    func stop() {
        for service in services { service.stop() }
        services.removeAll()
        devbroker.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

func seedModels() throws -> JSONValue {
    let folder = URL(filePath: #filePath).deletingLastPathComponent().appending(path: "../../deploy/models/seed").standardized
    let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }.sorted()
    return .array(try files.map { try JSONValue.parse(Array(try Data(contentsOf: folder.appending(path: $0)))) })
}

/// A patch command setting a thermostat's temperature.
func temperatureCommand(id: String, twinID: String, temperature: Double, traceparent: String? = nil) -> TwinCommand {
    TwinCommand(
        id: id, twinID: twinID, patch: JSONPatch([.replace(path: JSONPointer(tokens: ["Temperature"]), value: .double(temperature))]),
        traceparent: traceparent)
}
