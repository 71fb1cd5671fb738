import Foundation
import Logging
import ServiceLifecycle
import Testing
import TwinGraph
import TwinService
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime
import TwinflowTestSupport

/// A twin service's environment on the mock cluster, with topics of its own.
struct TwinServiceSetup {
    let kafka: MockKafka
    let topics: Topics
    let environment: ServiceEnvironment
    let dataDirectory: URL

    init(extraVariables: [String: String] = [:], partitions: Int = 4) throws {
        kafka = try MockKafka()
        var variables = ["KAFKA_BOOTSTRAP_SERVERS": kafka.cluster.bootstrapServers]
        var names: [String] = []
        for name in Topics.defaults.all {
            let topic = try kafka.makeTopic(name, partitions: partitions)
            variables[Topics.variable(for: name)] = topic
            names.append(topic)
        }
        dataDirectory = ScratchDirectory.make("twin-service")
        variables["TWINFLOW_DATA_DIR"] = dataDirectory.path
        variables.merge(extraVariables) { _, new in new }
        environment = try ServiceEnvironment(serviceName: "twin-service", defaultHTTPPort: 0, variables: variables)
        topics = environment.topics
    }

    var storePath: String { dataDirectory.appending(path: "twins.sqlite").path }

    func openGraph() async throws -> DigitalTwinGraph {
        try await DigitalTwinGraph(store: SQLiteTwinStore(path: storePath), endpoints: try TwinServiceKafka.endpoints(environment))
    }

    func command(_ command: TwinCommand) -> KafkaProducerMessage { command.kafkaMessage(topic: topics.twinCommands) }

    /// The graph with the seed's models and `thermo_0001` at a Temperature of 20.
    func graphWithThermostat() async throws -> DigitalTwinGraph {
        let graph = try await openGraph()
        _ = try await graph.addModels(Fixtures.upload("seed"))
        try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20])
        return graph
    }

    /// `commands` as the command consumer hands them out: one batch from partition 0, from offset 0.
    func consumedBatch(_ commands: [TwinCommand]) -> KafkaConsumerBatch {
        KafkaConsumerBatch(
            messages: commands.enumerated().map { offset, command in
                let message = self.command(command)
                return KafkaConsumerMessage(
                    topic: message.topic, partition: 0, offset: Int64(offset), key: message.key, value: message.value, headers: message.headers)
            })
    }
}

