import Foundation
import HTTPTypes
import Hummingbird
import TwinGraph
import TwinflowCodec
import TwinflowRuntime

/// ADT's data-plane REST API over a ``DigitalTwinGraph``. `api-version` is accepted and ignored.
public enum TwinServiceRoutes {
    public static func add(to router: Router<BasicRequestContext>, graph: DigitalTwinGraph) {
        let api = router.group().add(middleware: ADTErrorMiddleware())
        addModelRoutes(to: api, graph: graph)
        addTwinRoutes(to: api, graph: graph)
        addRelationshipRoutes(to: api, graph: graph)
        addTelemetryRoutes(to: api, graph: graph)
        addEventRouteRoutes(to: api, graph: graph)
        api.post("query") { request, _ in
            let body = try await request.jsonBody()
            let page = try await graph.query(body["query"]?.stringValue, continuationToken: body["continuationToken"]?.stringValue)
            return Response.json(
                ["value": .array(page.value), "continuationToken": page.continuationToken.map(JSONValue.string) ?? .null],
                status: .ok
            )
        }
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

    static func addModelRoutes(to router: RouterGroup<BasicRequestContext>, graph: DigitalTwinGraph) {
        router.post("models") { request, _ in
            let added = try await graph.addModels(try await request.jsonBody())
            return Response.json(.array(added), status: .created)
        }
        router.get("models") { request, _ in
            let dependencies = request.uri.queryParameters.getAll("dependenciesFor").map { String($0) }
            return page(try graph.listModels(dependenciesFor: dependencies, includeDefinition: request.flag("includeModelDefinition")))
        }
        router.get("models/{id}") { request, context in
            let id = try parameter(context, "id")
            guard let data = graph.modelData(id, includeDefinition: request.flag("includeModelDefinition")) else { throw ServiceError.modelNotFound(id) }
            return Response.json(data, status: .ok)
        }
        router.patch("models/{id}") { request, context in
            try await graph.updateModel(try parameter(context, "id"), patch: try await request.jsonBody())
            return noContent()
        }
        router.delete("models/{id}") { _, context in
            try await graph.deleteModel(try parameter(context, "id"))
            return noContent()
        }
    }

    static func addTwinRoutes(to router: RouterGroup<BasicRequestContext>, graph: DigitalTwinGraph) {
        router.get("digitaltwins/{id}") { _, context in
            let twin = try await graph.twin(try parameter(context, "id"))
            return withETag(.json(twin.document, status: .ok), twin.document)
        }
        router.put("digitaltwins/{id}") { request, context in
            let change = try await graph.putTwin(
                try parameter(context, "id"), body: try await request.jsonBody(), ifNoneMatch: request.header(.ifNoneMatch) == "*",
                origin: request.origin
            )
            return withETag(.json(change.twin.document, status: .ok), change.twin.document)
        }
        router.patch("digitaltwins/{id}") { request, context in
            let change = try await graph.patchTwin(
                try parameter(context, "id"), patch: try await request.jsonBody(), ifMatch: request.header(.ifMatch), origin: request.origin
            )
            return noContent(etag: change.twin.document["$etag"]?.stringValue)
        }
        router.delete("digitaltwins/{id}") { request, context in
            try await graph.deleteTwin(
                try parameter(context, "id"), ifMatch: request.header(.ifMatch), cascade: request.flag("cascade"), origin: request.origin
            )
            return noContent()
        }
        router.get("digitaltwins/{id}/components/{path}") { _, context in
            Response.json(try await graph.component(try parameter(context, "id"), path: try parameter(context, "path")), status: .ok)
        }
        router.patch("digitaltwins/{id}/components/{path}") { request, context in
            let change = try await graph.patchTwin(
                try parameter(context, "id"), patch: try await request.jsonBody(), ifMatch: request.header(.ifMatch),
                componentPath: try parameter(context, "path"), origin: request.origin
            )
            return noContent(etag: change.twin.document["$etag"]?.stringValue)
        }
    }

    static func addRelationshipRoutes(to router: RouterGroup<BasicRequestContext>, graph: DigitalTwinGraph) {
        router.get("digitaltwins/{id}/relationships") { request, context in
            let relationships = try await graph.relationships(of: try parameter(context, "id"), name: request.query("relationshipName"))
            return page(relationships.map(\.document))
        }
        router.get("digitaltwins/{id}/incomingrelationships") { _, context in
            page(try await graph.incomingRelationships(of: try parameter(context, "id")))
        }
        router.get("digitaltwins/{id}/relationships/{relationshipId}") { _, context in
            let relationship = try await graph.relationship(try parameter(context, "id"), try parameter(context, "relationshipId"))
            return withETag(.json(relationship.document, status: .ok), relationship.document)
        }
        router.put("digitaltwins/{id}/relationships/{relationshipId}") { request, context in
            let change = try await graph.putRelationship(
                try parameter(context, "id"), try parameter(context, "relationshipId"), body: try await request.jsonBody(),
                ifNoneMatch: request.header(.ifNoneMatch) == "*", origin: request.origin
            )
            return withETag(.json(change.relationship.document, status: .ok), change.relationship.document)
        }
        router.patch("digitaltwins/{id}/relationships/{relationshipId}") { request, context in
            let change = try await graph.patchRelationship(
                try parameter(context, "id"), try parameter(context, "relationshipId"), patch: try await request.jsonBody(),
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
                payload: try await request.bodyBytes(limit: DigitalTwinGraph.maximumTelemetryBytes),
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

    static func addEventRouteRoutes(to router: RouterGroup<BasicRequestContext>, graph: DigitalTwinGraph) {
        router.get("eventroutes") { _, _ in
            page(graph.eventRoutes().map(DigitalTwinGraph.json))
        }
        router.get("eventroutes/{id}") { _, context in
            Response.json(DigitalTwinGraph.json(try graph.eventRoute(try parameter(context, "id"))), status: .ok)
        }
        router.put("eventroutes/{id}") { request, context in
            try await graph.putEventRoute(try parameter(context, "id"), body: try await request.jsonBody())
            return noContent()
        }
        router.delete("eventroutes/{id}") { _, context in
            try await graph.deleteEventRoute(try parameter(context, "id"))
            return noContent()
        }
    }
}
