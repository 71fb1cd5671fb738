import Foundation
import Testing
import TwinGraph
import TwinflowCodec

/// Commands from `twins.commands`, applied as the REST API would apply them, once per id.
@Suite struct CommandTests {
    static let thermostat = "dtmi:contosocom:DigitalTwins:Thermostat;1"

    func setPatch(_ value: Double) throws -> JSONPatch {
        try JSONPatch(json: [["op": "replace", "path": "/Temperature", "value": .double(value)]])
    }

    @Test(arguments: TwinStoreKind.allCases) func appliesOncePerIdInOneBatch(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let graph = fixture.graph
        let before = try await graph.pendingEvents(after: 0, limit: 100).count
        let outcomes = try await graph.apply([
            TwinCommand(id: "c1", twinID: "thermo_0001", patch: try setPatch(21), sourceTime: "2026-11-26T16:00:00Z"),
            TwinCommand(id: "c2", twinID: "thermo_0001", patch: try setPatch(22)),
            TwinCommand(id: "c1", twinID: "thermo_0001", patch: try setPatch(99)),
        ])
        guard case .applied(let first?) = outcomes[0], case .applied(let second?) = outcomes[1] else {
            Issue.record("both commands apply: \(outcomes)")
            return
        }
        #expect(outcomes[2] == .duplicate)
        #expect(first.sequence + 1 == second.sequence)
        let twin = try await graph.twin("thermo_0001")
        #expect(twin.document["Temperature"] == 22)
        #expect(twin.version == 3)
        #expect(twin.document["$metadata"]?["Temperature"]?["sourceTime"] == nil, "c2 carried no source time")

        let again = try await graph.apply([TwinCommand(id: "c2", twinID: "thermo_0001", patch: try setPatch(50))])
        #expect(again == [.duplicate], "a command seen in an earlier batch is a no-op too")
        #expect(try await graph.twin("thermo_0001").version == 3)
        #expect(try await graph.pendingEvents(after: 0, limit: 100).count == before + 2, "duplicates emit nothing")
    }

    /// A command may change its twin's model, as a PATCH may; the next command in the batch is judged
    /// by the new model. Operations other than ADT's are refused, command by command.
    @Test(arguments: TwinStoreKind.allCases) func aCommandMayChangeTheModel(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.make("building", store: store)
        let graph = fixture.graph
        try await graph.putTwin("hall", body: ["$metadata": ["$model": "dtmi:example:building:Space;1"], "name": "Hall"])
        let outcomes = try await graph.apply([
            TwinCommand(
                id: "remodel", twinID: "hall",
                patch: try JSONPatch(json: [["op": "replace", "path": "/$metadata/$model", "value": "dtmi:example:building:Room;1"]])),
            TwinCommand(id: "humidity", twinID: "hall", patch: try JSONPatch(json: [["op": "add", "path": "/Humidity", "value": 40]])),
            TwinCommand(
                id: "copy", twinID: "hall", patch: try JSONPatch(json: [["op": "copy", "from": "/Humidity", "path": "/Temperature"]])),
        ])
        guard case .applied = outcomes[0], case .applied = outcomes[1], case .rejected(let error) = outcomes[2] else {
            Issue.record("the model changes, then Humidity applies, and the copy is refused: \(outcomes)")
            return
        }
        #expect(error.code == "JsonPatchInvalid", "\(error)")
        let twin = try await graph.twin("hall")
        #expect(twin.model == "dtmi:example:building:Room;1")
        #expect(twin.document["Humidity"] == 40 && twin.document["Temperature"] == nil)
        let rooms = try await graph.query("SELECT T.$dtId FROM DIGITALTWINS T WHERE IS_OF_MODEL(T, 'dtmi:example:building:Room;1', exact)")
        #expect(rooms.value == [["$dtId": "hall"]])
    }

