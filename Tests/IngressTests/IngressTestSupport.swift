import Foundation
import HTTPTypes
import Hummingbird
import Ingress
import Logging
import ServiceLifecycle
import Synchronization
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

    /// `gateway`, when given, stands in front of the API.
    init(logger: Logger, gateway: RefusingGateway? = nil) async throws {
        let folder = ScratchDirectory.make("ingress-twins")
        graph = try await DigitalTwinGraph(store: SQLiteTwinStore(path: folder.appending(path: "twins.sqlite").path))
        port = unusedPort()
        let router = Router().addHealthRoutes(readiness: Readiness())
        if let gateway { router.add(middleware: gateway) }
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

/// A gateway in front of twin-service that refuses what twin-service itself would take, as a
/// proxy's body limit or a filter rule might: a query body over `maximumQueryBytes` (413), and any
/// request whose path, query or body contains one of `blocked` (400). It counts what it refused.
final class RefusingGateway: RouterMiddleware {
    typealias Context = BasicRequestContext

    let maximumQueryBytes: Int
    let blocked: [String]
    private let tooLarge = Atomic(0)
    private let refused = Atomic(0)

    init(maximumQueryBytes: Int, blocked: [String]) {
        self.maximumQueryBytes = maximumQueryBytes
        self.blocked = blocked
    }

    /// Queries refused for their size.
    var queriesTooLarge: Int { tooLarge.load(ordering: .relaxed) }
    /// Requests refused for naming a blocked text.
    var blockedRequests: Int { refused.load(ordering: .relaxed) }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 1 << 20)
        let uri = request.uri.description.removingPercentEncoding ?? request.uri.description
        if request.uri.path.hasSuffix("/query"), body.readableBytes > maximumQueryBytes {
            tooLarge.add(1, ordering: .relaxed)
            return Self.refusal(.contentTooLarge, code: "PayloadTooLarge")
        }
        if blocked.contains(where: { uri.contains($0) || String(buffer: body).contains($0) }) {
            refused.add(1, ordering: .relaxed)
            return Self.refusal(.badRequest, code: "BadRequest")
        }
        return try await next(request, context)
    }

    private static func refusal(_ status: HTTPResponse.Status, code: String) -> Response {
        let body = #"{"error":{"code":"\#(code)","message":"Refused at the gateway."}}"#
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
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
