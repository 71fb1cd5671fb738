import TwinflowCodec
import TwinflowKafka

/// One device message → one `TwinCommand` on `twins.commands`, by the mapping.
///
/// - The command's `id` is stable across redeliveries, so twin-service applies it once: with
///   IoT Hub's message ID, `device/<device ID>/message/<message ID>` (message IDs are the device's
///   own, so they are scoped by it); otherwise `<topic>/<partition>/<offset>` of the device message.
/// - The patch sets each mapped field the body has: `add` for a path the twin did not hold when it
///   was read (so the first reading lands), `replace` after; twin-service treats a `replace` of a
///   path that is not set as `add`, so a stale view never loses a reading.
/// - `sourceTime` is IoT Hub's `iothub-enqueuedtime`; `traceparent` is the Kafka header of that
///   name, or the device's application property of that name, or a new trace.
struct CommandMapper {
    enum Outcome {
        case command(KafkaProducerMessage)
        case nothingMapped
        case refused(IngressCounters.Refusal, String)
    }

    let mapping: IngressMapping
    let commandsTopic: String
    /// Per device, the paths this batch set that the twin did not hold before.
    private(set) var newlySet: [String: Set<String>] = [:]

    init(mapping: IngressMapping, commandsTopic: String) {
        self.mapping = mapping
        self.commandsTopic = commandsTopic
    }

    mutating func command(for device: DeviceMessage, from message: KafkaConsumerMessage, target: TwinTarget?) -> Outcome {
        guard let target else { return .refused(.unknownDevice, "no twin for device '\(device.deviceID)'") }
        var operations: [JSONPatch.Operation] = []
        var setNow: [String] = []
        for property in mapping.properties {
            guard let value = device.body.value(at: property.from) else { continue }
            if let problem = ValueCheck.problem(value, for: property, model: target.model) { return .refused(.valueDoesNotFit, problem) }
            let path = property.twinPath
            let text = path.description
            if target.setPaths.contains(text) || newlySet[device.deviceID]?.contains(text) == true {
                operations.append(.replace(path: path, value: value))
            } else {
                operations.append(.add(path: path, value: value))
                setNow.append(text)
            }
        }
        var telemetry: JSONValue?
        if mapping.publishesTelemetry {
            if let bad = ValueCheck.nonFinite(in: device.body, at: "") {
                return .refused(.valueDoesNotFit, "\(bad.isEmpty ? "the body" : bad) is not a finite number (telemetry is JSON)")
            }
            telemetry = device.body
        }
        guard !operations.isEmpty || telemetry != nil else { return .nothingMapped }
        if !setNow.isEmpty { newlySet[device.deviceID, default: []].formUnion(setNow) }
        let command = TwinCommand(
            id: Self.commandID(device, message),
            twinID: target.twinID,
            patch: operations.isEmpty ? nil : JSONPatch(operations),
            telemetry: telemetry,
            component: telemetry == nil ? nil : mapping.telemetryComponent,
            sourceTime: device.enqueuedTime,
            traceparent: Self.traceparent(device, message)
        )
        return .command(command.kafkaMessage(topic: commandsTopic))
    }

    static func commandID(_ device: DeviceMessage, _ message: KafkaConsumerMessage) -> String {
        if let messageID = device.messageID { return "device/\(device.deviceID)/message/\(messageID)" }
        return "\(message.topic)/\(message.partition)/\(message.offset)"
    }

    static func traceparent(_ device: DeviceMessage, _ message: KafkaConsumerMessage) -> String {
        if let header = message.headers.string(for: "traceparent"), Traceparent.isValid(header) { return header }
        if case .string(let property)? = device.properties["traceparent"], Traceparent.isValid(property) { return property }
        return Traceparent.random()
    }
}
