import TwinflowKafka

/// A message a service could not handle, sent to the `deadletter` topic with its key, value and
/// headers untouched, plus headers that say who gave up on it, why, and where it came from.
public struct DeadLetter: Sendable, Hashable {
    public static let serviceHeader = "twinflow.deadletter.service"
    public static let reasonHeader = "twinflow.deadletter.reason"
    public static let topicHeader = "twinflow.deadletter.topic"
    public static let partitionHeader = "twinflow.deadletter.partition"
    public static let offsetHeader = "twinflow.deadletter.offset"
    public static let timeHeader = "twinflow.deadletter.time"

    public var service: String
    public var reason: String
    public var sourceTopic: String
    public var sourcePartition: Int32
    public var sourceOffset: Int64

    public init(service: String, reason: String, sourceTopic: String, sourcePartition: Int32, sourceOffset: Int64) {
        self.service = service
        self.reason = reason
        self.sourceTopic = sourceTopic
        self.sourcePartition = sourcePartition
        self.sourceOffset = sourceOffset
    }

    public init(service: String, reason: String, original: KafkaConsumerMessage) {
        self.init(
            service: service,
            reason: reason,
            sourceTopic: original.topic,
            sourcePartition: original.partition,
            sourceOffset: original.offset
        )
    }

    /// Reads the dead-letter headers of a message from the `deadletter` topic.
    public init(decoding message: KafkaConsumerMessage) throws(CodecError) {
        let headers = message.headers
        func required(_ key: String) throws(CodecError) -> String {
            guard let value = headers.string(for: key) else { throw .missing("header \(key)") }
            return value
        }
        self.service = try required(Self.serviceHeader)
        self.reason = try required(Self.reasonHeader)
        self.sourceTopic = try required(Self.topicHeader)
        guard let partition = Int32(try required(Self.partitionHeader)) else {
            throw CodecError(field: "header \(Self.partitionHeader)", reason: "must be an integer")
        }
        guard let offset = Int64(try required(Self.offsetHeader)) else {
            throw CodecError(field: "header \(Self.offsetHeader)", reason: "must be an integer")
        }
        self.sourcePartition = partition
        self.sourceOffset = offset
    }

    /// The dead-letter message for `original`: its key, value and headers, plus ours.
    public func kafkaMessage(for original: KafkaConsumerMessage, topic: String, time: String = Timestamp.now()) -> KafkaProducerMessage {
        var headers = original.headers
        headers.append(KafkaHeader(key: Self.serviceHeader, string: service))
        headers.append(KafkaHeader(key: Self.reasonHeader, string: reason))
        headers.append(KafkaHeader(key: Self.topicHeader, string: sourceTopic))
        headers.append(KafkaHeader(key: Self.partitionHeader, string: String(sourcePartition)))
        headers.append(KafkaHeader(key: Self.offsetHeader, string: String(sourceOffset)))
        headers.append(KafkaHeader(key: Self.timeHeader, string: time))
        return KafkaProducerMessage(topic: topic, key: original.key, value: original.value, headers: headers)
    }
}
