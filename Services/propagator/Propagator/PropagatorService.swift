import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime

/// propagator's parts, in start order: the producer, the relationship view's follower, and the
/// consumer of `eventgrid.twin-events` in the group `propagator` (which stops first, then the
/// producer flushes).
///
/// Settings beyond the contract's: `PROPAGATOR_RULES` (the rules file; the seed's rule without
/// one), `PROPAGATOR_HOP_LIMIT` (8: the most propagation steps a change goes through) and
/// `PROPAGATOR_MAX_BATCH` (10,000 notifications).
public enum PropagatorService {
    /// Builds the parts and registers the readiness checks: the consumer group and
    /// `relationship-view` (loaded from twin-service, and followed).
    public static func services(
        environment: ServiceEnvironment, logger: Logger, readiness: Readiness, router: Router<BasicRequestContext>? = nil
    ) throws -> [any Service] {
        let rules = try environment.variables["PROPAGATOR_RULES"].flatMap { $0.isEmpty ? nil : $0 }.map(PropagationRules.load) ?? .seed
        let hopLimit = try environment.integer("PROPAGATOR_HOP_LIMIT", in: 1...1000) ?? 8
        guard let twinsURL = URL(string: environment.twinsURL) else {
            throw SettingError(variable: "TWINS_URL", value: environment.twinsURL, expected: "an http:// or https:// URL")
        }
        let client = TwinsClient(baseURL: twinsURL)
        let view = RelationshipView(names: rules.relationshipNames, tracked: rules.trackedProperties)
        let catalog = ModelCatalog(client: client)
        let producer = try KafkaProducer(configuration: environment.producerConfiguration, logger: logger)
        let counters = PropagatorCounters(service: "propagator")
        let consumer = try KafkaConsumer(
            configuration: environment.consumerConfiguration(
                topics: [environment.topics.twinEvents], maxBatchSize: try environment.integer("PROPAGATOR_MAX_BATCH", in: 1...100_000) ?? 10_000),
            logger: logger)
        let follower = RelationshipViewFollower(
            view: view, catalog: catalog, rules: rules, hopLimit: hopLimit, client: client,
            admin: try KafkaAdmin(configuration: environment.kafka, logger: logger), kafka: environment.kafka, topic: environment.topics.twinEvents,
            clientID: environment.serviceName, rechecksTo: producer, commandsTopic: environment.topics.twinCommands, counters: counters,
            group: consumer, logger: logger)
        let handler = PropagatorHandler(
            rules: rules, hopLimit: hopLimit, view: view, follower: follower, catalog: catalog, producer: producer, topics: environment.topics,
            counters: counters, logger: logger)

        let batches = BatchConsumerService(consumer: consumer, logger: logger, prepare: handler.prepare, handle: handler.handle)
        readiness.registerConsumerGroup(consumer, group: environment.serviceName)
        readiness.noteTopicsWritten([environment.topics.twinCommands, environment.topics.deadLetter])
        readiness.registerBatches(batches)
        readiness.register("relationship-view") { follower.status }
        router?.get("metrics") { _, _ in counters.prometheusText }
        logger.info("rules in force", metadata: ["rules": "\(rules.rules.map(\.description))", "hopLimit": "\(hopLimit)"])
        return [
            producer,
            follower,
            batches,
        ]
    }
}
