import Foundation
import Testing
import TwinGraph
import TwinflowCodec

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
