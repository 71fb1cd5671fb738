import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TwinGraph
import TwinflowCodec
import TwinflowKafka

/// Publishes the outbox: takes committed events in order, sends each to the endpoints whose routes
/// let it through, waits for every delivery report, and only then forgets them. A crash before that
/// sends them again with the same event ids; nothing is lost and nothing is invented.
public struct OutboxRelay: Service {
    private let graph: DigitalTwinGraph
    private let producer: KafkaProducer
    private let logger: Logger
    private let batchSize: Int
    private let keyRetention: Duration

    /// `keyRetention`: how long command ids and telemetry Message-Ids are remembered for deduplication.
    public init(graph: DigitalTwinGraph, producer: KafkaProducer, logger: Logger, batchSize: Int = 5000, keyRetention: Duration = .seconds(86_400)) {
        self.graph = graph
        self.producer = producer
        self.logger = logger
        self.batchSize = batchSize
        self.keyRetention = keyRetention
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await relayUntilStopped()
        } onGracefulShutdown: { [graph] in
            graph.interruptEventWait()
        }
        logger.info("outbox relay stopped")
    }

    /// Delivered entries (and idempotency keys past their retention) are forgotten, and the store
    /// checkpointed, by a task beside the relay, so the relay never waits for the store's writer; a
    /// crash before entries are forgotten sends them again, with their ids.
    private func relayUntilStopped() async throws {
        let mark = DeliveredMark()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { [graph, logger, keyRetention] in
                await Self.forget(through: mark, keyRetention: keyRetention, graph: graph, logger: logger)
            }
            do {
                try await relay(marking: mark)
            } catch {
                tasks.cancelAll()
                throw error
            }
            tasks.cancelAll()
        }
        do {
            try await graph.markDelivered(through: mark.position.withLock { $0 })
        } catch {
            logger.warning("delivered outbox entries not forgotten; they will be sent again", metadata: ["error": "\(error)"])
        }
    }

    /// Batches in flight at once: the next batch is read, made and enqueued while the broker
    /// acknowledges the one before, so the relay does not stand still for each round trip.
    static let batchesInFlight = 2

    private func relay(marking mark: DeliveredMark) async throws {
        var sent = InFlightBatches()
        var backoff = Duration.milliseconds(100)
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            if sent.batches.count >= Self.batchesInFlight {
                await confirmOldest(of: &sent, marking: mark, backoff: &backoff)
                continue
            }
            let started = ContinuousClock.now
            let entries: [OutboxEntry]
            do {
                entries = try await graph.pendingEvents(after: sent.enqueuedThrough, limit: batchSize)
            } catch {
                logger.error("outbox not readable; trying again", metadata: ["error": "\(error)", "retryIn": "\(backoff)"])
                await pause(&backoff)
                continue
            }
            guard let last = entries.last else {
                if sent.batches.isEmpty {
                    await graph.eventsCommitted()
                } else {
                    await confirmOldest(of: &sent, marking: mark, backoff: &backoff)
                }
                continue
            }
            do {
                let messages = await Self.messages(for: entries, graph: graph)
                sent.batches.append((try await producer.enqueue(messages[...]), last.position, entries.count, started))
                sent.enqueuedThrough = last.position
            } catch {
                logger.error("outbox batch not enqueued; sending it again", metadata: ["error": "\(error)", "retryIn": "\(backoff)"])
                while !sent.batches.isEmpty {
                    await confirmOldest(of: &sent, marking: mark, backoff: &backoff)
                }
                sent.enqueuedThrough = mark.position.withLock { $0 }
                await pause(&backoff)
            }
        }
        while !sent.batches.isEmpty {
            await confirmOldest(of: &sent, marking: mark, backoff: &backoff)
        }
    }

    /// Waits for the oldest batch's delivery reports; marks it delivered, or, if it failed, starts
    /// over after the last batch delivered whole (what was delivered since goes again, with its ids).
    private func confirmOldest(of sent: inout InFlightBatches, marking mark: DeliveredMark, backoff: inout Duration) async {
        let oldest = sent.batches.removeFirst()
        do {
            try await producer.delivered(oldest.ticket)
        } catch {
            logger.error("outbox batch not delivered; sending it again", metadata: ["error": "\(error)", "retryIn": "\(backoff)"])
            await startOver(&sent, marking: mark, backoff: &backoff)
            return
        }
        backoff = .milliseconds(100)
        mark.position.withLock { $0 = oldest.last }
        logger.debug("outbox batch delivered", metadata: ["count": "\(oldest.count)", "took": "\(ContinuousClock.now - oldest.started)"])
    }

    /// After a failed batch: waits for the batches behind it (delivered or not, they go again, in
    /// order, with their ids), then goes back to just after the last batch delivered whole.
    private func startOver(_ sent: inout InFlightBatches, marking mark: DeliveredMark, backoff: inout Duration) async {
        for batch in sent.batches { try? await producer.delivered(batch.ticket) }
        sent.batches.removeAll()
        sent.enqueuedThrough = mark.position.withLock { $0 }
        await pause(&backoff)
    }

    private func pause(_ backoff: inout Duration) async {
        try? await Task.sleep(for: backoff)
        backoff = min(backoff * 2, .seconds(5))
    }

    /// The batches enqueued and not yet confirmed, and the outbox position enqueued through (the
    /// position delivered through is the relay's ``DeliveredMark``).
    private struct InFlightBatches {
        var batches: [(ticket: KafkaSendTicket, last: Int64, count: Int, started: ContinuousClock.Instant)] = []
        var enqueuedThrough: Int64 = 0
    }

    /// What the relay delivered so far, for the task that forgets it.
    private final class DeliveredMark: Sendable {
        let position = Mutex<Int64>(0)
    }

    /// Runs until cancelled (the relay stopping, which forgets what it delivered once more itself).
    private static func forget(through mark: DeliveredMark, keyRetention: Duration, graph: DigitalTwinGraph, logger: Logger) async {
        var forgotten: Int64 = 0
        var nextKeyCleanup = ContinuousClock.now
        var nextCheckpoint = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(200))
            if ContinuousClock.now >= nextCheckpoint {
                nextCheckpoint = .now + .seconds(1)
                do {
                    try await graph.checkpointStore()
                } catch is CancellationError {
                    break
                } catch {
                    logger.warning("store checkpoint failed; the next one takes over", metadata: ["error": "\(error)"])
                }
            }
            if ContinuousClock.now >= nextKeyCleanup {
                nextKeyCleanup = .now + .seconds(600)
                let cutoff = Date().addingTimeInterval(-Double(keyRetention.components.seconds))
                do {
                    try await graph.forgetIdempotencyKeys(recordedBefore: Timestamp.string(from: cutoff))
                } catch is CancellationError {
                    break
                } catch {
                    logger.warning("idempotency keys not forgotten yet", metadata: ["error": "\(error)"])
                }
            }
            let position = mark.position.withLock { $0 }
            guard position > forgotten else { continue }
            do {
                try await graph.markDelivered(through: position)
                forgotten = position
            } catch is CancellationError {
                break
            } catch {
                logger.warning("delivered outbox entries not forgotten yet", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The messages of many entries, made in steps that let other tasks run between them.
    static func messages(for entries: [OutboxEntry], graph: DigitalTwinGraph) async -> [KafkaProducerMessage] {
        var messages: [KafkaProducerMessage] = []
        messages.reserveCapacity(entries.count)
        for (index, entry) in entries.enumerated() {
            if index % 1024 == 1023 { await Task.yield() }
            messages.append(contentsOf: Self.messages(for: entry, graph: graph))
        }
        return messages
    }

    /// The event as each endpoint its routes select carries it; keyed by twin ID.
    public static func messages(for entry: OutboxEntry, graph: DigitalTwinGraph) -> [KafkaProducerMessage] {
        let event = entry.event
        return graph.destinations(of: event).map { endpoint in
            switch endpoint.format {
            case .structured:
                CloudEvent.kafkaMessage(serializedAttributes: event.serializedAttributes, jsonData: event.data, topic: endpoint.topic, key: event.twinID)
            case .binary:
                BinaryCloudEvent(attributes: event.attributes, data: event.data).kafkaMessage(topic: endpoint.topic, key: event.twinID)
            }
        }
    }
}
