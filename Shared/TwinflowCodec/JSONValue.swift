import Foundation

/// A JSON document: the value every Twinflow message body, twin and patch is made of.
///
/// Numbers keep whether they were written as integers; two numbers are equal when their values
/// are (`1` equals `1.0`), as JSON Patch's `test` requires.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.integer(let a), .integer(let b)): a == b
        case (.double(let a), .double(let b)): a == b
        case (.integer(let a), .double(let b)), (.double(let b), .integer(let a)): Double(a) == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)): a == b
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let value): hasher.combine(value)
        case .integer(let value): hasher.combine(Double(value))
        case .double(let value): hasher.combine(value)
        case .string(let value): hasher.combine(value)
        case .array(let value): hasher.combine(value)
        case .object(let value): hasher.combine(value)
        }
    }

    /// The JSON type's name, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .integer, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var doubleValue: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }

    public var integerValue: Int64? {
        switch self {
        case .integer(let value): value
        case .double(let value) where value.rounded() == value && abs(value) < 9.2e18: Int64(value)
        default: nil
        }
    }
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension JSONValue {
    /// Parses JSON text; a syntax error is a ``CodecError`` naming `field`.
    ///
    /// With `allowingNonFiniteNumbers`, the bare words `NaN`, `Infinity` and `-Infinity` (which
    /// JavaScript's and Python's encoders write, and devices send) read as non-finite doubles, so a
    /// reader can refuse the one value instead of the whole text; they are written back as `null`.
    public static func parse(
        _ bytes: some Collection<UInt8>, field: String = "$", allowingNonFiniteNumbers: Bool = false
    ) throws(CodecError) -> JSONValue {
        let result: Result<JSONValue, JSONReader.Failure>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(JSONReader.Failure) in try JSONReader.parse(buffer, allowingNonFinite: allowingNonFiniteNumbers) }
        }
        let outcome =
            result
            ?? Array(bytes).withUnsafeBufferPointer { buffer in
                Result { () throws(JSONReader.Failure) in try JSONReader.parse(buffer, allowingNonFinite: allowingNonFiniteNumbers) }
            }
        switch outcome {
        case .success(let value): return value
        case .failure(let failure):
            throw CodecError(field: field, reason: "not valid JSON (\(failure.message) at byte \(failure.offset))")
        }
    }

    /// Parses JSON text from a string.
    public static func parse(_ text: String, field: String = "$") throws(CodecError) -> JSONValue {
        try parse(Array(text.utf8), field: field)
    }

    /// The compact JSON text of this value, object keys sorted so the same value always reads the same.
    public func serialized() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        JSONWriter.write(self, into: &output)
        return output
    }

    /// Appends ``serialized()``'s bytes to `output`.
    public func write(into output: inout [UInt8]) {
        JSONWriter.write(self, into: &output)
    }

    /// ``serialized()`` as a string.
    public func jsonString() -> String { String(decoding: serialized(), as: UTF8.self) }

}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}
