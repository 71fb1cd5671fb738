import Foundation
import Logging
import Testing
import TwinGraph
import TwinflowCodec
import TwinflowPostgres
import TwinflowTestSupport

/// Model writes one at a time: concurrent uploads all land, an upload racing a delete never leaves
/// a dangling `extends` (in one process, and in two over one PostgreSQL database), and a store
/// holding one anyway still opens.
@Suite struct ModelWriteTests {
    static func interface(_ id: String, extends: String? = nil) -> JSONValue {
        var members: [String: JSONValue] = [
            "@id": .string(id), "@type": "Interface", "@context": "dtmi:dtdl:context;3",
            "contents": [["@type": "Property", "name": "level", "schema": "integer"]],
        ]
        if let extends { members["extends"] = .string(extends) }
        return .object(members)
    }

    static func reopened(_ fixture: GraphFixture) async throws -> DigitalTwinGraph {
        try await DigitalTwinGraph(store: SQLiteTwinStore(path: fixture.directory.appending(path: "twins.sqlite").path))
    }

    static func ids(_ graph: DigitalTwinGraph) throws -> Set<String> {
        Set(try graph.listModels(dependenciesFor: [], includeDefinition: false).compactMap { $0["id"]?.stringValue })
    }

    @Test func concurrentUploadsAllLand() async throws {
        let fixture = try await GraphFixture.make()
        let graph = fixture.graph
        let bases = (0..<48).map { "dtmi:example:Base\($0);1" }
        let children = (0..<48).map { "dtmi:example:Child\($0);1" }
        try await withThrowingTaskGroup { group in
            for id in bases { group.addTask { _ = try await graph.addModels([Self.interface(id)]) } }
            try await group.waitForAll()
        }
        try await withThrowingTaskGroup { group in
            for (child, base) in zip(children, bases) { group.addTask { _ = try await graph.addModels([Self.interface(child, extends: base)]) } }
            try await group.waitForAll()
        }
        let ids = bases + children
        #expect(try Self.ids(graph) == Set(ids))
        #expect(try Self.ids(try await Self.reopened(fixture)) == Set(ids))
        #expect(try await Self.reopened(fixture).brokenModels.isEmpty)
        try await graph.putTwin("c47", body: ["$metadata": ["$model": "dtmi:example:Child47;1"], "level": 3])
    }

