import Hummingbird
import HummingbirdTesting
import Synchronization
import Logging
import Testing
import TwinflowKafka
import TwinflowCodec
import TwinflowRuntime

@Suite struct HealthRoutesTests {
    @Test func healthzAnswersAndReadyzFollowsChecks() async throws {
        let readiness = Readiness()
        let flag = Flag()
        readiness.register("kafka") { flag.value }
        let router = Router().addHealthRoutes(readiness: readiness)
        let app = Application(router: router)
        try await app.test(.router) { client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
            #expect(try JSONValue.parse(Array(buffer: health.body)) == ["status": "ok"])

            let notReady = try await client.execute(uri: "/readyz", method: .get)
            #expect(notReady.status == .serviceUnavailable)
            #expect(try JSONValue.parse(Array(buffer: notReady.body)) == ["status": "not ready", "checks": ["kafka": false]])

            flag.set(true)
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .ok)
            #expect(try JSONValue.parse(Array(buffer: ready.body))["status"] == "ready")
        }
    }

    @Test func environmentFollowsTheContract() {
        let environment = ServiceEnvironment(
            serviceName: "propagator",
            defaultHTTPPort: 8082,
            variables: ["LOG_LEVEL": "DEBUG", "TWINFLOW_TOPIC_TWINS_COMMANDS": "cmds", "KAFKA_BOOTSTRAP_SERVERS": "k:1"]
        )
        #expect(environment.httpPort == 8082)
        #expect(environment.logLevel == .debug)
        #expect(environment.topics.twinCommands == "cmds")
        #expect(environment.kafka.bootstrapServers == "k:1")
        #expect(environment.dataDirectory == ".twinflow/data")
        #expect(environment.twinsURL == "http://localhost:8080")
        #expect(environment.consumerConfiguration(topics: ["x"]).groupID == "propagator")
        #expect(ServiceEnvironment(serviceName: "s", defaultHTTPPort: 1, variables: ["HTTP_PORT": "9999"]).httpPort == 9999)
    }
}

final class Flag: Sendable {
    private let state = Mutex(false)
    var value: Bool { state.withLock { $0 } }
    func set(_ value: Bool) { state.withLock { $0 = value } }
}

extension Array where Element == UInt8 {
    init(buffer: ByteBuffer) {
        self = buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? []
    }
}
