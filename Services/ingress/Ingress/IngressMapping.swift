import TwinflowCodec

/// How ingress turns a device message into a twin command: which twin a device is, which body
/// fields set which twin properties, and whether the body also goes out as the twin's telemetry.
///
/// Read from the JSON file `INGRESS_MAPPING` names (every member optional):
///
/// ```json
/// {
///   "devices": {"hw-0017": "thermo_0001"},
///   "deviceIdProperty": "deviceId",
///   "unlistedDevices": "unknown",
///   "properties": [
///     {"from": "/Temperature", "to": "/Temperature"},
///     {"from": "/hum", "to": "/Humidity", "component": "sensor"}
///   ],
///   "telemetry": true,
///   "telemetryComponent": "sensor"
/// }
/// ```
///
/// A device is looked up in `devices` first, then among the twins whose `deviceIdProperty` holds
/// its ID (twin-service's query API), then, when `unlistedDevices` is `same-id`, as the twin with
/// its own ID. `unlistedDevices` is `same-id` by default when the file names neither `devices` nor
/// `deviceIdProperty`, and `unknown` (dead-lettered as `unknown device`) otherwise: a mapping that
/// lists devices means the devices it does not list are not expected. Without a file, every device
/// is the twin of its own ID and the mapping is ADT's sample: `/Temperature` sets `/Temperature`,
/// and the body is published as telemetry.
public struct IngressMapping: Sendable, Hashable {
    /// What to do with a device neither `devices` nor `deviceIdProperty` maps.
    public enum UnlistedDevices: String, Sendable, Hashable {
        /// The device is the twin with its own ID (ADT's sample).
        case sameID = "same-id"
        /// The device is unknown: its messages are dead-lettered.
        case unknown
    }

    /// One body field setting one twin property.
    public struct PropertyMapping: Sendable, Hashable {
        /// Where the value is in the body.
        public let from: JSONPointer
        /// The property it sets, inside `component` when one is named.
        public let to: JSONPointer
        public let component: String?
        /// The path in the twin's document, as the patch writes it (`/sensor/Humidity`).
        public let twinPath: JSONPointer
        /// ``twinPath`` as text, made once rather than for every message.
        public let twinPathText: String

        public init(from: JSONPointer, to: JSONPointer, component: String? = nil) {
            self.from = from
            self.to = to
            self.component = component
            self.twinPath = JSONPointer(tokens: (component.map { [$0] } ?? []) + to.tokens)
            self.twinPathText = twinPath.description
        }
    }

    public var devices: [String: String]
    /// The twin property that holds a device's ID, for twins found through twin-service's query API.
    public var deviceIDProperty: String?
    public var unlistedDevices: UnlistedDevices
    public var properties: [PropertyMapping]
    /// Whether the whole body is also published as the twin's telemetry.
    public var publishesTelemetry: Bool
    public var telemetryComponent: String?

    public init(
        devices: [String: String] = [:], deviceIDProperty: String? = nil, unlistedDevices: UnlistedDevices? = nil,
        properties: [PropertyMapping] = Self.samplePropertyMappings, publishesTelemetry: Bool = true, telemetryComponent: String? = nil
    ) {
        self.devices = devices
        self.deviceIDProperty = deviceIDProperty
        self.unlistedDevices = unlistedDevices ?? (devices.isEmpty && deviceIDProperty == nil ? .sameID : .unknown)
        self.properties = properties
        self.publishesTelemetry = publishesTelemetry
        self.telemetryComponent = telemetryComponent
    }

    /// ADT's sample: the body's `Temperature` sets the twin's `Temperature`.
    public static let samplePropertyMappings = [PropertyMapping(from: JSONPointer(tokens: ["Temperature"]), to: JSONPointer(tokens: ["Temperature"]))]

    /// The mapping without a file: every device is the twin of its own ID, ADT's sample payload mapping.
    public static let sample = IngressMapping()

    /// Whether the mapping needs twin-service: to find twins by a device-ID property, or to check
    /// values against the twin's model (every mapping that sets properties).
    public var needsTwinService: Bool { deviceIDProperty != nil || !properties.isEmpty }

