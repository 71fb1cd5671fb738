import Logging
import TwinflowCodec

/// devbroker's command line.
struct DevBrokerOptions {
    static let usage = """
        usage: devbroker [--port N] [--partitions N] [--brokers N] [--topic NAME[:PARTITIONS]]... [--bootstrap-file PATH]

          --port N              where clients bootstrap: localhost:N forwards to the first mock broker
                                (default 9092; 0 for none, clients then use the mock's own address)
          --partitions N        partitions of each contract topic (default 8)
          --brokers N           mock brokers (default 1)
          --topic NAME[:P]      another topic to create, with P partitions (default: --partitions)
          --bootstrap-file PATH where to write the bootstrap address (default .twinflow/devbroker.bootstrap)

        Contract topics honour TWINFLOW_TOPIC_<NAME>; LOG_LEVEL sets the log level.
        """

    var port = 9092
    var partitions = 8
    var brokers = 1
    var extraTopics: [(name: String, partitions: Int?)] = []
    var bootstrapFile = ".twinflow/devbroker.bootstrap"
    var topics: Topics
    var logLevel: Logger.Level
    var showHelp = false

    struct UsageError: Error, CustomStringConvertible {
        var description: String
    }

    init(arguments: [String], environment: [String: String]) throws {
        topics = Topics.fromEnvironment(environment)
        if let problem = topics.problem {
            throw UsageError(description: "\(problem.variable)=\"\(problem.value)\" is not valid: expected \(problem.expected)")
        }
        logLevel = environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
        var remaining = arguments[...]
        func value(for flag: String) throws -> String {
            guard let value = remaining.popFirst() else { throw UsageError(description: "\(flag) needs a value") }
            return value
        }
        func number(for flag: String, minimum: Int) throws -> Int {
            let text = try value(for: flag)
            guard let number = Int(text), number >= minimum else {
                throw UsageError(description: "\(flag) takes a whole number of at least \(minimum), not '\(text)'")
            }
            return number
        }
        while let argument = remaining.popFirst() {
            switch argument {
            case "--port": port = try number(for: argument, minimum: 0)
            case "--partitions": partitions = try number(for: argument, minimum: 1)
            case "--brokers": brokers = try number(for: argument, minimum: 1)
            case "--bootstrap-file": bootstrapFile = try value(for: argument)
            case "--topic":
                let spec = try value(for: argument).split(separator: ":", maxSplits: 1).map(String.init)
                guard let name = spec.first, !name.isEmpty else { throw UsageError(description: "--topic needs a name") }
                var count: Int? = nil
                if spec.count == 2 {
                    guard let parsed = Int(spec[1]), parsed >= 1 else {
                        throw UsageError(description: "--topic \(name): '\(spec[1])' is not a partition count")
                    }
                    count = parsed
                }
                extraTopics.append((name, count))
            case "-h", "--help": showHelp = true
            default: throw UsageError(description: "unknown argument '\(argument)'")
            }
        }
    }
}
