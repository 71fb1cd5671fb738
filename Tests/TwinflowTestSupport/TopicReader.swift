import Foundation
import Logging
import TwinflowKafka

/// Reads topics from the beginning in the background and keeps every message, for a test to look at.
public final class TopicReader: Sendable {
    private let consumer: KafkaConsumer
    private let received = Shared<[KafkaConsumerMessage]>([])
    private let task: Task<Void, Never>

    public init(kafka: KafkaConfiguration, topics: [String], logger: Logger) throws {
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(kafka: kafka, groupID: "reader-\(UUID())", topics: topics), logger: logger
        )
        self.consumer = consumer
        let received = self.received
        task = Task {
            while let batch = try? await consumer.nextBatch() {
                received.withLock { $0.append(contentsOf: batch.messages) }
            }
        }
    }

    /// Everything read so far, in the order it arrived.
    public var messages: [KafkaConsumerMessage] { received.value }

    /// The messages of one topic.
    public func messages(on topic: String) -> [KafkaConsumerMessage] { received.value.filter { $0.topic == topic } }

    /// Waits until `count` messages of `topic` arrived (or `timeout` passed) and returns them.
    public func waitFor(_ count: Int, on topic: String, timeout: Duration = .seconds(60)) async -> [KafkaConsumerMessage] {
        _ = await eventually(timeout: timeout) { self.messages(on: topic).count >= count }
        return messages(on: topic)
    }

    public func stop() async {
        task.cancel()
        consumer.stopConsuming()
        _ = await task.value
        await consumer.close()
    }
}
