import KafkaRecords

/// A call to the twin service over Kafka (topic `twins.commands`, key = twin ID): update a twin with a
/// JSON Patch (ADT's UpdateDigitalTwin), publish telemetry for it (PublishTelemetry), or both.
///
/// JSON form:
/// `{"id":"…","twinId":"thermo_0001","patch":[…],"telemetry":{…},"component":"…","sourceTime":"…",`
/// `"causationId":"…","hop":0,"traceparent":"00-…"}`; `patch` or `telemetry` (or both) must be present.
public struct TwinCommand: Sendable, Hashable {
    /// The idempotency id: a command whose id was seen before changes nothing.
    public var id: String
    public var twinID: String
    public var patch: JSONPatch?
    /// The telemetry payload, published as sent.
    public var telemetry: JSONValue?
    /// The component the telemetry belongs to, if not the twin itself.
    public var component: String?
    /// When the data was observed at its source (ADT's `sourceTime`); decoding leaves out one that
    /// is not an RFC 3339 timestamp (``isSourceTime(_:)``).
    public var sourceTime: String?
    /// The id of the event that caused this command (for propagated updates).
    public var causationID: String?
    /// How many propagation steps led here: 0 for a command from a device.
    public var hop: Int
    /// The largest hop count a command or notification may carry: far above any hop limit, and far
    /// enough below `Int.max` that counting one more never overflows.
    public static let maximumHop = 1_000_000
    /// The longest `sourceTime` taken: an RFC 3339 timestamp with a fraction of a second to the nanosecond is 35 bytes.
    public static let maximumSourceTimeBytes = 64

    /// Whether `text` can be a source time (ADT's `sourceTime`, `Telemetry-Source-Time`): an RFC 3339
    /// timestamp of at most ``maximumSourceTimeBytes`` bytes.
    public static func isSourceTime(_ text: String) -> Bool {
        text.utf8.count <= maximumSourceTimeBytes && TimeSeriesTime.milliseconds(from: text) != nil
    }
    /// W3C trace context of whatever caused the command.
    public var traceparent: String?

    public init(
        id: String,
        twinID: String,
        patch: JSONPatch? = nil,
        telemetry: JSONValue? = nil,
        component: String? = nil,
        sourceTime: String? = nil,
        causationID: String? = nil,
        hop: Int = 0,
        traceparent: String? = nil
    ) {
        self.id = id
        self.twinID = twinID
        self.patch = patch
        self.telemetry = telemetry
        self.component = component
        self.sourceTime = sourceTime
        self.causationID = causationID
        self.hop = hop
        self.traceparent = traceparent
    }

    public init(decoding bytes: [UInt8]?) throws(CodecError) {
        let object = try JSONValue.parseObject(bytes, what: "the twin command")
        self.id = try object.requiredString("id", in: "$")
        self.twinID = try object.requiredString("twinId", in: "$")
        switch object["patch"] {
        case nil, .null?: self.patch = nil
        case let json?: self.patch = try JSONPatch(json: json, field: "patch")
        }
        switch object["telemetry"] {
        case nil, .null?: self.telemetry = nil
        case let json?: self.telemetry = json
        }
        guard patch != nil || telemetry != nil else {
            throw CodecError(field: "patch", reason: "a command needs a patch, telemetry or both")
        }
        self.component = try object.optionalString("component", in: "$")
        self.sourceTime = try object.optionalString("sourceTime", in: "$")
        // Metadata of the reading, not the reading: one that is not a timestamp is left out, and the
        // command applies without it.
        if let sourceTime, !Self.isSourceTime(sourceTime) { self.sourceTime = nil }
        self.causationID = try object.optionalString("causationId", in: "$")
        self.traceparent = try object.optionalString("traceparent", in: "$")
        switch object["hop"] {
        case nil, .null?: self.hop = 0
        case let value?:
            guard let hop = value.integerValue, (0...Int64(Self.maximumHop)).contains(hop) else {
                throw .wrongType("hop", expected: "an integer from 0 to \(Self.maximumHop)", found: value)
            }
            self.hop = Int(hop)
        }
    }

    public init(decoding message: KafkaConsumerMessage) throws(CodecError) {
        try self.init(decoding: message.value)
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = ["id": .string(id), "twinId": .string(twinID), "hop": .integer(Int64(hop))]
        if let patch { object["patch"] = patch.json }
        if let telemetry { object["telemetry"] = telemetry }
        if let component { object["component"] = .string(component) }
        if let sourceTime { object["sourceTime"] = .string(sourceTime) }
        if let causationID { object["causationId"] = .string(causationID) }
        if let traceparent { object["traceparent"] = .string(traceparent) }
        return .object(object)
    }

    /// The Kafka message for `topic`, keyed by twin ID so a twin's commands stay in order.
    public func kafkaMessage(topic: String) -> KafkaProducerMessage {
        KafkaProducerMessage(topic: topic, key: twinID, value: json.serialized())
    }
}
