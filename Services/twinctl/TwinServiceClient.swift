import ArgumentParser
import Foundation
import TwinflowCodec

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

enum Method: String {
    case get = "GET"
    case put = "PUT"
    case post = "POST"
    case patch = "PATCH"
    case delete = "DELETE"
}

/// A failed request: ADT's error code and message, printed for the user.
struct ServiceFailure: Error, CustomStringConvertible {
    var status: Int
    var body: String
    var description: String { "HTTP \(status): \(body)" }
}

struct TwinServiceClient {
    let base: String

    /// Sends a request; a 2xx answer's JSON (or null), otherwise a ``ServiceFailure``.
    func send(_ method: Method, _ path: String, body: JSONValue? = nil) async throws -> JSONValue {
        guard let url = URL(string: base + path) else { throw ValidationError("'\(base + path)' is not a URL") }
        var request = URLRequest(url: url)
        request.httpMethod = method.rawValue
        if let body {
            request.httpBody = Data(body.serialized())
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            throw ServiceFailure(status: status, body: String(decoding: data, as: UTF8.self))
        }
        return data.isEmpty ? .null : try JSONValue.parse(Array(data))
    }

    func print(_ method: Method, _ path: String, body: JSONValue? = nil) async throws {
        let answer = try await send(method, path, body: body)
        Swift.print(answer == .null ? "ok" : answer.jsonString())
    }
}

enum ModelFiles {
    /// The interfaces in a JSON file, or in every JSON file of a folder (and its subfolders).
    static func read(_ path: String) throws -> [JSONValue] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw ValidationError("\(path) does not exist") }
        if isDirectory.boolValue {
            let enumerator = FileManager.default.enumerator(atPath: path)
            var files: [String] = []
            while let file = enumerator?.nextObject() as? String {
                if file.hasSuffix(".json") { files.append(file) }
            }
            return try files.sorted().flatMap { try read((path as NSString).appendingPathComponent($0)) }
        }
        let json = try JSONValue.parse(Array(try Data(contentsOf: URL(filePath: path))))
        return json.arrayValue ?? [json]
    }
}
