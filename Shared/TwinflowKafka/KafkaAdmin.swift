import CRDKafka
import Logging

/// A topic to create.
public struct KafkaTopicSpecification: Sendable, Hashable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int

    public init(name: String, partitions: Int, replicationFactor: Int = 1) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
    }
}

/// What the cluster says about itself.
public struct KafkaClusterMetadata: Sendable {
    public struct Broker: Sendable, Hashable {
        public var id: Int32
        public var host: String
        public var port: Int32
    }

    public struct Topic: Sendable, Hashable {
        public var name: String
        public var partitionCount: Int
        /// The broker's error for this topic, if any (such as an unknown topic).
        public var error: KafkaError.Code?
    }

    public var brokers: [Broker]
    public var topics: [Topic]

    public func topic(named name: String) -> Topic? { topics.first { $0.name == name } }
}

/// Creates topics and reads metadata. Every call blocks inside librdkafka, so each runs on a
/// thread of its own.
public final class KafkaAdmin: Sendable {
    let client: RDKafkaClient
    private let configuration: KafkaConfiguration

    public init(configuration: KafkaConfiguration, logger: Logger) throws(KafkaError) {
        self.client = try RDKafkaClient(kind: .producer, properties: configuration.clientProperties(defaults: [:]), logger: logger)
        self.configuration = configuration
    }

    /// Reads the brokers and topics of the cluster.
    public func metadata(timeout: Duration = .seconds(10)) async throws(KafkaError) -> KafkaClusterMetadata {
        let client = self.client
        return try await onDedicatedThread(name: "twinflow-admin") { () throws(KafkaError) in
            try Self.readMetadata(client, timeout: timeout)
        }
    }

