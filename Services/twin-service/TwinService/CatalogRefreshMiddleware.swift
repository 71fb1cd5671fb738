import Hummingbird
import TwinGraph

/// Brings the models and event routes in memory up to the store's before each request, so a
/// change made through another instance is seen as soon as it returned there (see
/// ``DigitalTwinGraph/refreshCatalog()``).
struct CatalogRefreshMiddleware<Context: RequestContext>: RouterMiddleware {
    let graph: DigitalTwinGraph

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try await graph.refreshCatalog()
        return try await next(request, context)
    }
}
