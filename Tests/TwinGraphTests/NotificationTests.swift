import Foundation
import Testing
import TwinGraph
import TwinService
import TwinflowCodec
import TwinflowKafka
import TwinflowTestSupport

/// Every change leaves ADT's notification in the outbox, in the change's own transaction, and the
/// relay turns it into exactly ADT's event on the routed topics.
@Suite struct NotificationTests {
    static let time = "2026-11-26T17:00:00.123Z"
    static let trace = ChangeOrigin(traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    static let thermostat = "dtmi:contosocom:DigitalTwins:Thermostat;1"
    static let room = "dtmi:contosocom:DigitalTwins:Room;1"

    func makeGraph(_ sets: String..., store kind: TwinStoreKind = .sqlite) async throws -> DigitalTwinGraph {
        let graph = try await DigitalTwinGraph(store: try await kind.makeStore(in: ScratchDirectory.make("notifications")), clock: { Self.time })
        for set in sets { _ = try await graph.addModels(Fixtures.upload(set)) }
        return graph
    }

    func events(_ graph: DigitalTwinGraph) async throws -> [OutboxEntry] {
        try await graph.pendingEvents(after: 0, limit: 100_000)
    }

    /// The structured message the relay sends to `eventgrid.twin-events`, parsed.
    func structured(_ entry: OutboxEntry, _ graph: DigitalTwinGraph) throws -> (topic: String, key: String?, json: JSONValue) {
        let messages = OutboxRelay.messages(for: entry, graph: graph)
        try #require(messages.count == 1)
        #expect(messages[0].headers.string(for: "content-type") == "application/cloudevents+json")
        return (messages[0].topic, messages[0].key.map { String(decoding: $0, as: UTF8.self) }, try JSONValue.parse(messages[0].value ?? []))
    }

    /// ADT's documented Twin.Update example (`ADT-EVENTS.md`), byte for byte but for the random event id.
    @Test(arguments: TwinStoreKind.allCases) func twinUpdateIsADTsExample(store: TwinStoreKind) async throws {
        let graph = try await makeGraph("seed", store: store)
        try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": .string(Self.thermostat)], "Temperature": 20])
        for value in 0..<40 {
            try await graph.patchTwin("thermo_0001", patch: [["op": "replace", "path": "/Temperature", "value": .integer(Int64(value))]])
        }
        try await graph.patchTwin("thermo_0001", patch: [["op": "replace", "path": "/Temperature", "value": 21.5]], origin: Self.trace)
        let last = try #require(try await events(graph).last)
        let (topic, key, event) = try structured(last, graph)
        guard case .object(var golden) = try JSONValue.parse(try Fixtures.file("adt-events/twin-update.json")) else {
            Issue.record("the fixture is a JSON object")
            return
        }
        golden["id"] = event["id"]
        #expect(event == .object(golden))
        #expect(UUID(uuidString: event["id"]?.stringValue ?? "") != nil, "the event id is a UUID")
        #expect(topic == "eventgrid.twin-events")
        #expect(key == "thermo_0001")
    }

    @Test(arguments: TwinStoreKind.allCases) func createReplaceAndDeleteCarryTheWholeTwinOrItsPatch(store: TwinStoreKind) async throws {
        let graph = try await makeGraph("seed", store: store)
        let created = try await graph.putTwin(
            "thermo_0001", body: ["$metadata": ["$model": .string(Self.thermostat)], "Temperature": 20], origin: Self.trace)
        try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": .string(Self.thermostat)]], origin: Self.trace)
        let got = try await graph.twin("thermo_0001")
        try await graph.deleteTwin("thermo_0001", origin: Self.trace)
        let entries = try await events(graph)
        try #require(entries.count == 3)

        let create = try structured(entries[0], graph).json
        #expect(create["type"] == "Microsoft.DigitalTwins.Twin.Create")
        #expect(create["data"] == created.twin.document, "Create carries the twin as GET returns it")
        #expect(create["sequence"] == "1")
        #expect(create["traceparent"] == .string(Self.trace.traceparent))

        let replace = try structured(entries[1], graph).json
        #expect(replace["type"] == "Microsoft.DigitalTwins.Twin.Update", "replacing a twin is an update")
        #expect(replace["data"] == ["modelId": .string(Self.thermostat), "patch": [["op": "remove", "path": "/Temperature"]]])
        #expect(replace["sequence"] == "2")

        let delete = try structured(entries[2], graph).json
        #expect(delete["type"] == "Microsoft.DigitalTwins.Twin.Delete")
        #expect(delete["data"] == got.document, "Delete carries the twin as it was")
        #expect(delete["sequence"] == "3")
    }

    @Test(arguments: TwinStoreKind.allCases) func relationshipEventsAreKeyedAndNumberedByTheSourceTwin(store: TwinStoreKind) async throws {
        let graph = try await makeGraph("seed", store: store)
        try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": .string(Self.thermostat)], "Temperature": 20])
        try await graph.putTwin("Room_01", body: ["$metadata": ["$model": .string(Self.room)]])
        let created = try await graph.putRelationship("Room_01", "r1", body: ["$targetId": "thermo_0001", "$relationshipName": "rel_has_thermostat"])
        try await graph.patchTwin("Room_01", patch: [["op": "add", "path": "/currentTemp", "value": 20]])
        try await graph.deleteTwin("Room_01", cascade: true)
        let entries = try await events(graph).map { try structured($0, graph) }
        let types = entries.map { $0.json["type"]?.stringValue ?? "" }
        #expect(
            types == [
                "Microsoft.DigitalTwins.Twin.Create", "Microsoft.DigitalTwins.Twin.Create", "Microsoft.DigitalTwins.Relationship.Create",
                "Microsoft.DigitalTwins.Twin.Update", "Microsoft.DigitalTwins.Relationship.Delete", "Microsoft.DigitalTwins.Twin.Delete",
            ])
        let relationshipCreate = entries[2]
        #expect(relationshipCreate.key == "Room_01")
        #expect(relationshipCreate.json["subject"] == "Room_01/relationships/r1")
        #expect(relationshipCreate.json["data"] == created.relationship.document)
        #expect(relationshipCreate.json["data"]?["$relationshipName"] == "rel_has_thermostat")
        let roomSequences = entries.filter { $0.key == "Room_01" }.map { $0.json["sequence"]?.stringValue ?? "" }
        #expect(roomSequences == ["1", "2", "3", "4", "5"], "one increasing sequence per twin across twin and relationship events")
        #expect(entries.filter { $0.key == "thermo_0001" }.map { $0.json["sequence"] } == ["1"])
    }

