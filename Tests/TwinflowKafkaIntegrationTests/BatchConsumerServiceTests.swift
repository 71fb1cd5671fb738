import Foundation
import Logging
import ServiceLifecycle
import Testing
import TwinflowKafka
import TwinflowRuntime
import TwinflowTestSupport

@Suite struct BatchConsumerServiceTests {
    /// A failing batch is handed over again until it succeeds; on graceful shutdown the service
    /// finishes, commits and leaves, and a successor in the same group starts after the last message.
    @Test func retriesFailedBatchesAndCommitsOnGracefulShutdown() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 2)
        let group = "group-\(UUID())"
        let producer = try kafka.makeProducer()
        try await producer.send((0..<500).map { KafkaProducerMessage(topic: topic, key: "k\($0 % 7)", value: Array(String($0).utf8)) })

        let seen = Shared<[Int]>([])
        let failures = Shared(0)
        let consumer = try kafka.makeConsumer(group: group, topics: [topic], maxBatchSize: 100)
        let service = BatchConsumerService(consumer: consumer, logger: kafka.logger, maximumBackoff: .milliseconds(50)) { batch in
            if failures.withLock({ count in
                count += 1
                return count <= 2
            }) {
                throw CancellationError()
            }
            seen.withLock { $0 += batch.messages.map { Int(String(decoding: $0.value!, as: UTF8.self))! } }
        }
        let serviceGroup = ServiceGroup(configuration: .init(services: [service], logger: kafka.logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await serviceGroup.run() }
            #expect(await eventually { seen.value.count >= 500 })
            await serviceGroup.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(Set(seen.value) == Set(0..<500), "the failed batches were handled again, nothing skipped")

        try await producer.send(KafkaProducerMessage(topic: topic, key: "after", value: Array("500".utf8)))
        await producer.shutdown()
        let successor = try kafka.makeConsumer(group: group, topics: [topic])
        let next = try #require(try await successor.nextBatch())
        #expect(next.messages.map(\.keyString) == ["after"], "offsets were committed on shutdown")
        await successor.close()
    }
}
