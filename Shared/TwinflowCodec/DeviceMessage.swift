import Foundation
import KafkaRecords

/// A device-to-cloud message as IoT Hub's Event Grid endpoint delivers it (topic `iothub.d2c`, key = device ID):
/// `{"systemProperties":{"iothub-connection-device-id":"thermo_0001","iothub-enqueuedtime":"…"},"properties":{…},"body":{…}}`.
/// The body may also arrive as a base64 string of JSON; ``body`` is always the decoded JSON.
public struct DeviceMessage: Sendable, Hashable {
    public static let deviceIDProperty = "iothub-connection-device-id"
    public static let enqueuedTimeProperty = "iothub-enqueuedtime"

    public var deviceID: String
    public var enqueuedTime: String?
    /// Application properties the device set.
    public var properties: [String: JSONValue]
    /// The telemetry, such as `{"Temperature": 21.5}`.
    public var body: JSONValue

    public init(deviceID: String, enqueuedTime: String? = nil, properties: [String: JSONValue] = [:], body: JSONValue) {
        self.deviceID = deviceID
        self.enqueuedTime = enqueuedTime
        self.properties = properties
        self.body = body
    }

    public init(decoding bytes: [UInt8]?) throws(CodecError) {
        let object = try JSONValue.parseObject(bytes, what: "the device message")
        let system = try object.requiredObject("systemProperties", in: "$")
        self.deviceID = try system.requiredString(Self.deviceIDProperty, in: "systemProperties")
        self.enqueuedTime = try system.optionalString(Self.enqueuedTimeProperty, in: "systemProperties")
        switch object["properties"] {
        case nil, .null?: self.properties = [:]
        case .object(let properties)?: self.properties = properties
        case let other?: throw .wrongType("properties", expected: "an object", found: other)
        }
        guard let body = object["body"] else { throw .missing("body") }
        switch body {
        case .string(let base64):
            guard let data = Data(base64Encoded: base64) else {
                throw CodecError(field: "body", reason: "a string body must be base64 of JSON, and this is not base64")
            }
            self.body = try JSONValue.parse(Array(data), field: "body")
        default:
            self.body = body
        }
    }

    public init(decoding message: KafkaConsumerMessage) throws(CodecError) {
        try self.init(decoding: message.value)
    }

    /// The JSON form, with `body` as JSON.
    public var json: JSONValue {
        var system: [String: JSONValue] = [Self.deviceIDProperty: .string(deviceID)]
        if let enqueuedTime { system[Self.enqueuedTimeProperty] = .string(enqueuedTime) }
        return ["systemProperties": .object(system), "properties": .object(properties), "body": body]
    }

    /// The Kafka message for `topic`, keyed by device ID.
    public func kafkaMessage(topic: String) -> KafkaProducerMessage {
        KafkaProducerMessage(topic: topic, key: deviceID, value: json.serialized())
    }
}
