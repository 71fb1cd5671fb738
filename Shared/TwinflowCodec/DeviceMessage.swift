import Foundation
import KafkaRecords

/// A device-to-cloud message as IoT Hub's Event Grid endpoint delivers it (topic `iothub.d2c`, key = device ID):
/// `{"systemProperties":{"iothub-connection-device-id":"thermo_0001","iothub-enqueuedtime":"…"},"properties":{…},"body":{…}}`.
/// The body may also arrive as a base64 string of JSON; ``body`` is always the decoded JSON.
public struct DeviceMessage: Sendable, Hashable {
    public static let deviceIDProperty = "iothub-connection-device-id"
    public static let enqueuedTimeProperty = "iothub-enqueuedtime"
    /// IoT Hub's system property for the message ID the device set.
    public static let messageIDProperty = "message-id"

    public var deviceID: String
    public var enqueuedTime: String?
    /// The message ID the device set (`systemProperties.message-id`), if it set one.
    public var messageID: String?
    /// Application properties the device set.
    public var properties: [String: JSONValue]
    /// The telemetry, such as `{"Temperature": 21.5}`.
    public var body: JSONValue

    public init(
        deviceID: String, enqueuedTime: String? = nil, messageID: String? = nil, properties: [String: JSONValue] = [:], body: JSONValue
    ) {
        self.deviceID = deviceID
        self.enqueuedTime = enqueuedTime
        self.messageID = messageID
        self.properties = properties
        self.body = body
    }

    /// Decodes a message whose device ID is in `systemProperties`.
    public init(decoding bytes: [UInt8]?) throws(CodecError) {
        try self.init(decoding: bytes, key: nil)
    }

    /// Decodes a message as IoT Hub delivers it: the `data` of a `Microsoft.Devices.DeviceTelemetry`
    /// event, or that event whole in Event Grid's or CloudEvents' envelope (alone or as an array of
    /// one, as Event Grid posts it). The device ID is `systemProperties.iothub-connection-device-id`,
    /// or `key` (the Kafka key) when that is absent; `systemProperties` may then be absent too.
    ///
    /// Numbers written `NaN`, `Infinity` or `-Infinity` read as non-finite doubles, so the reader
    /// of the body can name the field that does not fit instead of refusing the whole message.
    public init(decoding bytes: [UInt8]?, key: String?) throws(CodecError) {
        guard let bytes, !bytes.isEmpty else { throw CodecError(field: "$", reason: "the device message has no value") }
        var object = try Self.unwrapped(try JSONValue.parse(bytes, allowingNonFiniteNumbers: true))
        let key = key.flatMap { $0.isEmpty ? nil : $0 }
        let system: [String: JSONValue]
        if case .object(let properties)? = object["systemProperties"] {
            system = properties
        } else if key != nil, (object["systemProperties"] ?? .null) == .null {
            system = [:]
        } else {
            system = try object.requiredObject("systemProperties", in: "$")
        }
        if let deviceID = try system.optionalString(Self.deviceIDProperty, in: "systemProperties"), !deviceID.isEmpty {
            self.deviceID = deviceID
        } else if let key {
            self.deviceID = key
        } else {
            self.deviceID = try system.requiredString(Self.deviceIDProperty, in: "systemProperties")
        }
        self.enqueuedTime = try system.optionalString(Self.enqueuedTimeProperty, in: "systemProperties")
        self.messageID = try system.optionalString(Self.messageIDProperty, in: "systemProperties").flatMap { $0.isEmpty ? nil : $0 }
        switch object["properties"] {
        case nil, .null?: self.properties = [:]
        case .object(let properties)?: self.properties = properties
        case let other?: throw .wrongType("properties", expected: "an object", found: other)
        }
        guard let body = object.removeValue(forKey: "body") else { throw .missing("body") }
        switch body {
        case .string(let base64):
            guard let data = Data(base64Encoded: base64) else {
                throw CodecError(field: "body", reason: "a string body must be base64 of JSON, and this is not base64")
            }
            self.body = try JSONValue.parse(Array(data), field: "body", allowingNonFiniteNumbers: true)
        default:
            self.body = body
        }
    }

    /// Decodes a consumed message; the Kafka key is the device ID when the value names none.
    public init(decoding message: KafkaConsumerMessage) throws(CodecError) {
        try self.init(decoding: message.value, key: message.keyString)
    }

    /// The device message inside `value`: `value` itself, or the `data` of an Event Grid or
    /// CloudEvents envelope (an object with `data` and `eventType` or `type`), alone or as an array of one.
    static func unwrapped(_ value: JSONValue) throws(CodecError) -> [String: JSONValue] {
        var value = value
        if case .array(let events) = value {
            guard events.count == 1 else {
                throw CodecError(field: "$", reason: "an array of \(events.count) events: a message must carry one device message")
            }
            value = events[0]
        }
        guard case .object(var object) = value else { throw .wrongType("$", expected: "a JSON object", found: value) }
        if object["body"] == nil, object["eventType"] != nil || object["type"] != nil, case .object(let data)? = object["data"] {
            object = data
        }
        return object
    }

    /// The JSON form, with `body` as JSON.
    public var json: JSONValue {
        var system: [String: JSONValue] = [Self.deviceIDProperty: .string(deviceID)]
        if let enqueuedTime { system[Self.enqueuedTimeProperty] = .string(enqueuedTime) }
        if let messageID { system[Self.messageIDProperty] = .string(messageID) }
        return ["systemProperties": .object(system), "properties": .object(properties), "body": body]
    }

    /// The Kafka message for `topic`, keyed by device ID.
    public func kafkaMessage(topic: String) -> KafkaProducerMessage {
        KafkaProducerMessage(topic: topic, key: deviceID, value: json.serialized())
    }
}
