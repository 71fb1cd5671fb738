import Foundation
import Logging
import ServiceLifecycle
import TwinGraph
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime

/// The twin service's Kafka side, in start order: the producer, the outbox relay that publishes
/// through it, and the consumer of `twins.commands` (which stops first, then the relay, then the
/// producer flushes).
public enum TwinServiceKafka {
    /// Registers the readiness checks of these parts: the consumer group, the store accepting a
    /// write, the outbox not stuck (its oldest undelivered event younger than
    /// `TWINFLOW_OUTBOX_MAX_AGE_SECONDS`, 60 by default) and the relay not retrying a refused event.
    /// While the outbox is stuck past that age, commands are held back in Kafka (``OutboxBackpressure``).
    /// Command ids and telemetry Message-Ids are remembered `TWINFLOW_IDEMPOTENCY_RETENTION_SECONDS`
    /// (a day) and purged every `TWINFLOW_IDEMPOTENCY_PURGE_INTERVAL_SECONDS` (600).
    public static func services(
        graph: DigitalTwinGraph, environment: ServiceEnvironment, logger: Logger, readiness: Readiness = Readiness()
    ) throws -> [any Service] {
        let outboxMaximumAge = try environment.integer("TWINFLOW_OUTBOX_MAX_AGE_SECONDS", in: 1...86_400) ?? 60
        let producer = try KafkaProducer(configuration: environment.producerConfiguration, logger: logger)
        let consumer = try KafkaConsumer(
            configuration: environment.consumerConfiguration(topics: [environment.topics.twinCommands], maxBatchSize: 10_000), logger: logger
        )
        let keyRetention = try environment.integer("TWINFLOW_IDEMPOTENCY_RETENTION_SECONDS", in: 1...(366 * 86_400)) ?? 86_400
        let keyPurgeInterval = try environment.integer("TWINFLOW_IDEMPOTENCY_PURGE_INTERVAL_SECONDS", in: 1...86_400) ?? 600
        let relay = OutboxRelay(
            graph: graph, producer: producer, deadLetterTopic: environment.topics.deadLetter, logger: logger,
            keyRetention: .seconds(keyRetention), keyPurgeInterval: .seconds(keyPurgeInterval))
        // An instance that does not relay now learns from the store what the relaying one delivered.
        let oldestUndelivered: @Sendable () async throws -> Date? = { [status = relay.status] in
            try await graph.oldestUndeliveredEventTime(after: max(status.deliveredThrough, try await graph.outboxDeliveredThrough()))
        }
        let handler = CommandHandler(
            graph: graph, producer: producer, deadLetterTopic: environment.topics.deadLetter,
            backpressure: OutboxBackpressure(maximumAge: .seconds(outboxMaximumAge), oldestUndelivered: oldestUndelivered), logger: logger)
        let batches = BatchConsumerService(consumer: consumer, logger: logger, prepare: handler.decode, handle: handler.handle)
        readiness.registerConsumerGroup(consumer, group: environment.serviceName)
        readiness.noteTopicsWritten(try endpoints(environment).map(\.topic) + [environment.topics.deadLetter])
        readiness.registerBatches(batches)
        readiness.registerStore { try await graph.checkStoreAcceptsWrite() }
        readiness.registerOutbox(maximumAge: .seconds(outboxMaximumAge), oldestUndelivered: oldestUndelivered)
        readiness.register("relay") { [status = relay.status] in status.readiness }
        return [
            producer,
            relay,
            batches,
        ]
    }

    /// The configured endpoints: the defaults (`twin-events` → the twin-events topic, structured;
    /// `telemetry` → the telemetry topic, binary) and any in `TWINFLOW_ENDPOINTS`.
    public static func endpoints(_ environment: ServiceEnvironment) throws -> [EventEndpoint] {
        let defaults = EventEndpoint.defaults(twinEventsTopic: environment.topics.twinEvents, telemetryTopic: environment.topics.telemetry)
        return try EventEndpoint.parse(environment.variables["TWINFLOW_ENDPOINTS"] ?? "", over: defaults)
    }
}