    /// A command whose id PostgreSQL cannot hold as text (a NUL character; SQLite holds it) fails
    /// alone: its batch's other commands apply, and the batch does not throw, so it is not retried forever.
    @Test(arguments: TwinStoreKind.allCases) func aCommandTheStoreCannotHoldDoesNotStopItsBatch(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let outcomes = try await fixture.graph.apply([
            TwinCommand(id: "before", twinID: "thermo_0001", patch: try setPatch(21)),
            TwinCommand(id: "nul\u{0}id", twinID: "thermo_0001", patch: try setPatch(22)),
            TwinCommand(id: "after", twinID: "thermo_0001", patch: try setPatch(23)),
        ])
        guard case .applied = outcomes[0], case .applied = outcomes[2] else {
            Issue.record("the other commands apply: \(outcomes)")
            return
        }
        let twin = try await fixture.graph.twin("thermo_0001")
        #expect(twin.document["Temperature"] == 23)
        switch (store, outcomes[1]) {
        case (.sqlite, .applied): #expect(twin.version == 4)
        case (.postgres, .rejected(let error)):
            #expect(twin.version == 3, "the refused command left nothing behind")
            #expect(error.code == "InvalidArgument" && error.message.contains("cannot hold"), "\(error)")
        default: Issue.record("unexpected outcome on \(store): \(outcomes[1])")
        }
    }

    /// A command for a twin whose ID holds a NUL character (no twin's can) is refused alone on every
    /// store: on PostgreSQL its twin was looked up with the batch's unknown twins, and the refused
    /// lookup failed the whole batch, retried for ever.
    @Test(arguments: TwinStoreKind.allCases) func aCommandForATwinIDWithANulCharacterIsRefusedAlone(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let outcomes = try await fixture.graph.apply([
            TwinCommand(id: "nul-twin", twinID: "thermo\u{0}0001", patch: try setPatch(22)),
            TwinCommand(id: "after", twinID: "thermo_0001", patch: try setPatch(23)),
        ])
        guard case .rejected(let error) = outcomes[0], case .applied = outcomes[1] else {
            Issue.record("the command for the impossible twin is refused, the other applies: \(outcomes)")
            return
        }
        #expect(error.status == 404, "no such twin, on either store: \(error)")
        #expect(try await fixture.graph.twin("thermo_0001").document["Temperature"] == 23)
    }

