import Foundation

/// Where the brokers are and any librdkafka properties to pass through.
///
/// ``fromEnvironment(_:)`` reads the contract's variables: `KAFKA_BOOTSTRAP_SERVERS`, and
/// `KAFKA_CONFIG_<KEY>` for any librdkafka property, the key upper-cased with `.` written as `_`
/// (`KAFKA_CONFIG_SECURITY_PROTOCOL=SASL_SSL` sets `security.protocol`).
public struct KafkaConfiguration: Sendable, Equatable {
    /// The broker list, `host:port[,host:port…]`.
    public var bootstrapServers: String
    /// librdkafka properties set on every client made from this configuration; they override
    /// the defaults the producer and consumer choose.
    public var properties: [String: String]

    public init(bootstrapServers: String = "localhost:9092", properties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.properties = properties
    }

    /// Reads `KAFKA_BOOTSTRAP_SERVERS` and every `KAFKA_CONFIG_*` variable.
    public static func fromEnvironment(_ environment: [String: String]) -> KafkaConfiguration {
        var configuration = KafkaConfiguration(bootstrapServers: environment["KAFKA_BOOTSTRAP_SERVERS"] ?? "localhost:9092")
        let prefix = "KAFKA_CONFIG_"
        for (name, value) in environment where name.hasPrefix(prefix) && name.count > prefix.count {
            configuration.properties[propertyName(fromVariable: String(name.dropFirst(prefix.count)))] = value
        }
        return configuration
    }

    /// `SECURITY_PROTOCOL` → `security.protocol`.
    static func propertyName(fromVariable suffix: String) -> String {
        suffix.lowercased().replacingOccurrences(of: "_", with: ".")
    }

    /// The properties for a client: `defaults`, then the bootstrap servers, then the user's own.
    func clientProperties(defaults: [String: String]) -> [String: String] {
        var merged = defaults
        merged["bootstrap.servers"] = bootstrapServers
        merged.merge(properties) { _, user in user }
        return merged
    }
}
