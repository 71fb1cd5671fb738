import Foundation
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle
import TwinflowCodec
import TwinflowKafka
import TwinflowPostgres
import TwinflowRuntime

/// tsi-store's parts, in start order: the PostgreSQL client (when there is one), the producer (dead
/// letters), the retention and checkpoint tasks, and the consumer of `eventhub.tsi` in the group `tsi-store` (which stops first).
///
/// Settings beyond the contract's: `TSI_STORE_EVENT_RETENTION` (`P31D`) and
/// `TSI_STORE_ROLLUP_RETENTION` (`P731D`), ISO 8601 durations; `TSI_STORE_RETENTION_INTERVAL_SECONDS`
/// (60), `TSI_STORE_MAX_BATCH` (10,000 events) and `TSI_STORE_SYNCHRONOUS` (`NORMAL`, or `FULL`).
/// The store is `$TWINFLOW_DATA_DIR/timeseries.sqlite`, or with `TWINFLOW_DATABASE_URL`
/// (`postgres://user:password@host:port/database`) PostgreSQL, through at most
/// `TWINFLOW_DATABASE_POOL_SIZE` (8) connections, shared by every instance, a batch written by
/// `TSI_STORE_POSTGRES_WRITERS` (2) transactions at once.
public enum TsiStoreService {
    public static func services(
        environment: ServiceEnvironment, logger: Logger, readiness: Readiness, router: Router<BasicRequestContext>? = nil
    ) throws -> [any Service] {
        let retention = RetentionPolicy(
            events: try duration("TSI_STORE_EVENT_RETENTION", environment) ?? RetentionPolicy.default.events,
            rollups: try duration("TSI_STORE_ROLLUP_RETENTION", environment) ?? RetentionPolicy.default.rollups)
        let store: any TimeSeriesStore
        var storeServices: [any Service] = []
        if let text = environment.variables["TWINFLOW_DATABASE_URL"], !text.isEmpty {
            let url: DatabaseURL
            do {
                url = try DatabaseURL(text)
            } catch {
                throw SettingError(variable: "TWINFLOW_DATABASE_URL", value: SettingError.redactingPassword(text), expected: error.description)
            }
            let connections = try environment.integer("TWINFLOW_DATABASE_POOL_SIZE", in: 1...1_000) ?? 8
            let client = PostgresClient(
                configuration: try url.clientConfiguration(connections: connections, parameters: DatabaseURL.sessionParameters()),
                backgroundLogger: logger)
            let writers = try environment.integer("TSI_STORE_POSTGRES_WRITERS", in: 1...64) ?? 2
            store = PostgresTimeSeriesStore(client: client, retention: retention, writers: writers, logger: logger)
            storeServices = [client]
            logger.info("storing in PostgreSQL", metadata: ["database": "\(url.host):\(url.port)/\(url.database)", "connections": "\(connections)"])
        } else {
            store = try SQLiteTimeSeriesStore(
                path: (environment.dataDirectory as NSString).appendingPathComponent("timeseries.sqlite"), retention: retention,
                synchronous: try environment.choice("TSI_STORE_SYNCHRONOUS", of: ["NORMAL", "FULL"]) ?? "NORMAL")
        }
        let producer = try KafkaProducer(configuration: environment.producerConfiguration, logger: logger)
        let consumer = try KafkaConsumer(
            configuration: environment.consumerConfiguration(
                topics: [environment.topics.timeSeries], maxBatchSize: try environment.integer("TSI_STORE_MAX_BATCH", in: 1...100_000) ?? 10_000),
            logger: logger)
        let counters = TsiStoreCounters(service: "tsi_store")
        let handler = TsiStoreHandler(store: store, producer: producer, topics: environment.topics, counters: counters, logger: logger)
        let batches = BatchConsumerService(consumer: consumer, logger: logger, prepare: handler.prepare, handle: handler.handle)
        readiness.registerConsumerGroup(consumer, group: environment.serviceName)
        readiness.noteTopicsWritten([environment.topics.deadLetter])
        readiness.registerBatches(batches)
        readiness.registerStore { try await store.probe() }
        if let router {
            router.get("metrics") { _, _ in counters.prometheusText }
            TimeSeriesRoutes.add(to: router, engine: TimeSeriesQueryEngine(store: store))
        }
        let interval = try environment.integer("TSI_STORE_RETENTION_INTERVAL_SECONDS", in: 1...86_400) ?? 60
        return storeServices + [
            producer,
            PeriodicService("retention", every: .seconds(interval), logger: logger) {
                let deleted = try await store.applyRetention(now: Int64(Date().timeIntervalSince1970 * 1000))
                counters.add(TsiStoreCounts(retainedEventsDeleted: deleted.events, retainedRollupsDeleted: deleted.rollups))
                if deleted.events + deleted.rollups > 0 {
                    logger.info("retention", metadata: ["deletedEvents": "\(deleted.events)", "deletedRollups": "\(deleted.rollups)"])
                }
            },
            // Ingest never waits for a checkpoint of its own, one that copies the whole write-ahead log.
            PeriodicService("store checkpoint", every: .seconds(1), logger: logger) { try await store.checkpoint() },
            batches,
        ]
    }

    static func duration(_ variable: String, _ environment: ServiceEnvironment) throws(SettingError) -> Int64? {
        guard let text = environment.variables[variable] else { return nil }
        guard let milliseconds = ISODuration.milliseconds(text) else {
            throw SettingError(variable: variable, value: text, expected: "an ISO 8601 duration such as P7D or PT12H")
        }
        return milliseconds
    }
}
