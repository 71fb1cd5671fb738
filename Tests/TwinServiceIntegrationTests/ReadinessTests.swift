import Foundation
import Testing
import TwinGraph
import TwinService
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime
import TwinflowTestSupport

extension TwinServiceKafkaTests {
    /// An event the broker keeps refusing (here: larger than the producer's `message.max.bytes`)
    /// makes the relay not ready, naming the event, until it goes to the dead-letter topic with its
    /// outbox position and event ID; then the relay is ready again and later events flow.
    @Test func anEventTheBrokerKeepsRefusingIsDeadLetteredAndTheRelayGoesOn() async throws {
        let setup = try TwinServiceSetup(extraVariables: ["KAFKA_CONFIG_MESSAGE_MAX_BYTES": "4096"], partitions: 1)
        let graph = try await setup.openGraph()
        _ = try await graph.addModels(Fixtures.upload("seed"))
        try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20])
        let reader = try TopicReader(
            kafka: setup.kafka.configuration, topics: [setup.topics.twinEvents, setup.topics.telemetry, setup.topics.deadLetter],
            logger: setup.kafka.logger)
        try await withTwinService(setup, graph: graph) { service in
            #expect(try await reader.waitFor(1, on: setup.topics.twinEvents).count == 1)
            #expect(service.check("relay")?.ready == true)

            let large = Array("{\"Note\":\"\(String(repeating: "x", count: 6000))\"}".utf8)
            try await graph.publishTelemetry("thermo_0001", messageID: "too-large", payload: large)
            let refusing = await eventually(timeout: .seconds(10)) { service.check("relay")?.ready == false }
            #expect(refusing, "readiness says the relay is stuck while it retries")
            #expect(
                service.check("relay")?.detail.contains("refuses outbox event too-large") == true, "\(String(describing: service.check("relay")))")

            let deadLetters = try await reader.waitFor(1, on: setup.topics.deadLetter, timeout: .seconds(30))
            let deadLetter = try #require(deadLetters.first)
            #expect(deadLetter.headers.string(for: DeadLetter.eventIDHeader) == "too-large")
            #expect(deadLetter.headers.string(for: DeadLetter.outboxPositionHeader) == "2", "the Create was position 1")
            #expect(deadLetter.headers.string(for: DeadLetter.topicHeader) == setup.topics.telemetry)
            #expect(deadLetter.headers.string(for: DeadLetter.reasonHeader)?.contains("refused by the broker 5 times") == true)
            #expect(
                deadLetter.headers.string(for: DeadLetter.valueOmittedHeader) == "\(large.count) bytes", "too large for the dead-letter topic too")
            #expect(deadLetter.headers.string(for: "ce_id") == "too-large", "the original headers are kept")
            #expect(service.relay.deadLettered == 1)

            #expect(await eventually(timeout: .seconds(10)) { service.check("relay")?.ready == true }, "ready again once it moved on")
            _ = try await graph.patchTwin("thermo_0001", patch: [["op": "replace", "path": "/Temperature", "value": 21]])
            let events = try await reader.waitFor(2, on: setup.topics.twinEvents)
            #expect(try CloudEvent(decoding: events[1]).attributes.type == "Microsoft.DigitalTwins.Twin.Update", "later events flow")
            #expect(try reader.messages(on: setup.topics.telemetry).isEmpty, "the refused telemetry was never delivered")
        }
        #expect(try await graph.pendingEvents(after: 0, limit: 10).isEmpty, "the dead-lettered event counts as handled")
        try await reader.stop()
    }

    /// An event the broker refuses in the middle of a batch is searched for one event at a time
    /// until it is found, not only until the first event that goes through: each of the others
    /// reaches its topic at most twice (the refused batch, then alone or in the batch after the
    /// refused one), where before every later event went again with every step of the search.
    @Test func aRefusedEventInABatchIsFoundWithoutResendingTheBatchAtEveryStep() async throws {
        let setup = try TwinServiceSetup(extraVariables: ["KAFKA_CONFIG_MESSAGE_MAX_BYTES": "4096"], partitions: 1)
        let graph = try await setup.openGraph()
        _ = try await graph.addModels(Fixtures.upload("seed"))
        try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20])
        let large: JSONValue = ["Note": .string(String(repeating: "x", count: 6000))]
        // One command batch, one outbox transaction: the relay reads the 40 telemetry events as one batch.
        _ = try await graph.apply(
            (1...40).map { index in
                TwinCommand(id: "t\(index)", twinID: "thermo_0001", telemetry: index == 10 ? large : ["Reading": .integer(Int64(index))])
            })
        let reader = try TopicReader(
            kafka: setup.kafka.configuration, topics: [setup.topics.telemetry, setup.topics.deadLetter], logger: setup.kafka.logger)
        try await withTwinService(setup, graph: graph) { service in
            let deadLetters = try await reader.waitFor(1, on: setup.topics.deadLetter, timeout: .seconds(30))
            #expect(deadLetters.first?.headers.string(for: "ce_id")?.contains("t10") == true, "the refused event was found")
            let relay = service.relay
            #expect(await eventually(timeout: .seconds(10)) { relay.deliveredThrough >= 41 }, "the Create and the 40 events")
            // The Create, events 1 to 9 alone, the dead letter, then 11 to 40 in a batch or two:
            // about a dozen batches. Going on one at a time after the dead letter would be 30 more.
            #expect(relay.deliveredBatches <= 15, "\(relay.deliveredBatches) batches delivered")
            let telemetry = try reader.messages(on: setup.topics.telemetry)
            let ids = telemetry.compactMap { $0.headers.string(for: "ce_id") }
            #expect(Set(ids).count == 39, "every event but the refused one was delivered")
            let most = Dictionary(grouping: ids, by: { $0 }).values.map(\.count).max() ?? 0
            #expect(most <= 2, "no event went more than twice: \(telemetry.count) messages for 39 events")
        }
        try await reader.stop()
    }

    /// The consumer-group, store and outbox checks pass once the service runs; each names itself.
    @Test func readinessChecksPassOnceTheServiceRuns() async throws {
        let setup = try TwinServiceSetup(partitions: 2)
        let graph = try await setup.openGraph()
        try await withTwinService(setup, graph: graph) { service in
            let ready = await eventually(timeout: .seconds(30)) { service.readiness.isReady }
            #expect(ready, "\(service.readiness.evaluate())")
            #expect(service.check("consumer group")?.detail == "member of group twin-service with 2 partition(s) assigned")
            #expect(service.check("store") == .ready("accepts writes"))
            #expect(service.check("outbox")?.ready == true)
            #expect(service.check("relay") == .ready("relaying"))
        }
    }
}

