import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime
import TwinflowTestSupport

@Suite struct HealthRoutesTests {
    @Test func healthzAnswersAndReadyzFollowsChecks() async throws {
        let readiness = Readiness()
        let flag = Shared(false)
        readiness.register("kafka") { flag.value ? .ready("1 broker(s) answer") : .notReady("the cluster does not answer") }
        let router = Router().addHealthRoutes(readiness: readiness)
        let app = Application(router: router)
        try await app.test(.router) { client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
            #expect(try JSONValue.parse(Array(buffer: health.body)) == ["status": "ok"])

            let notReady = try await client.execute(uri: "/readyz", method: .get)
            #expect(notReady.status == .serviceUnavailable)
            #expect(
                try JSONValue.parse(Array(buffer: notReady.body)) == [
                    "status": "not ready", "failing": ["kafka"],
                    "checks": ["kafka": ["ready": false, "detail": "the cluster does not answer"]],
                ])

            flag.withLock { $0 = true }
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .ok)
            #expect(
                try JSONValue.parse(Array(buffer: ready.body)) == [
                    "status": "ready", "failing": [], "checks": ["kafka": ["ready": true, "detail": "1 broker(s) answer"]],
                ])
        }
    }

    @Test func probesRunInTheBackgroundAndAreNotReadyUntilTheyAnswer() async throws {
        let readiness = Readiness()
        let flag = Shared(false)
        readiness.registerProbe("store", every: .milliseconds(20)) { flag.value ? .ready() : .notReady("a write failed") }
        #expect(readiness.evaluate().map(\.status) == [.notReady("not checked yet")])
        let running = Task { try await readiness.run() }
        defer { running.cancel() }
        #expect(await eventually { readiness.evaluate().map(\.status) == [.notReady("a write failed")] })
        flag.withLock { $0 = true }
        #expect(await eventually { readiness.isReady })
        flag.withLock { $0 = false }
        #expect(await eventually { !readiness.isReady }, "a probe that fails again turns readiness off again")
    }

    /// A probe that stops answering (a store whose queries hang) is not ready once its last answer
    /// is older than twice its interval plus four seconds (6 s here), and says since when.
    @Test func aProbeThatHangsIsNotReadyOnceItsLastAnswerIsOld() async throws {
        let readiness = Readiness()
        let hang = Shared(false)
        readiness.registerProbe("store", every: .seconds(1)) {
            while hang.value { try? await Task.sleep(for: .milliseconds(10)) }
            return .ready("accepts writes")
        }
        let running = Task { try await readiness.run() }
        defer {
            hang.withLock { $0 = false }
            running.cancel()
        }
        #expect(await eventually { readiness.isReady })
        hang.withLock { $0 = true }
        try await Task.sleep(for: .seconds(2))
        #expect(readiness.isReady, "within the limit (6 s) the last answer stands")
        let stale = await eventually(timeout: .seconds(10)) { !readiness.isReady }
        let status = readiness.evaluate().first?.status
        #expect(stale, "\(String(describing: status))")
        #expect(
            status?.detail.hasPrefix("no answer for ") == true && status?.detail.hasSuffix(" s (the last: accepts writes)") == true,
            "\(String(describing: status))")
    }

    @Test func consumerGroupAndOutboxChecksSayWhy() async throws {
        let readiness = Readiness()
        let oldest = Shared<Date?>(nil)
        readiness.registerOutbox(maximumAge: .seconds(30)) { oldest.value }
        let running = Task { try await readiness.run() }
        defer { running.cancel() }
        #expect(await eventually { readiness.evaluate().first?.status == .ready("everything delivered") })
        oldest.withLock { $0 = Date().addingTimeInterval(-45) }
        #expect(await eventually { readiness.evaluate().first?.status.ready == false })
        #expect(readiness.evaluate().first?.status.detail.contains("delivery is stuck") == true)
    }

    @Test func environmentFollowsTheContract() throws {
        let environment = try ServiceEnvironment(
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
        #expect(try ServiceEnvironment(serviceName: "s", defaultHTTPPort: 1, variables: ["HTTP_PORT": "9999"]).httpPort == 9999)
    }

    @Test(arguments: [
        ("HTTP_PORT", "80a", "HTTP_PORT=\"80a\" is not valid: expected an integer from 0 to 65535"),
        ("HTTP_PORT", "70000", "HTTP_PORT=\"70000\" is not valid: expected an integer from 0 to 65535"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL=\"loud\" is not valid: expected trace, debug, info, notice, warning, error, critical"),
        ("TWINS_URL", "twin-service:8080", "TWINS_URL=\"twin-service:8080\" is not valid: expected an http:// or https:// URL"),
        ("KAFKA_BOOTSTRAP_SERVERS", " ", "KAFKA_BOOTSTRAP_SERVERS=\" \" is not valid: expected host:port[,host:port…]"),
        ("TWINFLOW_TOPIC_DEADLETTER", "", "TWINFLOW_TOPIC_DEADLETTER=\"\" is not valid: expected a Kafka topic name: 1 to 249 of a-z A-Z 0-9 . _ -"),
        (
            "TWINFLOW_TOPIC_DEADLETTER", "iothub.d2c",
            "TWINFLOW_TOPIC_DEADLETTER=\"iothub.d2c\" is not valid: expected a topic of its own, not TWINFLOW_TOPIC_IOTHUB_D2C's"
        ),
    ])
    func anInvalidSettingIsAnErrorNamingTheVariable(variable: String, value: String, message: String) {
        #expect(throws: SettingError.self) {
            _ = try ServiceEnvironment(serviceName: "s", defaultHTTPPort: 1, variables: [variable: value])
        }
        do {
            _ = try ServiceEnvironment(serviceName: "s", defaultHTTPPort: 1, variables: [variable: value])
        } catch {
            #expect(error.description == message)
        }
    }
}

extension Array where Element == UInt8 {
    init(buffer: ByteBuffer) {
        self = buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? []
    }
}