    /// A command id too long for a store's key index (PostgreSQL refuses B-tree entries over about
    /// 2.7 kB once compressed) is refused before it reaches the store: the batch's other commands apply, and the
    /// batch does not throw, so it is not retried forever. The same for a telemetry Message-Id.
    @Test(arguments: TwinStoreKind.allCases) func anIdempotencyIDTooLongIsRefusedAloneOnEveryStore(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let longest = String(repeating: "é", count: DigitalTwinGraph.maximumIdempotencyIDBytes / 2)
        // Random, so that PostgreSQL cannot compress it below its index's limit either.
        let tooLong = String((0..<6000).map { _ in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".randomElement()! })
        let outcomes = try await fixture.graph.apply([
            TwinCommand(id: "before", twinID: "thermo_0001", patch: try setPatch(21)),
            TwinCommand(id: tooLong, twinID: "thermo_0001", patch: try setPatch(22)),
            TwinCommand(id: longest, twinID: "thermo_0001", patch: try setPatch(23)),
        ])
        guard case .applied = outcomes[0], case .applied = outcomes[2], case .rejected(let error) = outcomes[1] else {
            Issue.record("the longest id allowed applies, the one too long alone is refused: \(outcomes)")
            return
        }
        #expect(error.status == 400 && error.message.contains("6000 bytes"), "\(error)")
        #expect(try await fixture.graph.twin("thermo_0001").document["Temperature"] == 23)

        await #expect(throws: ServiceError.self) {
            try await fixture.graph.publishTelemetry("thermo_0001", messageID: tooLong, payload: Array(#"{"t":1}"#.utf8))
        }
    }

    @Test(arguments: TwinStoreKind.allCases) func aCommandPreparedAfterADuplicateIsWorkedOutAgain(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let graph = fixture.graph
        _ = try await graph.apply([TwinCommand(id: "c1", twinID: "thermo_0001", patch: try setPatch(21))])
        // c2 is prepared against the twin as c1 would leave it; c1 turns out a duplicate, so c2
        // must be applied to the twin as it is.
        let outcomes = try await graph.apply([
            TwinCommand(id: "c1", twinID: "thermo_0001", patch: try setPatch(30)),
            TwinCommand(id: "c2", twinID: "thermo_0001", patch: try JSONPatch(json: [["op": "remove", "path": "/Temperature"]])),
        ])
        #expect(outcomes[0] == .duplicate)
        guard case .applied(let change?) = outcomes[1] else {
            Issue.record("c2 applies: \(outcomes)")
            return
        }
        #expect(change.twin.version == 3)
        let twin = try await graph.twin("thermo_0001")
        #expect(twin.version == 3)
        #expect(twin.document["Temperature"] == nil)
        #expect(twin.document["$etag"] == "W/\"3\"")
        let updates = try await graph.pendingEvents(after: 0, limit: 100).filter {
            $0.event.twinID == "thermo_0001" && $0.event.attributes.type == "Microsoft.DigitalTwins.Twin.Update"
        }
        #expect(updates.compactMap(\.event.attributes.sequence) == ["2", "3"])
    }

    @Test(arguments: TwinStoreKind.allCases) func commandsAndRESTPatchesOfOneTwinInterleavedAllApplyOnce(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let graph = fixture.graph
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                for batch in 0..<5 {
                    let commands = try (0..<40).map { index in
                        TwinCommand(id: "b\(batch)-\(index)", twinID: "thermo_0001", patch: try setPatch(Double(batch * 40 + index)))
                    }
                    let outcomes = try await graph.apply(commands)
                    #expect(outcomes.allSatisfy { if case .applied = $0 { true } else { false } })
                }
            }
            for value in 0..<100 {
                tasks.addTask {
                    try await graph.patchTwin("thermo_0001", patch: [["op": "replace", "path": "/Temperature", "value": .integer(Int64(value))]])
                }
            }
            try await tasks.waitForAll()
        }
        #expect(try await graph.twin("thermo_0001").version == 301, "every patch applied to the twin as it then was: none lost")
        let sequences = try await graph.pendingEvents(after: 0, limit: 1000).filter { $0.event.twinID == "thermo_0001" }
            .compactMap { $0.event.attributes.sequence.flatMap(Int.init) }
        #expect(sequences == Array(1...301))
    }

    @Test(arguments: TwinStoreKind.allCases) func refusesWhatRESTRefusesAndKeepsNothingOfIt(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let graph = fixture.graph
        let before = try await graph.pendingEvents(after: 0, limit: 100).count
        let outcomes = try await graph.apply([
            TwinCommand(id: "bad-twin", twinID: "nope", patch: try setPatch(1)),
            TwinCommand(
                id: "bad-value", twinID: "thermo_0001", patch: try JSONPatch(json: [["op": "replace", "path": "/Temperature", "value": "hot"]])),
            TwinCommand(id: "bad-path", twinID: "thermo_0001", patch: try JSONPatch(json: [["op": "replace", "path": "/$dtId", "value": "x"]])),
            TwinCommand(id: "bad-component", twinID: "thermo_0001", patch: try setPatch(5), telemetry: ["x": 1], component: "nope"),
            TwinCommand(id: "good", twinID: "thermo_0001", patch: try setPatch(23)),
        ])
        let codes = outcomes.map { outcome -> String in
            if case .rejected(let error) = outcome { return error.code }
            return "applied"
        }
        #expect(codes == ["DigitalTwinNotFound", "ValidationFailed", "JsonPatchInvalid", "ComponentNotFound", "applied"])
        let twin = try await graph.twin("thermo_0001")
        #expect(twin.document["Temperature"] == 23, "the refused command with a valid patch changed nothing")
        #expect(twin.version == 2)
        #expect(try await graph.pendingEvents(after: 0, limit: 100).count == before + 1)
        let retried = try await graph.apply([TwinCommand(id: "bad-twin", twinID: "thermo_0001", patch: try setPatch(24))])
        guard case .applied? = retried.first else {
            Issue.record("a refused command's id is not used up: \(retried)")
            return
        }
    }

    @Test func aRefusedCommandAmidAppliedOnesLeavesThemAppliedOnce() async throws {
        let fixture = try await GraphFixture.seed()
        let graph = fixture.graph
        let before = try await graph.pendingEvents(after: 0, limit: 100).count
        // The refused command has already changed the twin when its telemetry is refused: the
        // batch is rolled back and runs again, and must not apply the commands around it twice.
        let outcomes = try await graph.apply([
            TwinCommand(id: "first", twinID: "thermo_0001", patch: try setPatch(21)),
            TwinCommand(id: "refused", twinID: "thermo_0001", patch: try setPatch(5), telemetry: ["x": 1], component: "nope"),
            TwinCommand(id: "last", twinID: "thermo_0001", patch: try setPatch(22)),
        ])
        guard case .applied(let first?) = outcomes[0], case .rejected = outcomes[1], case .applied(let last?) = outcomes[2] else {
            Issue.record("first and last apply, the middle one is refused: \(outcomes)")
            return
        }
        #expect((first.twin.version, last.twin.version) == (2, 3))
        let twin = try await graph.twin("thermo_0001")
        #expect(twin.version == 3)
        #expect(twin.document["Temperature"] == 22)
        let events = Array(try await graph.pendingEvents(after: 0, limit: 100).dropFirst(before))
        #expect(events.map(\.event.twinID) == ["thermo_0001", "thermo_0001"])
        #expect(events.compactMap(\.event.attributes.sequence) == ["2", "3"])
        #expect(Set(events.map(\.position)).count == 2)
        let stored = try await DigitalTwinGraph(store: SQLiteTwinStore(path: fixture.directory.appending(path: "twins.sqlite").path))
        #expect(
            try await stored.pendingEvents(after: 0, limit: 100).map(\.event.attributes.id)
                == (try await graph.pendingEvents(after: 0, limit: 100).map(\.event.attributes.id)),
            "the store's outbox holds what the relay was handed, nothing of the rolled-back run"
        )
        let again = try await graph.apply([
            TwinCommand(id: "first", twinID: "thermo_0001", patch: try setPatch(30)),
            TwinCommand(id: "refused", twinID: "thermo_0001", patch: try setPatch(31)),
        ])
        #expect(again[0] == .duplicate, "the applied command's id was kept")
        #expect(again[1] != .duplicate, "the refused command's id was not")
    }

