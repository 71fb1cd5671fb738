import Logging
import TwinflowCodec
import TwinflowKafka

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
    /// batch's order.
    public struct PreparedBatch: Sendable {
        public var messages: [KafkaProducerMessage]
        public var counts: IngressCounters.Counts
    }

    /// Decodes the batch and maps it to commands; asks twin-service only about devices not known
    /// yet. Runs while the batch before is still being delivered.
    public func prepare(_ batch: KafkaConsumerBatch) async throws -> PreparedBatch {
        var decoded: [(KafkaConsumerMessage, DeviceMessage)] = []
        var outputs = [KafkaProducerMessage?](repeating: nil, count: batch.count)
        var counts = IngressCounters.Counts()
        decoded.reserveCapacity(batch.count)
        var positions: [Int] = []
        for (index, message) in batch.messages.enumerated() {
            if index % 1024 == 1023 { await Task.yield() }
            do {
                decoded.append((message, try DeviceMessage(decoding: message)))
                positions.append(index)
            } catch {
                let refusal = Self.refusal(for: error)
                outputs[index] = deadLetter(message, refusal, "\(error)")
                counts.deadLettered[refusal, default: 0] += 1
            }
        }
        let (current, version) = mapping.current
        let targets = try await resolve(Set(decoded.map(\.1.deviceID)), mapping: current, version: version)
        var mapper = CommandMapper(mapping: current, commandsTopic: topics.twinCommands)
        for ((message, device), index) in zip(decoded, positions) {
            if index % 1024 == 1023 { await Task.yield() }
            switch mapper.command(for: device, from: message, target: targets[device.deviceID]) {
            case .command(let command):
                outputs[index] = command
                counts.commands += 1
            case .nothingMapped:
                counts.nothingMapped += 1
            case .refused(let refusal, let reason):
                outputs[index] = deadLetter(message, refusal, reason)
                counts.deadLettered[refusal, default: 0] += 1
            }
        }
        directory?.noteSet(mapper.newlySet)
        return PreparedBatch(messages: outputs.compactMap { $0 }, counts: counts)
    }

    /// Sends the batch's commands and dead letters and waits for every delivery report.
    public func handle(_ batch: KafkaConsumerBatch, _ prepared: PreparedBatch) async throws {
        if !prepared.messages.isEmpty { try await producer.send(prepared.messages) }
        counters.add(prepared.counts)
        let refused = prepared.counts.deadLettered.values.reduce(0, +)
        if refused > 0 {
            logger.warning(
                "device messages dead-lettered",
                metadata: ["count": "\(refused)", "reasons": "\(prepared.counts.deadLettered.map { "\($0.key.rawValue): \($0.value)" }.sorted())"])
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
        if error.field.hasPrefix("systemProperties") { return .noDeviceID }
        return .notADeviceMessage
    }
}
