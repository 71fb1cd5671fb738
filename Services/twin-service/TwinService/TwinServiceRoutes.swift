import Foundation
import HTTPTypes
import Hummingbird
import TwinGraph
import TwinflowCodec
import TwinflowRuntime

/// ADT's data-plane REST API over a ``DigitalTwinGraph``. `api-version` is accepted and ignored.
public enum TwinServiceRoutes {
    /// The default limit of a request body other than a model upload or telemetry: far above a
    /// twin's 32 KiB, so a patch or query written with room to spare fits, and small enough that a
    /// request cannot make the service hold much memory.
    public static let defaultMaximumBodyBytes = 1024 * 1024
    /// The default limit of a model upload's body: room for a few hundred interfaces of an ontology
    /// in one all-or-nothing upload.
    public static let defaultMaximumModelUploadBytes = 8 * 1024 * 1024

    /// Adds the routes. Every `GET` answers `HEAD` too, with its status and headers and no body. A
    /// body longer than its limit is refused with 413 `PayloadTooLarge` before it is parsed (telemetry
    /// has its own, ``DigitalTwinGraph/maximumTelemetryBytes``); a body that is not UTF-8 or not JSON
    /// is 400 `InvalidArgument`.
    /// - Parameters:
    ///   - maximumBodyBytes: the limit of twin, relationship, patch, query and event route bodies.
    ///   - maximumModelUploadBytes: the limit of a model upload (`POST /models`).
    public static func add(
        to router: Router<BasicRequestContext>, graph: DigitalTwinGraph, maximumBodyBytes: Int = defaultMaximumBodyBytes,
        maximumModelUploadBytes: Int = defaultMaximumModelUploadBytes
    ) {
        let api = router.group().add(middleware: HeadMiddleware()).add(middleware: ADTErrorMiddleware())
            .add(middleware: CatalogRefreshMiddleware(graph: graph))
        let limits = BodyLimits(json: maximumBodyBytes, modelUpload: maximumModelUploadBytes)
        addModelRoutes(to: api, graph: graph, limits: limits)
        addTwinRoutes(to: api, graph: graph, limits: limits)
        addRelationshipRoutes(to: api, graph: graph, limits: limits)
        addTelemetryRoutes(to: api, graph: graph)
        addEventRouteRoutes(to: api, graph: graph, limits: limits)
        api.post("query") { request, _ in
            let body = try await request.jsonBody(limit: limits.json)
            let page = try await graph.query(
                body["query"]?.stringValue, continuationToken: body["continuationToken"]?.stringValue,
                pageSize: try request.maxItemsPerPage(limit: 100))
            return Response.json(
                ["value": .array(page.value), "continuationToken": page.continuationToken.map(JSONValue.string) ?? .null],
                status: .ok
            )
        }
    }

    struct BodyLimits: Sendable {
        var json: Int
        var modelUpload: Int
        /// A twin's or relationship's JSON Patch: its notification carries it whole, and must stay
        /// deliverable (see ``DigitalTwinGraph/maximumPatchBytes``).
        var patch: Int { min(json, DigitalTwinGraph.maximumPatchBytes) }
    }

    static func page(_ values: [JSONValue]) -> Response {
        .json(["value": .array(values), "nextLink": .null], status: .ok)
    }

    static func withETag(_ response: Response, _ document: JSONValue) -> Response {
        var response = response
        if let etag = document["$etag"]?.stringValue { response.headers[.eTag] = etag }
        return response
    }

    static func noContent(etag: String? = nil) -> Response {
        var response = Response(status: .noContent)
        if let etag { response.headers[.eTag] = etag }
        return response
    }

    static func parameter(_ context: BasicRequestContext, _ name: String) throws -> String {
        guard let value = context.parameters.get(name) else { throw ServiceError.invalidArgument("\(name) is required.") }
        // Foundation's decoding is costly and most IDs have nothing to decode.
        guard value.utf8.contains(UInt8(ascii: "%")) else { return value }
        return value.removingPercentEncoding ?? value
    }

    static func addModelRoutes(to router: RouterGroup<BasicRequestContext>, graph: DigitalTwinGraph, limits: BodyLimits) {
        router.post("models") { request, _ in
            let added = try await graph.addModels(try await request.jsonBody(limit: limits.modelUpload))
            return Response.json(.array(added), status: .created)
        }
        router.readable("models") { request, _ in
            let dependencies = request.uri.queryParameters.getAll("dependenciesFor").map { String($0) }
            return page(try graph.listModels(dependenciesFor: dependencies, includeDefinition: request.flag("includeModelDefinition")))
        }
        router.readable("models/{id}") { request, context in
            let id = try parameter(context, "id")
            guard let data = graph.modelData(id, includeDefinition: request.flag("includeModelDefinition")) else {
                throw ServiceError.modelNotFound(id)
            }
            return Response.json(data, status: .ok)
        }
        router.patch("models/{id}") { request, context in
            try await graph.updateModel(try parameter(context, "id"), patch: try await request.jsonBody(limit: limits.json))
            return noContent()
        }
        router.delete("models/{id}") { _, context in
            try await graph.deleteModel(try parameter(context, "id"))
            return noContent()
        }
    }

