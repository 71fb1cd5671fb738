import Foundation
import Logging
import Testing
import TwinflowCodec
import TwinflowKafka
import TwinflowTestSupport

/// twinctl's Kafka and route commands against a devbroker and a twin-service process.
@Suite(.serialized) struct TwinctlProcessTests {
    static func twinctl(_ arguments: [String]) throws -> String {
        try run(try builtExecutable("twinctl").path, arguments)
    }

    @Test func simulateSendsIoTHubMessagesAtTheRateForTheDuration() async throws {
        let devbroker = try DevBrokerProcess(partitions: 4)
        defer { devbroker.terminate() }
        let reader = try TopicReader(
            kafka: KafkaConfiguration(bootstrapServers: devbroker.bootstrap), topics: [Topics.defaults.deviceMessages], logger: Logger(label: "test"))
        _ = try Self.twinctl([
            "simulate", "--brokers", devbroker.bootstrap, "--devices", "3", "--rate", "40", "--duration", "1", "--pattern", "constant", "--base",
            "19.5",
        ])
        let messages = try await reader.waitFor(40, on: Topics.defaults.deviceMessages)
        try await Task.sleep(for: .milliseconds(300))
        let all = try reader.messages()
        #expect(all.count == 40, "40 messages in a second at 40/s: \(all.count)")
        let devices = try all.map { try DeviceMessage(decoding: $0) }
        #expect(Set(devices.map(\.deviceID)) == ["thermo_0001", "thermo_0002", "thermo_0003"])
        #expect(devices.allSatisfy { $0.body["Temperature"] == 19.5 && $0.messageID != nil && $0.enqueuedTime != nil })
        #expect(messages.allSatisfy { $0.keyString.map { $0.hasPrefix("thermo_") } ?? false }, "keyed by device ID")
        try await reader.stop()
    }

    /// A run without a duration ends on SIGTERM (or Ctrl-C) with its messages delivered and its summary.
    @Test func simulateStopsOnATermWithEveryMessageSentAndASummary() async throws {
        let devbroker = try DevBrokerProcess(partitions: 2)
        defer { devbroker.terminate() }
        let reader = try TopicReader(
            kafka: KafkaConfiguration(bootstrapServers: devbroker.bootstrap), topics: [Topics.defaults.deviceMessages], logger: Logger(label: "test"))
        let simulator = try ChildProcess(
            "twinctl", arguments: ["simulate", "--brokers", devbroker.bootstrap, "--rate", "100"], capturingStandardError: true)
        _ = try await reader.waitFor(20, on: Topics.defaults.deviceMessages)
        #expect(simulator.terminate() == 0, "\(simulator.standardErrorText)")
        let text = simulator.standardErrorText
        let summary = try #require(text.firstMatch(of: /sent (\d+) messages to iothub.d2c/), "\(text)")
        let sent = try #require(Int(summary.output.1))
        let received = try await reader.waitFor(sent, on: Topics.defaults.deviceMessages)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try reader.messages().count == sent && received.count == sent)
        try await reader.stop()
    }

    @Test func tailPrintsADeadLettersReason() async throws {
        let devbroker = try DevBrokerProcess(partitions: 2)
        defer { devbroker.terminate() }
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(kafka: KafkaConfiguration(bootstrapServers: devbroker.bootstrap)), logger: Logger(label: "test")
        )
        let original = KafkaConsumerMessage(topic: "iothub.d2c", partition: 1, offset: 7, key: Array("d1".utf8), value: Array("junk".utf8))
        try await producer.send([
            DeadLetter(service: "ingress", reason: "not JSON: at byte 0", original: original).kafkaMessage(
                for: original, topic: Topics.defaults.deadLetter)
        ])
        await producer.shutdown()
        let output = try Self.twinctl(["tail", Topics.defaults.deadLetter, "--brokers", devbroker.bootstrap, "--from-beginning", "--count", "1"])
        #expect(output.contains("from ingress (iothub.d2c[1]@7): not JSON: at byte 0 | junk"), "\(output)")
    }

    @Test func routesAreCreatedListedAndDeleted() async throws {
        let devbroker = try DevBrokerProcess(partitions: 2)
        defer { devbroker.terminate() }
        let port = unusedPort()
        let service = try twinServiceProcess(bootstrap: devbroker.bootstrap, port: port)
        defer { service.terminate() }
        #expect(await TwinServiceEndpoint(port: port).waitUntilUp())
        let url = "http://127.0.0.1:\(port)"
        _ = try Self.twinctl([
            "routes", "create", "updates", "--url", url, "--endpoint", "twin-events", "--filter", "type = 'Microsoft.DigitalTwins.Twin.Update'",
        ])
        let listed = try Self.twinctl(["routes", "list", "--url", url]).split(separator: "\n").map { try JSONValue.parse(String($0)) }
        let route = try #require(listed.first { $0["id"] == "updates" }, "\(listed)")
        #expect(route["endpointName"] == "twin-events")
        #expect(route["filter"] == "type = 'Microsoft.DigitalTwins.Twin.Update'")
        _ = try Self.twinctl(["routes", "delete", "updates", "--url", url])
        #expect(try !Self.twinctl(["routes", "--url", url]).contains("\"updates\""))
    }
}
