import Foundation
import Hummingbird
import HummingbirdTesting
import Propagator
import Synchronization
import Testing
import TwinGraph
import TwinService
import TwinflowRuntime
import TwinflowTestSupport

/// The propagator's model catalog against twin-service's REST API on a live port.
@Suite struct ModelCatalogTests {
    /// A model twin-service does not hold (deleted while twins of it remain) is asked for once, not
    /// again with every batch whose events name it; a model it holds is learnt.
    @Test func aModelTwinServiceDoesNotHoldIsNotAskedForWithEveryBatch() async throws {
        let store = try SQLiteTwinStore(path: ScratchDirectory.make("model-catalog").appending(path: "twins.sqlite").path)
        let graph = try await DigitalTwinGraph(store: store)
        _ = try await graph.addModels(Fixtures.upload("seed"))
        let counter = ModelRequestCounter()
        let router = Router()
        router.add(middleware: counter)
        TwinServiceRoutes.add(to: router, graph: graph)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let catalog = ModelCatalog(client: TwinsClient(baseURL: try #require(URL(string: "http://127.0.0.1:\(port)"))))
            let gone = "dtmi:example:Gone;1"
            for _ in 0..<5 { try await catalog.learn([gone]) }
            #expect(counter.requests == 1, "the missing model was asked for \(counter.requests) times")
            #expect(catalog.current.resolvedInterface(try #require(DTMI(gone))) == nil)

            let room = "dtmi:contosocom:DigitalTwins:Room;1"
            try await catalog.learn([room, gone])
            try await catalog.learn([room])
            #expect(counter.requests == 2, "the held model was asked for once, the missing one not again")
            #expect(catalog.current.resolvedInterface(try #require(DTMI(room))) != nil)
        }
    }
}

/// Counts the requests for models that reach twin-service.
final class ModelRequestCounter: RouterMiddleware {
    typealias Context = BasicRequestContext
    private let count = Atomic(0)

    var requests: Int { count.load(ordering: .relaxed) }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path == "/models" { count.add(1, ordering: .relaxed) }
        return try await next(request, context)
    }
}