    static func addTwinRoutes(to router: RouterGroup<BasicRequestContext>, graph: DigitalTwinGraph, limits: BodyLimits) {
        router.readable("digitaltwins/{id}") { _, context in
            let twin = try await graph.twin(try parameter(context, "id"))
            return withETag(.json(twin.document, status: .ok), twin.document)
        }
        router.put("digitaltwins/{id}") { request, context in
            let change = try await graph.putTwin(
                try parameter(context, "id"), body: try await request.jsonBody(limit: limits.json), ifNoneMatch: request.header(.ifNoneMatch) == "*",
                origin: request.origin
            )
            return withETag(.json(change.twin.document, status: .ok), change.twin.document)
        }
        router.patch("digitaltwins/{id}") { request, context in
            let change = try await graph.patchTwin(
                try parameter(context, "id"), patch: try await request.jsonBody(limit: limits.patch), ifMatch: request.header(.ifMatch),
                origin: request.origin
            )
            return noContent(etag: change.twin.document["$etag"]?.stringValue)
        }
        router.delete("digitaltwins/{id}") { request, context in
            try await graph.deleteTwin(
                try parameter(context, "id"), ifMatch: request.header(.ifMatch), cascade: request.flag("cascade"), origin: request.origin
            )
            return noContent()
        }
        router.readable("digitaltwins/{id}/components/{path}") { _, context in
            let (component, etag) = try await graph.componentAndETag(try parameter(context, "id"), path: try parameter(context, "path"))
            var response = Response.json(component, status: .ok)
            if let etag { response.headers[.eTag] = etag }
            return response
        }
        router.patch("digitaltwins/{id}/components/{path}") { request, context in
            let change = try await graph.patchTwin(
                try parameter(context, "id"), patch: try await request.jsonBody(limit: limits.patch), ifMatch: request.header(.ifMatch),
                componentPath: try parameter(context, "path"), origin: request.origin
            )
            return noContent(etag: change.twin.document["$etag"]?.stringValue)
        }
    }

    static func addRelationshipRoutes(to router: RouterGroup<BasicRequestContext>, graph: DigitalTwinGraph, limits: BodyLimits) {
        router.readable("digitaltwins/{id}/relationships") { request, context in
            let relationships = try await graph.relationships(of: try parameter(context, "id"), name: request.query("relationshipName"))
            return page(relationships.map(\.document))
        }
        router.readable("digitaltwins/{id}/incomingrelationships") { _, context in
            page(try await graph.incomingRelationships(of: try parameter(context, "id")))
        }
        router.readable("digitaltwins/{id}/relationships/{relationshipId}") { _, context in
            let relationship = try await graph.relationship(try parameter(context, "id"), try parameter(context, "relationshipId"))
            return withETag(.json(relationship.document, status: .ok), relationship.document)
        }
        router.put("digitaltwins/{id}/relationships/{relationshipId}") { request, context in
            let change = try await graph.putRelationship(
                try parameter(context, "id"), try parameter(context, "relationshipId"), body: try await request.jsonBody(limit: limits.json),
                ifNoneMatch: request.header(.ifNoneMatch) == "*", origin: request.origin
            )
            return withETag(.json(change.relationship.document, status: .ok), change.relationship.document)
        }
        router.patch("digitaltwins/{id}/relationships/{relationshipId}") { request, context in
            let change = try await graph.patchRelationship(
                try parameter(context, "id"), try parameter(context, "relationshipId"), patch: try await request.jsonBody(limit: limits.patch),
                ifMatch: request.header(.ifMatch), origin: request.origin
            )
            return noContent(etag: change.relationship.document["$etag"]?.stringValue)
        }
        router.delete("digitaltwins/{id}/relationships/{relationshipId}") { request, context in
            try await graph.deleteRelationship(
                try parameter(context, "id"), try parameter(context, "relationshipId"), ifMatch: request.header(.ifMatch), origin: request.origin
            )
            return noContent()
        }
    }

    static func addTelemetryRoutes(to router: RouterGroup<BasicRequestContext>, graph: DigitalTwinGraph) {
        @Sendable func publish(_ request: Request, _ context: BasicRequestContext, component: String?) async throws -> Response {
            try await graph.publishTelemetry(
                try parameter(context, "id"), messageID: request.header(HTTPField.Name("Message-Id")!),
                payload: try await request.utf8Body(limit: DigitalTwinGraph.maximumTelemetryBytes),
                component: component, sourceTime: request.header(HTTPField.Name("Telemetry-Source-Time")!), origin: request.origin
            )
            return noContent()
        }
        router.post("digitaltwins/{id}/telemetry") { request, context in
            try await publish(request, context, component: nil)
        }
        router.post("digitaltwins/{id}/components/{path}/telemetry") { request, context in
            try await publish(request, context, component: try parameter(context, "path"))
        }
    }

    static func addEventRouteRoutes(to router: RouterGroup<BasicRequestContext>, graph: DigitalTwinGraph, limits: BodyLimits) {
        router.readable("eventroutes") { _, _ in
            page(graph.eventRoutes().map(DigitalTwinGraph.json))
        }
        router.readable("eventroutes/{id}") { _, context in
            Response.json(DigitalTwinGraph.json(try graph.eventRoute(try parameter(context, "id"))), status: .ok)
        }
        router.put("eventroutes/{id}") { request, context in
            try await graph.putEventRoute(try parameter(context, "id"), body: try await request.jsonBody(limit: limits.json))
            return noContent()
        }
        router.delete("eventroutes/{id}") { _, context in
            try await graph.deleteEventRoute(try parameter(context, "id"))
            return noContent()
        }
    }
}
