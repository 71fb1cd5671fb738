import Foundation
import Logging
import Testing
import TwinGraph
import TwinflowCodec
import TwinflowPostgres
import TwinflowTestSupport

/// The outbox as the store keeps it: a transaction's events in one row, read back after a restart.
@Suite struct OutboxTests {
    func setPatch(_ value: Double) throws -> JSONPatch {
        try JSONPatch(json: [["op": "replace", "path": "/Temperature", "value": .double(value)]])
    }

    /// What the relay sends of an entry (whether an event takes a sequence matters only until it is stored).
    struct Sent: Hashable {
        var position: Int64
        var key: String
        var attributes: [UInt8]
        var data: [UInt8]
    }

    func sent(_ entries: some Sequence<OutboxEntry>) -> [Sent] {
        entries.map { Sent(position: $0.position, key: $0.event.twinID, attributes: $0.event.serializedAttributes, data: $0.event.data) }
    }

    func reopened(_ fixture: GraphFixture) async throws -> DigitalTwinGraph {
        try await DigitalTwinGraph(store: SQLiteTwinStore(path: fixture.directory.appending(path: "twins.sqlite").path))
    }

    /// Two processes on one PostgreSQL database: what one relayed, the other learns from the store,
    /// and its own events that it still holds in memory are not handed out again from there (a relay
    /// that takes the turn back would have sent them again, after newer ones; an instance standing
    /// by would have counted them undelivered, and its readiness would have said delivery is stuck).
    @Test func whatAnotherProcessDeliveredIsNotHandedOutAgain() async throws {
        let url = try DatabaseURL(PostgresCluster.shared().makeDatabase("twins"))
        let first = try await DigitalTwinGraph(store: PostgresTwinStore(url: url, connections: 2, logger: Logger(label: "first")))
        let second = try await DigitalTwinGraph(store: PostgresTwinStore(url: url, connections: 2, logger: Logger(label: "second")))
        _ = try await first.addModels(try Fixtures.upload("seed"))
        _ = try await first.putTwin("thermo_0001", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20])
        _ = try await first.apply([TwinCommand(id: "c1", twinID: "thermo_0001", patch: try setPatch(21))])
        let written = try await first.pendingEvents(after: 0, limit: 100)
        try #require(written.count >= 2, "the twin and its update")

        let relayed = try await second.pendingEvents(after: 0, limit: 100)
        #expect(sent(relayed) == sent(written), "the other process reads the same outbox")
        try await second.markDelivered(through: relayed.last!.position)

        #expect(try await first.outboxDeliveredThrough() == relayed.last!.position)
        #expect(try await first.pendingEvents(after: 0, limit: 100).isEmpty, "nothing delivered is handed out again")
        #expect(try await first.oldestUndeliveredEventTime(after: 0) == nil)
    }

    @Test func aBatchsEventsAreReadBackInPartsAfterARestart() async throws {
        let fixture = try await GraphFixture.seed()
        let graph = fixture.graph
        let seeded = try await graph.pendingEvents(after: 0, limit: 100)
        // One transaction, five notifications and a telemetry event with bytes that need no escaping rules.
        _ = try await graph.apply(
            try (1...5).map { TwinCommand(id: "c\($0)", twinID: "thermo_0001", patch: try setPatch(Double($0))) }
                + [TwinCommand(id: "t", twinID: "thermo_0001", telemetry: ["note": "Zürich \u{1F321}"])]
        )
        let written = try await graph.pendingEvents(after: 0, limit: 100)
        #expect(written.count == seeded.count + 6)

        let store = try await reopened(fixture)
        #expect(sent(try await store.pendingEvents(after: 0, limit: 100)) == sent(written))
        let middle = written[seeded.count + 2].position
        #expect(sent(try await store.pendingEvents(after: middle, limit: 100)) == sent(Array(written.drop { $0.position <= middle })))
        #expect(sent(try await store.pendingEvents(after: middle, limit: 2)) == sent(Array(written.drop { $0.position <= middle }.prefix(2))))

        // Delivered up to the middle of the batch: its row stays, and is read from where delivery
        // stopped, also by a relay that starts from the beginning after a restart.
        try await store.markDelivered(through: middle)
        let afterRestart = try await reopened(fixture)
        #expect(sent(try await afterRestart.pendingEvents(after: middle, limit: 100)) == sent(Array(written.drop { $0.position <= middle })))
        #expect(sent(try await afterRestart.pendingEvents(after: 0, limit: 100)) == sent(Array(written.drop { $0.position <= middle })))
        try await afterRestart.markDelivered(through: written.last!.position)
        #expect(try await reopened(fixture).pendingEvents(after: 0, limit: 100).isEmpty)
    }
}
