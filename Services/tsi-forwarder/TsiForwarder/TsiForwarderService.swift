import Hummingbird
import Logging
import ServiceLifecycle
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime

/// tsi-forwarder's parts, in start order: the producer, then the consumer of `eventhub.telemetry`
/// (and `eventgrid.twin-events` with `TSI_FORWARDER_TWIN_UPDATES=true`) in the group `tsi-forwarder`,
/// which stops first, then the producer flushes.
///
/// Settings beyond the contract's: `TSI_FORWARDER_TWIN_UPDATES` (`false`: also publish the values
/// of Twin.Update notifications, as ADT's TSI tutorial did) and `TSI_FORWARDER_MAX_BATCH` (10,000 events).
public enum TsiForwarderService {
    /// Builds the parts and registers the consumer group's readiness check and `/metrics`.
    public static func services(
        environment: ServiceEnvironment, logger: Logger, readiness: Readiness, router: Router<BasicRequestContext>? = nil
    ) throws -> [any Service] {
        let twinUpdates = try environment.choice("TSI_FORWARDER_TWIN_UPDATES", of: ["true", "false"]) == "true"
        let topics = [environment.topics.telemetry] + (twinUpdates ? [environment.topics.twinEvents] : [])
        let producer = try KafkaProducer(configuration: environment.producerConfiguration, logger: logger)
        let consumer = try KafkaConsumer(
            configuration: environment.consumerConfiguration(
                topics: topics, maxBatchSize: try environment.integer("TSI_FORWARDER_MAX_BATCH", in: 1...100_000) ?? 10_000),
            logger: logger)
        let counters = TsiForwarderCounters(service: "tsi_forwarder")
        let handler = TsiForwarderHandler(producer: producer, topics: environment.topics, counters: counters, logger: logger)
        let batches = BatchConsumerService(consumer: consumer, logger: logger, prepare: handler.prepare, handle: handler.handle)
        readiness.registerConsumerGroup(consumer, group: environment.serviceName)
        readiness.noteTopicsWritten([environment.topics.timeSeries, environment.topics.deadLetter])
        readiness.registerBatches(batches)
        router?.get("metrics") { _, _ in counters.prometheusText }
        logger.info("consuming", metadata: ["topics": "\(topics)", "publishing": "\(environment.topics.timeSeries)"])
        return [
            producer,
            batches,
        ]
    }
}
