import Foundation
import Testing
import TwinGraph
import TwinService
import TwinflowCodec
import TwinflowKafka
import TwinflowTestSupport

/// What twin-service does with a command it cannot turn into a deliverable notification.
@Suite struct CommandHandlerTests {
    /// A command whose patch is larger than a REST request's may be (its Twin.Update would be near
    /// Kafka's message limit) is dead-lettered, untouched, and changes nothing.
    @Test func aCommandWithAPatchTooLargeToNotifyIsDeadLettered() async throws {
        let setup = try TwinServiceSetup(partitions: 1)
        let graph = try await setup.graphWithThermostat()
        let producer = try setup.kafka.makeProducer()
        let handler = CommandHandler(graph: graph, producer: producer, deadLetterTopic: setup.topics.deadLetter, logger: setup.kafka.logger)
        let temperature = JSONPointer(tokens: ["Temperature"])
        let large = TwinCommand(
            id: "large", twinID: "thermo_0001", patch: JSONPatch(Array(repeating: .replace(path: temperature, value: 21.5), count: 6_000)))
        let small = TwinCommand(id: "small", twinID: "thermo_0001", patch: JSONPatch([.replace(path: temperature, value: 22)]))
        let batch = setup.consumedBatch([large, small])
        let messages = batch.messages
        #expect((messages[0].value?.count ?? 0) > DigitalTwinGraph.maximumPatchBytes)
        let reader = try TopicReader(kafka: setup.kafka.configuration, topics: [setup.topics.deadLetter], logger: setup.kafka.logger)
        try await handler.handle(batch, await handler.decode(batch))
        let letters = try await reader.waitFor(1, on: setup.topics.deadLetter)
        let letter = try #require(letters.first)
        #expect(try DeadLetter(decoding: letter).reason.contains("larger than 262144 bytes"))
        #expect(letter.value == messages[0].value, "untouched")
        #expect(try await graph.twin("thermo_0001").document["Temperature"] == 22, "the command after it applies")
        try await reader.stop()
        await producer.shutdown()
    }
}
