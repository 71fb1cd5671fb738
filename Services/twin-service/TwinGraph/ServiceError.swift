/// An error the twin service answers with ADT's body `{"error":{"code","message"}}` and status.
public struct ServiceError: Error, Sendable, Hashable, CustomStringConvertible {
    /// ADT's error code, such as `DigitalTwinNotFound`.
    public var code: String
    /// The HTTP status ADT answers it with.
    public var status: Int
    public var message: String

    public init(code: String, status: Int, _ message: String) {
        self.code = code
        self.status = status
        self.message = message
    }

    public var description: String { "\(status) \(code): \(message)" }

    public static func invalidArgument(_ message: String) -> ServiceError { .init(code: "InvalidArgument", status: 400, message) }
    public static func validationFailed(_ message: String) -> ServiceError { .init(code: "ValidationFailed", status: 400, message) }
    public static func jsonPatchInvalid(_ message: String) -> ServiceError { .init(code: "JsonPatchInvalid", status: 400, message) }
    public static func twinNotFound(_ id: String) -> ServiceError {
        .init(code: "DigitalTwinNotFound", status: 404, "There is no digital twin instance that exists with the ID \(id).")
    }
    public static func relationshipNotFound(_ source: String, _ id: String) -> ServiceError {
        .init(code: "RelationshipNotFound", status: 404, "There is no relationship with the ID \(id) on the digital twin \(source).")
    }
    public static func componentNotFound(_ twin: String, _ path: String) -> ServiceError {
        .init(code: "ComponentNotFound", status: 404, "The digital twin \(twin) has no component \(path).")
    }
    public static func modelNotFound(_ id: String) -> ServiceError {
        .init(code: "ModelNotFound", status: 404, "There is no model with the ID \(id).")
    }
    public static func preconditionFailed(_ message: String) -> ServiceError { .init(code: "PreconditionFailed", status: 412, message) }
    public static func payloadTooLarge(_ message: String) -> ServiceError { .init(code: "PayloadTooLarge", status: 413, message) }

    /// A model upload or lookup error, with ADT's code for it.
    public init(_ error: ModelError) {
        switch error.kind {
        case .invalidModel: self.init(code: "DTDLParserError", status: 400, error.description)
        case .missingReference: self.init(code: "DTDLParserError", status: 400, error.description)
        case .alreadyExists: self.init(code: "ModelAlreadyExists", status: 409, error.description)
        case .notFound: self.init(code: "ModelNotFound", status: 404, error.description)
        case .referenced: self.init(code: "ModelReferencesNotDeleted", status: 409, error.description)
        }
    }

    /// A twin that does not fit its model.
    public init(_ error: ValidationError) {
        self.init(code: "ValidationFailed", status: 400, error.description)
    }
}
