import HTTPTypes
import Hummingbird
import Logging
import TwinGraph
import TwinflowCodec
import TwinflowRuntime

/// Turns every failure into ADT's error body `{"error":{"code","message"}}` with ADT's status;
/// nothing a request does crashes the service.
struct ADTErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as ServiceError {
            return Response.adtError(error)
        } catch let error as HTTPError {
            let code = error.status == .notFound ? "NotFound" : "BadRequest"
            return Response.adtError(ServiceError(code: code, status: Int(error.status.code), error.body ?? "\(error.status)"))
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            return Response.adtError(ServiceError(code: "InternalServerError", status: 500, "The request failed: \(error)"))
        }
    }
}

extension Response {
    static func adtError(_ error: ServiceError) -> Response {
        .json(["error": ["code": .string(error.code), "message": .string(error.message)]], status: HTTPResponse.Status(code: error.status))
    }
}

extension Request {
    /// The body as sent.
    func bodyBytes(limit: Int = 32 * 1024 * 1024) async throws -> [UInt8] {
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch {
            throw ServiceError.payloadTooLarge("The request body is larger than \(limit) bytes.")
        }
        return buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? []
    }

    /// The body as JSON; a body that is not JSON is ADT's InvalidArgument.
    func jsonBody(limit: Int = 32 * 1024 * 1024) async throws -> JSONValue {
        let bytes = try await bodyBytes(limit: limit)
        do {
            return try JSONValue.parse(bytes)
        } catch {
            throw ServiceError.invalidArgument("The request body is not valid JSON: \(error.reason)")
        }
    }

    func header(_ name: HTTPField.Name) -> String? { headers[name] }

    func query(_ name: String) -> String? { uri.queryParameters[name[...]].map { String($0) } }

    func flag(_ name: String) -> Bool { query(name)?.lowercased() == "true" }

    /// The W3C trace context the request carries (a new trace when it carries none), for its notifications.
    var origin: ChangeOrigin { ChangeOrigin(traceparent: headers[HTTPField.Name("traceparent")!]) }
}
