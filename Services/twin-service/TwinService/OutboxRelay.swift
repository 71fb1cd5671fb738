import Foundation
import Logging
import ServiceLifecycle
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
    public init(graph: DigitalTwinGraph, producer: KafkaProducer, logger: Logger, batchSize: Int = 5000, keyRetention: Duration = .seconds(7 * 86_400)) {
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

    private func relayUntilStopped() async throws {
        var delivered: Int64 = 0
        var backoff = Duration.milliseconds(100)
        var nextCleanup = ContinuousClock.now
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            if ContinuousClock.now >= nextCleanup {
                nextCleanup = .now + .seconds(600)
                let cutoff = Date().addingTimeInterval(-Double(keyRetention.components.seconds))
                try await graph.forgetIdempotencyKeys(recordedBefore: Timestamp.string(from: cutoff))
            }
            let entries = try await graph.pendingEvents(after: delivered, limit: batchSize)
            guard let last = entries.last else {
                await graph.eventsCommitted()
                continue
            }
            do {
                try await producer.send(entries.flatMap { Self.messages(for: $0, graph: graph) })
            } catch {
                logger.error("outbox batch not delivered; sending it again", metadata: ["error": "\(error)", "retryIn": "\(backoff)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
                continue
            }
            backoff = .milliseconds(100)
            try await graph.markDelivered(through: last.position)
            delivered = last.position
        }
    }

    /// The event as each endpoint its routes select carries it; keyed by twin ID.
    public static func messages(for entry: OutboxEntry, graph: DigitalTwinGraph) -> [KafkaProducerMessage] {
        let event = entry.event
        return graph.destinations(of: event).map { endpoint in
            switch endpoint.format {
            case .structured:
                CloudEvent.kafkaMessage(attributes: event.attributes, jsonData: event.data, topic: endpoint.topic, key: event.twinID)
            case .binary:
                BinaryCloudEvent(attributes: event.attributes, data: event.data).kafkaMessage(topic: endpoint.topic, key: event.twinID)
            }
        }
    }
}
