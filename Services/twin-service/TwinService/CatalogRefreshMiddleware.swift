import Hummingbird
import TwinGraph

/// Brings the models and event routes in memory up to the store's before each request that uses
/// them, so a change made through another instance is seen as soon as it returned there (see
/// ``DigitalTwinGraph/refreshCatalog()``). Reads of a twin or its relationships use neither and
/// skip the check; reads of a component look at the twin's model and do not.
struct CatalogRefreshMiddleware<Context: RequestContext>: RouterMiddleware {
    let graph: DigitalTwinGraph

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if !Self.readsTwinsOnly(request) { try await graph.refreshCatalog() }
        return try await next(request, context)
    }

    static func readsTwinsOnly(_ request: Request) -> Bool {
        guard request.method == .get || request.method == .head else { return false }
        let path = request.uri.path
        return path.hasPrefix("/digitaltwins/") && !path.contains("/components/")
    }
}
