import Synchronization
import TwinflowCodec

extension DigitalTwinGraph {
    /// A route with its parsed filter.
    struct ActiveRoute: Sendable {
        var route: EventRoute
        var filter: EventFilter
    }

    /// ADT's event route shape: `{"id", "endpointName", "filter"}`.
    public static func json(_ route: EventRoute) -> JSONValue {
        ["id": .string(route.id), "endpointName": .string(route.endpointName), "filter": .string(route.filter)]
    }

    /// Creates or replaces a route; the endpoint must be configured and the filter must parse.
    public func putEventRoute(_ id: String, body: JSONValue) async throws {
        guard !id.isEmpty else { throw ServiceError.invalidArgument("The event route id must not be empty.") }
        guard let endpointName = body["endpointName"]?.stringValue, !endpointName.isEmpty else {
            throw ServiceError.invalidArgument("endpointName is required.")
        }
        guard let filterText = body["filter"]?.stringValue else { throw ServiceError.invalidArgument("filter is required.") }
        guard endpoints[endpointName] != nil else {
            throw ServiceError(
                code: "EndpointNotFound", status: 400,
                "There is no endpoint named \(endpointName); configured: \(endpoints.keys.sorted().joined(separator: ", "))."
            )
        }
        let filter: EventFilter
        do {
            filter = try EventFilter(parsing: filterText)
        } catch {
            throw ServiceError(code: "InvalidArgument", status: 400, "The filter is not valid: \(error.message)")
        }
        let route = EventRoute(id: id, endpointName: endpointName, filter: filterText)
        try await store.putEventRoute(route)
        routes.withLock { $0[id] = ActiveRoute(route: route, filter: filter) }
    }

    public func eventRoute(_ id: String) throws(ServiceError) -> EventRoute {
        guard let route = routes.withLock({ $0[id]?.route }) else {
            throw ServiceError(code: "EventRouteNotFound", status: 404, "There is no event route with the ID \(id).")
        }
        return route
    }

    /// Every route, by id.
    public func eventRoutes() -> [EventRoute] {
        routes.withLock { $0.values.map(\.route) }.sorted { $0.id < $1.id }
    }

    public func deleteEventRoute(_ id: String) async throws {
        guard try await store.deleteEventRoute(id) else {
            throw ServiceError(code: "EventRouteNotFound", status: 404, "There is no event route with the ID \(id).")
        }
        routes.withLock { $0[id] = nil }
    }

    /// The endpoints whose routes let `event` through, each once.
    public func destinations(of event: PendingEvent) -> [EventEndpoint] {
        let active = routes.withLock { Array($0.values) }
        var names = Set<String>()
        var facts = EventFacts(event)
        for route in active where !names.contains(route.route.endpointName) && route.filter.matches(&facts) {
            names.insert(route.route.endpointName)
        }
        return names.sorted().compactMap { endpoints[$0] }
    }

    static func loadRoutes(_ store: any TwinStore) async throws -> [String: ActiveRoute] {
        var active: [String: ActiveRoute] = [:]
        for route in try await store.eventRoutes() {
            guard let filter = try? EventFilter(parsing: route.filter) else { continue }
            active[route.id] = ActiveRoute(route: route, filter: filter)
        }
        return active
    }
}