/// twin-service as a process: `/readyz` before and after the broker is up, and startup failures.
@Suite struct TwinServiceProcessTests {
    @Test func readyzIsUnavailableUntilTheBrokerAnswersThenReadyWithoutARestart() async throws {
        let brokerPort = unusedPort()
        let httpPort = unusedPort()
        var environment = ProcessInfo.processInfo.environment
        environment["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:\(brokerPort)"
        environment["TWINFLOW_DATA_DIR"] = ScratchDirectory.make("twin-service").path
        environment["HTTP_PORT"] = "\(httpPort)"
        environment["LOG_LEVEL"] = "critical"
        let service = try ChildProcess("twin-service", environment: environment)
        let url = "http://127.0.0.1:\(httpPort)/readyz"

        let answered = await eventually(timeout: .seconds(20)) { (try? await httpRequest(url)) != nil }
        #expect(answered, "twin-service answers HTTP without a broker")
        let before = try await httpRequest(url)
        #expect(before.status == 503)
        let failing = try JSONValue.parse(before.body)["failing"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(failing.contains("kafka"), "\(before.text)")
        #expect(failing.contains("consumer group"), "\(before.text)")

        let broker = try DevBrokerProcess(partitions: 2, port: brokerPort)
        defer { broker.terminate() }
        let ready = await eventually(timeout: .seconds(30)) { (try? await httpRequest(url))?.status == 200 }
        let after = try await httpRequest(url)
        #expect(ready, "\(after.text)")
        #expect(try JSONValue.parse(after.body)["status"] == "ready")
        #expect(service.terminate() == 0)
    }

    @Test func aPortInUseEndsTheProcessWithOneLineAndStatusOne() async throws {
        let dataDirectory = ScratchDirectory.make("twin-service")
        let taken = unusedPort()
        let blocker = try ChildProcess(
            "twin-service", environment: serviceEnvironment(httpPort: taken, dataDirectory: dataDirectory.appending(path: "blocker")))
        defer { blocker.terminate() }
        #expect(await eventually(timeout: .seconds(20)) { (try? await httpRequest("http://127.0.0.1:\(taken)/healthz"))?.status == 200 })

        let second = try ChildProcess(
            "twin-service", environment: serviceEnvironment(httpPort: taken, dataDirectory: dataDirectory.appending(path: "second")),
            capturingStandardError: true)
        #expect(await second.exitStatus(within: .seconds(20)) == 1)
        let lines = second.standardErrorText.split(separator: "\n")
        #expect(lines.count == 1, "\(second.standardErrorText)")
        #expect(lines.first?.contains("critical twin-service: stopped:") == true, "\(second.standardErrorText)")
        #expect(lines.first?.contains("Address already in use") == true, "\(second.standardErrorText)")
    }

    @Test(arguments: [
        ("HTTP_PORT", "eighty", "HTTP_PORT=\"eighty\" is not valid"),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL=\"verbose\" is not valid"),
        ("TWINFLOW_SQLITE_SYNCHRONOUS", "SOMETIMES", "TWINFLOW_SQLITE_SYNCHRONOUS=\"SOMETIMES\" is not valid"),
        ("TWINFLOW_DATABASE_URL", "postgres://twinflow:secret@db:5432", "TWINFLOW_DATABASE_URL=\"postgres://twinflow:***@db:5432\" is not valid"),
    ])
    func anInvalidSettingEndsTheProcessWithOneLineNamingIt(variable: String, value: String, message: String) async throws {
        var environment = serviceEnvironment(httpPort: 0, dataDirectory: ScratchDirectory.make("twin-service"))
        environment[variable] = value
        let service = try ChildProcess("twin-service", environment: environment, capturingStandardError: true)
        #expect(await service.exitStatus(within: .seconds(20)) == 1)
        let lines = service.standardErrorText.split(separator: "\n")
        #expect(lines.count == 1, "\(service.standardErrorText)")
        #expect(lines.first?.contains("twin-service: cannot start: \(message)") == true, "\(service.standardErrorText)")
    }

    /// A database that does not answer stops twin-service at startup with one line, not a hang.
    @Test func anUnreachableDatabaseEndsTheProcessWithOneLine() async throws {
        var environment = serviceEnvironment(httpPort: 0, dataDirectory: ScratchDirectory.make("twin-service"))
        environment["TWINFLOW_DATABASE_URL"] = "postgres://twinflow:secret@127.0.0.1:\(unusedPort())/twins?sslmode=disable"
        let service = try ChildProcess("twin-service", environment: environment, capturingStandardError: true)
        #expect(await service.exitStatus(within: .seconds(40)) == 1)
        let lines = service.standardErrorText.split(separator: "\n")
        #expect(lines.count == 1, "\(service.standardErrorText)")
        #expect(lines.first?.contains("twin-service: cannot start: the database twins at 127.0.0.1:") == true, "\(service.standardErrorText)")
        #expect(!service.standardErrorText.contains("secret"))
    }

    @Test func anUnwritableDataDirectoryEndsTheProcessWithOneLine() async throws {
        let file = ScratchDirectory.make("not-a-directory")
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("a file where the data directory should be".utf8).write(to: file)
        let service = try ChildProcess(
            "twin-service", environment: serviceEnvironment(httpPort: 0, dataDirectory: file), capturingStandardError: true)
        #expect(await service.exitStatus(within: .seconds(20)) == 1)
        let lines = service.standardErrorText.split(separator: "\n")
        #expect(lines.count == 1, "\(service.standardErrorText)")
        #expect(lines.first?.contains("twin-service: cannot start:") == true, "\(service.standardErrorText)")
    }

    private func serviceEnvironment(httpPort: Int, dataDirectory: URL) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:\(unusedPort())"
        environment["TWINFLOW_DATA_DIR"] = dataDirectory.path
        environment["HTTP_PORT"] = "\(httpPort)"
        environment["LOG_LEVEL"] = "critical"
        return environment
    }
}
