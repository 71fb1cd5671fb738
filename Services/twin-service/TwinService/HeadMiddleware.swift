import HTTPTypes
import Hummingbird

/// Answers `HEAD` as `GET` would, with the status and headers (ETag, Content-Type, Content-Length)
/// of `GET`'s answer and no body. Routes that answer `GET` register for `HEAD` with ``RouterGroup/readable(_:use:)``.
struct HeadMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .head else { return try await next(request, context) }
        return try await next(request, context).createHeadResponse()
    }
}

extension RouterGroup {
    /// Registers `handler` for `GET` and `HEAD` on `path`.
    @discardableResult
    func readable<Output: ResponseGenerator>(
        _ path: RouterPath, use handler: @escaping @Sendable (Request, Context) async throws -> Output
    ) -> Self {
        get(path, use: handler)
        return head(path, use: handler)
    }
}
