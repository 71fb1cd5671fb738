import TwinflowCodec

/// A DTDL schema: what values a property, telemetry field, map value or array element may take.
public indirect enum Schema: Sendable, Hashable {
    case primitive(Primitive)
    case enumeration(valueSchema: Primitive, values: [EnumValue])
    case object(fields: [Field])
    case map(keyName: String, value: Schema)
    case array(element: Schema)
    /// A reusable schema defined elsewhere by `@id`; resolved through the model set.
    case reference(DTMI)

    public enum Primitive: String, Sendable, CaseIterable {
        case boolean, date, dateTime, double, duration, float, integer, long, string, time
        // DTDL v3 additions.
        case byte, bytes, decimal, short, uuid, unsignedByte, unsignedShort, unsignedInteger, unsignedLong
        // Geospatial schemas, GeoJSON objects.
        case point, lineString, polygon, multiPoint, multiLineString, multiPolygon
    }

    public struct EnumValue: Sendable, Hashable {
        public var name: String
        public var value: JSONValue
    }

    public struct Field: Sendable, Hashable {
        public var name: String
        public var schema: Schema
    }
}

extension Schema {
    /// The model references this schema contains.
    var references: [DTMI] {
        switch self {
        case .primitive, .enumeration: []
        case .object(let fields): fields.flatMap(\.schema.references)
        case .map(_, let value): value.references
        case .array(let element): element.references
        case .reference(let id): [id]
        }
    }
}
