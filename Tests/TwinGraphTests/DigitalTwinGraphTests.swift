import Foundation
import GRDB
import Logging
import Testing
import TwinGraph
import TwinflowCodec
import TwinflowPostgres
import TwinflowTestSupport

/// The stores the graph's suites run on: one suite, two stores.
enum TwinStoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// A new, empty store of this kind (SQLite's file in `directory`).
    func makeStore(in directory: URL) async throws -> any TwinStore {
        switch self {
        case .sqlite: try SQLiteTwinStore(path: directory.appending(path: "twins.sqlite").path)
        case .postgres:
            try await PostgresTwinStore(
                url: DatabaseURL(try PostgresCluster.shared().makeDatabase("twins")), connections: 4, logger: Logger(label: "twin-store-test"))
        }
    }
}

/// The graph over a real store: SQLite in a temporary folder, or a new database on the test
/// PostgreSQL cluster.
struct GraphFixture {
    let graph: DigitalTwinGraph
    let directory: URL

    static func make(_ sets: String..., store kind: TwinStoreKind = .sqlite) async throws -> GraphFixture {
        let directory = ScratchDirectory.make("twingraph")
        let graph = try await DigitalTwinGraph(store: try await kind.makeStore(in: directory))
        for set in sets { _ = try await graph.addModels(Fixtures.upload(set)) }
        return GraphFixture(graph: graph, directory: directory)
    }

    /// The seed scenario: Room_01 → thermo_0001 by rel_has_thermostat.
    static func seed(store kind: TwinStoreKind = .sqlite) async throws -> GraphFixture {
        let fixture = try await make("seed", store: kind)
        try await fixture.graph.putTwin(
            "thermo_0001", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20])
        try await fixture.graph.putTwin("Room_01", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Room;1"]])
        try await fixture.graph.putRelationship("Room_01", "r1", body: ["$targetId": "thermo_0001", "$relationshipName": "rel_has_thermostat"])
        return fixture
    }
}

