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

    /// The most routes an instance holds (ADT's limit is 6): every event is checked against every route.
    public static let maximumEventRoutes = 100

    /// Creates or replaces a route; the endpoint must be configured and the filter must parse, with
    /// ADT's error codes (`EventRouteEndpointInvalid`, `EventRouteFilterInvalid`, `LimitExceeded`).
    public func putEventRoute(_ id: String, body: JSONValue) async throws {
        try Self.checkID(id, of: "event route", code: "EventRouteIdInvalid")
        guard let endpointName = body["endpointName"]?.stringValue, !endpointName.isEmpty else {
            throw ServiceError.invalidArgument("endpointName is required.")
        }
        guard let filterText = body["filter"]?.stringValue else { throw ServiceError.invalidArgument("filter is required.") }
        guard endpoints[endpointName] != nil else {
            throw ServiceError(
                code: "EventRouteEndpointInvalid", status: 400,
                "There is no endpoint named \(endpointName); configured: \(endpoints.keys.sorted().joined(separator: ", "))."
            )
        }
        do {
            _ = try EventFilter(parsing: filterText)
        } catch {
            throw ServiceError(code: "EventRouteFilterInvalid", status: 400, "The filter is not valid: \(error.message)")
        }
        let held = routes.withLock { $0.active.count }
        guard routes.withLock({ $0.active[id] != nil }) || held < Self.maximumEventRoutes else {
            throw ServiceError(code: "LimitExceeded", status: 400, "There are \(held) event routes, the most allowed; delete one first.")
        }
        try await store.putEventRoute(EventRoute(id: id, endpointName: endpointName, filter: filterText))
        try await reloadRoutes()
    }

    public func eventRoute(_ id: String) throws(ServiceError) -> EventRoute {
        guard let route = routes.withLock({ $0.active[id]?.route }) else {
            throw ServiceError(code: "EventRouteNotFound", status: 404, "There is no event route with the ID \(id).")
        }
        return route
    }

    /// Every route, by id.
    public func eventRoutes() -> [EventRoute] {
        routes.withLock { $0.active.values.map(\.route) }.sorted { $0.id < $1.id }
    }

    public func deleteEventRoute(_ id: String) async throws {
        guard try await store.deleteEventRoute(id) else {
            throw ServiceError(code: "EventRouteNotFound", status: 404, "There is no event route with the ID \(id).")
        }
        try await reloadRoutes()
    }

    /// The endpoints whose routes let `event` through, each once.
    public func destinations(of event: PendingEvent) -> [EventEndpoint] {
        routing(of: event).endpoints
    }

    /// The routes the store holds and when they were read, so a read that started later always wins.
    struct RouteTable: Sendable {
        var active: [String: ActiveRoute] = [:]
        var generation = 0
    }

    /// Takes the store's routes as the ones in force. Concurrent changes each reload after their own
    /// write; the reload that started last is the one kept, so memory ends as the store is.
    func reloadRoutes() async throws {
        let generation = routes.withLock { table in
            table.generation += 1
            return table.generation
        }
        let active = try await Self.loadRoutes(store)
        routes.withLock { table in
            guard generation == table.generation else { return }
            table.active = active
        }
    }

    /// Every stored route; a stored filter always parses, since a route is stored only once its
    /// filter did (read without the limits on length and nesting, which older routes may pass).
    static func loadRoutes(_ store: any TwinStore) async throws -> [String: ActiveRoute] {
        var active: [String: ActiveRoute] = [:]
        for route in try await store.eventRoutes() {
            do {
                active[route.id] = ActiveRoute(route: route, filter: try EventFilter(parsing: route.filter, bounded: false))
            } catch {
                throw ServiceError(
                    code: "InvalidEventRoute", status: 500, "The stored event route \(route.id) has a filter that does not parse: \(error)")
            }
        }
        return active
    }
}
