import Foundation
import Logging
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime

/// Turns a batch from `iothub.d2c` into twin commands: decode the device messages, find each
/// device's twin, map the body to a patch and telemetry, then send the commands and dead letters as
/// one producer batch. ``handle(_:_:)`` returns once every delivery report arrived, so the batch's
/// offsets may be stored.
public struct IngressHandler: Sendable {
    public static let serviceName = "ingress"

    private let mapping: MappingSource
    private let directory: TwinDirectory?
    private let producer: KafkaProducer
    private let topics: Topics
    private let counters: IngressCounters
    private let logger: Logger

    /// `directory` is twin-service's answers; without one, devices map by the mapping's table or
    /// their own ID, and values are not checked against models.
    public init(
        mapping: MappingSource, directory: TwinDirectory?, producer: KafkaProducer, topics: Topics, counters: IngressCounters, logger: Logger
    ) {
        self.mapping = mapping
        self.directory = directory
        self.producer = producer
        self.topics = topics
        self.counters = counters
        self.logger = logger
    }

    /// A batch's outputs, ready to send: one command or one dead letter per message, in the
    /// batch's order, each with its input's position in the batch.
    public struct PreparedBatch: Sendable {
        public var messages: [KafkaProducerMessage]
        public var inputs: [Int]
        public var counts: IngressCounters.Counts
    }

    /// Decodes the batch and maps it to commands; asks twin-service only about devices not known
    /// yet. Runs while the batch before is still being delivered. The batch is split by partition
    /// into a part per core, decoded and mapped side by side: a device's messages (one key, one
    /// partition) stay in one part, in order.
    public func prepare(_ batch: KafkaConsumerBatch) async throws -> PreparedBatch {
        let parts = Self.parts(of: batch)
        let decoded = await withTaskGroup(of: (Int, DecodedPart).self) { group in
            for (index, part) in parts.enumerated() { group.addTask { (index, self.decode(part, of: batch.messages)) } }
            var decoded = [DecodedPart?](repeating: nil, count: parts.count)
            for await (index, part) in group { decoded[index] = part }
            return decoded.compactMap { $0 }
        }
        let (current, version) = mapping.current
        let targets = try await resolve(Set(decoded.flatMap { $0.devices.map(\.device.deviceID) }), mapping: current, version: version)
        let mapped = await withTaskGroup(of: (Int, MappedPart).self) { group in
            for (index, part) in decoded.enumerated() {
                group.addTask { (index, self.map(part, of: batch.messages, mapping: current, targets: targets)) }
            }
            var mapped = [MappedPart?](repeating: nil, count: decoded.count)
            for await (index, part) in group { mapped[index] = part }
            return mapped.compactMap { $0 }
        }
        var prepared = PreparedBatch(messages: [], inputs: [], counts: IngressCounters.Counts())
        prepared.messages.reserveCapacity(batch.count)
        prepared.inputs.reserveCapacity(batch.count)
        for (part, result) in zip(decoded, mapped) {
            prepared.messages += part.deadLetters
            prepared.inputs += part.deadLetterInputs
            prepared.messages += result.messages
            prepared.inputs += result.inputs
            prepared.counts.add(part.counts)
            prepared.counts.add(result.counts)
            directory?.noteSet(result.newlySet)
        }
        return prepared
    }

    private struct DecodedPart: Sendable {
        /// Each decoded message's place in the batch, with what it says.
        var devices: [(position: Int, device: DeviceMessage)] = []
        var deadLetters: [KafkaProducerMessage] = []
        var deadLetterInputs: [Int] = []
        var counts = IngressCounters.Counts()
    }

    private struct MappedPart: Sendable {
        var messages: [KafkaProducerMessage] = []
        var inputs: [Int] = []
        var counts = IngressCounters.Counts()
        var newlySet: [String: Set<String>] = [:]
    }

    /// The batch's messages in a part per core (at least 512 messages a part), whole partitions each.
    static func parts(of batch: KafkaConsumerBatch) -> [[Int]] {
        let count = max(1, min(ProcessInfo.processInfo.activeProcessorCount, batch.count / 512))
        guard count > 1 else { return [Array(batch.messages.indices)] }
        var parts = [[Int]](repeating: [], count: count)
        for (position, message) in batch.messages.enumerated() { parts[Int(message.partition) % count].append(position) }
        return parts.filter { !$0.isEmpty }
    }

