import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime

/// ingress's parts, in start order: the mapping file's watcher, the producer, and the consumer of
/// `iothub.d2c` in the group `ingress` (which stops first, then the producer flushes).
///
/// Settings beyond the contract's: `INGRESS_MAPPING` (the mapping file; ADT's sample without one),
/// `INGRESS_MAPPING_CHECK_SECONDS` (2: how often the file is checked for a change),
/// `INGRESS_MISS_RECHECK_SECONDS` (10: how soon a device with no twin is looked up again),
/// `INGRESS_TWIN_REFRESH_SECONDS` (60: how long a device's twin is trusted before it is read again)
/// and `INGRESS_MAX_BATCH` (10,000 messages).
public enum IngressService {
    /// Builds the parts and registers the readiness checks: the consumer group, `twin-service`
    /// (reachable, probed every two seconds, while the mapping needs it) and `mapping` (which one is in
    /// force; not ready while the file holds an edit that cannot be used).
    public static func services(
        environment: ServiceEnvironment, logger: Logger, readiness: Readiness, router: Router<BasicRequestContext>? = nil
    ) throws -> [any Service] {
        let mapping = try MappingSource(
            path: environment.variables["INGRESS_MAPPING"].flatMap { $0.isEmpty ? nil : $0 },
            interval: .seconds(try environment.integer("INGRESS_MAPPING_CHECK_SECONDS", in: 1...3600) ?? 2), logger: logger)
        guard let twinsURL = URL(string: environment.twinsURL) else {
            throw SettingError(variable: "TWINS_URL", value: environment.twinsURL, expected: "an http:// or https:// URL")
        }
        let client = TwinsClient(baseURL: twinsURL)
        let directory = TwinDirectory(
            client: client,
            missRecheck: .seconds(try environment.integer("INGRESS_MISS_RECHECK_SECONDS", in: 0...86_400) ?? 10),
            refresh: .seconds(try environment.integer("INGRESS_TWIN_REFRESH_SECONDS", in: 1...86_400) ?? 60), logger: logger)
        let producer = try KafkaProducer(configuration: environment.producerConfiguration, logger: logger)
        let consumer = try KafkaConsumer(
            configuration: environment.consumerConfiguration(
                topics: [environment.topics.deviceMessages], maxBatchSize: try environment.integer("INGRESS_MAX_BATCH", in: 1...100_000) ?? 10_000),
            logger: logger)
        let counters = IngressCounters()
        let handler = IngressHandler(
            mapping: mapping, directory: directory, producer: producer, topics: environment.topics, counters: counters, logger: logger)

        let batches = BatchConsumerService(consumer: consumer, logger: logger, prepare: handler.prepare, handle: handler.handle)
        readiness.registerConsumerGroup(consumer, group: environment.serviceName)
        readiness.noteTopicsWritten([environment.topics.twinCommands, environment.topics.deadLetter])
        readiness.registerBatches(batches)
        readiness.registerProbe("twin-service", every: .seconds(2)) {
            guard mapping.current.mapping.needsTwinService else { return .ready("not needed by the mapping") }
            do {
                try await client.checkReachable()
                return .ready("\(client.baseURL.absoluteString) answers")
            } catch {
                return .notReady("\(error)")
            }
        }
        readiness.register("mapping") {
            let status = mapping.status
            return status.isCurrent ? .ready(status.detail) : .notReady(status.detail)
        }
        router?.get("metrics") { _, _ in counters.prometheusText }
        logger.info("mapping in force", metadata: ["mapping": "\(mapping.status.detail)"])
        return [
            mapping,
            producer,
            batches,
        ]
    }
}
