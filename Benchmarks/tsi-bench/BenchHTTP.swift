import BenchmarkSupport
import Foundation
import TwinflowCodec

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The HTTP calls the benchmark makes to tsi-store.
enum BenchHTTP {
    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 2
        configuration.timeoutIntervalForRequest = 30
        return URLSession(configuration: configuration)
    }()

    /// `POST /timeseries/query`; anything but 200 is an error naming the answer.
    static func query(port: Int, _ body: JSONValue) async throws -> JSONValue {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/timeseries/query")!)
        request.httpMethod = "POST"
        request.httpBody = Data(body.serialized())
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let (data, response) = try await session.data(for: request)
        guard (response as? HTTPURLResponse)?.statusCode == 200 else {
            throw BenchmarkError(
                "query answered \((response as? HTTPURLResponse)?.statusCode ?? 0): \(String(decoding: data, as: UTF8.self).prefix(300))")
        }
        return try JSONValue.parse(Array(data))
    }

    /// A counter from `/metrics` (`twinflow_tsi_store_stored_total` …), 0 when absent.
    static func counter(port: Int, _ name: String) async throws -> Int {
        try await metricsCounters(port: port, [name])
    }

    /// One property's values of a TSI response.
    static func values(_ response: JSONValue, _ name: String) -> [JSONValue] {
        response["properties"]?.arrayValue?.first { $0["name"]?.stringValue == name }?["values"]?.arrayValue ?? []
    }
}