/// The twin service's Kafka side against librdkafka's mock cluster: commands in, ADT's events out.
@Suite(.serialized) struct TwinServiceKafkaTests {
    @Test func commandsBecomeNotificationsTelemetryAndDeadLetters() async throws {
        let setup = try TwinServiceSetup(extraVariables: ["TWINFLOW_ENDPOINTS": "alerts=alerts-\(UUID().uuidString.prefix(8))"])
        let alertsTopic = try #require(try TwinServiceKafka.endpoints(setup.environment).first { $0.name == "alerts" }?.topic)
        try setup.kafka.cluster.createTopic(alertsTopic, partitions: 1)
        let graph = try await setup.openGraph()
        _ = try await graph.addModels(Fixtures.upload("seed"))
        try await graph.putEventRoute("temperature-alerts", body: ["endpointName": "alerts", "filter": "TOUCHES('/Temperature')"])
        try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20])
        try await graph.putTwin("Room_01", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Room;1"]])
        try await graph.putRelationship("Room_01", "r1", body: ["$targetId": "thermo_0001", "$relationshipName": "rel_has_thermostat"])

        let producer = try setup.kafka.makeProducer()
        let patch = try JSONPatch(json: [["op": "replace", "path": "/Temperature", "value": 21.5]])
        let hot = try JSONPatch(json: [["op": "replace", "path": "/Temperature", "value": 35]])
        let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        try await producer.send([
            setup.command(TwinCommand(id: "c1", twinID: "thermo_0001", patch: patch, telemetry: ["Temperature": 21.5], traceparent: trace)),
            setup.command(TwinCommand(id: "c1", twinID: "thermo_0001", patch: patch, telemetry: ["Temperature": 21.5])),
            KafkaProducerMessage(topic: setup.topics.twinCommands, key: "thermo_0001", value: Array("not json".utf8)),
            setup.command(TwinCommand(id: "c2", twinID: "ghost", patch: patch)),
            setup.command(TwinCommand(id: "c3", twinID: "thermo_0001", patch: try JSONPatch(json: [["op": "add", "path": "/Colour", "value": 1]]))),
            setup.command(TwinCommand(id: "c4", twinID: "thermo_0001", patch: hot)),
        ])

        let reader = try TopicReader(
            kafka: setup.kafka.configuration, topics: [setup.topics.twinEvents, setup.topics.telemetry, setup.topics.deadLetter, alertsTopic],
            logger: setup.kafka.logger
        )
        try await withTwinService(setup, graph: graph) { service in
            let events = try await reader.waitFor(5, on: setup.topics.twinEvents)
            let deadLetters = try await reader.waitFor(3, on: setup.topics.deadLetter)
            _ = try await reader.waitFor(1, on: setup.topics.telemetry)
            _ = try await reader.waitFor(2, on: alertsTopic)
            #expect(try await eventually { try await graph.pendingEvents(after: 0, limit: 1).isEmpty }, "the relay delivered everything")

            let decoded = try events.map { try CloudEvent(decoding: $0) }
            let byTwin = Dictionary(grouping: zip(events, decoded), by: { $0.0.keyString ?? "" }).mapValues { $0.map(\.1) }
            #expect(
                byTwin["thermo_0001"]?.map(\.attributes.type) == [
                    "Microsoft.DigitalTwins.Twin.Create", "Microsoft.DigitalTwins.Twin.Update", "Microsoft.DigitalTwins.Twin.Update",
                ])
            #expect(
                byTwin["Room_01"]?.map(\.attributes.type) == ["Microsoft.DigitalTwins.Twin.Create", "Microsoft.DigitalTwins.Relationship.Create"])
            #expect(try reader.messages(on: setup.topics.twinEvents).count == 5, "the repeated command emitted nothing")
            #expect(events.allSatisfy { $0.headers.string(for: "content-type") == "application/cloudevents+json" })
            let update = try #require(byTwin["thermo_0001"]?[1])
            #expect(update.attributes.traceparent == trace, "the command's trace is carried through")
            #expect(
                update.data == [
                    "modelId": "dtmi:contosocom:DigitalTwins:Thermostat;1", "patch": [["op": "replace", "path": "/Temperature", "value": 21.5]],
                ])
            #expect(byTwin["thermo_0001"]?.map(\.attributes.sequence) == ["1", "2", "3"], "a twin's notifications in order, numbered without gaps")
            #expect(byTwin["Room_01"]?.map(\.attributes.sequence) == ["1", "2"])

            let telemetry = try BinaryCloudEvent(decoding: try #require(reader.messages(on: setup.topics.telemetry).first))
            #expect(telemetry.attributes.id == "c1")
            #expect(telemetry.attributes.type == "microsoft.iot.telemetry")
            #expect(try JSONValue.parse(telemetry.data) == ["Temperature": 21.5])
            #expect(try reader.messages(on: setup.topics.telemetry).count == 1)

            let alerts = try reader.messages(on: alertsTopic)
            #expect(alerts.count == 2, "only the updates of /Temperature pass the alert route")
            #expect(try alerts.map { try CloudEvent(decoding: $0).attributes.id } == byTwin["thermo_0001"]?.dropFirst().map(\.attributes.id))

            let letters = try deadLetters.map { try DeadLetter(decoding: $0) }
            #expect(letters.allSatisfy { $0.service == "twin-service" && $0.sourceTopic == setup.topics.twinCommands })
            #expect(letters.map(\.reason).contains { $0.contains("not a twin command") })
            #expect(letters.map(\.reason).contains { $0.contains("DigitalTwinNotFound") })
            #expect(letters.map(\.reason).contains { $0.contains("ValidationFailed") })
            #expect(deadLetters.contains { $0.value == Array("not json".utf8) }, "the bad message goes on untouched")
            #expect(Set(letters.map(\.sourceOffset)).count == 3)
        }
        let twin = try await graph.twin("thermo_0001")
        #expect(twin.document["Temperature"] == 35)
        #expect(twin.version == 3)
        #expect(try await graph.pendingEvents(after: 0, limit: 10).isEmpty, "the relay forgot what it delivered")
        try await reader.stop()
        await producer.shutdown()
    }

    /// Batches refused by the broker are sent again from the last batch delivered whole: every
    /// change arrives, repeats keep their event ids, and the batches behind a refused one wait.
    @Test func refusedOutboxBatchesAreSentAgain() async throws {
        let setup = try TwinServiceSetup(partitions: 1)
        let graph = try await setup.openGraph()
        _ = try await graph.addModels(Fixtures.upload("seed"))
        try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20])
        let reader = try TopicReader(kafka: setup.kafka.configuration, topics: [setup.topics.twinEvents], logger: setup.kafka.logger)
        try await withTwinService(setup, graph: graph) { service in
            #expect(try await reader.waitFor(1, on: setup.topics.twinEvents).count == 1)
            setup.kafka.cluster.failNextRequests(apiKey: 0, errorCodes: [10, 10])  // MESSAGE_TOO_LARGE, twice
            for value in 1...200 {
                _ = try await graph.patchTwin("thermo_0001", patch: [["op": "replace", "path": "/Temperature", "value": .integer(Int64(value))]])
            }
            let twinEvents = setup.topics.twinEvents
            _ = try await eventually(timeout: .seconds(60)) {
                try Set(reader.messages(on: twinEvents).map { try CloudEvent(decoding: $0).attributes.sequence }).count >= 201
            }
            #expect(service.relay.failedBatches >= 1, "the broker refused a batch, as injected")
            #expect(service.relay.deadLettered == 0, "a refusal that ends is not a dead letter")
        }
        let events = try reader.messages(on: setup.topics.twinEvents).map { try CloudEvent(decoding: $0).attributes }
        #expect(Set(events.compactMap(\.sequence)) == Set((1...201).map(String.init)), "every change arrived")
        let idsBySequence = Dictionary(grouping: events, by: { $0.sequence ?? "" }).mapValues { Set($0.map(\.id)) }
        #expect(idsBySequence.values.allSatisfy { $0.count == 1 }, "a repeat keeps its event id")
        #expect(try await graph.pendingEvents(after: 0, limit: 10).isEmpty, "the relay forgot what it delivered")
        try await reader.stop()
    }

    /// Runs the twin service's Kafka parts (and their readiness probes) until `body` returns, then
    /// shuts them down gracefully.
    func withTwinService(_ setup: TwinServiceSetup, graph: DigitalTwinGraph, _ body: (RunningTwinService) async throws -> Void) async throws {
        let readiness = Readiness()
        let services = try TwinServiceKafka.services(graph: graph, environment: setup.environment, logger: setup.kafka.logger, readiness: readiness)
        let relay = try #require(services.compactMap { $0 as? OutboxRelay }.first)
        let group = ServiceGroup(configuration: .init(services: [readiness] + services, gracefulShutdownSignals: [], logger: setup.kafka.logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body(RunningTwinService(readiness: readiness, relay: relay.status))
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}

/// The parts of a running twin service a test looks at.
struct RunningTwinService {
    let readiness: Readiness
    let relay: RelayStatus

    /// The status of one readiness check.
    func check(_ name: String) -> ReadinessStatus? {
        readiness.evaluate().first { $0.name == name }?.status
    }
}
