import HTTPTypes
import Hummingbird
import Logging
import TwinflowCodec
import TwinflowRuntime

/// Time Series Insights Gen2's query API over a ``TimeSeriesQueryEngine``: `POST /timeseries/query`
/// and `GET /timeseries/instances`. `api-version` and `storeType` are accepted and ignored; a bad
/// request is answered with ADT's error body `{"error":{"code","message"}}`.
public enum TimeSeriesRoutes {
    /// The largest query body: queries are small.
    public static let maximumBodyBytes = 1024 * 1024

    public static func add(to router: Router<BasicRequestContext>, engine: TimeSeriesQueryEngine) {
        let api = router.group("timeseries").add(middleware: QueryErrorMiddleware())
        api.post("query") { request, _ in
            let body = try await request.queryBody()
            let query = try TimeSeriesQuery(json: body, continuationHeader: request.headers[HTTPField.Name("x-ms-continuation")!])
            return Response.json(try await engine.answer(query), status: .ok)
        }
        api.get("instances") { request, _ in
            let token = request.uri.queryParameters["continuationToken"].map(String.init) ?? request.headers[HTTPField.Name("x-ms-continuation")!]
            var maximumCount = 1000
            if let text = request.uri.queryParameters["maxCount"] {
                guard let count = Int(text), (1...10_000).contains(count) else { throw QueryError("maxCount must be an integer from 1 to 10000") }
                maximumCount = count
            }
            return Response.json(try await engine.instances(continuationToken: token, maximumCount: maximumCount), status: .ok)
        }
    }
}

extension Request {
    /// The body as JSON, refused with 413 past ``TimeSeriesRoutes/maximumBodyBytes`` and 400 when it is not JSON.
    func queryBody() async throws -> JSONValue {
        var bytes: [UInt8] = []
        for try await chunk in body {
            guard chunk.readableBytes <= TimeSeriesRoutes.maximumBodyBytes - bytes.count else {
                throw QueryError(code: "PayloadTooLarge", status: 413, "the request body is larger than \(TimeSeriesRoutes.maximumBodyBytes) bytes")
            }
            bytes.append(contentsOf: chunk.readableBytesView)
        }
        do {
            return try JSONValue.parse(bytes)
        } catch {
            throw QueryError("the request body is not valid JSON: \(error.reason)")
        }
    }
}

/// Turns every failure into `{"error":{"code","message"}}`: a ``QueryError`` with its own status,
/// Hummingbird's 4xx with theirs, anything else a 500 whose message names no internals.
struct QueryErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as QueryError {
            return Self.response(code: error.code, status: error.status, message: error.message)
        } catch let error as HTTPError where error.status.code < 500 {
            return Self.response(
                code: error.status == .notFound ? "NotFound" : "InvalidInput", status: Int(error.status.code),
                message: error.body ?? "\(error.status)")
        } catch {
            context.logger.error("query failed", metadata: ["error": .error(error), "path": "\(request.uri.path)"])
            return Self.response(code: "InternalServerError", status: 500, message: "The service could not complete the request.")
        }
    }

    static func response(code: String, status: Int, message: String) -> Response {
        .json(["error": ["code": .string(code), "message": .string(message)]], status: HTTPResponse.Status(code: status))
    }
}
