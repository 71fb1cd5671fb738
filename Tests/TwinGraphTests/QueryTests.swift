import Foundation
import Testing
import TwinGraph
import TwinflowCodec

/// ADT's query language, first cut, over the building fixture.
@Suite struct QueryTests {
    static func building() async throws -> DigitalTwinGraph {
        let fixture = try await GraphFixture.make("building")
        let graph = fixture.graph
        try await graph.putTwin(
            "floor-1", body: ["$metadata": ["$model": "dtmi:example:building:Floor;1"], "name": "Floor 1", "level": 1, "Temperature": 20])
        for room in 1...3 {
            try await graph.putTwin(
                "room-\(room)",
                body: [
                    "$metadata": ["$model": "dtmi:example:building:Room;1"], "name": .string("Room \(room)"),
                    "Temperature": .integer(Int64(18 + room)),
                ])
            try await graph.putRelationship("floor-1", "f-r\(room)", body: ["$targetId": .string("room-\(room)"), "$relationshipName": "contains"])
            try await graph.putTwin(
                "thermostat-\(room)",
                body: ["$metadata": ["$model": "dtmi:example:building:Thermostat;1"], "Temperature": .integer(Int64(18 + room))])
            try await graph.putRelationship(
                "room-\(room)", "r-t",
                body: ["$targetId": .string("thermostat-\(room)"), "$relationshipName": "contains", "installedOn": .string("2026-01-0\(room)")])
        }
        return graph
    }

    func ids(_ page: QueryPage) -> [String] { page.value.compactMap { $0["$dtId"]?.stringValue }.sorted() }

