import Foundation
import TwinflowCodec

/// Why a twin's content does not fit its model; the REST layer answers it as ADT's `ValidationFailed`.
public struct ValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Where, as a JSON Pointer into the twin (`/Temperature`, `/sensor/unit`).
    public var path: String
    public var message: String

    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

extension ModelSet {
    /// Checks a twin's (or a component's) properties against `model` and its `extends` chain:
    /// every member is a property or component of the model, and each value fits its schema.
    /// Members starting with `$` (`$dtId`, `$etag`, `$metadata`) are the service's and are passed over.
    public func validate(properties: [String: JSONValue], of model: DTMI, at path: String = "") throws(ValidationError) {
        guard let interface = resolvedInterface(model) else {
            throw ValidationError(path: path.isEmpty ? "/" : path, "model '\(model)' is not known")
        }
        for (name, value) in properties where !name.hasPrefix("$") {
            let memberPath = "\(path)/\(name)"
            if let property = interface.properties[name] {
                try validate(value, against: property.schema, at: memberPath)
            } else if let component = interface.components[name] {
                guard case .object(let members) = value else {
                    throw ValidationError(path: memberPath, "component '\(name)' must be an object, found \(value.typeName)")
                }
                try validate(properties: members, of: component.schema, at: memberPath)
            } else if interface.telemetries[name] != nil || interface.relationships[name] != nil {
                throw ValidationError(path: memberPath, "'\(name)' is not a property of '\(model)': a twin cannot hold a value for it")
            } else {
                throw ValidationError(path: memberPath, "'\(name)' is not a property of '\(model)'")
            }
        }
    }

    /// Checks relationship properties against the relationship's definition.
    public func validate(relationshipProperties properties: [String: JSONValue], of relationship: Interface.Relationship) throws(ValidationError) {
        for (name, value) in properties where !name.hasPrefix("$") {
            guard let property = relationship.properties[name] else {
                throw ValidationError(path: "/\(name)", "'\(name)' is not a property of relationship '\(relationship.name)'")
            }
            try validate(value, against: property.schema, at: "/\(name)")
        }
    }

    /// Checks one value against a schema.
    public func validate(_ value: JSONValue, against schema: Schema, at path: String) throws(ValidationError) {
        switch schema {
        case .primitive(let primitive):
            try Self.validate(value, primitive: primitive, at: path)
        case .enumeration(let valueSchema, let values):
            try Self.validate(value, primitive: valueSchema, at: path)
            guard values.contains(where: { $0.value == value }) else {
                throw ValidationError(path: path, "\(value.jsonString()) is not one of \(values.map { $0.value.jsonString() })")
            }
        case .object(let fields):
            guard case .object(let members) = value else { throw ValidationError(path: path, "must be an object, found \(value.typeName)") }
            for (name, member) in members where !name.hasPrefix("$") {
                guard let field = fields.first(where: { $0.name == name }) else {
                    throw ValidationError(path: "\(path)/\(name)", "'\(name)' is not a field of this object")
                }
                try validate(member, against: field.schema, at: "\(path)/\(name)")
            }
        case .map(_, let valueSchema):
            guard case .object(let members) = value else { throw ValidationError(path: path, "must be a map (object), found \(value.typeName)") }
            for (key, member) in members where !key.hasPrefix("$") {
                try validate(member, against: valueSchema, at: "\(path)/\(key)")
            }
        case .array(let element):
            guard case .array(let elements) = value else { throw ValidationError(path: path, "must be an array, found \(value.typeName)") }
            for (index, member) in elements.enumerated() {
                try validate(member, against: element, at: "\(path)/\(index)")
            }
        case .reference(let id):
            guard let resolved = self.schema(id) else { throw ValidationError(path: path, "schema '\(id)' is not known") }
            try validate(value, against: resolved, at: path)
        }
    }