    @Test(arguments: TwinStoreKind.allCases) func relationshipUpdateNamesTheSourceModel(store: TwinStoreKind) async throws {
        let graph = try await makeGraph("building", store: store)
        try await graph.putTwin("t1", body: ["$metadata": ["$model": "dtmi:example:building:Thermostat;1"]])
        try await graph.putTwin("room1", body: ["$metadata": ["$model": "dtmi:example:building:Room;1"]])
        try await graph.putRelationship("room1", "c1", body: ["$targetId": "t1", "$relationshipName": "contains"])
        try await graph.patchRelationship("room1", "c1", patch: [["op": "add", "path": "/installedOn", "value": "2026-01-02"]])
        let update = try structured(try #require(try await events(graph).last), graph).json
        #expect(update["type"] == "Microsoft.DigitalTwins.Relationship.Update")
        #expect(update["subject"] == "room1/relationships/c1")
        #expect(
            update["data"] == ["modelId": "dtmi:example:building:Room;1", "patch": [["op": "add", "path": "/installedOn", "value": "2026-01-02"]]])
    }

    @Test(arguments: TwinStoreKind.allCases) func aRefusedChangeLeavesNoEvent(store: TwinStoreKind) async throws {
        let graph = try await makeGraph("seed", store: store)
        try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": .string(Self.thermostat)], "Temperature": 20])
        await expectServiceError("ValidationFailed", status: 400) {
            try await graph.patchTwin("thermo_0001", patch: [["op": "replace", "path": "/Temperature", "value": "warm"]])
        }
        await expectServiceError("PreconditionFailed", status: 412) {
            try await graph.patchTwin("thermo_0001", patch: [["op": "replace", "path": "/Temperature", "value": 1]], ifMatch: "W/\"9\"")
        }
        #expect(try await events(graph).count == 1)
    }

    @Test func aNumberedEventsSerializedAttributesAreItsAttributes() throws {
        let plain = CloudEventAttributes(
            id: "e1", type: EventType.twinUpdate, source: "twinflow.local", subject: "t1", traceparent: Traceparent.random())
        let withExtension = CloudEventAttributes(
            id: "e2", type: EventType.telemetry, source: "twinflow.local", extensions: ["telemetrysourcetime": "2026-11-26T16:00:00Z"])
        for attributes in [plain, withExtension] {
            let numbered = PendingEvent(twinID: "t1", attributes: attributes, data: []).numbered(42)
            #expect(numbered.attributes.sequence == "42")
            #expect(numbered.serializedAttributes == numbered.attributes.serialized(), "the attributes in CloudEvents' order, sequence included")
            #expect(try CloudEventAttributes(json: JSONValue.parse(numbered.serializedAttributes).objectValue ?? [:]) == numbered.attributes)
        }
    }

