import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import TwinGraph
import TwinService
import TwinflowCodec
import TwinflowPostgres
import TwinflowTestSupport

/// The twin service's REST API through HTTP, with ADT's paths, shapes, headers and errors.
@Suite struct RESTTests {
    func withService(_ test: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let fixture = try await GraphFixture.make()
        let router = Router()
        TwinServiceRoutes.add(to: router, graph: fixture.graph)
        try await Application(router: router).test(.router) { client in try await test(client) }
    }

    func json(_ response: TestResponse) throws -> JSONValue {
        try JSONValue.parse(response.body.getBytes(at: response.body.readerIndex, length: response.body.readableBytes) ?? [])
    }

    func body(_ value: JSONValue) -> ByteBuffer { ByteBuffer(bytes: value.serialized()) }

    /// The answer to a request the store cannot take now: 503 `ServiceUnavailable`, with `Retry-After`.
    func expectStoreUnavailable(_ response: TestResponse, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(response.status == .serviceUnavailable, sourceLocation: sourceLocation)
        #expect(try json(response)["error"]?["code"] == "ServiceUnavailable", sourceLocation: sourceLocation)
        #expect(response.headers[.retryAfter] == "1", sourceLocation: sourceLocation)
    }

    /// A psql session that takes a lock with `locking`, keeps it for `seconds` and commits; returned
    /// once the session is sleeping with the lock held.
    func holdLock(_ locking: String, for seconds: Int, in cluster: PostgresCluster, at url: String) async throws -> Process {
        let holder = try cluster.startSQL("BEGIN; \(locking); SELECT pg_sleep(\(seconds)); COMMIT;", at: url)
        let held = await eventually(timeout: .seconds(10)) {
            (try? cluster.query(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(\(seconds))%' AND state = 'active' AND pid <> pg_backend_pid()",
                at: url)) == "1"
        }
        try #require(held, "the other session holds its lock")
        return holder
    }

    /// A PostgreSQL store whose writes give up on a lock after 300 ms.
    func storeWithShortLockTimeout(_ url: String, _ label: String) async throws -> PostgresTwinStore {
        try await PostgresTwinStore(url: DatabaseURL(url), connections: 2, lockTimeout: .milliseconds(300), logger: Logger(label: label))
    }

