import Foundation
import Logging
import TwinflowCodec
import TwinflowKafka

/// What every Twinflow service reads from its environment (the contract's variables).
public struct ServiceEnvironment: Sendable {
    /// The executable's name, such as `ingress`; also the default consumer group and client id.
    public var serviceName: String
    public var kafka: KafkaConfiguration
    public var topics: Topics
    /// `HTTP_PORT`: health, readiness, and the REST API where there is one.
    public var httpPort: Int
    /// `LOG_LEVEL`, `info` by default.
    public var logLevel: Logger.Level
    /// `TWINFLOW_DATA_DIR`: where embedded SQLite files live.
    public var dataDirectory: String
    /// `TWINS_URL`: the twin service's REST API.
    public var twinsURL: String
    /// Every variable, for service-specific settings.
    public var variables: [String: String]

    public init(serviceName: String, defaultHTTPPort: Int, variables: [String: String] = ProcessInfo.processInfo.environment) {
        self.serviceName = serviceName
        self.kafka = KafkaConfiguration.fromEnvironment(variables)
        self.topics = Topics.fromEnvironment(variables)
        self.httpPort = variables["HTTP_PORT"].flatMap(Int.init) ?? defaultHTTPPort
        self.logLevel = variables["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
        self.dataDirectory = variables["TWINFLOW_DATA_DIR"] ?? ".twinflow/data"
        self.twinsURL = variables["TWINS_URL"] ?? "http://localhost:8080"
        self.variables = variables
    }

    /// A producer configured for this service.
    public var producerConfiguration: KafkaProducerConfiguration {
        KafkaProducerConfiguration(kafka: kafka, clientID: serviceName)
    }

    /// A consumer of `topics` in this service's consumer group.
    public func consumerConfiguration(topics: [String], maxBatchSize: Int = 1000) -> KafkaConsumerConfiguration {
        KafkaConsumerConfiguration(kafka: kafka, groupID: serviceName, topics: topics, clientID: serviceName, maxBatchSize: maxBatchSize)
    }
}
