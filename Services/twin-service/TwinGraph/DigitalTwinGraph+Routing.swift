import Synchronization
import TwinflowCodec

extension DigitalTwinGraph {
    /// Where an event goes: the configured endpoints whose routes let it through, each once, and the
    /// names of endpoints that routes letting it through name but that are not configured (a route
    /// stored before its endpoint was removed from the configuration): the relay dead-letters the
    /// event for those instead of counting it delivered.
    public func routing(of event: PendingEvent) -> (endpoints: [EventEndpoint], unconfigured: [String]) {
        let active = routes.withLock { Array($0.active.values) }
        var names = Set<String>()
        var facts = EventFacts(event)
        for route in active where !names.contains(route.route.endpointName) && route.filter.matches(&facts) {
            names.insert(route.route.endpointName)
        }
        var configured: [EventEndpoint] = []
        var unconfigured: [String] = []
        for name in names.sorted() {
            if let endpoint = endpoints[name] { configured.append(endpoint) } else { unconfigured.append(name) }
        }
        return (configured, unconfigured)
    }

    /// The stored routes that name an endpoint which is not configured.
    public func routesWithUnconfiguredEndpoints() -> [EventRoute] {
        routes.withLock { $0.active.values.map(\.route) }.filter { endpoints[$0.endpointName] == nil }.sorted { $0.id < $1.id }
    }
}
