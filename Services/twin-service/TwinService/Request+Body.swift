import HTTPTypes
import Hummingbird
import TwinGraph
import TwinflowCodec
import TwinflowRuntime

extension Request {
    /// The body as sent, refused with 413 `PayloadTooLarge` once it is longer than `limit`: before
    /// a byte is read when `Content-Length` says so, otherwise as soon as the bytes read pass it.
    func bodyBytes(limit: Int) async throws -> [UInt8] {
        let declared = headers[.contentLength].flatMap { Int($0) } ?? 0
        guard declared <= limit else { throw ServiceError.payloadTooLarge("The request body is larger than \(limit) bytes.") }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(max(0, declared))
        for try await chunk in body {
            guard chunk.readableBytes <= limit - bytes.count else {
                throw ServiceError.payloadTooLarge("The request body is larger than \(limit) bytes.")
            }
            bytes.append(contentsOf: chunk.readableBytesView)
        }
        return bytes
    }

    /// The body, refused with 400 `InvalidArgument` when it is not UTF-8 (JSON text must be).
    func utf8Body(limit: Int) async throws -> [UInt8] {
        let bytes = try await bodyBytes(limit: limit)
        guard Self.isUTF8(bytes) else { throw ServiceError.invalidArgument("The request body is not valid UTF-8.") }
        return bytes
    }

    /// The body as JSON; a body that is not JSON is ADT's InvalidArgument.
    func jsonBody(limit: Int) async throws -> JSONValue {
        let bytes = try await utf8Body(limit: limit)
        do {
            return try JSONValue.parse(bytes)
        } catch {
            throw ServiceError.invalidArgument("The request body is not valid JSON: \(error.reason)")
        }
    }

    /// Whether `bytes` are well-formed UTF-8: no stray continuation byte, overlong form, surrogate
    /// or scalar past U+10FFFF.
    static func isUTF8(_ bytes: [UInt8]) -> Bool {
        if bytes.allSatisfy({ $0 < 0x80 }) { return true }
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    func header(_ name: HTTPField.Name) -> String? { headers[name] }

    func query(_ name: String) -> String? { uri.queryParameters[name[...]].map { String($0) } }

    func flag(_ name: String) -> Bool { query(name)?.lowercased() == "true" }

    /// ADT's `max-items-per-page`: at most that many items in a page, and never more than `limit`
    /// (the service may answer with fewer); `limit` when the header is absent.
    func maxItemsPerPage(limit: Int) throws(ServiceError) -> Int {
        guard let text = headers[HTTPField.Name("max-items-per-page")!] else { return limit }
        guard let wanted = Int(text), wanted > 0 else {
            throw ServiceError.invalidArgument("max-items-per-page must be a positive whole number, not '\(text.prefix(40))'.")
        }
        return min(wanted, limit)
    }

    /// The W3C trace context the request carries (a new trace when it carries none), for its notifications.
    var origin: ChangeOrigin { ChangeOrigin(traceparent: headers[HTTPField.Name("traceparent")!]) }
}
