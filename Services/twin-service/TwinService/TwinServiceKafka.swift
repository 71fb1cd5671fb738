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
    public static func services(graph: DigitalTwinGraph, environment: ServiceEnvironment, logger: Logger) throws -> [any Service] {
        let producer = try KafkaProducer(configuration: environment.producerConfiguration, logger: logger)
        let consumer = try KafkaConsumer(
            configuration: environment.consumerConfiguration(topics: [environment.topics.twinCommands], maxBatchSize: 10_000), logger: logger
        )
        let handler = CommandHandler(graph: graph, producer: producer, deadLetterTopic: environment.topics.deadLetter, logger: logger)
        return [
            producer,
            OutboxRelay(graph: graph, producer: producer, logger: logger),
            BatchConsumerService(consumer: consumer, logger: logger, prepare: handler.decode, handle: handler.handle),
        ]
    }

    /// The configured endpoints: the defaults (`twin-events` → the twin-events topic, structured;
    /// `telemetry` → the telemetry topic, binary) and any in `TWINFLOW_ENDPOINTS`.
    public static func endpoints(_ environment: ServiceEnvironment) throws -> [EventEndpoint] {
        let defaults = EventEndpoint.defaults(twinEventsTopic: environment.topics.twinEvents, telemetryTopic: environment.topics.telemetry)
        return try EventEndpoint.parse(environment.variables["TWINFLOW_ENDPOINTS"] ?? "", over: defaults)
    }
}
