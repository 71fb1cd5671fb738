import TwinflowCodec
import TwinflowKafka

/// One device message → one `TwinCommand` on `twins.commands`, by the mapping.
///
/// - The command's `id` is stable across redeliveries, so twin-service applies it once (see
///   ``commandID(_:_:)``).
/// - The patch sets each mapped field the body has: `add` for a path the twin did not hold when it
///   was read (so the first reading lands), `replace` after; twin-service treats a `replace` of a
///   path that is not set as `add`, so a stale view never loses a reading.
/// - `sourceTime` is IoT Hub's `iothub-enqueuedtime` when it is an RFC 3339 timestamp; `traceparent` is the Kafka header of that
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
        var operations: [(add: Bool, path: String, value: JSONValue)] = []
        var setNow: [String] = []
        for property in mapping.properties {
            guard let value = device.body.value(at: property.from) else { continue }
            if let problem = ValueCheck.problem(value, for: property, model: target.model) { return .refused(.valueDoesNotFit, problem) }
            let path = property.twinPathText
            if target.setPaths.contains(path) || newlySet[device.deviceID]?.contains(path) == true {
                operations.append((false, path, value))
            } else {
                operations.append((true, path, value))
                setNow.append(path)
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
        let value = Self.serializedCommand(
            id: Self.commandID(device, message), twinID: target.twinID, operations: operations, telemetry: telemetry,
            component: telemetry == nil ? nil : mapping.telemetryComponent,
            sourceTime: device.enqueuedTime.flatMap { TwinCommand.isSourceTime($0) ? $0 : nil },
            traceparent: Self.incomingTraceparent(device, message))
        return .command(KafkaProducerMessage(topic: commandsTopic, key: target.twinID, value: value))
    }

    /// The command's JSON as `TwinCommand.json.serialized()` writes it (members in key order),
    /// written straight into bytes: building the dictionaries and sorting their keys for every
    /// message cost more than the rest of the mapping.
    static func serializedCommand(
        id: String, twinID: String, operations: [(add: Bool, path: String, value: JSONValue)], telemetry: JSONValue?, component: String?,
        sourceTime: String?, traceparent: String?
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(320 + (telemetry == nil ? 0 : 64))
        out += #"{"#.utf8
        if let component {
            out += #""component":"#.utf8
            JSONValue.string(component).write(into: &out)
            out += #","#.utf8
        }
        out += #""hop":0,"id":"#.utf8
        JSONValue.string(id).write(into: &out)
        if !operations.isEmpty {
            out += #","patch":["#.utf8
            for (index, operation) in operations.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out += (operation.add ? #"{"op":"add","path":"# : #"{"op":"replace","path":"#).utf8
                JSONValue.string(operation.path).write(into: &out)
                out += #","value":"#.utf8
                operation.value.write(into: &out)
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        }
        if let sourceTime {
            out += #","sourceTime":"#.utf8
            JSONValue.string(sourceTime).write(into: &out)
        }
        if let telemetry {
            out += #","telemetry":"#.utf8
            telemetry.write(into: &out)
        }
        out += #","traceparent":"#.utf8
        if let traceparent {
            JSONValue.string(traceparent).write(into: &out)
        } else {
            writeNewTraceparent(into: &out)
        }
        out += #","twinId":"#.utf8
        JSONValue.string(twinID).write(into: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The same for a record read again (twin-service applies its command once), and different for
    /// every other record: IoT Hub's message ID with its enqueued time (a device may use a message
    /// ID again, a counter starting from zero after a restart), else the record's place and Kafka
    /// timestamp (a broker's topics may start again from offset 0 while twin-service keeps the IDs
    /// it applied).
    static func commandID(_ device: DeviceMessage, _ message: KafkaConsumerMessage) -> String {
        let timestamp = message.timestamp.map { "@\($0)" } ?? ""
        guard let messageID = device.messageID else {
            return "\(message.topic)/\(message.partition)/\(message.offset)\(timestamp)"
        }
        let enqueued = device.enqueuedTime.flatMap { TwinCommand.isSourceTime($0) ? "/" + idPart($0) : nil } ?? timestamp
        return "device/\(idPart(device.deviceID))/message/\(idPart(messageID))\(enqueued)"
    }

    /// `text` with `%`, `/` and `@` percent-encoded, so that an ID's `/`s and `@` only separate its parts.
    static func idPart(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "@") }) else { return text }
        return text.replacing("%", with: "%25").replacing("/", with: "%2F").replacing("@", with: "%40")
    }

    /// The trace the device message came with: its Kafka header `traceparent`, or the device's
    /// application property of that name; `nil` for a new trace.
    static func incomingTraceparent(_ device: DeviceMessage, _ message: KafkaConsumerMessage) -> String? {
        if let header = message.headers.string(for: "traceparent"), Traceparent.isValid(header) { return header }
        if case .string(let property)? = device.properties["traceparent"], Traceparent.isValid(property) { return property }
        return nil
    }

    /// A new sampled trace (``Traceparent/random()``), written as a JSON string into the command's bytes.
    static func writeNewTraceparent(into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        out += Traceparent.randomBytes()
        out.append(UInt8(ascii: "\""))
    }
}