    /// A write the store cannot take now (another connection holds SQLite's write lock past the
    /// busy timeout) is answered 503 `ServiceUnavailable` with `Retry-After`, not 500; reads go on,
    /// and the same write succeeds once the lock is gone.
    @Test func aLockedStoreAnswers503WithRetryAfter() async throws {
        let directory = ScratchDirectory.make("twingraph")
        let path = directory.appending(path: "twins.sqlite").path
        let graph = try await DigitalTwinGraph(store: SQLiteTwinStore(path: path, busyTimeout: .milliseconds(300)))
        _ = try await graph.addModels(Fixtures.upload("seed"))
        let router = Router()
        TwinServiceRoutes.add(to: router, graph: graph)
        let thermostat: JSONValue = ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20]
        var lockHolding = Configuration()
        lockHolding.allowsUnsafeTransactions = true
        let holder = try DatabaseQueue(path: path, configuration: lockHolding)
        try await Application(router: router).test(.router) { client in
            let first = try await client.execute(uri: "/digitaltwins/thermo_0001", method: .put, body: body(thermostat))
            #expect(first.status == .ok)
            try await holder.writeWithoutTransaction { db in try db.execute(sql: "BEGIN IMMEDIATE") }
            let locked = try await client.execute(uri: "/digitaltwins/thermo_0002", method: .put, body: body(thermostat))
            try expectStoreUnavailable(locked)
            let read = try await client.execute(uri: "/digitaltwins/thermo_0001", method: .get)
            #expect(read.status == .ok, "reads do not wait for the write lock")
            try await holder.writeWithoutTransaction { db in try db.execute(sql: "ROLLBACK") }
            let again = try await client.execute(uri: "/digitaltwins/thermo_0002", method: .put, body: body(thermostat))
            #expect(again.status == .ok)
        }
    }

    /// On PostgreSQL, a write that waits past the lock timeout for a row another session holds is
    /// answered 503 `ServiceUnavailable` with `Retry-After`; reads go on, and the write succeeds
    /// once the row is free.
    @Test func aLockedRowOnPostgreSQLAnswers503WithRetryAfter() async throws {
        let cluster = try PostgresCluster.shared()
        let url = try cluster.makeDatabase("twins")
        let store = try await storeWithShortLockTimeout(url, "locked-row-test")
        let graph = try await DigitalTwinGraph(store: store)
        _ = try await graph.addModels(Fixtures.upload("seed"))
        let router = Router()
        TwinServiceRoutes.add(to: router, graph: graph)
        let thermostat: JSONValue = ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20]
        let patch: JSONValue = [["op": "replace", "path": "/Temperature", "value": 21]]
        try await Application(router: router).test(.router) { client in
            let put = try await client.execute(uri: "/digitaltwins/thermo_0001", method: .put, body: body(thermostat))
            #expect(put.status == .ok)
            let holder = try await holdLock("SELECT 1 FROM twin_twins WHERE id = 'thermo_0001' FOR UPDATE", for: 3, in: cluster, at: url)
            let locked = try await client.execute(uri: "/digitaltwins/thermo_0001", method: .patch, body: body(patch))
            try expectStoreUnavailable(locked)
            let read = try await client.execute(uri: "/digitaltwins/thermo_0001", method: .get)
            #expect(read.status == .ok, "reads do not wait for the row's lock")
            #expect(try json(read)["Temperature"] == 20)
            holder.waitUntilExit()
            #expect(holder.terminationStatus == 0)
            let again = try await client.execute(uri: "/digitaltwins/thermo_0001", method: .patch, body: body(patch))
            #expect(again.status == .noContent)
        }
        store.close()
    }

    /// The pool's sessions wait no longer for a lock than the writer's: a model upload while another
    /// session holds the catalog's row answers 503 after the lock timeout, not once that session
    /// ends; the same upload succeeds afterwards.
    @Test func aModelUploadWhileTheCatalogIsLockedOnPostgreSQLAnswers503() async throws {
        let cluster = try PostgresCluster.shared()
        let url = try cluster.makeDatabase("twins")
        let store = try await storeWithShortLockTimeout(url, "locked-catalog-test")
        let graph = try await DigitalTwinGraph(store: store)
        let router = Router()
        TwinServiceRoutes.add(to: router, graph: graph)
        let models = ByteBuffer(bytes: try Fixtures.upload("seed").serialized())
        try await Application(router: router).test(.router) { client in
            let holder = try await holdLock("SELECT 1 FROM twin_catalog WHERE id = 1 FOR UPDATE", for: 4, in: cluster, at: url)
            let started = ContinuousClock.now
            let locked = try await client.execute(uri: "/models", method: .post, body: models)
            try expectStoreUnavailable(locked)
            #expect(ContinuousClock.now - started < .seconds(3), "answered before the other session let go")
            holder.waitUntilExit()
            #expect(holder.terminationStatus == 0)
            let again = try await client.execute(uri: "/models", method: .post, body: models)
            #expect(again.status == .created)
        }
        store.close()
    }

    /// Instances starting at once take turns to migrate the schema, however long a turn takes: a
    /// store opened while another session holds the migration's lock for longer than the lock
    /// timeout waits for it and opens, rather than failing as a write waiting that long does.
    @Test func aStoreStartingWhileAnotherMigratesWaitsItsTurn() async throws {
        let cluster = try PostgresCluster.shared()
        let url = try cluster.makeDatabase("twins")
        let holder = try cluster.startSQL(
            "BEGIN; SELECT pg_advisory_xact_lock(hashtext('twin-service')::bigint); SELECT pg_sleep(2); COMMIT;", at: url)
        let held = await eventually(timeout: .seconds(10)) {
            (try? cluster.query(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
                at: url)) == "1"
        }
        try #require(held, "the other session holds the migration's lock")
        let started = ContinuousClock.now
        let store = try await storeWithShortLockTimeout(url, "migration-turn-test")
        #expect(ContinuousClock.now - started > .seconds(1), "it waited for the other session's turn")
        _ = try await DigitalTwinGraph(store: store).addModels(Fixtures.upload("seed"))
        store.close()
        holder.waitUntilExit()
        #expect(holder.terminationStatus == 0)
    }

    /// Reads by an ID no twin can have (a NUL character, which PostgreSQL refuses in text) find
    /// nothing on PostgreSQL as on SQLite: 404, or an empty answer, never 500.
    @Test(arguments: TwinStoreKind.allCases) func readsByAnIDWithANulCharacterFindNothing(store: TwinStoreKind) async throws {
        let fixture = try await GraphFixture.make("seed", store: store)
        let router = Router()
        TwinServiceRoutes.add(to: router, graph: fixture.graph)
        try await Application(router: router).test(.router) { client in
            for uri in ["/digitaltwins/a%00b", "/digitaltwins/a%00b/relationships/r1", "/digitaltwins/a%00b/incomingrelationships"] {
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == .notFound, "\(uri): \(response.status)")
            }
            let listed = try await client.execute(uri: "/digitaltwins/a%00b/relationships", method: .get)
            #expect(listed.status == .notFound || listed.status == .ok, "\(listed.status)")
            let query = try await client.execute(
                uri: "/query", method: .post, body: body(["query": "SELECT * FROM DIGITALTWINS T WHERE T.$dtId = 'a\u{0}b'"]))
            let found = try json(query)["value"]?.arrayValue
            #expect(query.status == .ok && found?.isEmpty == true, "\(query.status)")
        }
    }

    @Test func percentEncodedIDsAreDecoded() async throws {
        let seed = try Fixtures.upload("seed")
        try await withService { client in
            _ = try await client.execute(uri: "/models", method: .post, body: body(seed))
            let thermostat: JSONValue = ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20]
            let put = try await client.execute(uri: "/digitaltwins/thermo%20one", method: .put, body: body(thermostat))
            #expect(put.status == .ok)
            #expect(try json(put)["$dtId"] == "thermo one")
            let plain = try await client.execute(uri: "/digitaltwins/thermo_one", method: .get)
            #expect(plain.status == .notFound)
            let get = try await client.execute(uri: "/digitaltwins/thermo%20one", method: .get)
            #expect(try json(get)["$dtId"] == "thermo one")
        }
    }

    @Test func seedScenarioThroughHTTP() async throws {
        let seed = try Fixtures.upload("seed")
        try await withService { client in
            let upload = try await client.execute(uri: "/models?api-version=2023-10-31", method: .post, body: body(seed))
            #expect(upload.status == .created)
            #expect(try json(upload).arrayValue?.count == 2)
            #expect(try json(upload).arrayValue?.first?["decommissioned"] == false)

            let models = try await client.execute(uri: "/models?includeModelDefinition=true", method: .get)
            #expect(try json(models)["value"]?.arrayValue?.count == 2)
            let model = try await client.execute(uri: "/models/dtmi:contosocom:DigitalTwins:Room;1", method: .get)
            #expect(try json(model)["id"] == "dtmi:contosocom:DigitalTwins:Room;1")

            let thermostat: JSONValue = ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20]
            let put = try await client.execute(uri: "/digitaltwins/thermo_0001", method: .put, body: body(thermostat))
            #expect(put.status == .ok)
            #expect(put.headers[.eTag] == "W/\"1\"")
            _ = try await client.execute(
                uri: "/digitaltwins/Room_01", method: .put, body: body(["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Room;1"]]))
            let relationship = try await client.execute(
                uri: "/digitaltwins/Room_01/relationships/r1", method: .put,
                body: body(["$targetId": "thermo_0001", "$relationshipName": "rel_has_thermostat"])
            )
            #expect(relationship.status == .ok)
            #expect(try json(relationship)["$relationshipId"] == "r1")
            #expect(try json(relationship)["$targetId"] == "thermo_0001")

            var headers = HTTPFields()
            headers[.ifMatch] = "W/\"1\""
            let patch = try await client.execute(
                uri: "/digitaltwins/thermo_0001", method: .patch, headers: headers,
                body: body([["op": "replace", "path": "/Temperature", "value": 21.5]])
            )
            #expect(patch.status == .noContent)
            #expect(patch.headers[.eTag] == "W/\"2\"")
            let stale = try await client.execute(
                uri: "/digitaltwins/thermo_0001", method: .patch, headers: headers,
                body: body([["op": "replace", "path": "/Temperature", "value": 1]])
            )
            #expect(stale.status == .preconditionFailed)
            #expect(try json(stale)["error"]?["code"] == "PreconditionFailed")

            let get = try await client.execute(uri: "/digitaltwins/thermo_0001", method: .get)
            #expect(try json(get)["Temperature"] == 21.5)
            let incoming = try await client.execute(uri: "/digitaltwins/thermo_0001/incomingrelationships", method: .get)
            #expect(try json(incoming)["value"]?.arrayValue?.first?["$sourceId"] == "Room_01")
            let outgoing = try await client.execute(uri: "/digitaltwins/Room_01/relationships?relationshipName=rel_has_thermostat", method: .get)
            #expect(try json(outgoing)["value"]?.arrayValue?.count == 1)

            let refused = try await client.execute(uri: "/digitaltwins/thermo_0001", method: .delete)
            #expect(refused.status == .badRequest)
            #expect(try json(refused)["error"]?["code"] == "RelationshipsNotDeleted")
            let cascade = try await client.execute(uri: "/digitaltwins/thermo_0001?cascade=true", method: .delete)
            #expect(cascade.status == .noContent)
            let gone = try await client.execute(uri: "/digitaltwins/thermo_0001", method: .get)
            #expect(gone.status == .notFound)
            #expect(try json(gone)["error"]?["code"] == "DigitalTwinNotFound")
        }
    }

    @Test func badRequestsGetADTErrors() async throws {
        try await withService { client in
            let notJSON = try await client.execute(uri: "/models", method: .post, body: ByteBuffer(string: "{nope"))
            #expect(notJSON.status == .badRequest)
            #expect(try json(notJSON)["error"]?["code"] == "InvalidArgument")
            let badModel = try await client.execute(uri: "/models", method: .post, body: body([["@id": "nope", "@type": "Interface"]]))
            #expect(badModel.status == .badRequest)
            #expect(try json(badModel)["error"]?["code"] == "DTDLParserError")
            let missingModel = try await client.execute(uri: "/models/dtmi:x:Missing;1", method: .get)
            #expect(missingModel.status == .notFound)
            #expect(try json(missingModel)["error"]?["code"] == "ModelNotFound")
            let twin = try await client.execute(uri: "/digitaltwins/t1", method: .put, body: body(["$metadata": ["$model": "dtmi:x:Missing;1"]]))
            #expect(twin.status == .notFound)
            #expect(try json(twin)["error"]?["code"] == "ModelNotFound")
            let missingRelationship = try await client.execute(uri: "/digitaltwins/t1/relationships/r1", method: .get)
            #expect(missingRelationship.status == .notFound)
            #expect(try json(missingRelationship)["error"]?["code"] == "DigitalTwinNotFound")
        }
    }
}