    static func validate(_ value: JSONValue, primitive: Schema.Primitive, at path: String) throws(ValidationError) {
        func fail(_ expected: String) -> ValidationError {
            let found = value.jsonString()
            return ValidationError(path: path, "must be \(expected), found \(found.count <= 200 ? found : found.prefix(200) + "…")")
        }
        func integer(in range: ClosedRange<Int64>, _ name: String) throws(ValidationError) {
            guard let number = value.integerValue, value.doubleValue == Double(number), range.contains(number) else {
                throw fail("\(name) (\(range.lowerBound)…\(range.upperBound))")
            }
        }
        switch primitive {
        case .boolean:
            guard case .bool = value else { throw fail("a boolean") }
        case .integer: try integer(in: Int64(Int32.min)...Int64(Int32.max), "an integer")
        case .long: try integer(in: Int64.min...Int64.max, "a long")
        case .short: try integer(in: Int64(Int16.min)...Int64(Int16.max), "a short")
        case .byte: try integer(in: Int64(Int8.min)...Int64(Int8.max), "a byte")
        case .unsignedByte: try integer(in: 0...Int64(UInt8.max), "an unsigned byte")
        case .unsignedShort: try integer(in: 0...Int64(UInt16.max), "an unsigned short")
        case .unsignedInteger: try integer(in: 0...Int64(UInt32.max), "an unsigned integer")
        case .unsignedLong: try integer(in: 0...Int64.max, "an unsigned long")
        case .double, .float, .decimal:
            guard value.doubleValue != nil else { throw fail("a number") }
        case .string:
            guard case .string = value else { throw fail("a string") }
        case .bytes:
            guard case .string(let text) = value, Data(base64Encoded: text) != nil else { throw fail("base64 bytes") }
        case .uuid:
            guard case .string(let text) = value, UUID(uuidString: text) != nil else { throw fail("a UUID") }
        case .dateTime:
            guard case .string(let text) = value, Timestamp.date(from: text) != nil else { throw fail("an RFC 3339 date-time") }
        case .date:
            guard case .string(let text) = value, Timestamp.date(from: text + "T00:00:00Z") != nil, text.count == 10 else {
                throw fail("a date (YYYY-MM-DD)")
            }
        case .time:
            guard case .string(let text) = value, Timestamp.date(from: "2000-01-01T" + text + (text.hasSuffix("Z") ? "" : "Z")) != nil else {
                throw fail("a time (hh:mm:ss)")
            }
        case .duration:
            guard case .string(let text) = value, text.hasPrefix("P") || text.hasPrefix("-P"), text.count > 1,
                text.allSatisfy({ "PTYMWDHS0123456789.,-".contains($0) })
            else { throw fail("an ISO 8601 duration") }
        case .point, .lineString, .polygon, .multiPoint, .multiLineString, .multiPolygon:
            let expectedType = primitive.rawValue.prefix(1).uppercased() + primitive.rawValue.dropFirst()
            guard case .object(let geo) = value, geo["type"] == .string(expectedType), geo["coordinates"]?.arrayValue != nil else {
                throw fail("a GeoJSON \(expectedType)")
            }
        }
    }
}

extension ModelSet {
    /// The schema of the value at `tokens` inside a value of `schema` (following objects' fields,
    /// maps' values, arrays' elements and schema references), or `nil` when the path leaves what
    /// the schema describes.
    public func schema(_ schema: Schema, following tokens: ArraySlice<String>) -> Schema? {
        guard let token = tokens.first else { return schema }
        switch schema {
        case .object(let fields):
            guard let field = fields.first(where: { $0.name == token }) else { return nil }
            return self.schema(field.schema, following: tokens.dropFirst())
        case .map(_, let value): return self.schema(value, following: tokens.dropFirst())
        case .array(let element): return self.schema(element, following: tokens.dropFirst())
        case .reference(let id): return self.schema(id).flatMap { self.schema($0, following: tokens) }
        case .primitive, .enumeration: return nil
        }
    }

    /// The schema of the twin value at `pointer` (a property, or a path inside one) for a twin of
    /// `model`, or `nil` when the model or the path is not known.
    public func schema(ofTwinValueAt pointer: JSONPointer, model: DTMI) -> Schema? {
        guard let name = pointer.tokens.first, let property = resolvedInterface(model)?.properties[name] else { return nil }
        return schema(property.schema, following: pointer.tokens.dropFirst())
    }
}
