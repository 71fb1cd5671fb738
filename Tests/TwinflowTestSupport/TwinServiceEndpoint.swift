import Foundation
import TwinflowCodec

/// twin-service's REST API as a test drives it (ADT's data-plane calls), failing loudly on any
/// answer other than the one the call expects.
public struct TwinServiceEndpoint: Sendable {
    public let url: String

    public init(port: Int) {
        self.url = "http://127.0.0.1:\(port)"
    }

    /// An answer that is not the one the call expects.
    public struct UnexpectedReply: Error, CustomStringConvertible {
        public var description: String
    }

    @discardableResult
    public func call(_ method: String, _ path: String, body: JSONValue? = nil, expecting status: Int) async throws -> HTTPReply {
        let reply = try await httpRequest("\(url)/\(path)", method: method, body: body?.serialized())
        guard reply.status == status else {
            throw UnexpectedReply(description: "\(method) /\(path) answered \(reply.status), not \(status): \(reply.text.prefix(400))")
        }
        return reply
    }

    /// Waits for `/healthz`.
    public func waitUntilUp(timeout: Duration = .seconds(30)) async -> Bool {
        await eventually(timeout: timeout) { (try? await httpRequest("\(url)/healthz"))?.status == 200 }
    }

    /// Uploads one of `deploy/models`' sets.
    public func uploadModels(_ set: String) async throws {
        try await call("POST", "models", body: try Fixtures.upload(set), expecting: 201)
    }

    public func uploadModels(_ definitions: JSONValue) async throws {
        try await call("POST", "models", body: definitions, expecting: 201)
    }

    public func putTwin(_ id: String, model: String, _ properties: [String: JSONValue] = [:]) async throws {
        var body = properties
        body["$metadata"] = ["$model": .string(model)]
        try await call("PUT", "digitaltwins/\(id)", body: .object(body), expecting: 200)
    }

    public func relate(_ source: String, _ id: String, name: String, target: String) async throws {
        try await call(
            "PUT", "digitaltwins/\(source)/relationships/\(id)", body: ["$targetId": .string(target), "$relationshipName": .string(name)],
            expecting: 200)
    }

    public func unrelate(_ source: String, _ id: String) async throws {
        try await call("DELETE", "digitaltwins/\(source)/relationships/\(id)", expecting: 204)
    }

    /// `PATCH` with one `add` per member of `values` (`/name`).
    public func set(_ id: String, _ values: [String: JSONValue]) async throws {
        let patch = JSONValue.array(values.keys.sorted().map { ["op": "add", "path": .string("/\($0)"), "value": values[$0]!] })
        try await call("PATCH", "digitaltwins/\(id)", body: patch, expecting: 204)
    }

    public func twin(_ id: String) async throws -> JSONValue {
        try JSONValue.parse(try await call("GET", "digitaltwins/\(id)", expecting: 200).body)
    }
}