    @Test(arguments: TwinStoreKind.allCases) func concurrentPatchesAllApplyWithDistinctSequences(store: TwinStoreKind) async throws {
        let graph = try await makeGraph("seed", store: store)
        try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": .string(Self.thermostat)], "Temperature": 0])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for value in 1...200 {
                group.addTask {
                    try await graph.patchTwin("thermo_0001", patch: [["op": "replace", "path": "/Temperature", "value": .integer(Int64(value))]])
                }
            }
            try await group.waitForAll()
        }
        #expect(try await graph.twin("thermo_0001").version == 201)
        let sequences = try await events(graph).compactMap { $0.event.attributes.sequence.flatMap(Int.init) }
        #expect(sequences == Array(1...201), "sequences follow commit order, no gaps, no repeats")
    }

    @Test(arguments: TwinStoreKind.allCases) func telemetryIsBinaryModeWithTheSendersIdAndDeduplicated(store: TwinStoreKind) async throws {
        let graph = try await makeGraph("building", store: store)
        try await graph.putTwin("t1", body: ["$metadata": ["$model": "dtmi:example:building:Thermostat;1"]])
        let payload = Array(#"{ "TemperatureReading": 21.5 }"#.utf8)
        try await graph.publishTelemetry("t1", messageID: "m-1", payload: payload, sourceTime: "2026-11-26T16:59:59Z", origin: Self.trace)
        try await graph.publishTelemetry("t1", messageID: "m-1", payload: payload, origin: Self.trace)
        try await graph.publishTelemetry("t1", messageID: "m-2", payload: Array(#"{"x":1}"#.utf8), component: "settings")
        let entries = try await events(graph).filter { $0.event.attributes.type == "microsoft.iot.telemetry" }
        try #require(entries.count == 2, "a repeated Message-Id publishes nothing again")

        // Twin IDs may hold '/': twin "t1/a" with "b" is not twin "t1" with "a/b".
        try await graph.putTwin("t1/a", body: ["$metadata": ["$model": "dtmi:example:building:Thermostat;1"]])
        try await graph.publishTelemetry("t1", messageID: "a/b", payload: payload)
        try await graph.publishTelemetry("t1/a", messageID: "b", payload: payload)
        let more = try await events(graph).filter { $0.event.attributes.type == "microsoft.iot.telemetry" }
        #expect(more.count == 4, "each twin's message is its own")

        let messages = OutboxRelay.messages(for: entries[0], graph: graph)
        try #require(messages.count == 1)
        let message = messages[0]
        #expect(message.topic == "eventhub.telemetry")
        #expect(message.value == payload, "the payload exactly as sent")
        #expect(message.key.map { String(decoding: $0, as: UTF8.self) } == "t1")
        let headers = Dictionary(message.headers.map { ($0.key, String(decoding: $0.value ?? [], as: UTF8.self)) }, uniquingKeysWith: { $1 })
        #expect(headers["ce_id"] == "m-1")
        #expect(headers["ce_type"] == "microsoft.iot.telemetry")
        #expect(headers["ce_source"] == "twinflow.local/digitaltwins/t1")
        #expect(headers["ce_dataschema"] == "dtmi:example:building:Thermostat;1")
        #expect(headers["ce_specversion"] == "1.0")
        #expect(headers["ce_time"] == Self.time)
        #expect(headers["ce_traceparent"] == Self.trace.traceparent)
        #expect(headers["ce_telemetrysourcetime"] == "2026-11-26T16:59:59Z")
        #expect(headers["ce_sequence"] == nil, "telemetry leaves the twin's notification sequence alone")
        #expect(headers["ce_subject"] == nil, "no subject for the twin's own telemetry")
        #expect(headers["content-type"] == "application/json")

        let component = try BinaryCloudEvent(
            decoding: KafkaConsumerMessage(
                topic: "eventhub.telemetry", partition: 0, offset: 0, key: nil, value: OutboxRelay.messages(for: entries[1], graph: graph)[0].value,
                headers: OutboxRelay.messages(for: entries[1], graph: graph)[0].headers
            ))
        #expect(component.attributes.subject == "settings")
    }

    @Test(arguments: TwinStoreKind.allCases) func telemetryErrors(store: TwinStoreKind) async throws {
        let graph = try await makeGraph("building", store: store)
        try await graph.putTwin("t1", body: ["$metadata": ["$model": "dtmi:example:building:Thermostat;1"]])
        await expectServiceError("InvalidArgument", status: 400) { try await graph.publishTelemetry("t1", messageID: nil, payload: Array("{}".utf8)) }
        await expectServiceError("InvalidArgument", status: 400) { try await graph.publishTelemetry("t1", messageID: "a", payload: Array("{".utf8)) }
        await expectServiceError("DigitalTwinNotFound", status: 404) {
            try await graph.publishTelemetry("nope", messageID: "a", payload: Array("{}".utf8))
        }
        let large = Array(#"{"x":""#.utf8) + Array(repeating: UInt8(ascii: "a"), count: DigitalTwinGraph.maximumTelemetryBytes) + Array(#""}"#.utf8)
        await expectServiceError("PayloadTooLarge", status: 413) { try await graph.publishTelemetry("t1", messageID: "a", payload: large) }
        await expectServiceError("ComponentNotFound", status: 404) {
            try await graph.publishTelemetry("t1", messageID: "a", payload: Array("{}".utf8), component: "nope")
        }
    }
}
