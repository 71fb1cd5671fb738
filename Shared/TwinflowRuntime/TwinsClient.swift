import Foundation
import TwinflowCodec

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The calls services make to twin-service's REST API (`TWINS_URL`), which is ADT's.
public struct TwinsClient: Sendable {
    public let baseURL: URL
    private let session: URLSession

    public init(baseURL: URL, timeout: Duration = .seconds(5)) {
        self.baseURL = baseURL
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = Double(timeout.components.seconds)
        configuration.httpMaximumConnectionsPerHost = 16
        self.session = URLSession(configuration: configuration)
    }

    /// `GET /digitaltwins/{id}`: the twin, or `nil` when there is none.
    public func twin(_ id: String) async throws(TwinsClientError) -> JSONValue? {
        let reply = try await send("GET", path: "digitaltwins/\(id.urlPathSegment)")
        if reply.status == 404 { return nil }
        return try reply.json(expecting: 200)
    }

    /// `GET /models?dependenciesFor={id}&includeModelDefinition=true`: the definitions of the model
    /// and every model it depends on (what it extends, its components' schemas), or `nil` when
    /// twin-service does not know the model.
    public func modelDefinitions(dependenciesFor model: String) async throws(TwinsClientError) -> [JSONValue]? {
        let query = "dependenciesFor=\(model.urlQueryValue)&includeModelDefinition=true"
        let reply = try await send("GET", path: "models", query: query)
        if reply.status == 404 { return nil }
        let page = try reply.json(expecting: 200)
        return (page["value"]?.arrayValue ?? []).compactMap { $0["model"] }
    }

    /// `GET /models?includeModelDefinition=true`: the definitions of every model twin-service holds.
    public func allModelDefinitions() async throws(TwinsClientError) -> [JSONValue] {
        let page = try await send("GET", path: "models", query: "includeModelDefinition=true").json(expecting: 200)
        return (page["value"]?.arrayValue ?? []).compactMap { $0["model"] }
    }

    /// `POST /query`, every page: the twins (or projections) the query returns.
    public func query(_ text: String) async throws(TwinsClientError) -> [JSONValue] {
        var results: [JSONValue] = []
        var token: JSONValue = .null
        repeat {
            let body: JSONValue = ["query": .string(text), "continuationToken": token]
            let page = try await send("POST", path: "query", body: body.serialized()).json(expecting: 200)
            results += page["value"]?.arrayValue ?? []
            token = page["continuationToken"] ?? .null
        } while token != .null
        return results
    }

    /// `GET /healthz`: twin-service answers.
    public func checkReachable() async throws(TwinsClientError) {
        _ = try await send("GET", path: "healthz").json(expecting: 200, allowingEmpty: true)
    }

    struct Reply {
        var status: Int
        var body: Data
        var url: String

        func json(expecting expected: Int, allowingEmpty: Bool = false) throws(TwinsClientError) -> JSONValue {
            guard status == expected else {
                let text = String(decoding: body.prefix(300), as: UTF8.self)
                throw TwinsClientError(description: "\(url) answered \(status): \(text)", status: status)
            }
            if allowingEmpty && body.isEmpty { return .null }
            do {
                return try JSONValue.parse(Array(body))
            } catch {
                throw TwinsClientError(description: "\(url) answered with a body that is not JSON: \(error)")
            }
        }
    }

    private func send(_ method: String, path: String, query: String? = nil, body: [UInt8]? = nil) async throws(TwinsClientError) -> Reply {
        var text = baseURL.absoluteString
        if !text.hasSuffix("/") { text += "/" }
        text += path
        if let query { text += "?" + query }
        guard let url = URL(string: text) else { throw TwinsClientError(description: "\(text) is not a URL") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        if let body {
            request.httpBody = Data(body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        do {
            let (data, response) = try await session.data(for: request)
            return Reply(status: (response as? HTTPURLResponse)?.statusCode ?? 0, body: data, url: "\(method) \(url.path)")
        } catch {
            throw TwinsClientError(description: "twin-service at \(baseURL.absoluteString) does not answer: \(error.localizedDescription)")
        }
    }

}

/// twin-service did not answer, or answered something the service cannot use.
public struct TwinsClientError: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// The HTTP status twin-service answered with, when it answered with one the call did not expect.
    public var status: Int?

    public init(description: String, status: Int? = nil) {
        self.description = description
        self.status = status
    }

    /// Whether asking again cannot change the answer: twin-service refused the request itself as
    /// malformed or too large (400, 413, 414, 431). Any other answer (an authentication layer's 401,
    /// a proxy's 403 or 5xx while twin-service restarts) may change.
    public var isPermanent: Bool {
        guard let status else { return false }
        return [400, 413, 414, 431].contains(status)
    }
}
