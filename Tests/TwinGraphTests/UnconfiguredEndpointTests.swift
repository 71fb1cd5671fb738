import Foundation
import Testing
import TwinGraph
import TwinService
import TwinflowCodec
import TwinflowKafka
import TwinflowTestSupport

/// A stored route whose endpoint was removed from the configuration: its events are dead-lettered
/// with the reason, not counted delivered, and the route is reported at startup.
@Suite struct UnconfiguredEndpointTests {
    @Test func eventsOfARouteToAnUnconfiguredEndpointAreDeadLettered() async throws {
        let defaults = EventEndpoint.defaults(twinEventsTopic: "eventgrid.twin-events", telemetryTopic: "eventhub.telemetry")
        let directory = ScratchDirectory.make("routes")
        let path = directory.appending(path: "twins.sqlite").path
        let configured = try await DigitalTwinGraph(
            store: SQLiteTwinStore(path: path), endpoints: defaults + [EventEndpoint(name: "alerts", topic: "building.alerts", format: .structured)])
        try await configured.putEventRoute("alerts", body: ["endpointName": "alerts", "filter": "true"])
        #expect(configured.routesWithUnconfiguredEndpoints().isEmpty)

        let graph = try await DigitalTwinGraph(store: SQLiteTwinStore(path: path), endpoints: defaults)
        #expect(graph.routesWithUnconfiguredEndpoints().map(\.id) == ["alerts"])
        _ = try await graph.addModels(Fixtures.upload("seed"))
        try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20])
        let entry = try #require(try await graph.pendingEvents(after: 0, limit: 10).last)
        let messages = OutboxRelay.messages(for: entry, graph: graph, deadLetterTopic: "deadletter")
        #expect(messages.map(\.topic) == ["eventgrid.twin-events", "deadletter"])
        let deadLetter = messages[1]
        #expect(deadLetter.headers.string(for: DeadLetter.reasonHeader) == "the endpoint alerts is not configured")
        #expect(deadLetter.headers.string(for: DeadLetter.topicHeader) == "endpoint:alerts")
        #expect(deadLetter.headers.string(for: DeadLetter.eventIDHeader) == entry.event.attributes.id)
        #expect(deadLetter.headers.string(for: DeadLetter.outboxPositionHeader) == String(entry.position))
        #expect(
            try CloudEvent(decoding: Array(deadLetter.value ?? [])).attributes.type == "Microsoft.DigitalTwins.Twin.Create", "the event, untouched")
    }
}
