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

    /// Reads the contract's variables; a value that is set but not valid is an error naming the
    /// variable, never a silent fallback to the default.
    public init(serviceName: String, defaultHTTPPort: Int, variables: [String: String] = ProcessInfo.processInfo.environment) throws(SettingError) {
        self.serviceName = serviceName
        self.variables = variables
        self.kafka = KafkaConfiguration.fromEnvironment(variables)
        guard !kafka.bootstrapServers.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw SettingError(variable: "KAFKA_BOOTSTRAP_SERVERS", value: kafka.bootstrapServers, expected: "host:port[,host:port…]")
        }
        self.topics = Topics.fromEnvironment(variables)
        if let problem = topics.problem {
            throw SettingError(variable: problem.variable, value: problem.value, expected: problem.expected)
        }
        self.httpPort = defaultHTTPPort
        self.logLevel = .info
        self.dataDirectory = variables["TWINFLOW_DATA_DIR"] ?? ".twinflow/data"
        self.twinsURL = variables["TWINS_URL"] ?? "http://localhost:8080"
        self.httpPort = try integer("HTTP_PORT", in: 0...65535) ?? defaultHTTPPort
        if let level = variables["LOG_LEVEL"] {
            guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
                throw SettingError(variable: "LOG_LEVEL", value: level, expected: Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
            }
            self.logLevel = parsed
        }
        guard !dataDirectory.isEmpty else { throw SettingError(variable: "TWINFLOW_DATA_DIR", value: "", expected: "a directory path") }
        guard let url = URL(string: twinsURL), url.scheme == "http" || url.scheme == "https", url.host() != nil else {
            throw SettingError(variable: "TWINS_URL", value: twinsURL, expected: "an http:// or https:// URL")
        }
    }

    /// An integer setting within `range`, or `nil` when the variable is not set.
    public func integer(_ variable: String, in range: ClosedRange<Int>) throws(SettingError) -> Int? {
        guard let text = variables[variable] else { return nil }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            throw SettingError(variable: variable, value: text, expected: "an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// A setting that is one of `choices` (compared without case), or `nil` when the variable is not set.
    public func choice(_ variable: String, of choices: [String]) throws(SettingError) -> String? {
        guard let text = variables[variable] else { return nil }
        guard let match = choices.first(where: { $0.caseInsensitiveCompare(text) == .orderedSame }) else {
            throw SettingError(variable: variable, value: text, expected: "one of \(choices.joined(separator: ", "))")
        }
        return match
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

/// A setting whose value cannot be used; the service stops at startup with this one line.
public struct SettingError: Error, Sendable, CustomStringConvertible {
    public var variable: String
    public var value: String
    public var expected: String

    public init(variable: String, value: String, expected: String) {
        self.variable = variable
        self.value = value
        self.expected = expected
    }

    public var description: String { "\(variable)=\"\(value)\" is not valid: expected \(expected)" }

    /// A URL as a message may show it: a password (between the user's `:` and the `@`) as `***`.
    public static func redactingPassword(_ url: String) -> String {
        guard let scheme = url.firstRange(of: "://"), let at = url[scheme.upperBound...].lastIndex(of: "@"),
            let colon = url[scheme.upperBound..<at].firstIndex(of: ":")
        else { return url }
        return String(url[..<url.index(after: colon)]) + "***" + String(url[at...])
    }
}
