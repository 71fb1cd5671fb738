import HTTPTypes
import Hummingbird
import Logging
import TwinGraph
import TwinflowCodec
import TwinflowRuntime

/// Turns every failure into ADT's error body `{"error":{"code","message"}}` with ADT's status;
/// nothing a request does crashes the service. A failure of the service itself (a 5xx) is logged
/// with the request's id and answered with a generic message naming that id, never with the error;
/// the store failing (locked, full, unreachable) is 503 `ServiceUnavailable` with `Retry-After`.
struct ADTErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as ServiceError where error.status < 500 {
            return Response.adtError(error)
        } catch let error as HTTPError where error.status.code < 500 {
            let code = error.status == .notFound ? "NotFound" : "BadRequest"
            return Response.adtError(ServiceError(code: code, status: Int(error.status.code), error.body ?? "\(error.status)"))
        } catch let error where StoreFailure.matches(error) {
            context.logger.error(
                "request failed: the store", metadata: ["error": .error(error), "method": "\(request.method)", "path": "\(request.uri.path)"])
            var response = Response.adtError(
                ServiceError(code: "ServiceUnavailable", status: 503, "The service's store is unavailable; try again later."))
            response.headers[.retryAfter] = "1"
            return response
        } catch {
            context.logger.error("request failed", metadata: ["error": .error(error), "method": "\(request.method)", "path": "\(request.uri.path)"])
            let requestID = context.logger[metadataKey: "hb.request.id"].map { " (request \($0))" } ?? ""
            return Response.adtError(
                ServiceError(code: "InternalServerError", status: 500, "The service could not complete the request\(requestID)."))
        }
    }
}

extension Response {
    static func adtError(_ error: ServiceError) -> Response {
        .json(["error": ["code": .string(error.code), "message": .string(error.message)]], status: HTTPResponse.Status(code: error.status))
    }
}
