import Foundation
import Logging
import Synchronization
import TwinflowKafka

/// A librdkafka mock cluster for one test, reached over TCP like any broker.
public struct MockKafka {
    public let cluster: KafkaMockCluster
    public let logger: Logger

    public init(brokers: Int = 1) throws {
        var logger = Logger(label: "test")
        logger.logLevel = ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        self.logger = logger
        self.cluster = try KafkaMockCluster(brokers: brokers, logger: logger)
    }

    public var configuration: KafkaConfiguration { KafkaConfiguration(bootstrapServers: cluster.bootstrapServers) }

    /// A topic with a name no other test uses.
    public func makeTopic(_ prefix: String = "test", partitions: Int = 8) throws -> String {
        let name = "\(prefix)-\(UUID().uuidString.prefix(8))"
        try cluster.createTopic(name, partitions: partitions)
        return name
    }

    public func makeProducer() throws -> KafkaProducer {
        try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: configuration), logger: logger)
    }

    public func makeConsumer(group: String, topics: [String], maxBatchSize: Int = 1000, properties: [String: String] = [:]) throws -> KafkaConsumer {
        var kafka = configuration
        kafka.properties.merge(properties) { _, new in new }
        return try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(kafka: kafka, groupID: group, topics: topics, maxBatchSize: maxBatchSize),
            logger: logger
        )
    }
}

/// Polls `condition` until it holds or `timeout` passes.
public func eventually(timeout: Duration = .seconds(30), _ condition: @Sendable () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

/// Java's `Utils.murmur2`, to check that keys land where a Java producer would put them.
public func javaMurmur2Partition(_ key: [UInt8], partitions: Int32) -> Int32 {
    let seed: UInt32 = 0x9747_b28c
    let m: UInt32 = 0x5bd1_e995
    let r: UInt32 = 24
    let length = key.count
    var h: UInt32 = seed ^ UInt32(length)
    let fours = length / 4
    for i in 0..<fours {
        let index = i * 4
        var k = UInt32(key[index]) | UInt32(key[index + 1]) << 8 | UInt32(key[index + 2]) << 16 | UInt32(key[index + 3]) << 24
        k = k &* m
        k ^= k >> r
        k = k &* m
        h = h &* m
        h ^= k
    }
    let tail = fours * 4
    switch length % 4 {
    case 3:
        h ^= UInt32(key[tail + 2]) << 16
        fallthrough
    case 2:
        h ^= UInt32(key[tail + 1]) << 8
        fallthrough
    case 1:
        h ^= UInt32(key[tail])
        h = h &* m
    default:
        break
    }
    h ^= h >> 13
    h = h &* m
    h ^= h >> 15
    return Int32(bitPattern: h & 0x7fff_ffff) % partitions
}

/// A value tasks of a test share.
public final class Shared<Value: Sendable>: Sendable {
    private let state: Mutex<Value>

    public init(_ value: Value) {
        self.state = Mutex(value)
    }

    public func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result {
        state.withLock { body(&$0) }
    }

    public var value: Value { state.withLock { $0 } }
}