    @Test func filtersAndFunctions() async throws {
        let graph = try await Self.building()
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS")).count == 7)
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE T.Temperature > 20")) == ["room-3", "thermostat-3"])
        #expect(
            ids(try await graph.query("SELECT * FROM DIGITALTWINS WHERE Temperature >= 21 AND IS_OF_MODEL('dtmi:example:building:Room;1')")) == [
                "room-3"
            ])
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE IS_OF_MODEL(T, 'dtmi:example:building:Space;1')")).count == 4)
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE IS_OF_MODEL(T, 'dtmi:example:building:Space;1', exact)")).isEmpty)
        #expect(
            ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE STARTS_WITH(T.$dtId, 'thermo') AND NOT (T.Temperature = 19)")) == [
                "thermostat-2", "thermostat-3",
            ])
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE ENDS_WITH(T.name, '2') OR T.level = 1")) == ["floor-1", "room-2"])
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE IS_DEFINED(T.level)")) == ["floor-1"])
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE T.$dtId IN ['room-1', 'room-9', 'floor-1']")) == ["floor-1", "room-1"])
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE T.$metadata.$model = 'dtmi:example:building:Floor;1'")) == ["floor-1"])
    }

    /// ADT's spellings of the string functions, `ARRAY_CONTAINS` over an array's top level, and
    /// numbers with a signed exponent.
    @Test func adtFunctionNamesArraysAndExponents() async throws {
        let graph = try await Self.building()
        _ = try await graph.addModels([
            [
                "@id": "dtmi:example:Tagged;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3",
                "contents": [["@type": "Property", "name": "floors", "schema": ["@type": "Array", "elementSchema": "integer"]]],
            ]
        ])
        try await graph.putTwin("tagged-1", body: ["$metadata": ["$model": "dtmi:example:Tagged;1"], "floors": [1, 2, 3]])
        try await graph.putTwin("tagged-2", body: ["$metadata": ["$model": "dtmi:example:Tagged;1"], "floors": [4]])
        #expect(
            ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE STARTSWITH(T.$dtId, 'thermo')")) == [
                "thermostat-1", "thermostat-2", "thermostat-3",
            ])
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE ENDSWITH(T.name, '2')")) == ["room-2"])
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE ARRAY_CONTAINS(T.floors, 2)")) == ["tagged-1"])
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE ARRAY_CONTAINS(T.floors, 4.0)")) == ["tagged-2"])
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE ARRAY_CONTAINS(T.name, 'R')")).isEmpty)
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE T.Temperature > 2.05e+1")) == ["room-3", "thermostat-3"])
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE T.Temperature < 200E-1")) == ["room-1", "thermostat-1"])
    }

    @Test func projectionsTopAndCount() async throws {
        let graph = try await Self.building()
        let count = try await graph.query("SELECT COUNT() FROM DIGITALTWINS T WHERE IS_OF_MODEL(T, 'dtmi:example:building:Thermostat;1')")
        #expect(count.value == [["COUNT": 3]])
        #expect(try await graph.query("SELECT TOP(2) * FROM DIGITALTWINS").value.count == 2)
        let projected = try await graph.query("SELECT T.name, T.level AS floorLevel FROM DIGITALTWINS T WHERE T.$dtId = 'floor-1'")
        #expect(projected.value == [["name": "Floor 1", "floorLevel": 1]])
        let alias = try await graph.query("SELECT T FROM DIGITALTWINS T WHERE T.$dtId = 'room-1'")
        #expect(alias.value.first?["T"]?["$dtId"] == "room-1")
    }

    @Test func oneHopJoin() async throws {
        let graph = try await Self.building()
        let page = try await graph.query(
            "SELECT Room, Thermostat FROM DIGITALTWINS Room JOIN Thermostat RELATED Room.contains R WHERE Room.$dtId = 'room-2' AND R.installedOn = '2026-01-02'"
        )
        #expect(page.value.count == 1)
        #expect(page.value.first?["Thermostat"]?["$dtId"] == "thermostat-2")
        #expect(page.value.first?["Room"]?["$dtId"] == "room-2")
        let rooms = try await graph.query(
            "SELECT Child FROM DIGITALTWINS Floor JOIN Child RELATED Floor.contains WHERE Floor.$dtId = 'floor-1' AND Child.Temperature < 21")
        #expect(rooms.value.compactMap { $0["Child"]?["$dtId"]?.stringValue }.sorted() == ["room-1", "room-2"])
    }

    @Test func seesWritesAtOnceAndPagesWithContinuationTokens() async throws {
        let graph = try await Self.building()
        try await graph.patchTwin("room-1", patch: [["op": "replace", "path": "/Temperature", "value": 30]])
        #expect(ids(try await graph.query("SELECT * FROM DIGITALTWINS T WHERE T.Temperature = 30")) == ["room-1"])
        var seen: [String] = []
        var page = try await graph.query("SELECT * FROM DIGITALTWINS", pageSize: 3)
        seen += ids(page)
        while let token = page.continuationToken {
            page = try await graph.query(nil, continuationToken: token, pageSize: 3)
            seen += ids(page)
        }
        #expect(seen.sorted() == ["floor-1", "room-1", "room-2", "room-3", "thermostat-1", "thermostat-2", "thermostat-3"])
    }

    /// A page examines at most so many twins and JOIN rows: a query matching little of the graph
    /// answers in short pages with continuation tokens, and the pages together hold every row once.
    @Test func pagesStopAtTheirWorkBudgetAndTogetherHoldEveryRow() async throws {
        let graph = try await Self.building()
        var pages = 0
        var seen: [String] = []
        var page = try await graph.query("SELECT * FROM DIGITALTWINS T WHERE T.Temperature > 20", workPerPage: 2)
        while true {
            pages += 1
            seen += ids(page)
            guard let token = page.continuationToken else { break }
            page = try await graph.query(nil, continuationToken: token, workPerPage: 2)
        }
        #expect(seen.sorted() == ["room-3", "thermostat-3"])
        #expect(pages == 4, "7 twins, 2 examined a page: \(pages) pages")
        var rows: [String] = []
        page = try await graph.query("SELECT R FROM DIGITALTWINS T JOIN R RELATED T.contains", workPerPage: 3)
        while true {
            rows += page.value.compactMap { $0["R"]?["$dtId"]?.stringValue }
            guard let token = page.continuationToken else { break }
            page = try await graph.query(nil, continuationToken: token, workPerPage: 3)
        }
        #expect(rows.sorted() == ["room-1", "room-2", "room-3", "thermostat-1", "thermostat-2", "thermostat-3"])
    }

    /// A JOIN page resumes after its last relationship: one deleted between pages does not make the
    /// next page skip a row.
    @Test func joinPagesResumeAfterTheirLastRelationship() async throws {
        let graph = try await Self.building()
        let text = "SELECT R FROM DIGITALTWINS T JOIN R RELATED T.contains WHERE T.$dtId = 'floor-1'"
        let first = try await graph.query(text, pageSize: 1)
        #expect(first.value.compactMap { $0["R"]?["$dtId"]?.stringValue } == ["room-1"])
        try await graph.deleteRelationship("floor-1", "f-r1")
        let token = try #require(first.continuationToken)
        let second = try await graph.query(nil, continuationToken: token, pageSize: 1)
        #expect(second.value.compactMap { $0["R"]?["$dtId"]?.stringValue } == ["room-2"])
    }

    @Test(arguments: [
        "SELECT FROM DIGITALTWINS", "SELECT * FROM TWINS", "SELECT * FROM DIGITALTWINS T WHERE", "SELECT * FROM DIGITALTWINS T WHERE X.a = 1",
        "SELECT * FROM DIGITALTWINS T WHERE T.a = 'open", "SELECT * FROM DIGITALTWINS T WHERE NO_SUCH(T.a)",
        // Refused before any twin is read, whether or not a twin reaches the function.
        "SELECT * FROM DIGITALTWINS T WHERE T.$dtId = 'nobody' AND NO_SUCH(T.a)", "SELECT * FROM DIGITALTWINS T WHERE STARTSWITH(T.$dtId)",
        "SELECT * FROM DIGITALTWINS T WHERE T.$dtId = 'nobody' AND IS_DEFINED(T.a, T.b)",
        "SELECT R FROM DIGITALTWINS T JOIN R RELATED T.contains WHERE T.$dtId = 'floor-1' AND IS_OF_MODEL('dtmi:example:building:Room;1')",
        // Two projections of one name would lose one value.
        "SELECT T.name, R.name FROM DIGITALTWINS T JOIN R RELATED T.contains WHERE T.$dtId = 'floor-1'",
    ])
    func badQueriesAreSqlQueryErrors(_ text: String) async throws {
        let graph = try await Self.building()
        await expectServiceError("SqlQueryError", status: 400) { _ = try await graph.query(text) }
    }

    /// A query is at most ADT's 8,000 characters, with NOT and parentheses nested at most 32 deep
    /// (100,000 parentheses overflowed the stack before); within the limits it answers.
    @Test func queriesAreBoundedInLengthAndNesting() async throws {
        let graph = try await Self.building()
        let select = "SELECT * FROM DIGITALTWINS T WHERE "
        for text in [
            select + String(repeating: "(", count: 100_000) + "true" + String(repeating: ")", count: 100_000),
            select + String(repeating: "NOT ", count: 33) + "T.$dtId = 'room-1'",
            select + String(repeating: "(", count: 33) + "T.$dtId = 'room-1'" + String(repeating: ")", count: 33),
        ] {
            await expectServiceError("SqlQueryError", status: 400) { _ = try await graph.query(text) }
        }
        #expect(ids(try await graph.query(select + String(repeating: "NOT ", count: 32) + "T.$dtId = 'room-1'")) == ["room-1"])
        #expect(
            ids(try await graph.query(select + String(repeating: "(", count: 32) + "T.$dtId = 'room-1'" + String(repeating: ")", count: 32)))
                == ["room-1"])
        let flat = select + Array(repeating: "T.$dtId = 'room-1'", count: 300).joined(separator: " OR ")
        #expect(flat.count <= 8_000)
        #expect(ids(try await graph.query(flat)) == ["room-1"])
    }

    /// A continuation token is the client's to write: counts out of range are refused, not
    /// computed with (a returned count of Int64.min trapped the service before).
    @Test func aContinuationTokenWithCountsOutOfRangeIsRefused() async throws {
        let graph = try await Self.building()
        for (relationship, returned) in [("r", Int64.min), ("r", Int64.max), (nil, -1), (nil, 0)] as [(String?, Int64)] {
            let state: JSONValue = [
                "query": "SELECT TOP(1) * FROM DIGITALTWINS", "after": "", "relationship": relationship.map(JSONValue.string) ?? 5,
                "returned": .integer(returned),
            ]
            let token = Data(state.serialized()).base64EncodedString()
            await expectServiceError("BadRequest", status: 400) { _ = try await graph.query(nil, continuationToken: token) }
        }
    }
}
