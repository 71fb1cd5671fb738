import Foundation
import Logging
import ServiceLifecycle
import TwinflowCodec
import TwinflowKafka
import UnixSignals

/// devbroker: librdkafka's mock cluster with the contract's topics, reachable at localhost:9092.
let options: DevBrokerOptions
do {
    options = try DevBrokerOptions(arguments: Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment)
} catch {
    FileHandle.standardError.write(Data("devbroker: \(error)\n\n\(DevBrokerOptions.usage)\n".utf8))
    exit(2)
}
if options.showHelp {
    print(DevBrokerOptions.usage)
    exit(0)
}

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = options.logLevel
    return handler
}
let logger = Logger(label: "devbroker")

let broker = try DevBroker(options: options, logger: logger)
try await broker.start()
let group = ServiceGroup(
    configuration: .init(services: [broker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
)
try await group.run()