func expectServiceError(_ code: String, status: Int, _ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
    do {
        try await body()
        Issue.record("expected \(code)", sourceLocation: sourceLocation)
    } catch let error as ServiceError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(error.status == status, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct TwinTests {
    @Test(arguments: TwinStoreKind.allCases) func createdTwinHasADTShape(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let twin = try await fixture.graph.twin("thermo_0001")
        let document = twin.document
        #expect(document["$dtId"] == "thermo_0001")
        #expect(document["$etag"] == .string("W/\"1\""))
        #expect(document["Temperature"] == 20)
        #expect(document["$metadata"]?["$model"] == "dtmi:contosocom:DigitalTwins:Thermostat;1")
        #expect(document["$metadata"]?["$lastUpdateTime"]?.stringValue != nil)
        #expect(document["$metadata"]?["Temperature"]?["lastUpdateTime"]?.stringValue != nil)
    }

    @Test(arguments: TwinStoreKind.allCases) func createErrors(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let graph = fixture.graph
        await expectServiceError("PreconditionFailed", status: 412) {
            try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"]], ifNoneMatch: true)
        }
        await expectServiceError("ValidationFailed", status: 400) {
            try await graph.putTwin("t2", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": "warm"])
        }
        await expectServiceError("ValidationFailed", status: 400) {
            try await graph.putTwin("t2", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Humidity": 3])
        }
        await expectServiceError("ModelNotFound", status: 404) {
            try await graph.putTwin("t2", body: ["$metadata": ["$model": "dtmi:x:Nothing;1"]])
        }
        await expectServiceError("ValidationFailed", status: 400) { try await graph.putTwin("t2", body: ["Temperature": 1]) }
        await expectServiceError("InvalidArgument", status: 400) { try await graph.putTwin("t2", body: [1, 2]) }
        _ = try await graph.addModels(Fixtures.upload("building"))
        await expectServiceError("PayloadTooLarge", status: 413) {
            try await graph.putTwin(
                "t2", body: ["$metadata": ["$model": "dtmi:example:building:Space;1"], "name": .string(String(repeating: "x", count: 40_000))])
        }
        await expectServiceError("DigitalTwinNotFound", status: 404) { _ = try await graph.twin("nobody") }
    }

    @Test(arguments: TwinStoreKind.allCases) func patchAppliesValidatesAndChecksETag(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let graph = fixture.graph
        let change = try await graph.patchTwin("Room_01", patch: [["op": "replace", "path": "/currentTemp", "value": 21.5]], ifMatch: "W/\"1\"")
        #expect(change.patch?.json == [["op": "add", "path": "/currentTemp", "value": 21.5]], "replace of an unset property applies as add")
        let room = try await graph.twin("Room_01")
        #expect(room.document["currentTemp"] == 21.5)
        #expect(room.document["$etag"] == .string("W/\"2\""))
        #expect(room.document["$metadata"]?["currentTemp"]?["lastUpdateTime"] != nil)

        await expectServiceError("PreconditionFailed", status: 412) {
            try await graph.patchTwin("Room_01", patch: [["op": "replace", "path": "/currentTemp", "value": 1]], ifMatch: "W/\"1\"")
        }
        await expectServiceError("PreconditionFailed", status: 412) {
            try await graph.patchTwin("Room_01", patch: [["op": "replace", "path": "/currentTemp", "value": 1]], ifMatch: #"W/"1", W/"3""#)
        }
        // If-Match lists ETags: one of them must be the current one.
        try await graph.patchTwin("Room_01", patch: [["op": "replace", "path": "/currentTemp", "value": 21.5]], ifMatch: #"W/"1", W/"2""#)
        await expectServiceError("ValidationFailed", status: 400) {
            try await graph.patchTwin("Room_01", patch: [["op": "replace", "path": "/currentTemp", "value": "hot"]])
        }
        await expectServiceError("JsonPatchInvalid", status: 400) {
            try await graph.patchTwin("Room_01", patch: [["op": "remove", "path": "/nothing"]])
        }
        await expectServiceError("ValidationFailed", status: 400) {
            try await graph.patchTwin("Room_01", patch: [["op": "replace", "path": "/$metadata/$model", "value": "x"]])
        }
        let refused: [JSONValue] = [
            ["op": "add"],
            [["op": "remove", "path": "/$metadata/$model"]],
            [["op": "replace", "path": "/$metadata/$model", "value": 1]],
            [["op": "replace", "path": "/$metadata/$lastUpdateTime", "value": "2026-01-01T00:00:00Z"]],
            [["op": "replace", "path": "/$etag", "value": "W/\"9\""]],
            [["op": "copy", "from": "/currentTemp", "path": "/targetTemp"]],
            [["op": "move", "from": "/currentTemp", "path": "/targetTemp"]],
            [["op": "test", "path": "/currentTemp", "value": 21.5]],
        ]
        for patch in refused {
            await expectServiceError("JsonPatchInvalid", status: 400) { try await graph.patchTwin("Room_01", patch: patch) }
        }
        #expect(try await graph.twin("Room_01").document["currentTemp"] == 21.5, "failed patches changed nothing")

        let removed = try await graph.patchTwin("Room_01", patch: [["op": "remove", "path": "/currentTemp"]])
        #expect(removed.twin.document["currentTemp"] == nil)
        #expect(removed.twin.document["$metadata"]?["currentTemp"] == nil)
    }

    @Test(arguments: TwinStoreKind.allCases) func aPatchOfTheModelChangesItWhenTheTwinFitsTheNewOne(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.make("building", store: store)
        let graph = fixture.graph
        let space = "dtmi:example:building:Space;1"
        let room = "dtmi:example:building:Room;1"
        try await graph.putTwin("lobby", body: ["$metadata": ["$model": .string(space)], "name": "Lobby"])
        try await graph.putTwin("spare", body: ["$metadata": ["$model": .string(space)]])

        let change = try await graph.patchTwin(
            "lobby",
            patch: [["op": "replace", "path": "/$metadata/$model", "value": .string(room)], ["op": "add", "path": "/occupied", "value": true]])
        #expect(change.twin.model == room)
        #expect(
            change.patch?.json == [
                ["op": "replace", "path": "/$metadata/$model", "value": .string(room)], ["op": "add", "path": "/occupied", "value": true],
            ])
        let stored = try await graph.twin("lobby")
        #expect(stored.model == room)
        #expect(stored.document["$metadata"]?["$model"] == .string(room))
        #expect(stored.document["$metadata"]?["occupied"]?["lastUpdateTime"] != nil)
        #expect(stored.document["$metadata"]?["$metadata"] == nil, "the model's change is not a property")
        #expect(stored.document["name"] == "Lobby")
        let found = try await graph.query("SELECT T.$dtId FROM DIGITALTWINS T WHERE IS_OF_MODEL(T, '\(room)', exact)")
        #expect(found.value == [["$dtId": "lobby"]])

        // The twin must fit the new model: a Thermostat has no name or occupied.
        await expectServiceError("ValidationFailed", status: 400) {
            try await graph.patchTwin(
                "lobby", patch: [["op": "replace", "path": "/$metadata/$model", "value": "dtmi:example:building:Thermostat;1"]])
        }
        await expectServiceError("ValidationFailed", status: 400) {
            try await graph.patchTwin("lobby", patch: [["op": "replace", "path": "/$metadata/$model", "value": "dtmi:example:building:Nothing;1"]])
        }
        try await graph.updateModel(space, patch: [["op": "replace", "path": "/decommissioned", "value": true]])
        await expectServiceError("ValidationFailed", status: 400) {
            try await graph.patchTwin("lobby", patch: [["op": "replace", "path": "/$metadata/$model", "value": .string(space)]])
        }
        #expect(try await graph.twin("lobby").version == stored.version, "refused changes of the model changed nothing")

        // A twin whose model was deleted can be given another one (and cannot be patched otherwise).
        _ = try await graph.addModels([
            [
                "@id": "dtmi:example:Legacy;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3",
                "contents": [["@type": "Property", "name": "name", "schema": "string"]],
            ]
        ])
        try await graph.putTwin("legacy", body: ["$metadata": ["$model": "dtmi:example:Legacy;1"], "name": "Old"])
        try await graph.deleteModel("dtmi:example:Legacy;1")
        await expectServiceError("ModelNotFound", status: 404) {
            try await graph.patchTwin("legacy", patch: [["op": "replace", "path": "/name", "value": "New"]])
        }
        let adopted = try await graph.patchTwin("legacy", patch: [["op": "replace", "path": "/$metadata/$model", "value": .string(room)]])
        #expect(adopted.twin.model == room && adopted.twin.document["name"] == "Old")

        // A model with components gives the twin its components, empty.
        let thermostat = try await graph.patchTwin(
            "spare", patch: [["op": "add", "path": "/$metadata/$model", "value": "dtmi:example:building:Thermostat;1"]])
        #expect(thermostat.twin.document["settings"]?["$metadata"] != nil)
        await expectServiceError("JsonPatchInvalid", status: 400) {
            try await graph.patchTwin(
                "spare", patch: [["op": "replace", "path": "/$metadata/$model", "value": .string(space)]], componentPath: "settings")
        }
    }

    @Test(arguments: TwinStoreKind.allCases) func concurrentPatchesOfOneTwinAllApply(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let graph = fixture.graph
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for value in 0..<50 {
                tasks.addTask {
                    try await graph.patchTwin("thermo_0001", patch: [["op": "replace", "path": "/Temperature", "value": .integer(Int64(value))]])
                }
            }
            try await tasks.waitForAll()
        }
        #expect(try await graph.twin("thermo_0001").version == 51)
    }

    @Test(arguments: TwinStoreKind.allCases) func componentsAreReadAndPatched(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.make("building", store: store)
        let graph = fixture.graph
        let created = try await graph.putTwin("thermostat-1", body: ["$metadata": ["$model": "dtmi:example:building:Thermostat;1"], "mode": "heat"])
        #expect(created.twin.document["settings"]?["$metadata"] != nil, "a component left out starts empty")
        try await graph.patchTwin(
            "thermostat-1", patch: [["op": "add", "path": "/setpoint", "value": 21]], componentPath: "settings", sourceTime: "2026-11-26T17:00:00Z")
        let component = try await graph.component("thermostat-1", path: "settings")
        #expect(component["setpoint"] == 21)
        #expect(component["$metadata"]?["setpoint"]?["sourceTime"] == "2026-11-26T17:00:00Z")
        await expectServiceError("ComponentNotFound", status: 404) { _ = try await graph.component("thermostat-1", path: "nothing") }
        await expectServiceError("ValidationFailed", status: 400) {
            try await graph.patchTwin("thermostat-1", patch: [["op": "add", "path": "/setpoint", "value": "warm"]], componentPath: "settings")
        }
    }

    @Test(arguments: TwinStoreKind.allCases) func deleteIsRefusedWhileRelatedUnlessCascading(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let graph = fixture.graph
        await expectServiceError("RelationshipsNotDeleted", status: 400) { try await graph.deleteTwin("thermo_0001") }
        await expectServiceError("PreconditionFailed", status: 412) { try await graph.deleteTwin("thermo_0001", ifMatch: "W/\"9\"", cascade: true) }
        try await graph.deleteTwin("thermo_0001", cascade: true)
        await expectServiceError("DigitalTwinNotFound", status: 404) { _ = try await graph.twin("thermo_0001") }
        #expect(try await graph.relationships(of: "Room_01", name: nil).isEmpty)
        let recreated = try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"]])
        #expect(recreated.twin.version == 3, "versions keep counting across a delete")
    }
}

@Suite struct RelationshipTests {
    @Test(arguments: TwinStoreKind.allCases) func createListIncomingAndPatch(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.seed(store: store)
        let graph = fixture.graph
        let relationship = try await graph.relationship("Room_01", "r1")
        #expect(relationship.document["$sourceId"] == "Room_01")
        #expect(relationship.document["$targetId"] == "thermo_0001")
        #expect(relationship.document["$relationshipName"] == "rel_has_thermostat")
        #expect(relationship.document["$etag"] == .string("W/\"1\""))
        #expect(try await graph.relationships(of: "Room_01", name: "rel_has_thermostat").map(\.id) == ["r1"])
        #expect(try await graph.relationships(of: "Room_01", name: "other").isEmpty)
        #expect(
            try await graph.incomingRelationships(of: "thermo_0001") == [
                [
                    "$relationshipId": "r1", "$sourceId": "Room_01", "$relationshipName": "rel_has_thermostat",
                    "$relationshipLink": "/digitaltwins/Room_01/relationships/r1",
                ]
            ]
        )
        try await graph.deleteRelationship("Room_01", "r1", ifMatch: "W/\"1\"")
        await expectServiceError("RelationshipNotFound", status: 404) { _ = try await graph.relationship("Room_01", "r1") }
    }

    @Test(arguments: TwinStoreKind.allCases) func relationshipPropertiesAreValidated(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.make("building", store: store)
        let graph = fixture.graph
        try await graph.putTwin("room-1", body: ["$metadata": ["$model": "dtmi:example:building:Room;1"]])
        try await graph.putTwin("thermostat-1", body: ["$metadata": ["$model": "dtmi:example:building:Thermostat;1"]])
        try await graph.putTwin("floor-1", body: ["$metadata": ["$model": "dtmi:example:building:Floor;1"]])
        try await graph.putRelationship(
            "room-1", "c1", body: ["$targetId": "thermostat-1", "$relationshipName": "contains", "installedOn": "2026-01-15"])
        let patched = try await graph.patchRelationship("room-1", "c1", patch: [["op": "replace", "path": "/installedOn", "value": "2026-02-01"]])
        #expect(patched.relationship.document["installedOn"] == "2026-02-01")
        #expect(patched.sourceModel == "dtmi:example:building:Room;1")
        await expectServiceError("ValidationFailed", status: 400) {
            try await graph.patchRelationship("room-1", "c1", patch: [["op": "replace", "path": "/installedOn", "value": 5]])
        }
        await expectServiceError("JsonPatchInvalid", status: 400) {
            try await graph.patchRelationship("room-1", "c1", patch: [["op": "move", "from": "/$targetId", "path": "/installedOn"]])
        }
        #expect(try await graph.relationship("room-1", "c1").document["$targetId"] == "thermostat-1", "a refused patch changed nothing")
        await expectServiceError("InvalidRelationship", status: 400) {
            try await graph.putRelationship("floor-1", "c1", body: ["$targetId": "thermostat-1", "$relationshipName": "contains"])
        }
        await expectServiceError("InvalidRelationship", status: 400) {
            try await graph.putRelationship("room-1", "x", body: ["$targetId": "thermostat-1", "$relationshipName": "owns"])
        }
        await expectServiceError("InvalidRelationship", status: 400) {
            try await graph.putRelationship("room-1", "self", body: ["$targetId": "room-1", "$relationshipName": "contains"])
        }
        await expectServiceError("TargetTwinNotFound", status: 404) {
            try await graph.putRelationship("room-1", "x", body: ["$targetId": "ghost", "$relationshipName": "contains"])
        }
        await expectServiceError("PreconditionFailed", status: 412) {
            try await graph.putRelationship("room-1", "c1", body: ["$targetId": "thermostat-1", "$relationshipName": "contains"], ifNoneMatch: true)
        }
    }
}

@Suite struct ModelServiceTests {
    @Test(arguments: TwinStoreKind.allCases) func modelsListDecommissionAndDelete(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.make("seed", store: store)
        let graph = fixture.graph
        let all = try graph.listModels(dependenciesFor: [], includeDefinition: false)
        #expect(all.count == 2)
        #expect(all[0]["displayName"] == ["en": "Thermostat"] || all[0]["displayName"] == ["en": "Room"])
        let roomWithDependencies = try graph.listModels(dependenciesFor: ["dtmi:contosocom:DigitalTwins:Room;1"], includeDefinition: true)
        #expect(roomWithDependencies.count == 2)
        #expect(roomWithDependencies.allSatisfy { $0["model"] != nil })
        try await graph.updateModel("dtmi:contosocom:DigitalTwins:Room;1", patch: [["op": "replace", "path": "/decommissioned", "value": true]])
        #expect(graph.modelData("dtmi:contosocom:DigitalTwins:Room;1", includeDefinition: false)?["decommissioned"] == true)
        await expectServiceError("ModelDecommissioned", status: 400) {
            try await graph.putTwin("r", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Room;1"]])
        }
        await expectServiceError("ModelReferencesNotDeleted", status: 409) {
            try await graph.deleteModel("dtmi:contosocom:DigitalTwins:Thermostat;1")
        }
        await expectServiceError("ModelAlreadyExists", status: 409) { _ = try await graph.addModels(Fixtures.upload("seed")) }
        try await graph.deleteModel("dtmi:contosocom:DigitalTwins:Room;1")
        await expectServiceError("ModelNotFound", status: 404) { try await graph.deleteModel("dtmi:contosocom:DigitalTwins:Room;1") }
    }

    @Test func aStoreOfTheFirstSchemaIsMigrated() async throws {
        let fixture = try await GraphFixture.seed()
        let path = fixture.directory.appending(path: "twins.sqlite").path
        let pending = try await fixture.graph.pendingEvents(after: 0, limit: 100)
        // The first schema had no twin revisions, and an outbox row per event.
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(sql: "ALTER TABLE twins DROP COLUMN revision")
            try Self.restoreRowPerEventOutbox(db, pending, lastPositionGiven: pending.last?.position ?? 0)
            try db.execute(sql: "PRAGMA user_version = 1")
        }
        try queue.close()
        let reopened = try await DigitalTwinGraph(store: SQLiteTwinStore(path: path))
        #expect(try await reopened.twin("thermo_0001").document["Temperature"] == 20)
        let migrated = try await reopened.pendingEvents(after: 0, limit: 100)
        #expect(migrated.map(\.position) == pending.map(\.position))
        #expect(migrated.map(\.event.attributes) == pending.map(\.event.attributes))
        #expect(migrated.map(\.event.data) == pending.map(\.event.data))
        let change = try await reopened.patchTwin("thermo_0001", patch: [["op": "replace", "path": "/Temperature", "value": 22]])
        #expect(change.twin.version == 2)
        #expect(try await reopened.twin("thermo_0001").document["Temperature"] == 22)
        #expect(
            try await reopened.pendingEvents(after: 0, limit: 100).map(\.position) == pending.map(\.position) + [pending.count + 1].map(Int64.init))
        #expect(try await DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") } == 3)
    }

    @Test func positionsGoOnAfterAMigratedOutboxThatWasDelivered() async throws {
        let fixture = try await GraphFixture.seed()
        let path = fixture.directory.appending(path: "twins.sqlite").path
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try Self.restoreRowPerEventOutbox(db, [], lastPositionGiven: 41)
            try db.execute(sql: "PRAGMA user_version = 2")
        }
        try queue.close()
        let reopened = try await DigitalTwinGraph(store: SQLiteTwinStore(path: path))
        #expect(try await reopened.pendingEvents(after: 0, limit: 100).isEmpty)
        try await reopened.patchTwin("thermo_0001", patch: [["op": "replace", "path": "/Temperature", "value": 22]])
        #expect(try await reopened.pendingEvents(after: 0, limit: 100).map(\.position) == [42])
    }

    @Test func aMigratedOutboxKeepsPositionsAcrossAGap() async throws {
        let fixture = try await GraphFixture.seed()
        let path = fixture.directory.appending(path: "twins.sqlite").path
        var pending = try await fixture.graph.pendingEvents(after: 0, limit: 100)
        pending[pending.count - 1].position = 7
        let queue = try DatabaseQueue(path: path)
        try await queue.write { [pending] db in
            try Self.restoreRowPerEventOutbox(db, pending, lastPositionGiven: 7)
            try db.execute(sql: "PRAGMA user_version = 2")
        }
        try queue.close()
        let reopened = try await DigitalTwinGraph(store: SQLiteTwinStore(path: path))
        let migrated = try await reopened.pendingEvents(after: 0, limit: 100)
        #expect(migrated.map(\.position) == pending.map(\.position))
        #expect(migrated.map(\.event.attributes.id) == pending.map(\.event.attributes.id))
        try await reopened.patchTwin("thermo_0001", patch: [["op": "replace", "path": "/Temperature", "value": 22]])
        #expect(try await reopened.pendingEvents(after: 6, limit: 100).map(\.position) == [7, 8])
    }

    /// The outbox of schemas 1 and 2, a row per event, holding `entries`.
    static func restoreRowPerEventOutbox(_ db: Database, _ entries: [OutboxEntry], lastPositionGiven: Int64) throws {
        try db.execute(sql: "DROP TABLE outbox_batches")
        try db.execute(sql: "DROP TABLE outbox_delivered")
        try db.execute(
            sql:
                "CREATE TABLE outbox (position INTEGER PRIMARY KEY AUTOINCREMENT, twin_id TEXT NOT NULL, attributes TEXT NOT NULL, data BLOB NOT NULL)"
        )
        for entry in entries {
            try db.execute(
                sql: "INSERT INTO outbox (position, twin_id, attributes, data) VALUES (?, ?, ?, ?)",
                arguments: [
                    entry.position, entry.event.twinID, String(decoding: entry.event.serializedAttributes, as: UTF8.self), Data(entry.event.data),
                ]
            )
        }
        try db.execute(sql: "DELETE FROM sqlite_sequence WHERE name = 'outbox'")
        try db.execute(sql: "INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", arguments: [lastPositionGiven])
    }

    @Test func modelsSurviveARestart() async throws {
        let fixture = try await GraphFixture.seed()
        let reopened = try await DigitalTwinGraph(store: SQLiteTwinStore(path: fixture.directory.appending(path: "twins.sqlite").path))
        #expect(try reopened.listModels(dependenciesFor: [], includeDefinition: false).count == 2)
        #expect(try await reopened.twin("thermo_0001").document["Temperature"] == 20)
    }
}
