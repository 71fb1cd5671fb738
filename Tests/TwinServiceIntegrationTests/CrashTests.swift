import Foundation
import Logging
import Testing
import TwinGraph
import TwinflowCodec
import TwinflowKafka
import TwinflowTestSupport

/// twin-service killed with SIGKILL, again and again, while commands flow: at the end every command
/// took effect exactly once and the event topic holds a notification for every change.
@Suite(.serialized) struct CrashTests {
    static let twins = 100
    static let commands = 50_000
    static let kills = 4

    @Test func sigkillLosesNothingAndAppliesNothingTwice() async throws {
        let devbroker = try DevBrokerProcess(partitions: 4)
        defer { devbroker.terminate() }
        let kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
        var logger = Logger(label: "crash-test")
        logger.logLevel = .warning
        let dataDirectory = ScratchDirectory.make("crash")
        let storePath = dataDirectory.appending(path: "twins.sqlite").path
        try await createThermostats(storePath)

        let reader = try TopicReader(kafka: kafka, topics: [Topics.defaults.twinEvents], logger: logger)
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: kafka), logger: logger)
        let sending = Task {
            try await Self.sendTemperatureCommands(Self.commands, twins: Self.twins, through: producer, pause: .milliseconds(40))
        }

        for _ in 0..<Self.kills {
            // Killed in full flow: once it has published a good number of events, at a random moment.
            let before = (try reader.messages()).count
            let service = try twinServiceProcess(bootstrap: devbroker.bootstrap, dataDirectory: dataDirectory)
            let flowing = try await eventually(timeout: .seconds(120)) { (try reader.messages()).count >= before + 2000 }
            #expect(flowing, "twin-service makes progress after a restart")
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...400)))
            service.kill()
        }
        try await sending.value
        let service = try twinServiceProcess(bootstrap: devbroker.bootstrap, dataDirectory: dataDirectory)
        let expected = Self.twins + Self.commands
        let complete = try await eventually(timeout: .seconds(600)) {
            Set((try reader.messages()).compactMap { try? CloudEvent(decoding: $0).attributes.id }).count >= expected
        }
        #expect(complete, "every change's notification arrived")
        #expect(service.terminate() == 0, "twin-service stops cleanly on SIGTERM")
        try await reader.stop()
        await producer.shutdown()

        // Every command took effect once: each twin's version counts its creation and its commands.
        let graph = try await DigitalTwinGraph(store: SQLiteTwinStore(path: storePath))
        for twin in 0..<Self.twins {
            #expect(try await graph.twin(Self.twinID(twin)).version == Int64(1 + Self.commands / Self.twins), "\(Self.twinID(twin))")
        }

        // A notification for every change; repeats keep their event id; sequences have no gaps.
        let events = try reader.messages().map { try CloudEvent(decoding: $0) }
        var idsByValue: [Int64: Set<String>] = [:]
        var sequencesByTwin: [String: Set<Int>] = [:]
        for event in events {
            sequencesByTwin[event.attributes.subject ?? "", default: []].insert(Int(event.attributes.sequence ?? "") ?? -1)
            if event.attributes.type == "Microsoft.DigitalTwins.Twin.Update", let value = event.data?["patch"]?[0]?["value"]?.integerValue {
                idsByValue[value, default: []].insert(event.attributes.id)
            }
        }
        #expect(idsByValue.count == Self.commands, "an update notification for every command")
        #expect(idsByValue.values.allSatisfy { $0.count == 1 }, "a notification sent twice keeps its event id")
        for twin in 0..<Self.twins {
            #expect(sequencesByTwin[Self.twinID(twin)] == Set(1...(1 + Self.commands / Self.twins)), "\(Self.twinID(twin))")
        }
        let repeats = events.count - Set(events.map(\.attributes.id)).count
        print("crash test: \(events.count) events, \(repeats) sent again after a kill")
    }

    static func twinID(_ index: Int) -> String { "thermo_\(index)" }

    /// Commands `cmd-0`… setting `thermo_<index % twins>`'s Temperature to the index, 500 at a time,
    /// `pause` between sends.
    static func sendTemperatureCommands(_ count: Int, twins: Int, through producer: KafkaProducer, pause: Duration) async throws {
        for start in stride(from: 0, to: count, by: 500) {
            let batch = try (start..<min(start + 500, count)).map { index in
                TwinCommand(
                    id: "cmd-\(index)", twinID: twinID(index % twins),
                    patch: try JSONPatch(json: [["op": "replace", "path": "/Temperature", "value": .integer(Int64(index))]])
                ).kafkaMessage(topic: Topics.defaults.twinCommands)
            }
            try await producer.send(batch)
            try await Task.sleep(for: pause)
        }
    }

    func createThermostats(_ storePath: String) async throws {
        let graph = try await DigitalTwinGraph(store: SQLiteTwinStore(path: storePath))
        _ = try await graph.addModels(Fixtures.upload("seed"))
        for twin in 0..<Self.twins {
            try await graph.putTwin(
                Self.twinID(twin), body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": -1])
        }
    }
}

extension JSONValue {
    fileprivate subscript(index: Int) -> JSONValue? {
        guard let array = arrayValue, array.indices.contains(index) else { return nil }
        return array[index]
    }
}
