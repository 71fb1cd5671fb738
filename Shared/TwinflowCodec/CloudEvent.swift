import KafkaRecords

/// The context attributes of a CloudEvents 1.0 event, with the two extensions Twinflow sets:
/// `traceparent` (W3C trace context) and `sequence` (per twin, increasing).
public struct CloudEventAttributes: Sendable, Hashable {
    public var specVersion: String
    public var id: String
    public var type: String
    public var source: String
    public var subject: String?
    public var time: String?
    public var dataContentType: String?
    public var dataSchema: String?
    public var traceparent: String?
    public var sequence: String?
    /// Further extension attributes by name (lower-case letters and digits, as CloudEvents requires),
    /// such as `telemetrysourcetime` on telemetry.
    public var extensions: [String: String]

    /// The attribute names CloudEvents and Twinflow define; anything else is an extension.
    static let knownNames: Set<String> = [
        "specversion", "id", "type", "source", "subject", "time", "datacontenttype", "dataschema", "traceparent", "sequence",
    ]

    public init(
        id: String,
        type: String,
        source: String,
        subject: String? = nil,
        time: String? = nil,
        dataContentType: String? = "application/json",
        dataSchema: String? = nil,
        traceparent: String? = nil,
        sequence: String? = nil,
        extensions: [String: String] = [:],
        specVersion: String = "1.0"
    ) {
        self.specVersion = specVersion
        self.id = id
        self.type = type
        self.source = source
        self.subject = subject
        self.time = time
        self.dataContentType = dataContentType
        self.dataSchema = dataSchema
        self.traceparent = traceparent
        self.sequence = sequence
        self.extensions = extensions.filter { !Self.knownNames.contains($0.key) }
    }

    /// Attribute name and value pairs, required first, as CloudEvents names them.
    public var named: [(String, String)] {
        var pairs: [(String, String)] = [("specversion", specVersion), ("id", id), ("type", type), ("source", source)]
        if let subject { pairs.append(("subject", subject)) }
        if let time { pairs.append(("time", time)) }
        if let dataContentType { pairs.append(("datacontenttype", dataContentType)) }
        if let dataSchema { pairs.append(("dataschema", dataSchema)) }
        if let traceparent { pairs.append(("traceparent", traceparent)) }
        if let sequence { pairs.append(("sequence", sequence)) }
        for name in extensions.keys.sorted() { pairs.append((name, extensions[name]!)) }
        return pairs
    }

    /// The attributes as one JSON object of strings (a structured event without `data`).
    public var json: JSONValue {
        .object(Dictionary(named.map { ($0.0, JSONValue.string($0.1)) }, uniquingKeysWith: { first, _ in first }))
    }

    /// ``json`` serialized, written straight from the attributes (CloudEvents' order, not sorted).
    public func serialized() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(384)
        func member(_ name: StaticString, _ value: String?) {
            guard let value else { return }
            output.append(output.isEmpty ? UInt8(ascii: "{") : UInt8(ascii: ","))
            output.append(UInt8(ascii: "\""))
            output.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            output.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
            JSONWriter.writeString(value, into: &output)
        }
        // The order of `named`, without its array of pairs: this runs for every event.
        member("specversion", specVersion)
        member("id", id)
        member("type", type)
        member("source", source)
        member("subject", subject)
        member("time", time)
        member("datacontenttype", dataContentType)
        member("dataschema", dataSchema)
        member("traceparent", traceparent)
        member("sequence", sequence)
        for name in extensions.keys.sorted() {
            output.append(UInt8(ascii: ","))
            JSONWriter.writeString(name, into: &output)
            output.append(UInt8(ascii: ":"))
            JSONWriter.writeString(extensions[name]!, into: &output)
        }
        output.append(UInt8(ascii: "}"))
        return output
    }

    /// Reads attributes from a JSON object of strings; other members (such as `data`) are ignored,
    /// string members with names CloudEvents does not define become extensions.
    public init(json object: [String: JSONValue]) throws(CodecError) {
        var builder = Builder()
        for (name, value) in object where name != "data" {
            switch value {
            case .string(let string):
                builder.set(name, string)
            case .null:
                continue
            default:
                if Self.knownNames.contains(name) { throw .wrongType(name, expected: "a string", found: value) }
            }
        }
        self = try builder.attributes(field: { $0 })
    }

    /// Attributes gathered one at a time, in any order, a later value of a name replacing an earlier
    /// one; then checked by ``attributes(field:)``. One pass over an event's headers or members.
    struct Builder {
        var specVersion: String?
        var id: String?
        var type: String?
        var source: String?
        var subject: String?
        var time: String?
        var dataContentType: String?
        var dataSchema: String?
        var traceparent: String?
        var sequence: String?
        var extensions: [String: String] = [:]

        mutating func set(_ name: String, _ value: String) {
            switch name {
            case "specversion": specVersion = value
            case "id": id = value
            case "type": type = value
            case "source": source = value
            case "subject": subject = value
            case "time": time = value
            case "datacontenttype": dataContentType = value
            case "dataschema": dataSchema = value
            case "traceparent": traceparent = value
            case "sequence": sequence = value
            default: extensions[name] = value
            }
        }

        /// The attributes, or the error naming the first required one missing (by `field`, from its name).
        func attributes(field: (String) -> String) throws(CodecError) -> CloudEventAttributes {
            func required(_ value: String?, _ name: String) throws(CodecError) -> String {
                guard let value, !value.isEmpty else { throw .missing(field(name)) }
                return value
            }
            let specVersion = try required(specVersion, "specversion")
            guard specVersion == "1.0" else {
                throw CodecError(field: field("specversion"), reason: "must be 1.0, found \(specVersion)")
            }
            var attributes = CloudEventAttributes(
                id: try required(id, "id"), type: try required(type, "type"), source: try required(source, "source"), subject: subject,
                time: time, dataContentType: dataContentType, dataSchema: dataSchema, traceparent: traceparent, sequence: sequence)
            attributes.extensions = extensions
            return attributes
        }
    }
}

