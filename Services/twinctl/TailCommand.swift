import ArgumentParser
import Foundation
import Logging
import TwinflowCodec
import TwinflowKafka

/// `twinctl tail TOPIC`: any contract topic as it flows, each message decoded as its topic's
/// messages are: CloudEvents (structured, or binary with their `ce_*` headers), commands, device
/// messages, time-series events, dead letters with their reasons.
struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tail", abstract: "Print a topic's messages as they come, decoded.")

    @OptionGroup var kafka: KafkaOptions
    @Argument(help: "The topic, such as eventgrid.twin-events or deadletter.") var topic: String
    @Flag(help: "Start from the topic's oldest message, not its end.") var fromBeginning = false
    @Option(help: "Stop after this many messages.") var count: Int?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        var logger = Logger(label: "twinctl")
        logger.logLevel = .error
        var properties = kafka.configuration
        properties.properties["auto.offset.reset"] = properties.properties["auto.offset.reset"] ?? (fromBeginning ? "earliest" : "latest")
        properties.properties["enable.auto.commit"] = "false"
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(kafka: properties, groupID: "twinctl-tail-\(UUID())", topics: [topic], clientID: "twinctl"),
            logger: logger)
        let topics = Topics.fromEnvironment(ProcessInfo.processInfo.environment)
        var printed = 0
        while let batch = try await consumer.nextBatch() {
            for message in batch.messages {
                print(Self.describe(message, topics: topics))
                printed += 1
                if let count, printed >= count {
                    consumer.stopConsuming()
                    break
                }
            }
            if let count, printed >= count { break }
        }
        await consumer.close()
    }

    /// One line for a message: where it came from, then what it says.
    static func describe(_ message: KafkaConsumerMessage, topics: Topics) -> String {
        let place = "\(message.topic)[\(message.partition)]@\(message.offset) key=\(message.keyString ?? "-")"
        let value = String(decoding: message.value ?? [], as: UTF8.self)
        switch message.topic {
        case topics.twinEvents:
            guard let event = try? CloudEvent(decoding: message) else { return "\(place) (not a CloudEvent) \(value)" }
            let attributes = event.attributes
            return
                "\(place) \(attributes.type) subject=\(attributes.subject ?? "-") sequence=\(attributes.sequence ?? "-") \(event.data?.jsonString() ?? "")"
        case topics.telemetry:
            guard let event = try? BinaryCloudEvent(decoding: message) else { return "\(place) (not a binary-mode CloudEvent) \(value)" }
            let attributes = event.attributes.named.filter { !["specversion", "datacontenttype"].contains($0.0) }.map { "ce_\($0.0)=\($0.1)" }
            return "\(place) \(attributes.joined(separator: " ")) \(value)"
        case topics.deadLetter:
            guard let letter = try? DeadLetter(decoding: message) else { return "\(place) (no dead-letter headers) \(value)" }
            return
                "\(place) from \(letter.service) (\(letter.sourceTopic)[\(letter.sourcePartition)]@\(letter.sourceOffset)): \(letter.reason) | \(value)"
        case topics.twinCommands:
            guard let command = try? TwinCommand(decoding: message) else { return "\(place) (not a command) \(value)" }
            return "\(place) twin=\(command.twinID) id=\(command.id) hop=\(command.hop) \(command.json.jsonString())"
        case topics.deviceMessages:
            guard let device = try? DeviceMessage(decoding: message) else { return "\(place) (not a device message) \(value)" }
            return "\(place) device=\(device.deviceID) \(device.body.jsonString())"
        case topics.timeSeries:
            guard let event = try? TimeSeriesEvent(decoding: message) else { return "\(place) (not a time-series event) \(value)" }
            return "\(place) \(event.json.jsonString())"
        default:
            return "\(place) \(value)"
        }
    }
}