    /// The high watermark of each of `topic`'s partitions (the offset its next message will get), in
    /// partition order: their sum counts every message the topic was ever given, read without reading
    /// a message. Asked as a consumer in `read_committed` would ask (librdkafka's default), so with a
    /// transaction open on a partition it is the last stable offset, the end such a consumer reaches.
    public func highWatermarks(topic: String, partitions: Int, timeout: Duration = .seconds(10)) async throws(KafkaError) -> [Int64] {
        let client = self.client
        return try await onDedicatedThread(name: "twinflow-admin") { () throws(KafkaError) in
            // One ListOffsets request per leader for every partition's latest offset, where asking
            // partition by partition costs two round trips each.
            let list = rd_kafka_topic_partition_list_new(Int32(partitions))!
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for partition in 0..<partitions { rd_kafka_topic_partition_list_add(list, topic, Int32(partition)).pointee.offset = Self.latest }
            let err = rd_kafka_offsets_for_times(client.handle, list, Int32(timeout.milliseconds))
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw .rdkafka(.metadata, err, message: topic) }
            var highs = [Int64](repeating: 0, count: partitions)
            for index in 0..<Int(list.pointee.cnt) {
                let element = list.pointee.elems[index]
                guard element.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw .rdkafka(.metadata, element.err, message: "\(topic) [\(element.partition)]")
                }
                highs[Int(element.partition)] = element.offset
            }
            return highs
        }
    }

    /// The timestamp that asks ListOffsets for a partition's latest offset (`RD_KAFKA_OFFSET_END`).
    private static let latest: Int64 = -1

    /// The offsets `group` has committed for each of `topic`'s partitions, in partition order (`nil`
    /// where it committed none), read without joining the group: with ``highWatermarks(topic:partitions:timeout:)``
    /// they give the group's lag.
    public func committedOffsets(
        group: String, topic: String, partitions: Int, timeout: Duration = .seconds(10)
    ) async throws(KafkaError)
        -> [Int64?]
    {
        var groupProperties = configuration.clientProperties(defaults: [:])
        groupProperties["group.id"] = group
        groupProperties["enable.auto.commit"] = "false"
        let properties = groupProperties
        let logger = self.client.logger
        return try await onDedicatedThread(name: "twinflow-admin") { () throws(KafkaError) in
            let client = try RDKafkaClient(kind: .consumer, properties: properties, logger: logger)
            let list = rd_kafka_topic_partition_list_new(Int32(partitions))!
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for partition in 0..<partitions { rd_kafka_topic_partition_list_add(list, topic, Int32(partition)) }
            let err = rd_kafka_committed(client.handle, list, Int32(timeout.milliseconds))
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw .rdkafka(.metadata, err, message: "committed offsets of \(group)") }
            var offsets = [Int64?](repeating: nil, count: partitions)
            for index in 0..<Int(list.pointee.cnt) {
                let element = list.pointee.elems[index]
                guard element.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw .rdkafka(.metadata, element.err, message: "committed offset of \(group) on \(topic) [\(element.partition)]")
                }
                if element.offset >= 0 { offsets[Int(element.partition)] = element.offset }
            }
            return offsets
        }
    }

    /// Creates the topics that do not exist yet; a topic that exists already counts as created,
    /// whatever its partition count, so calling it again changes nothing. Returns the names it created.
    @discardableResult
    public func createTopics(_ topics: [KafkaTopicSpecification], timeout: Duration = .seconds(30)) async throws(KafkaError) -> [String] {
        let client = self.client
        return try await onDedicatedThread(name: "twinflow-admin") { () throws(KafkaError) in
            let existing = Set(try Self.readMetadata(client, timeout: timeout).topics.filter { $0.error == nil }.map(\.name))
            let missing = topics.filter { !existing.contains($0.name) }
            guard !missing.isEmpty else { return [] }
            return try Self.create(client, missing, timeout: timeout)
        }
    }

    private static func create(_ client: RDKafkaClient, _ topics: [KafkaTopicSpecification], timeout: Duration) throws(KafkaError) -> [String] {
        var errorBuffer = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { for newTopic in newTopics { rd_kafka_NewTopic_destroy(newTopic) } }
        for topic in topics {
            guard
                let newTopic = rd_kafka_NewTopic_new(
                    topic.name, Int32(topic.partitions), Int32(topic.replicationFactor), &errorBuffer, errorBuffer.count)
            else {
                throw KafkaError(code: .admin, message: "\(topic.name): \(String(errorBuffer: errorBuffer))")
            }
            newTopics.append(newTopic)
        }
        let options = rd_kafka_AdminOptions_new(client.handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        rd_kafka_AdminOptions_set_request_timeout(options, Int32(timeout.milliseconds), &errorBuffer, errorBuffer.count)
        rd_kafka_AdminOptions_set_operation_timeout(options, Int32(timeout.milliseconds), &errorBuffer, errorBuffer.count)
        let queue = rd_kafka_queue_new(client.handle)
        defer { rd_kafka_queue_destroy(queue) }

        newTopics.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_CreateTopics(client.handle, buffer.baseAddress, buffer.count, options, queue)
        }
        guard let event = rd_kafka_queue_poll(queue, Int32(timeout.milliseconds) + 1000) else {
            throw KafkaError(code: .admin, message: "no answer to CreateTopics", isRetriable: true)
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        guard eventError == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw .rdkafka(.admin, eventError, message: String(cString: rd_kafka_event_error_string(event)))
        }
        var count = 0
        let results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count)
        var created: [String] = []
        for index in 0..<count {
            let result = results![index]
            let name = String(cString: rd_kafka_topic_result_name(result))
            let err = rd_kafka_topic_result_error(result)
            switch err {
            case RD_KAFKA_RESP_ERR_NO_ERROR: created.append(name)
            case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS: continue
            default:
                let message = rd_kafka_topic_result_error_string(result).map { String(cString: $0) } ?? ""
                throw .rdkafka(.admin, err, message: "\(name): \(message)")
            }
        }
        return created
    }

    static func readMetadata(_ client: RDKafkaClient, timeout: Duration) throws(KafkaError) -> KafkaClusterMetadata {
        var metadata: UnsafePointer<rd_kafka_metadata>? = nil
        let err = rd_kafka_metadata(client.handle, 1, nil, &metadata, Int32(timeout.milliseconds))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw .rdkafka(.metadata, err)
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        let md = metadata.pointee
        let brokers = (0..<Int(md.broker_cnt)).map { index in
            let broker = md.brokers[index]
            return KafkaClusterMetadata.Broker(id: broker.id, host: String(cString: broker.host), port: broker.port)
        }
        let topics = (0..<Int(md.topic_cnt)).map { index in
            let topic = md.topics[index]
            return KafkaClusterMetadata.Topic(
                name: String(cString: topic.topic),
                partitionCount: Int(topic.partition_cnt),
                error: topic.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : .metadata
            )
        }
        return KafkaClusterMetadata(brokers: brokers, topics: topics)
    }
}