/// A CloudEvent in structured JSON mode, the form of ADT's change notifications on Event Grid
/// (`eventgrid.twin-events`): one JSON object holding the attributes and `data`.
public struct CloudEvent: Sendable, Hashable {
    public static let contentType = "application/cloudevents+json"

    public var attributes: CloudEventAttributes
    public var data: JSONValue?

    public init(attributes: CloudEventAttributes, data: JSONValue?) {
        self.attributes = attributes
        self.data = data
    }

    public var json: JSONValue {
        var object = attributes.json.objectValue ?? [:]
        if let data { object["data"] = data }
        return .object(object)
    }

    public init(decoding bytes: [UInt8]?) throws(CodecError) {
        let object = try JSONValue.parseObject(bytes, what: "the CloudEvent")
        self.attributes = try CloudEventAttributes(json: object)
        self.data = object["data"]
    }

    public init(decoding message: KafkaConsumerMessage) throws(CodecError) {
        try self.init(decoding: message.value)
    }

    /// The Kafka message of an event whose attributes (``CloudEventAttributes/serialized()``) and
    /// JSON data are serialized already: both go into the value as they are, without being parsed again.
    public static func kafkaMessage(serializedAttributes: [UInt8], jsonData: [UInt8], topic: String, key: String) -> KafkaProducerMessage {
        var value = serializedAttributes
        value.removeLast()  // the closing brace; `data` joins the attributes' object
        value.append(contentsOf: Array(#","data":"#.utf8))
        value.append(contentsOf: jsonData)
        value.append(UInt8(ascii: "}"))
        return KafkaProducerMessage(topic: topic, key: key, value: value, headers: [KafkaHeader(key: "content-type", string: contentType)])
    }

    /// The Kafka message: the JSON object as value, its attributes in CloudEvents' order before its
    /// `data` (as twin-service writes every event), `content-type: application/cloudevents+json`.
    public func kafkaMessage(topic: String, key: String) -> KafkaProducerMessage {
        guard let data else {
            return KafkaProducerMessage(
                topic: topic, key: key, value: attributes.serialized(), headers: [KafkaHeader(key: "content-type", string: Self.contentType)])
        }
        return Self.kafkaMessage(serializedAttributes: attributes.serialized(), jsonData: data.serialized(), topic: topic, key: key)
    }
}

/// A CloudEvent in the Kafka protocol binding's binary mode, the form of telemetry on Event Hubs
/// (`eventhub.telemetry`): the value is only the data, exactly as sent; each attribute travels in a
/// `ce_<name>` header and the data's content type in `content-type`.
public struct BinaryCloudEvent: Sendable, Hashable {
    public static let headerPrefix = "ce_"

    public var attributes: CloudEventAttributes
    public var data: [UInt8]

    public init(attributes: CloudEventAttributes, data: [UInt8]) {
        self.attributes = attributes
        self.data = data
    }

    public func kafkaMessage(topic: String, key: String) -> KafkaProducerMessage {
        var headers: [KafkaHeader] = []
        for (name, value) in attributes.named where name != "datacontenttype" {
            headers.append(KafkaHeader(key: Self.headerPrefix + name, string: value))
        }
        if let contentType = attributes.dataContentType {
            headers.append(KafkaHeader(key: "content-type", string: contentType))
        }
        return KafkaProducerMessage(topic: topic, key: key, value: data, headers: headers)
    }

    /// Reads the `ce_` headers and `content-type` (the data's content type) in one pass, a later
    /// header of a name winning.
    public init(decoding message: KafkaConsumerMessage) throws(CodecError) {
        var builder = CloudEventAttributes.Builder()
        var contentType: String?
        for header in message.headers {
            guard let value = header.value else { continue }
            if header.key == "content-type" {
                contentType = String(decoding: value, as: UTF8.self)
                continue
            }
            let key = header.key.utf8
            guard key.count > Self.headerPrefixBytes.count, key.starts(with: Self.headerPrefixBytes) else { continue }
            let name = String(Substring(key.dropFirst(Self.headerPrefixBytes.count)))
            if name != "datacontenttype" { builder.set(name, String(decoding: value, as: UTF8.self)) }
        }
        builder.dataContentType = contentType
        self.attributes = try builder.attributes(field: { "header \(Self.headerPrefix)\($0)" })
        self.data = message.value ?? []
    }

    private static let headerPrefixBytes: [UInt8] = Array("ce_".utf8)
}
