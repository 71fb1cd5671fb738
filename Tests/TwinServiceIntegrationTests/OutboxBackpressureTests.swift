import Foundation
import Testing
import TwinGraph
import TwinService
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime
import TwinflowTestSupport

/// Commands wait in Kafka while the outbox is stuck, so that the outbox does not grow without end
/// while the endpoint topics cannot be written and `twins.commands` can still be read.
@Suite struct OutboxBackpressureTests {
    @Test func commandsAreHeldBackWhileTheOutboxIsStuckAndAppliedOnceItMoves() async throws {
        let setup = try TwinServiceSetup(partitions: 1)
        let graph = try await setup.graphWithThermostat()
        let oldest = Shared<Date?>(Date(timeIntervalSinceNow: -90))
        let asked = Shared(0)
        let backpressure = OutboxBackpressure(maximumAge: .seconds(60), interval: .milliseconds(200)) {
            asked.withLock { $0 += 1 }
            return oldest.value
        }
        let producer = try setup.kafka.makeProducer()
        let handler = CommandHandler(
            graph: graph, producer: producer, deadLetterTopic: setup.topics.deadLetter, backpressure: backpressure, logger: setup.kafka.logger)
        let command = TwinCommand(
            id: "c1", twinID: "thermo_0001", patch: JSONPatch([.replace(path: JSONPointer(tokens: ["Temperature"]), value: 25)]))
        let batch = setup.consumedBatch([command])

        await #expect(throws: OutboxBackpressure.OutboxStuck.self) { try await handler.handle(batch, await handler.decode(batch)) }
        await #expect(throws: OutboxBackpressure.OutboxStuck.self, "the answer is kept for the interval") {
            try await handler.handle(batch, await handler.decode(batch))
        }
        #expect(asked.value == 1)
        #expect(try await graph.twin("thermo_0001").document["Temperature"] == 20, "nothing applied while the outbox is stuck")

        oldest.withLock { $0 = Date(timeIntervalSinceNow: -5) }
        try await Task.sleep(for: .milliseconds(250))
        try await handler.handle(batch, await handler.decode(batch))
        #expect(asked.value == 2)
        #expect(try await graph.twin("thermo_0001").document["Temperature"] == 25, "applied once the outbox moves")
        await producer.shutdown()
    }
}