    @Test(arguments: TwinStoreKind.allCases) func aRelationshipEventBetweenTwoBatchesKeepsTheSourcesSequenceGapless(store: TwinStoreKind) async throws
    {
        let fixture = try await GraphFixture.seed(store: store)
        let graph = fixture.graph
        let setRoom = { (value: Int64) in try JSONPatch(json: [["op": "add", "path": "/currentTemp", "value": .integer(value)]]) }
        _ = try await graph.apply([TwinCommand(id: "c1", twinID: "Room_01", patch: try setRoom(20))])
        // Room_01's relationship event takes the twin's next sequence without a write of its document:
        // the next command, prepared against Room_01 as last known, must not take that sequence again.
        try await graph.putTwin("thermo_0002", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"]])
        try await graph.putRelationship("Room_01", "r2", body: ["$targetId": "thermo_0002", "$relationshipName": "rel_has_thermostat"])
        _ = try await graph.apply([TwinCommand(id: "c2", twinID: "Room_01", patch: try setRoom(21))])
        let room = try await graph.pendingEvents(after: 0, limit: 100).filter { $0.event.twinID == "Room_01" }
        #expect(
            room.map(\.event.attributes.type) == [
                "Microsoft.DigitalTwins.Twin.Create", "Microsoft.DigitalTwins.Relationship.Create", "Microsoft.DigitalTwins.Twin.Update",
                "Microsoft.DigitalTwins.Relationship.Create", "Microsoft.DigitalTwins.Twin.Update",
            ])
        #expect(room.compactMap(\.event.attributes.sequence) == ["1", "2", "3", "4", "5"])
        #expect(try await graph.twin("Room_01").document["currentTemp"] == 21)
    }

