/// Why a model upload or a model lookup failed, in ADT's terms.
public struct ModelError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// ADT's `DTDLParserError` / `InvalidArgument`: the DTDL itself is wrong.
        case invalidModel
        /// A referenced model is neither in the upload nor stored (`ModelNotFound` when looked up).
        case missingReference
        /// `ModelIdAlreadyExists`.
        case alreadyExists
        /// `ModelNotFound`.
        case notFound
        /// `ModelReferencesNotDecommissioned` and friends: the model is still in use.
        case referenced
    }

    public var kind: Kind
    /// The model the problem is in, when there is one.
    public var model: String?
    public var message: String

    public init(_ kind: Kind, model: String?, _ message: String) {
        self.kind = kind
        self.model = model
        self.message = message
    }

    public var description: String {
        model.map { "\($0): \(message)" } ?? message
    }
}
