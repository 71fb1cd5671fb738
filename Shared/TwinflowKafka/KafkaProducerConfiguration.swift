/// How a ``KafkaProducer`` is set up.
public struct KafkaProducerConfiguration: Sendable {
    /// Brokers and pass-through properties; user properties win over ``defaultProperties``.
    public var kafka: KafkaConfiguration
    /// `client.id`, shown in broker logs.
    public var clientID: String
    /// How long ``KafkaProducer/shutdown()`` waits for messages still in flight.
    public var flushTimeout: Duration

    public init(kafka: KafkaConfiguration, clientID: String = "twinflow", flushTimeout: Duration = .seconds(30)) {
        self.kafka = kafka
        self.clientID = clientID
        self.flushTimeout = flushTimeout
    }

    /// Twinflow's producer defaults: idempotence on (no duplicates or reordering from retries),
    /// `murmur2_random` so that a key lands on the partition a Java client would choose, and
    /// buffering sized for batch sends. `linger.ms` is 1 (librdkafka's default is 5): Twinflow sends
    /// whole batches at once, which fill the broker requests without waiting, so lingering only
    /// delayed single messages at low rates.
    public static let defaultProperties: [String: String] = [
        "enable.idempotence": "true",
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": "1",
        "batch.num.messages": "10000",
        "queue.buffering.max.messages": "1000000",
        "queue.buffering.max.kbytes": "1048576",
        "message.timeout.ms": "120000",
    ]

    var clientProperties: [String: String] {
        var defaults = Self.defaultProperties
        defaults["client.id"] = clientID
        return kafka.clientProperties(defaults: defaults)
    }
}
