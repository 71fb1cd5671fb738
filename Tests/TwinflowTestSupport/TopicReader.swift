import Foundation
import Logging
import TwinflowKafka

/// Reads topics from the beginning in the background and keeps every message, for a test to look at.
/// A consumer error ends the reading, and every later look at the messages rethrows it.
public final class TopicReader: Sendable {
    private let consumer: KafkaConsumer
    private let received = Shared<(messages: [KafkaConsumerMessage], error: KafkaError?)>(([], nil))
    private let task: Task<Void, Never>

    public init(kafka: KafkaConfiguration, topics: [String], logger: Logger) throws {
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(kafka: kafka, groupID: "reader-\(UUID())", topics: topics), logger: logger
        )
        self.consumer = consumer
        let received = self.received
        task = Task {
            do throws(KafkaError) {
                while let batch = try await consumer.nextBatch() {
                    received.withLock { $0.messages.append(contentsOf: batch.messages) }
                }
            } catch {
                received.withLock { $0.error = error }
            }
        }
    }

    /// Everything read so far, in the order it arrived.
    public func messages() throws(KafkaError) -> [KafkaConsumerMessage] {
        let (messages, error) = received.value
        if let error { throw error }
        return messages
    }

    /// The messages of one topic.
    public func messages(on topic: String) throws(KafkaError) -> [KafkaConsumerMessage] {
        try messages().filter { $0.topic == topic }
    }

    /// Waits until `count` messages of `topic` arrived (or `timeout` passed) and returns them.
    public func waitFor(_ count: Int, on topic: String, timeout: Duration = .seconds(60)) async throws -> [KafkaConsumerMessage] {
        _ = try await eventually(timeout: timeout) { try self.messages(on: topic).count >= count }
        return try messages(on: topic)
    }

    /// Stops reading; rethrows the error that ended the reading early, if one did.
    public func stop() async throws {
        task.cancel()
        consumer.stopConsuming()
        _ = await task.value
        await consumer.close()
        if let error = received.value.error { throw error }
    }
}