    /// Reads a mapping file's JSON; an error names the member that is wrong.
    public init(json: JSONValue) throws(CodecError) {
        guard case .object(let object) = json else { throw wrongType("$", expected: "a JSON object", found: json) }
        let known: Set<String> = ["devices", "deviceIdProperty", "unlistedDevices", "properties", "telemetry", "telemetryComponent"]
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw CodecError(field: unknown, reason: "is not a member of a mapping (expected one of \(known.sorted().joined(separator: ", ")))")
        }
        var devices: [String: String] = [:]
        if let value = object["devices"], value != .null {
            guard case .object(let table) = value else { throw wrongType("devices", expected: "an object of device ID → twin ID", found: value) }
            for (device, twin) in table {
                guard case .string(let twinID) = twin, !twinID.isEmpty else {
                    throw wrongType("devices.\(device)", expected: "a twin ID", found: twin)
                }
                devices[device] = twinID
            }
        }
        let deviceIDProperty = try Self.optionalString(object, "deviceIdProperty")
        // It goes into a query as `T.<name>`: a name twin-service's query language would refuse would
        // fail every lookup, and every batch with it.
        if let deviceIDProperty, !Self.isPropertyName(deviceIDProperty) {
            throw CodecError(
                field: "deviceIdProperty",
                reason: "must be a DTDL property name (a letter, then letters, digits or _, at most 64), found \"\(deviceIDProperty)\"")
        }
        var unlisted: UnlistedDevices?
        if let text = try Self.optionalString(object, "unlistedDevices") {
            guard let parsed = UnlistedDevices(rawValue: text) else {
                throw CodecError(field: "unlistedDevices", reason: "must be \"same-id\" or \"unknown\", found \"\(text)\"")
            }
            unlisted = parsed
        }
        var properties = Self.samplePropertyMappings
        if let value = object["properties"], value != .null {
            guard case .array(let entries) = value else { throw wrongType("properties", expected: "an array", found: value) }
            properties = []
            for (index, entry) in entries.enumerated() {
                properties.append(try Self.propertyMapping(entry, field: "properties[\(index)]"))
            }
        }
        var publishesTelemetry = true
        if let value = object["telemetry"], value != .null {
            guard case .bool(let flag) = value else { throw wrongType("telemetry", expected: "true or false", found: value) }
            publishesTelemetry = flag
        }
        self.init(
            devices: devices, deviceIDProperty: deviceIDProperty, unlistedDevices: unlisted, properties: properties,
            publishesTelemetry: publishesTelemetry, telemetryComponent: try Self.optionalString(object, "telemetryComponent"))
    }

    /// DTDL's rule for a property's name.
    static func isPropertyName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, let last = bytes.last, bytes.count <= 64 else { return false }
        func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") }
        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        return isLetter(first) && last != UInt8(ascii: "_") && bytes.allSatisfy { isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "_") }
    }

    private static func propertyMapping(_ entry: JSONValue, field: String) throws(CodecError) -> PropertyMapping {
        guard case .object(let object) = entry else { throw wrongType(field, expected: "an object", found: entry) }
        func pointer(_ key: String) throws(CodecError) -> JSONPointer {
            guard case .string(let text)? = object[key] else {
                throw CodecError(field: "\(field).\(key)", reason: "is required: a JSON Pointer such as \"/Temperature\"")
            }
            do {
                let pointer = try JSONPointer(text)
                return pointer
            } catch {
                throw CodecError(field: "\(field).\(key)", reason: error.reason)
            }
        }
        let to = try pointer("to")
        guard !to.isRoot else { throw CodecError(field: "\(field).to", reason: "must name a property, not the whole twin") }
        return PropertyMapping(from: try pointer("from"), to: to, component: try optionalString(object, "component", in: field))
    }

    private static func optionalString(_ object: [String: JSONValue], _ key: String, in parent: String? = nil) throws(CodecError) -> String? {
        guard let value = object[key], value != .null else { return nil }
        guard case .string(let text) = value, !text.isEmpty else {
            throw wrongType(parent.map { "\($0).\(key)" } ?? key, expected: "a non-empty string", found: value)
        }
        return text
    }
}

private func wrongType(_ field: String, expected: String, found: JSONValue) -> CodecError {
    CodecError(field: field, reason: "must be \(expected), found \(found.typeName)")
}
