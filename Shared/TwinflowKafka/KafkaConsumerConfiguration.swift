/// How a ``KafkaConsumer`` is set up.
public struct KafkaConsumerConfiguration: Sendable {
    /// Brokers and pass-through properties; user properties win over ``defaultProperties``.
    public var kafka: KafkaConfiguration
    /// The consumer group: members of one group share the topics' partitions.
    public var groupID: String
    /// The topics to subscribe to.
    public var topics: [String]
    /// `client.id`, shown in broker logs.
    public var clientID: String
    /// The most messages one batch holds.
    public var maxBatchSize: Int
    /// How often stored offsets are committed in the background.
    public var commitInterval: Duration
    /// When set, the consumer reads these partitions from these offsets, outside any group: it
    /// neither joins a group nor commits (for a view every instance keeps of a whole topic).
    public var startOffsets: [KafkaTopicPartition: Int64]?

    public init(
        kafka: KafkaConfiguration,
        groupID: String,
        topics: [String],
        clientID: String = "twinflow",
        maxBatchSize: Int = 1000,
        commitInterval: Duration = .seconds(1)
    ) {
        self.kafka = kafka
        self.groupID = groupID
        self.topics = topics
        self.clientID = clientID
        self.maxBatchSize = maxBatchSize
        self.commitInterval = commitInterval
    }

    /// A consumer of every partition in `startOffsets`, from those offsets, in no group: nothing is
    /// committed, and every instance that reads this way sees the whole topic.
    public static func reading(
        _ startOffsets: [KafkaTopicPartition: Int64], kafka: KafkaConfiguration, clientID: String = "twinflow", maxBatchSize: Int = 1000
    ) -> KafkaConsumerConfiguration {
        var configuration = KafkaConsumerConfiguration(
            kafka: kafka, groupID: "\(clientID)-reader", topics: Array(Set(startOffsets.keys.map(\.topic))).sorted(), clientID: clientID,
            maxBatchSize: maxBatchSize)
        configuration.startOffsets = startOffsets
        return configuration
    }

    /// Twinflow's consumer defaults: offsets are stored only when a batch is marked done
    /// (`enable.auto.offset.store=false`) and committed in the background from what was stored;
    /// the eager `range,roundrobin` assignors; a new group starts from the earliest offset.
    ///
    /// librdkafka 2.0 measures `queued.min.messages` on the consumer's shared queue, not per
    /// partition, and backs every partition off for `fetch.error.backoff.ms` once it is reached; with
    /// its defaults (100,000 and 500 ms) a consumer of many partitions stalls for half a second after
    /// every 100,000 messages. The prefetch stays bounded by `queued.max.messages.kbytes` (64 MiB).
    ///
    /// `fetch.wait.max.ms` is 5 (librdkafka's default is 500): Apache Kafka answers a fetch as soon as
    /// data arrives (`fetch.min.bytes` 1), so the wait only bounds how long an idle fetch is held,
    /// but librdkafka's mock cluster (devbroker) answers a fetch on an empty partition only when the
    /// wait runs out, so every hop cost up to half a second at low rates. At high rates a fetch finds
    /// data waiting and the setting does not matter; an idle consumer sends a fetch per broker about
    /// every 5 ms.
    public static let defaultProperties: [String: String] = [
        "fetch.wait.max.ms": "5",
        "enable.auto.commit": "true",
        "enable.auto.offset.store": "false",
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "range,roundrobin",
        "enable.partition.eof": "false",
        "session.timeout.ms": "10000",
        "max.poll.interval.ms": "300000",
        "queued.min.messages": "1000000",
        "fetch.error.backoff.ms": "100",
    ]

    var clientProperties: [String: String] {
        var defaults = Self.defaultProperties
        defaults["group.id"] = groupID
        defaults["client.id"] = clientID
        defaults["auto.commit.interval.ms"] = String(commitInterval.milliseconds)
        var properties = kafka.clientProperties(defaults: defaults)
        // Not overridable: storing offsets at poll time would count messages consumed before they were handled.
        properties["enable.auto.offset.store"] = "false"
        if startOffsets != nil { properties["enable.auto.commit"] = "false" }
        return properties
    }
}

extension Duration {
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
