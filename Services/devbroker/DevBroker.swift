import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import TwinflowCodec
import TwinflowKafka

/// The mock cluster, its topics, the bootstrap forwarder and the bootstrap file, for as long as it runs.
final class DevBroker: Service, Sendable {
    private let options: DevBrokerOptions
    private let logger: Logger
    private let cluster: KafkaMockCluster
    private let forwarder: BootstrapForwarder?
    private let noDelay = NoDelaySweeper()

    init(options: DevBrokerOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        self.cluster = try KafkaMockCluster(brokers: options.brokers, logger: logger)
        for topic in options.topics.all {
            try cluster.createTopic(topic, partitions: options.partitions)
        }
        for topic in options.extraTopics {
            try cluster.createTopic(topic.name, partitions: topic.partitions ?? options.partitions)
        }
        self.forwarder = options.port == 0 ? nil : BootstrapForwarder(port: options.port, brokerPort: cluster.firstBrokerPort, logger: logger)
    }

    /// The address clients should bootstrap from.
    var bootstrapServers: String {
        forwarder.map { "localhost:\($0.port)" } ?? cluster.bootstrapServers
    }

    func start() async throws {
        noDelay.start()
        try await forwarder?.start()
        let file = URL(filePath: options.bootstrapFile)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data((bootstrapServers + "\n").utf8).write(to: file)
        logger.info(
            "devbroker ready",
            metadata: [
                "bootstrap": "\(bootstrapServers)",
                "mockBrokers": "\(cluster.bootstrapServers)",
                "topics": "\(options.topics.all + options.extraTopics.map(\.name))",
                "partitions": "\(options.partitions)",
                "bootstrapFile": "\(options.bootstrapFile)",
            ]
        )
    }

    func run() async throws {
        try? await gracefulShutdown()
        noDelay.stop()
        do {
            try await forwarder?.stop()
        } catch {
            logger.warning("bootstrap relay did not close cleanly", metadata: ["error": "\(error)"])
        }
        try? FileManager.default.removeItem(atPath: options.bootstrapFile)
        logger.info("devbroker stopped; its messages are gone")
    }
}
