import Foundation
import Hummingbird
import Ingress
import Logging
import ServiceLifecycle
import Testing
import TwinGraph
import TwinService
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime
import TwinflowTestSupport

/// twin-service's REST API in this process on a real port (the routes twin-service serves, on a
/// store of the test's own), for ingress to look twins and models up in.
struct TwinServiceAPI {
    let graph: DigitalTwinGraph
    let port: Int
    let application: any Service

    init(logger: Logger) async throws {
        let folder = ScratchDirectory.make("ingress-twins")
        graph = try await DigitalTwinGraph(store: SQLiteTwinStore(path: folder.appending(path: "twins.sqlite").path))
        port = unusedPort()
        let router = Router().addHealthRoutes(readiness: Readiness())
        TwinServiceRoutes.add(to: router, graph: graph)
        application = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
    }

    var url: String { "http://127.0.0.1:\(port)" }

    static let thermostat = "dtmi:contosocom:DigitalTwins:Thermostat;1"

    /// The seed models, plus a sensor whose twins name their device in `deviceId`.
    func loadModels() async throws {
        _ = try await graph.addModels(Fixtures.upload("seed"))
        _ = try await graph.addModels([
            [
                "@id": "dtmi:twinflow:test:Sensor;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3",
                "contents": [
                    ["@type": "Property", "name": "deviceId", "schema": "string"],
                    ["@type": "Property", "name": "Temperature", "schema": "double"],
                    ["@type": "Property", "name": "Mode", "schema": "string"],
                ],
            ]
        ])
    }

    func putThermostat(_ id: String, temperature: Double? = nil) async throws {
        var body: [String: JSONValue] = ["$metadata": ["$model": .string(Self.thermostat)]]
        if let temperature { body["Temperature"] = .double(temperature) }
        _ = try await graph.putTwin(id, body: .object(body))
    }
}

/// ingress's environment on the mock cluster, with topics of its own.
struct IngressSetup {
    let kafka: MockKafka
    let topics: Topics
    let environment: ServiceEnvironment

    init(twinsURL: String, extraVariables: [String: String] = [:], partitions: Int = 4) throws {
        kafka = try MockKafka()
        var variables = ["KAFKA_BOOTSTRAP_SERVERS": kafka.cluster.bootstrapServers, "TWINS_URL": twinsURL]
        for name in Topics.defaults.all {
            variables[Topics.variable(for: name)] = try kafka.makeTopic(name, partitions: partitions)
        }
        variables.merge(extraVariables) { _, new in new }
        environment = try ServiceEnvironment(serviceName: "ingress", defaultHTTPPort: 0, variables: variables)
        topics = environment.topics
    }

    /// A message on the device topic, keyed by `key`.
    func deviceMessage(_ value: [UInt8], key: String?, headers: [KafkaHeader] = []) -> KafkaProducerMessage {
        KafkaProducerMessage(topic: topics.deviceMessages, key: key, value: value, headers: headers)
    }

    /// A producer that takes messages of up to 1,100,000 bytes, for device messages larger than
    /// a default producer (ingress's own) may send.
    func largeMessageProducer() throws -> KafkaProducer {
        var configuration = kafka.configuration
        configuration.properties["message.max.bytes"] = "1100000"
        return try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: configuration), logger: kafka.logger)
    }

    func reader(_ topics: [String]) throws -> TopicReader {
        try TopicReader(kafka: kafka.configuration, topics: topics, logger: kafka.logger)
    }
}

/// The parts of a running ingress a test looks at.
struct RunningIngress {
    let readiness: Readiness
    /// ingress's HTTP port (its `/metrics`).
    let port: Int

    func check(_ name: String) -> ReadinessStatus? {
        readiness.evaluate().first { $0.name == name }?.status
    }

    /// The body of `GET path` on ingress's HTTP port; throws unless it is 200.
    func get(_ path: String) async throws -> String {
        let reply = try await httpRequest("http://127.0.0.1:\(port)\(path)")
        try #require(reply.status == 200, "GET \(path) answered \(reply.status): \(reply.text)")
        return reply.text
    }
}

/// Runs ingress's parts (and `others`, such as twin-service's API) until `body` returns, then shuts
/// them down gracefully.
func withIngress(
    _ setup: IngressSetup, alongside others: [any Service] = [], _ body: (RunningIngress) async throws -> Void
) async throws {
    let readiness = Readiness()
    let router = Router().addHealthRoutes(readiness: readiness)
    let services = try IngressService.services(environment: setup.environment, logger: setup.kafka.logger, readiness: readiness, router: router)
    let port = unusedPort()
    let http = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: setup.kafka.logger)
    let group = ServiceGroup(
        configuration: .init(services: others + [readiness, http] + services, gracefulShutdownSignals: [], logger: setup.kafka.logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            try await body(RunningIngress(readiness: readiness, port: port))
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}

extension KafkaConsumerMessage {
    /// The twin command this message holds.
    var command: TwinCommand {
        get throws { try TwinCommand(decoding: self) }
    }
}