    private func decode(_ positions: [Int], of messages: [KafkaConsumerMessage]) -> DecodedPart {
        var part = DecodedPart()
        part.devices.reserveCapacity(positions.count)
        for position in positions {
            let message = messages[position]
            do {
                if let device = DeviceMessageScanner.scan(message.value, key: message.keyString) {
                    part.devices.append((position, device))
                } else {
                    part.devices.append((position, try DeviceMessage(decoding: message)))
                }
            } catch {
                let refusal = Self.refusal(for: error)
                part.deadLetters.append(deadLetter(message, refusal, "\(error)"))
                part.deadLetterInputs.append(position)
                part.counts.deadLettered[refusal, default: 0] += 1
            }
        }
        return part
    }

    private func map(_ part: DecodedPart, of messages: [KafkaConsumerMessage], mapping: IngressMapping, targets: [String: TwinTarget]) -> MappedPart {
        var mapper = CommandMapper(mapping: mapping, commandsTopic: topics.twinCommands)
        var result = MappedPart()
        result.messages.reserveCapacity(part.devices.count)
        result.inputs.reserveCapacity(part.devices.count)
        for (position, device) in part.devices {
            let message = messages[position]
            switch mapper.command(for: device, from: message, target: targets[device.deviceID]) {
            case .command(let command):
                result.messages.append(command)
                result.inputs.append(position)
                result.counts.commands += 1
            case .nothingMapped:
                result.counts.nothingMapped += 1
            case .refused(let refusal, let reason):
                result.messages.append(deadLetter(message, refusal, reason))
                result.inputs.append(position)
                result.counts.deadLettered[refusal, default: 0] += 1
            }
        }
        result.newlySet = mapper.newlySet
        return result
    }

    /// Sends the batch's commands and dead letters and waits for every delivery report; a device
    /// message whose command the broker refuses (too large) is dead-lettered in its place.
    public func handle(_ batch: KafkaConsumerBatch, _ prepared: PreparedBatch) async throws {
        var counts = prepared.counts
        let refused = try await producer.sendOutputs(
            prepared.messages, inputs: prepared.inputs, of: batch, service: Self.serviceName, deadLetterTopic: topics.deadLetter)
        let refusedCommands = refused.count { prepared.messages[$0].topic != topics.deadLetter }
        if refusedCommands > 0 {
            counts.deadLettered[.commandRefused, default: 0] += refusedCommands
            counts.commands -= refusedCommands
        }
        counters.add(counts)
        let deadLettered = counts.deadLettered.values.reduce(0, +)
        if deadLettered > 0 {
            logger.warning(
                "device messages dead-lettered",
                metadata: ["count": "\(deadLettered)", "reasons": "\(counts.deadLettered.map { "\($0.key.rawValue): \($0.value)" }.sorted())"])
        }
    }

    private func resolve(_ devices: Set<String>, mapping: IngressMapping, version: Int) async throws -> [String: TwinTarget] {
        if let directory, mapping.needsTwinService {
            return try await directory.targets(for: devices, mapping: mapping, version: version)
        }
        var targets: [String: TwinTarget] = [:]
        for device in devices {
            if let twinID = mapping.devices[device] ?? (mapping.unlistedDevices == .sameID ? device : nil) {
                targets[device] = TwinTarget(twinID: twinID, model: nil, setPaths: [])
            }
        }
        return targets
    }

    private func deadLetter(_ message: KafkaConsumerMessage, _ refusal: IngressCounters.Refusal, _ detail: String) -> KafkaProducerMessage {
        DeadLetter(service: Self.serviceName, reason: "\(refusal.rawValue): \(detail)", original: message)
            .kafkaMessage(for: message, topic: topics.deadLetter)
    }

    static func refusal(for error: CodecError) -> IngressCounters.Refusal {
        if error.reason.hasPrefix("not valid JSON") || error.reason.contains("not base64") || error.reason.contains("has no value") {
            return .notJSON
        }
        if error.field == "systemProperties" || error.field == "systemProperties.\(DeviceMessage.deviceIDProperty)" { return .noDeviceID }
        return .notADeviceMessage
    }
}
