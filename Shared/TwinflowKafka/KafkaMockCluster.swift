import CRDKafka
import Logging

/// librdkafka's in-process mock cluster: real Kafka protocol over TCP on 127.0.0.1, in memory.
///
/// For tests and `devbroker`. Its limits are librdkafka's: nothing persists, each partition keeps
/// at most about 5 MiB or 100,000 messages (older ones are dropped), there is no CreateTopics or
/// controller (topics are made with ``createTopic(_:partitions:)`` or created on first use with
/// 4 partitions), and its brokers listen on ports of its own choosing.
public final class KafkaMockCluster: Sendable {
    private let owner: RDKafkaClient
    // Used only through librdkafka's mock API, which forwards every call to the cluster's own thread.
    nonisolated(unsafe) private let cluster: OpaquePointer

    /// The broker list, such as `127.0.0.1:40123`.
    public let bootstrapServers: String

    /// Starts a cluster of `brokers` brokers.
    public init(brokers: Int = 1, logger: Logger) throws(KafkaError) {
        self.owner = try RDKafkaClient(kind: .producer, properties: ["log_level": "3"], logger: logger)
        guard let cluster = rd_kafka_mock_cluster_new(owner.handle, Int32(brokers)) else {
            throw KafkaError(code: .clientCreation, message: "the mock cluster did not start")
        }
        self.cluster = cluster
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
    }

    /// Creates a topic; one that exists already is left as it is.
    public func createTopic(_ name: String, partitions: Int) throws(KafkaError) {
        let err = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), 1)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS else {
            throw .rdkafka(.admin, err, message: "\(name): \(String(cString: rd_kafka_err2str(err)))")
        }
    }

    /// Makes the cluster report the Kafka protocol error `errorCode` for the topic in metadata
    /// answers (29: not authorised), until it is set back to 0.
    public func setTopicError(_ name: String, errorCode: Int32) {
        rd_kafka_mock_topic_set_error(cluster, name, rd_kafka_resp_err_t(rawValue: errorCode))
    }

    /// Makes the cluster answer its next `errorCodes.count` requests of Kafka API `apiKey` (0 is
    /// Produce) with these Kafka protocol error codes, in order: for tests of how clients recover.
    public func failNextRequests(apiKey: Int16, errorCodes: [Int32]) {
        var errors = errorCodes.map { rd_kafka_resp_err_t(rawValue: $0) }
        errors.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_mock_push_request_errors_array(cluster, apiKey, buffer.count, buffer.baseAddress)
        }
    }

    /// The port the first broker listens on.
    public var firstBrokerPort: Int {
        let first = bootstrapServers.split(separator: ",").first ?? ""
        return Int(first.split(separator: ":").last ?? "") ?? 0
    }
}