    /// Each round uploads a model extending a base while the base is deleted: exactly one of the two
    /// wins, and the store never holds the child without its base.
    @Test func anUploadRacingADeleteLeavesNoDanglingExtends() async throws {
        let fixture = try await GraphFixture.make()
        let graph = fixture.graph
        let rounds = 40
        for round in 0..<rounds {
            _ = try await graph.addModels([Self.interface("dtmi:example:Base\(round);1")])
        }
        let outcomes = try await withThrowingTaskGroup(of: (round: Int, uploaded: Bool, deleted: Bool).self) { group in
            for round in 0..<rounds {
                group.addTask {
                    async let upload: Bool = Self.succeeds {
                        _ = try await graph.addModels([Self.interface("dtmi:example:Child\(round);1", extends: "dtmi:example:Base\(round);1")])
                    }
                    async let delete: Bool = Self.succeeds { try await graph.deleteModel("dtmi:example:Base\(round);1") }
                    return (round, try await upload, try await delete)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.count == rounds)
        for outcome in outcomes {
            #expect(outcome.uploaded != outcome.deleted, "round \(outcome.round): exactly one of upload and delete succeeds")
        }
        let stored = try Self.ids(try await Self.reopened(fixture))
        for outcome in outcomes {
            let child = "dtmi:example:Child\(outcome.round);1"
            let base = "dtmi:example:Base\(outcome.round);1"
            #expect(stored.contains(child) == outcome.uploaded)
            #expect(stored.contains(base) == !outcome.deleted)
            #expect(!stored.contains(child) || stored.contains(base), "\(child) without its base")
        }
        #expect(try await Self.reopened(fixture).brokenModels.isEmpty)
        #expect(try Self.ids(graph) == stored)
    }

    /// The same race between two processes' graphs over one PostgreSQL database: each checks a
    /// change against the models as it last read them, and the store takes the change only while
    /// no other process changed them since, so exactly one of the two wins each round.
    @Test func anUploadRacingADeleteInAnotherInstanceLeavesNoDanglingExtends() async throws {
        let url = try DatabaseURL(PostgresCluster.shared().makeDatabase("twins"))
        func open() async throws -> DigitalTwinGraph {
            try await DigitalTwinGraph(store: try await PostgresTwinStore(url: url, connections: 2, logger: Logger(label: "model-race")))
        }
        let (uploading, deleting) = (try await open(), try await open())
        let rounds = 30
        for round in 0..<rounds {
            _ = try await uploading.addModels([Self.interface("dtmi:example:Base\(round);1")])
        }
        try await deleting.refreshCatalog()
        var outcomes: [(round: Int, uploaded: Bool, deleted: Bool)] = []
        for round in 0..<rounds {
            // Each graph refreshes before a change, as the REST API does before each request.
            try await uploading.refreshCatalog()
            try await deleting.refreshCatalog()
            async let upload: Bool = Self.succeeds {
                _ = try await uploading.addModels([Self.interface("dtmi:example:Child\(round);1", extends: "dtmi:example:Base\(round);1")])
            }
            async let delete: Bool = Self.succeeds { try await deleting.deleteModel("dtmi:example:Base\(round);1") }
            outcomes.append((round, try await upload, try await delete))
        }
        let stored = try Self.ids(try await open())
        for outcome in outcomes {
            let child = "dtmi:example:Child\(outcome.round);1"
            let base = "dtmi:example:Base\(outcome.round);1"
            #expect(outcome.uploaded != outcome.deleted, "round \(outcome.round): exactly one of upload and delete succeeds")
            #expect(stored.contains(child) == outcome.uploaded)
            #expect(stored.contains(base) == !outcome.deleted)
            #expect(!stored.contains(child) || stored.contains(base), "\(child) without its base")
        }
        #expect(try await open().brokenModels.isEmpty)
        try await uploading.refreshCatalog()
        try await deleting.refreshCatalog()
        #expect(try Self.ids(uploading) == stored)
        #expect(try Self.ids(deleting) == stored)
    }

    /// A model change that finds the catalog moved on by another instance each time it checks again
    /// gives up with ADT's `503 ServiceUnavailable` and stores nothing; once the other instance is
    /// done, the same upload succeeds.
    @Test func aModelChangeThatKeepsFindingTheCatalogMovedIsRefusedWith503() async throws {
        let cluster = try PostgresCluster.shared()
        let database = try cluster.makeDatabase("twins")
        let url = try DatabaseURL(database)
        let graph = try await DigitalTwinGraph(store: try await PostgresTwinStore(url: url, connections: 2, logger: Logger(label: "model-race")))
        let watcher = try await PostgresTwinStore(url: url, connections: 1, logger: Logger(label: "model-race"))
        let model = Self.interface("dtmi:example:Late;1")
        let start = try #require(try await watcher.catalogVersion())
        // Another instance's model changes, as fast as PostgreSQL commits them, until the upload has
        // given up (at most a minute: a loaded machine may take its time getting there).
        _ = try cluster.query("CREATE TABLE mover_stop (done int)", at: database)
        let mover = try cluster.startSQL(
            """
            DO $$ DECLARE stop timestamptz := clock_timestamp() + interval '60 seconds';
            BEGIN WHILE clock_timestamp() < stop AND NOT EXISTS (SELECT 1 FROM mover_stop) LOOP
            UPDATE twin_catalog SET version = version + 1 WHERE id = 1; COMMIT; END LOOP; END $$
            """, at: database)
        #expect(await eventually(timeout: .seconds(10)) { (try? await watcher.catalogVersion()).map { $0 > start } ?? false })
        let before = try #require(try await watcher.catalogVersion())
        await #expect {
            _ = try await graph.addModels([model])
        } throws: { error in
            (error as? ServiceError).map { $0.code == "ServiceUnavailable" && $0.status == 503 } ?? false
        }
        let after = try #require(try await watcher.catalogVersion())
        #expect(after - before >= Int64(DigitalTwinGraph.catalogAttempts), "the catalog moved on during each attempt")
        _ = try cluster.query("INSERT INTO mover_stop VALUES (1)", at: database)
        mover.waitUntilExit()
        #expect(mover.terminationStatus == 0)
        #expect(try !Self.ids(graph).contains("dtmi:example:Late;1"))
        _ = try await graph.addModels([model])
        #expect(try Self.ids(try await DigitalTwinGraph(store: watcher)).contains("dtmi:example:Late;1"))
    }

    /// True when `body` succeeds; false when it fails with the refusal a lost race gets.
    static func succeeds(_ body: () async throws -> Void) async throws -> Bool {
        do {
            try await body()
            return true
        } catch let error as ServiceError where ["DTDLParserError", "ModelReferencesNotDeleted"].contains(error.code) {
            return false
        }
    }

    /// A store with a model whose base is missing (and one extending that) opens: the two are
    /// broken, listed and deletable; the rest works.
    @Test func aStoreWithADanglingExtendsStillOpens() async throws {
        let fixture = try await GraphFixture.make("seed")
        let store = try SQLiteTwinStore(path: fixture.directory.appending(path: "twins.sqlite").path)
        _ = try await store.addModels(
            [
                StoredModel(
                    id: "dtmi:example:Orphan;1", definition: Self.interface("dtmi:example:Orphan;1", extends: "dtmi:example:Gone;1"),
                    uploadTime: "2024-01-01T00:00:00Z", decommissioned: false),
                StoredModel(
                    id: "dtmi:example:Grandchild;1", definition: Self.interface("dtmi:example:Grandchild;1", extends: "dtmi:example:Orphan;1"),
                    uploadTime: "2024-01-01T00:00:00Z", decommissioned: false),
                StoredModel(id: "dtmi:example:Unparsable;1", definition: ["@id": "nope"], uploadTime: "2024-01-01T00:00:00Z", decommissioned: false),
            ], ifCatalogAt: nil)
        let graph = try await DigitalTwinGraph(store: store)

        let broken = graph.brokenModels
        let byModel = Dictionary(uniqueKeysWithValues: broken.map { ($0.model ?? "", $0) })
        #expect(Set(byModel.keys) == ["dtmi:example:Orphan;1", "dtmi:example:Grandchild;1", "dtmi:example:Unparsable;1"])
        #expect(byModel["dtmi:example:Orphan;1"]?.kind == .missingReference)
        #expect(byModel["dtmi:example:Orphan;1"]?.message.contains("'dtmi:example:Gone;1'") == true)
        #expect(byModel["dtmi:example:Grandchild;1"]?.message.contains("'dtmi:example:Orphan;1'") == true)
        #expect(byModel["dtmi:example:Unparsable;1"]?.kind == .invalidModel)
        #expect(try Self.ids(graph) == Set(byModel.keys).union(["dtmi:contosocom:DigitalTwins:Room;1", "dtmi:contosocom:DigitalTwins:Thermostat;1"]))
        #expect(graph.modelData("dtmi:example:Orphan;1", includeDefinition: false)?["id"] == "dtmi:example:Orphan;1")

        await expectServiceError("ModelNotFound", status: 404) {
            try await graph.putTwin("o1", body: ["$metadata": ["$model": "dtmi:example:Orphan;1"]])
        }
        await expectServiceError("ModelAlreadyExists", status: 409) {
            _ = try await graph.addModels([Self.interface("dtmi:example:Orphan;1")])
        }
        try await graph.putTwin("thermo", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 1])

        try await graph.deleteModel("dtmi:example:Grandchild;1")
        try await graph.deleteModel("dtmi:example:Orphan;1")
        try await graph.deleteModel("dtmi:example:Unparsable;1")
        #expect(graph.brokenModels.isEmpty)
        _ = try await graph.addModels([Self.interface("dtmi:example:Orphan;1")])
        try await graph.putTwin("o1", body: ["$metadata": ["$model": "dtmi:example:Orphan;1"], "level": 1])
        #expect(try await Self.reopened(fixture).brokenModels.isEmpty)
    }
}