    @Test(arguments: TwinStoreKind.allCases) func telemetryInACommandFollowsItsPatch(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let graph = fixture.graph
        let before = try await graph.pendingEvents(after: 0, limit: 100).count
        _ = try await graph.apply([
            TwinCommand(
                id: "c1", twinID: "thermo_0001", patch: try setPatch(21.5), telemetry: ["Temperature": 21.5], sourceTime: "2026-11-26T16:00:00Z",
                traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            )
        ])
        let events = Array(try await graph.pendingEvents(after: 0, limit: 100).dropFirst(before))
        #expect(events.map(\.event.attributes.type) == ["Microsoft.DigitalTwins.Twin.Update", "microsoft.iot.telemetry"])
        let telemetry = events[1].event
        #expect(telemetry.attributes.id == "c1", "the command id is the telemetry's Message-Id")
        #expect(telemetry.attributes.dataSchema == Self.thermostat)
        #expect(telemetry.attributes.extensions["telemetrysourcetime"] == "2026-11-26T16:00:00Z")
        #expect(try JSONValue.parse(telemetry.data) == ["Temperature": 21.5])
        #expect(events.allSatisfy { $0.event.attributes.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" })
        let twin = try await graph.twin("thermo_0001")
        #expect(twin.document["$metadata"]?["Temperature"]?["sourceTime"] == "2026-11-26T16:00:00Z")
    }

    /// A propagated command's hop travels on its notification (the `twinflowhop` extension), so the
    /// next propagation step counts from it; a device's command (hop 0) adds nothing to ADT's shape.
    @Test(arguments: TwinStoreKind.allCases) func aCommandsHopTravelsOnItsNotification(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let graph = fixture.graph
        let before = try await graph.pendingEvents(after: 0, limit: 1000).count
        _ = try await graph.apply([
            TwinCommand(id: "device", twinID: "thermo_0001", patch: try setPatch(20)),
            TwinCommand(id: "propagated", twinID: "thermo_0001", patch: try setPatch(21), causationID: "e1", hop: 3),
        ])
        let events = Array(try await graph.pendingEvents(after: 0, limit: 100).dropFirst(before)).map(\.event)
        #expect(events.map { $0.attributes.extensions[TwinNotification.hopExtension] } == [nil, "3"])
        let notification = try TwinNotification(
            decoding: CloudEvent(attributes: events[1].attributes, data: try JSONValue.parse(events[1].data)).json.serialized())
        #expect(notification.hop == 3)
        #expect(notification.twinID == "thermo_0001")
        #expect(notification.value(at: JSONPointer(tokens: ["Temperature"])) == .set(21))
    }

    @Test(arguments: TwinStoreKind.allCases) func idempotencyKeysAreForgottenByAge(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let graph = fixture.graph
        _ = try await graph.apply([TwinCommand(id: "old", twinID: "thermo_0001", patch: try setPatch(1))])
        try await Task.sleep(for: .milliseconds(20))
        let between = Timestamp.now()
        try await Task.sleep(for: .milliseconds(20))
        _ = try await graph.apply([TwinCommand(id: "new", twinID: "thermo_0001", patch: try setPatch(2))])

        try await graph.forgetIdempotencyKeys(recordedBefore: "2000-01-01T00:00:00.000Z")
        #expect(try await graph.apply([TwinCommand(id: "old", twinID: "thermo_0001", patch: try setPatch(3))]) == [.duplicate])

        try await graph.forgetIdempotencyKeys(recordedBefore: between)
        let replayed = try await graph.apply([
            TwinCommand(id: "old", twinID: "thermo_0001", patch: try setPatch(4)),
            TwinCommand(id: "new", twinID: "thermo_0001", patch: try setPatch(5)),
        ])
        guard case .applied? = replayed.first else {
            Issue.record("a forgotten id applies again: \(replayed)")
            return
        }
        #expect(replayed.last == .duplicate, "a key recorded after the cutoff is kept")
    }
}
