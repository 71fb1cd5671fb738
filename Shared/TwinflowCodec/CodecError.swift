/// A message that could not be decoded (or a patch that could not be applied): which field, and why.
///
/// `field` is a path into the message such as `body.Temperature` or `patch[0].path`; `$` is the whole message.
public struct CodecError: Error, Sendable, Hashable, CustomStringConvertible {
    public var field: String
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "\(field): \(reason)" }

    static func missing(_ field: String) -> CodecError { CodecError(field: field, reason: "is required") }

    static func wrongType(_ field: String, expected: String, found: JSONValue) -> CodecError {
        CodecError(field: field, reason: "must be \(expected), found \(found.typeName)")
    }
}
