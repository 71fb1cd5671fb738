/// Messages handed out together by ``KafkaConsumer/nextBatch()``.
///
/// When every message of the batch has been acted on (outputs delivered or committed), pass it to
/// ``KafkaConsumer/store(_:)``: only then do its offsets count as consumed.
public struct KafkaConsumerBatch: Sendable {
    public var messages: [KafkaConsumerMessage]
    /// For each partition in the batch, the offset to resume from: its last message's offset + 1.
    public var nextOffsets: [KafkaTopicPartition: Int64]
    /// For each partition, the assignment of it the batch was read under (see
    /// ``GroupMembership/assignments(of:rebalancesBefore:)``); `nil` outside a group, where nothing is reassigned.
    var assignments: [KafkaTopicPartition: UInt64]?

    public init(messages: [KafkaConsumerMessage]) {
        self.messages = messages
        var next: [KafkaTopicPartition: Int64] = [:]
        for message in messages {
            let key = message.topicPartition
            next[key] = max(next[key] ?? 0, message.offset + 1)
        }
        self.nextOffsets = next
    }

    init(messages: [KafkaConsumerMessage], nextOffsets: [KafkaTopicPartition: Int64]) {
        self.messages = messages
        self.nextOffsets = nextOffsets
    }

    public var count: Int { messages.count }
    public var isEmpty: Bool { messages.isEmpty }
}
