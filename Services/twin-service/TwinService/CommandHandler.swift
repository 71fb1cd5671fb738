import Logging
import TwinGraph
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime

/// Applies a batch from `twins.commands`: decode, apply in one transaction (notifications
/// go to the outbox with it), dead-letter what cannot be applied. ``handle(_:_:)`` returns once the
/// transaction committed and every dead letter was delivered, so the batch's offsets may be stored.
public struct CommandHandler: Sendable {
    public static let serviceName = "twin-service"

    private let graph: DigitalTwinGraph
    private let producer: KafkaProducer
    private let deadLetterTopic: String
    private let backpressure: OutboxBackpressure?
    private let logger: Logger

    /// `backpressure`: what holds commands back while the outbox is stuck (none: never held back).
    public init(
        graph: DigitalTwinGraph, producer: KafkaProducer, deadLetterTopic: String, backpressure: OutboxBackpressure? = nil, logger: Logger
    ) {
        self.graph = graph
        self.producer = producer
        self.deadLetterTopic = deadLetterTopic
        self.backpressure = backpressure
        self.logger = logger
    }

    /// The commands of a batch decoded and prepared, with the dead letters of those that did not decode.
    public struct DecodedBatch: Sendable {
        var commands: PreparedCommands
        var sources: [KafkaConsumerMessage]
        var deadLetters: [KafkaProducerMessage]
    }

    /// Decodes and prepares the batch: runs while the batch before is still applied.
    public func decode(_ batch: KafkaConsumerBatch) async -> DecodedBatch {
        var commands: [TwinCommand] = []
        var sources: [KafkaConsumerMessage] = []
        var deadLetters: [KafkaProducerMessage] = []
        commands.reserveCapacity(batch.count)
        for (index, message) in batch.messages.enumerated() {
            // A large batch lets other tasks have the cooperative pool's few threads now and then.
            if index % 1024 == 1023 { await Task.yield() }
            do {
                let command = try TwinCommand(decoding: message)
                // The Twin.Update carries the patch whole: one too large for Kafka could not be delivered.
                if (message.value?.count ?? 0) > DigitalTwinGraph.maximumPatchBytes, let patch = command.patch,
                    patch.json.serialized().count > DigitalTwinGraph.maximumPatchBytes
                {
                    deadLetters.append(
                        deadLetter(message, reason: "the command's patch is larger than \(DigitalTwinGraph.maximumPatchBytes) bytes"))
                    continue
                }
                commands.append(command)
                sources.append(message)
            } catch {
                deadLetters.append(deadLetter(message, reason: "not a twin command: \(error)"))
            }
        }
        return DecodedBatch(commands: graph.prepare(commands), sources: sources, deadLetters: deadLetters)
    }

    /// Applies the batch in one transaction and delivers its dead letters; throws
    /// ``OutboxBackpressure/OutboxStuck``, applying nothing, while the outbox is stuck.
    public func handle(_ batch: KafkaConsumerBatch, _ decoded: DecodedBatch) async throws {
        let started = ContinuousClock.now
        try await backpressure?.check()
        try await graph.refreshCatalog()
        let outcomes = try await graph.apply(decoded.commands)
        logger.debug("commands applied", metadata: ["count": "\(outcomes.count)", "took": "\(ContinuousClock.now - started)"])
        var deadLetters = decoded.deadLetters
        for (outcome, message) in zip(outcomes, decoded.sources) {
            if case .rejected(let error) = outcome {
                deadLetters.append(deadLetter(message, reason: error.description))
            }
        }
        if !deadLetters.isEmpty {
            logger.warning("commands dead-lettered", metadata: ["count": "\(deadLetters.count)"])
            try await producer.send(deadLetters, deadLettersTo: deadLetterTopic)
        }
        // Freeing a batch's worth of commands and changes is left to a task off the batch's path.
        Task.detached(priority: .utility) { _ = (decoded, outcomes) }
    }

    private func deadLetter(_ message: KafkaConsumerMessage, reason: String) -> KafkaProducerMessage {
        DeadLetter(service: Self.serviceName, reason: reason, original: message).kafkaMessage(for: message, topic: deadLetterTopic)
    }
}
