import BenchmarkSupport
import Foundation
import TwinGraph
import TwinflowCodec
import TwinflowKafka

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A devbroker, and twin-service (the release binary beside this one) on a store of `rooms` Rooms,
/// each with a Thermostat by `rel_has_thermostat`: the seed scenario, loaded straight into the store.
public final class TwinFixture {
    public let devbroker: DevBrokerChild
    public let kafka: KafkaConfiguration
    public let twinService: ServiceChild
    public let rooms: Int
    private let directory: URL

    /// `commandsTopic` is the topic twin-service reads its commands from (a topic no one writes to
    /// keeps it idle while another service alone is measured).
    public init(rooms: Int, partitions: Int, topics: [String], commandsTopic: String = Topics.defaults.twinCommands) async throws {
        self.rooms = rooms
        devbroker = try DevBrokerChild(partitions: partitions, topics: topics)
        kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
        directory = FileManager.default.temporaryDirectory.appending(path: "twin-fixture-\(UUID())")
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

    public var twinsURL: String { "http://127.0.0.1:\(twinService.httpPort)" }

    /// A directory of this fixture's, removed when it stops: for other services' data.
    public var dataDirectory: URL { directory }

    public static func thermostatID(_ index: Int) -> String { "thermo-\(index)" }
    public static func roomID(_ index: Int) -> String { "room-\(index)" }

    /// A propagator on this fixture's twin-service, with `environment` on top, ready once its
    /// relationship view is loaded.
    public func startPropagator(environment: [String: String] = [:]) async throws -> ServiceChild {
        let propagator = try ServiceChild(
            "propagator",
            environment: ["KAFKA_BOOTSTRAP_SERVERS": devbroker.bootstrap, "TWINS_URL": twinsURL].merging(environment) { _, new in new })
        try await propagator.waitUntilAnswering("/readyz", containing: "\(rooms) relationships", within: .seconds(120))
        return propagator
    }

    /// Every room's `currentTemp` (absent when it has none), by twin-service's query API.
    public func roomTemperatures() async throws -> [String: Double] {
        var temperatures: [String: Double] = [:]
        var continuation: String?
        repeat {
            let body: JSONValue = [
                "query": "SELECT * FROM DIGITALTWINS T WHERE IS_OF_MODEL(T, 'dtmi:contosocom:DigitalTwins:Room;1')",
                "continuationToken": continuation.map(JSONValue.string) ?? .null,
            ]
            let page = try await postJSON("\(twinsURL)/query", body)
            for twin in page["value"]?.arrayValue ?? [] {
                guard let id = twin["$dtId"]?.stringValue else { continue }
                temperatures[id] = twin["currentTemp"]?.doubleValue
            }
            continuation = page["continuationToken"]?.stringValue
        } while continuation != nil
        return temperatures
    }

    public func stop() {
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

/// `POST url` with a JSON body; the answer's JSON, or an error naming the answer unless it is 200.
public func postJSON(_ url: String, _ body: JSONValue) async throws -> JSONValue {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = "POST"
    request.httpBody = Data(body.serialized())
    request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    let (data, response) = try await URLSession.shared.data(for: request)
    guard (response as? HTTPURLResponse)?.statusCode == 200 else {
        throw BenchmarkError(
            "POST \(url) answered \((response as? HTTPURLResponse)?.statusCode ?? 0): \(String(decoding: data, as: UTF8.self).prefix(300))")
    }
    return try JSONValue.parse(Array(data))
}
