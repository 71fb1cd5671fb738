/// A request tsi-store cannot answer, answered with ADT's error body `{"error":{"code","message"}}`
/// and a 4xx status (`InvalidInput` for TSI's 400s).
public struct QueryError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: String
    public var status: Int
    public var message: String

    public init(code: String = "InvalidInput", status: Int = 400, _ message: String) {
        self.code = code
        self.status = status
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
