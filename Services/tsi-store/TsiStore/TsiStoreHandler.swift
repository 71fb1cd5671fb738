import Foundation
import Logging
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime

/// Stores a batch from `eventhub.tsi`: decode in ``prepare(_:)``, then in ``handle(_:_:)`` one
/// store transaction for the batch and the dead letters of what could not be read; it returns once
/// both are done, so the batch's offsets are stored only after the commit.
public final class TsiStoreHandler: Sendable {
    public static let serviceName = "tsi-store"

    private let store: any TimeSeriesStore
    private let producer: KafkaProducer
    private let topics: Topics
    private let counters: TsiStoreCounters
    private let logger: Logger

    public init(store: any TimeSeriesStore, producer: KafkaProducer, topics: Topics, counters: TsiStoreCounters, logger: Logger) {
        self.store = store
        self.producer = producer
        self.topics = topics
        self.counters = counters
        self.logger = logger
    }

    public struct PreparedBatch: Sendable {
        public var events: [StoredEvent] = []
        public var deadLetters: [KafkaProducerMessage] = []
    }

    public func prepare(_ batch: KafkaConsumerBatch) async throws -> PreparedBatch {
        Self.decode(batch.messages, deadLetterTopic: topics.deadLetter)
    }

    /// The events of `messages`; an event without an ID header (or with an empty one) gets
    /// `<topic>/<partition>/<offset>`, so a redelivery of the same message is still a repeat. An
    /// event with a value of an empty name is dead-lettered: the empty name counts the events.
    public static func decode(_ messages: [KafkaConsumerMessage], deadLetterTopic: String) -> PreparedBatch {
        var prepared = PreparedBatch()
        prepared.events.reserveCapacity(messages.count)
        for message in messages {
            do {
                let event = try TimeSeriesEvent(decoding: message)
                guard let time = event.milliseconds else { throw CodecError(field: "timestamp", reason: "must be an RFC 3339 time") }
                let id = event.id.flatMap { $0.isEmpty ? nil : $0 } ?? "\(message.topic)/\(message.partition)/\(message.offset)"
                try checkStorable(event.twinID, field: "$dtId")
                try checkStorable(id, field: "id")
                for name in event.values.keys {
                    if name.isEmpty { throw CodecError(field: "a value's name", reason: "is empty; values need a name") }
                    try checkStorable(name, field: "a value's name")
                }
                prepared.events.append(StoredEvent(series: event.twinID, time: time, id: id, values: event.values))
            } catch {
                prepared.deadLetters.append(
                    DeadLetter(service: serviceName, reason: "not a time-series event: \(error)", original: message).kafkaMessage(
                        for: message, topic: deadLetterTopic))
            }
        }
        return prepared
    }

    /// The longest series ID, event ID or value name stored, in UTF-8 bytes: the stores index them
    /// (a PostgreSQL index entry holds at most about 2,700 bytes).
    public static let maximumNameBytes = 1_024

    /// Throws unless both stores can keep `name`: a name one of them refuses would hold its batch
    /// for ever, so it is dead-lettered instead.
    private static func checkStorable(_ name: String, field: String) throws(CodecError) {
        if name.utf8.count > maximumNameBytes {
            throw CodecError(field: field, reason: "is \(name.utf8.count) bytes long; at most \(maximumNameBytes) are stored")
        }
        if name.utf8.contains(0) { throw CodecError(field: field, reason: "holds the character U+0000, which PostgreSQL cannot store") }
    }

    public func handle(_ batch: KafkaConsumerBatch, _ prepared: PreparedBatch) async throws {
        let report = try await store.ingest(prepared.events, now: Int64(Date().timeIntervalSince1970 * 1000))
        if !prepared.deadLetters.isEmpty {
            try await producer.send(prepared.deadLetters, deadLettersTo: topics.deadLetter)
            logger.warning("events dead-lettered", metadata: ["count": "\(prepared.deadLetters.count)"])
        }
        counters.add(TsiStoreCounts(report, deadLettered: prepared.deadLetters.count))
    }
}
