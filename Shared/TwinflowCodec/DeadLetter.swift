import KafkaRecords

/// A message a service could not handle, sent to the `deadletter` topic with its key, value and
/// headers untouched, plus headers that say who gave up on it, why, and where it came from.
public struct DeadLetter: Sendable, Hashable {
    public static let serviceHeader = "twinflow.deadletter.service"
    public static let reasonHeader = "twinflow.deadletter.reason"
    public static let topicHeader = "twinflow.deadletter.topic"
    public static let partitionHeader = "twinflow.deadletter.partition"
    public static let offsetHeader = "twinflow.deadletter.offset"
    public static let timeHeader = "twinflow.deadletter.time"
    /// For an event a service could not deliver from its outbox: the event's outbox position and ID.
    public static let outboxPositionHeader = "twinflow.deadletter.outbox-position"
    public static let eventIDHeader = "twinflow.deadletter.event-id"
    /// Set when the original value was left out for its size (the broker refused it, or the dead
    /// letter would have been over ``maximumBytes``); the header says how large it was.
    public static let valueOmittedHeader = "twinflow.deadletter.value-omitted"

    public var service: String
    public var reason: String
    public var sourceTopic: String
    public var sourcePartition: Int32
    public var sourceOffset: Int64

    /// `reason` is kept to ``maximumReasonBytes`` (see ``bounded(_:)``).
    public init(service: String, reason: String, sourceTopic: String, sourcePartition: Int32, sourceOffset: Int64) {
        self.service = service
        self.reason = Self.bounded(reason)
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

    /// The longest reason a dead letter carries, in bytes. Reasons quote what they refused (a device
    /// ID, a header's value), which can be as large as the message: a reason that long would make
    /// the dead letter too large to send even without the original's value.
    public static let maximumReasonBytes = 1_024

    /// `reason`, cut at a character's end to at most ``maximumReasonBytes`` with `…` after the cut.
    public static func bounded(_ reason: String) -> String {
        guard reason.utf8.count > maximumReasonBytes else { return reason }
        let utf8 = reason.utf8
        var end = utf8.index(utf8.startIndex, offsetBy: maximumReasonBytes - "…".utf8.count)
        while utf8[end] & 0xC0 == 0x80 { end = utf8.index(before: end) }
        return String(decoding: utf8[..<end], as: UTF8.self) + "…"
    }

    /// The largest dead letter sent whole, in bytes of key, value and headers: under the
    /// 1,000,000 bytes a librdkafka producer takes by default (`message.max.bytes`), with room for
    /// the request around it. A larger one goes without the original's value, its size noted.
    public static let maximumBytes = 900_000

    /// The dead-letter message for `original`: its key, value and headers, plus ours; without the
    /// value (``valueOmittedHeader`` says how large it was) when the whole would be over ``maximumBytes``.
    /// With `omittingValue` the value is left out whatever its size (for a dead letter the broker refused).
    public func kafkaMessage(
        for original: KafkaConsumerMessage, topic: String, omittingValue: Bool = false, time: String = Timestamp.now()
    ) -> KafkaProducerMessage {
        var headers = original.headers
        headers.append(KafkaHeader(key: Self.serviceHeader, string: service))
        headers.append(KafkaHeader(key: Self.reasonHeader, string: reason))
        headers.append(KafkaHeader(key: Self.topicHeader, string: sourceTopic))
        headers.append(KafkaHeader(key: Self.partitionHeader, string: String(sourcePartition)))
        headers.append(KafkaHeader(key: Self.offsetHeader, string: String(sourceOffset)))
        headers.append(KafkaHeader(key: Self.timeHeader, string: time))
        let size = (original.key?.count ?? 0) + (original.value?.count ?? 0) + headers.reduce(0) { $0 + $1.key.utf8.count + ($1.value?.count ?? 0) }
        guard size <= Self.maximumBytes, !omittingValue else {
            headers.append(KafkaHeader(key: Self.valueOmittedHeader, string: "\(original.value?.count ?? 0) bytes"))
            return KafkaProducerMessage(topic: topic, key: original.key, value: nil, headers: headers)
        }
        return KafkaProducerMessage(topic: topic, key: original.key, value: original.value, headers: headers)
    }

    /// A dead-letter message without the original's value, its size noted in ``valueOmittedHeader``:
    /// for a dead letter the broker refused as too large. One without a value is returned as it is.
    public static func omittingValue(of letter: KafkaProducerMessage) -> KafkaProducerMessage {
        guard let value = letter.value else { return letter }
        return KafkaProducerMessage(
            topic: letter.topic, key: letter.key, value: nil,
            headers: letter.headers + [KafkaHeader(key: valueOmittedHeader, string: "\(value.count) bytes")])
    }

    /// The dead-letter message for an outgoing message the broker kept refusing: its key, value and
    /// headers, plus ours. The source topic is where it was meant to go (partition and offset are
    /// -1: it never had any), with the outbox position and event ID it had.
    public static func undeliverable(
        _ message: KafkaProducerMessage, service: String, reason: String, outboxPosition: Int64, eventID: String, deadLetterTopic: String,
        time: String = Timestamp.now()
    ) -> KafkaProducerMessage {
        var headers = message.headers
        headers.append(KafkaHeader(key: serviceHeader, string: service))
        headers.append(KafkaHeader(key: reasonHeader, string: bounded(reason)))
        headers.append(KafkaHeader(key: topicHeader, string: message.topic))
        headers.append(KafkaHeader(key: partitionHeader, string: "-1"))
        headers.append(KafkaHeader(key: offsetHeader, string: "-1"))
        headers.append(KafkaHeader(key: timeHeader, string: time))
        headers.append(KafkaHeader(key: outboxPositionHeader, string: String(outboxPosition)))
        headers.append(KafkaHeader(key: eventIDHeader, string: eventID))
        return KafkaProducerMessage(topic: deadLetterTopic, key: message.key, value: message.value, headers: headers)
    }
}
