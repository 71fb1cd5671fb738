import KafkaRecords

/// The flattened event the time-series store reads (`eventhub.tsi`, key = `$dtId`, the time-series ID):
/// `{"$dtId":"thermo_0001","timestamp":"…","Temperature":21.5}`.
public struct TimeSeriesEvent: Sendable, Hashable {
    public var twinID: String
    public var timestamp: String
    /// The telemetry's fields, flattened beside `$dtId` and `timestamp`.
    public var values: [String: JSONValue]

    public init(twinID: String, timestamp: String, values: [String: JSONValue]) {
        self.twinID = twinID
        self.timestamp = timestamp
        self.values = values
    }

    public init(decoding bytes: [UInt8]?) throws(CodecError) {
        var object = try JSONValue.parseObject(bytes, what: "the time-series event")
        self.twinID = try object.requiredString("$dtId", in: "$")
        self.timestamp = try object.requiredString("timestamp", in: "$")
        guard Timestamp.date(from: timestamp) != nil else {
            throw CodecError(field: "timestamp", reason: "must be an RFC 3339 time, found '\(timestamp)'")
        }
        object["$dtId"] = nil
        object["timestamp"] = nil
        self.values = object
    }

    public init(decoding message: KafkaConsumerMessage) throws(CodecError) {
        try self.init(decoding: message.value)
    }

    public var json: JSONValue {
        var object = values
        object["$dtId"] = .string(twinID)
        object["timestamp"] = .string(timestamp)
        return .object(object)
    }

    /// The Kafka message, keyed by twin ID (the partition key of the time series).
    public func kafkaMessage(topic: String) -> KafkaProducerMessage {
        KafkaProducerMessage(topic: topic, key: twinID, value: json.serialized())
    }
}
