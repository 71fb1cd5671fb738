import Foundation
import Logging
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime

/// Turns a batch from `eventhub.telemetry` (and `eventgrid.twin-events`, when configured) into
/// time-series events on `eventhub.tsi`, keyed by `$dtId`: decode and map in ``prepare(_:)``, then
/// send the events and dead letters as one producer batch in ``handle(_:_:)``, which returns once
/// every delivery report arrived, so the batch's offsets may be stored.
public final class TsiForwarderHandler: Sendable {
    public static let serviceName = "tsi-forwarder"

    private let producer: KafkaProducer
    private let topics: Topics
    private let counters: TsiForwarderCounters
    private let logger: Logger
    private let mappingParts: Int

    /// `mappingParts`: how many parts a large batch is mapped in at once (one per core).
    public init(
        producer: KafkaProducer, topics: Topics, counters: TsiForwarderCounters,
        mappingParts: Int = ProcessInfo.processInfo.activeProcessorCount, logger: Logger
    ) {
        self.mappingParts = max(1, mappingParts)
        self.producer = producer
        self.topics = topics
        self.counters = counters
        self.logger = logger
    }

    /// A batch's outputs, ready to send, each with its input's position in the batch.
    public struct PreparedBatch: Sendable {
        public var messages: [KafkaProducerMessage] = []
        public var inputs: [Int] = []
        public var counts = TsiForwarderCounts()
    }

    /// Maps every message of the batch; what cannot be mapped becomes a dead letter. A large batch
    /// is mapped in `mappingParts` contiguous parts at once, the parts' outputs joined in the batch's
    /// order (so each twin's events keep their order).
    public func prepare(_ batch: KafkaConsumerBatch) async throws -> PreparedBatch {
        let count = max(1, min(mappingParts, batch.count / 1024))
        guard count > 1 else { return Self.map(batch.messages, topics: topics) }
        let messages = batch.messages
        let size = (messages.count + count - 1) / count
        let topics = self.topics
        let parts = await withTaskGroup(of: (Int, PreparedBatch).self) { group in
            for index in 0..<count {
                group.addTask {
                    let range = (index * size)..<min(messages.count, (index + 1) * size)
                    return (index, Self.map(Array(messages[range]), startingAt: range.lowerBound, topics: topics))
                }
            }
            var parts = [PreparedBatch?](repeating: nil, count: count)
            for await (index, part) in group { parts[index] = part }
            return parts
        }
        var prepared = PreparedBatch()
        prepared.messages.reserveCapacity(messages.count)
        prepared.inputs.reserveCapacity(messages.count)
        for case let part? in parts {
            prepared.messages += part.messages
            prepared.inputs += part.inputs
            prepared.counts.add(part.counts)
        }
        return prepared
    }

    /// The outputs of `messages`, in their order (so a twin's events keep their order on its
    /// partition); the first of `messages` is at position `first` in its batch.
    public static func map(_ messages: [KafkaConsumerMessage], startingAt first: Int = 0, topics: Topics) -> PreparedBatch {
        var prepared = PreparedBatch()
        prepared.messages.reserveCapacity(messages.count)
        prepared.inputs.reserveCapacity(messages.count)
        for (offset, message) in messages.enumerated() {
            let countBefore = prepared.messages.count
            defer { if prepared.messages.count > countBefore { prepared.inputs.append(first + offset) } }
            let fallbackTime = message.timestamp
            do {
                if message.topic == topics.twinEvents {
                    let notification: TwinNotification?
                    do {
                        notification = try TwinNotification(ifNotificationIn: message)
                    } catch {
                        throw TimeSeriesMapping.Refusal("not a twin notification: \(error)")
                    }
                    guard let notification, let event = try TimeSeriesMapping.event(fromNotification: notification, fallbackTime: fallbackTime)
                    else {
                        prepared.counts.ignored += 1
                        continue
                    }
                    prepared.messages.append(event.kafkaMessage(topic: topics.timeSeries))
                    prepared.counts.twinUpdates += 1
                } else {
                    let event: BinaryCloudEvent
                    do {
                        event = try BinaryCloudEvent(decoding: message)
                    } catch {
                        throw TimeSeriesMapping.Refusal("not a binary-mode CloudEvent: \(error)")
                    }
                    guard event.attributes.type == TimeSeriesMapping.telemetryType else {
                        prepared.counts.ignored += 1
                        continue
                    }
                    let mapped = try TimeSeriesMapping.event(fromTelemetry: event, key: message.keyString, fallbackTime: fallbackTime)
                    prepared.messages.append(mapped.kafkaMessage(topic: topics.timeSeries))
                    prepared.counts.telemetry += 1
                }
            } catch {
                prepared.messages.append(
                    DeadLetter(service: serviceName, reason: "\(error)", original: message).kafkaMessage(for: message, topic: topics.deadLetter))
                prepared.counts.deadLettered += 1
            }
        }
        return prepared
    }

    /// Sends the batch's events and dead letters and waits for every delivery report; an event
    /// whose time-series event the broker refuses (grown past its size limit) is dead-lettered in
    /// its place.
    public func handle(_ batch: KafkaConsumerBatch, _ prepared: PreparedBatch) async throws {
        var counts = prepared.counts
        let refused = try await producer.sendOutputs(
            prepared.messages, inputs: prepared.inputs, of: batch, service: Self.serviceName, deadLetterTopic: topics.deadLetter)
        for index in refused where prepared.messages[index].topic != topics.deadLetter {
            counts.deadLettered += 1
            if batch.messages[prepared.inputs[index]].topic == topics.twinEvents { counts.twinUpdates -= 1 } else { counts.telemetry -= 1 }
        }
        counters.add(counts)
        if counts.deadLettered > 0 {
            logger.warning("events dead-lettered", metadata: ["count": "\(counts.deadLettered)"])
        }
    }
}
