import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TwinGraph
import TwinService
import TwinflowCodec
import TwinflowKafka
import TwinflowTestSupport

@Suite struct EventFilterTests {
    static let update = PendingEvent(
        twinID: "thermo_0001",
        attributes: CloudEventAttributes(
            id: "e1", type: "Microsoft.DigitalTwins.Twin.Update", source: "twinflow.local", subject: "thermo_0001",
            time: "2026-11-26T17:00:00.123Z", sequence: "7"
        ),
        data: literal(["modelId": "dtmi:contosocom:DigitalTwins:Thermostat;1", "patch": [["op": "replace", "path": "/Temperature", "value": 21.5]]])
            .serialized()
    )
    static let create = PendingEvent(
        twinID: "room",
        attributes: CloudEventAttributes(id: "e2", type: "Microsoft.DigitalTwins.Twin.Create", source: "twinflow.local", subject: "room"),
        data: literal([
            "$dtId": "room", "$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Room;1"], "currentTemp": 19, "settings": ["mode": "heat"],
        ])
        .serialized()
    )

    @Test(arguments: [
        ("true", true, true),
        ("false", false, false),
        ("type = 'Microsoft.DigitalTwins.Twin.Update'", true, false),
        ("type != 'Microsoft.DigitalTwins.Twin.Update'", false, true),
        ("type = 'Microsoft.DigitalTwins.Twin.Create' OR type = 'microsoft.iot.telemetry'", false, true),
        ("source = 'twinflow.local' AND subject = 'room'", false, true),
        ("NOT (subject = 'room')", true, false),
        ("STARTS_WITH(type, 'Microsoft.DigitalTwins.Twin.')", true, true),
        ("ENDS_WITH(subject, '0001')", true, false),
        ("CONTAINS(subject, 'mo_0')", true, false),
        ("$body.modelId = 'dtmi:contosocom:DigitalTwins:Thermostat;1'", true, false),
        ("$body.$metadata.$model = 'dtmi:contosocom:DigitalTwins:Room;1'", false, true),
        ("$body.currentTemp > 18.5", false, true),
        ("$body.currentTemp >= 19 AND $body.currentTemp <= 19", false, true),
        ("$body.currentTemp < 19", false, false),
        ("$body.settings.mode = 'heat'", false, true),
        ("sequence = '7'", true, false),
        ("IS_DEFINED($body.patch)", true, false),
        ("TOUCHES('/Temperature')", true, false),
        ("TOUCHES('/Humidity')", false, false),
        ("type = 'Microsoft.DigitalTwins.Twin.Update' AND TOUCHES('/Temperature')", true, false),
    ])
    func selects(_ filter: String, _ matchesUpdate: Bool, _ matchesCreate: Bool) throws {
        let parsed = try EventFilter(parsing: filter)
        #expect(parsed.matches(Self.update) == matchesUpdate, "\(filter) on the update")
        #expect(parsed.matches(Self.create) == matchesCreate, "\(filter) on the create")
    }

    @Test func touchesCoversPathsUnderThePointer() throws {
        let event = PendingEvent(
            twinID: "t", attributes: CloudEventAttributes(id: "e", type: "Microsoft.DigitalTwins.Twin.Update", source: "s"),
            data: literal(["modelId": "m", "patch": [["op": "add", "path": "/settings/setpoint", "value": 1]]]).serialized()
        )
        #expect(try EventFilter(parsing: "TOUCHES('/settings')").matches(event))
        #expect(try EventFilter(parsing: "TOUCHES('/settings/setpoint')").matches(event))
        #expect(try !EventFilter(parsing: "TOUCHES('/set')").matches(event))
    }

    @Test(arguments: ["", "type =", "colour = 'red'", "LOWER(type) = 'x'", "type = 'a' extra", "(type = 'a'", "STARTS_WITH(type)", "TOUCHES()"])
    func refuses(_ filter: String) {
        #expect(throws: QueryError.self) { try EventFilter(parsing: filter) }
    }

    /// A new filter is bounded in nesting, function calls included (each recursed like a
    /// parenthesis); one stored before the limits were kept still loads, unbounded.
    @Test func filtersAreBoundedInNestingButStoredOnesStillLoad() throws {
        let calls = String(repeating: "IS_DEFINED(", count: 33) + "$body.patch" + String(repeating: ")", count: 33)
        let tooDeep = #expect(throws: QueryError.self) { try EventFilter(parsing: calls) }
        #expect(tooDeep?.message.contains("more than 32 deep") == true, "\(String(describing: tooDeep))")
        let negations = String(repeating: "NOT ", count: 40) + "type = 'Microsoft.DigitalTwins.Twin.Update'"
        #expect(throws: QueryError.self) { try EventFilter(parsing: negations) }
        #expect(try EventFilter(parsing: negations, bounded: false).matches(Self.update))
    }

    @Test func endpointsFromConfiguration() throws {
        let defaults = EventEndpoint.defaults(twinEventsTopic: "eventgrid.twin-events", telemetryTopic: "eventhub.telemetry")
        let endpoints = try EventEndpoint.parse("alerts=building.alerts, telemetry=other.telemetry:binary", over: defaults)
        #expect(endpoints.first { $0.name == "alerts" } == EventEndpoint(name: "alerts", topic: "building.alerts", format: .structured))
        #expect(endpoints.first { $0.name == "telemetry" } == EventEndpoint(name: "telemetry", topic: "other.telemetry", format: .binary))
        #expect(endpoints.count == 3)
        #expect(throws: QueryError.self) { try EventEndpoint.parse("alerts", over: defaults) }
        #expect(throws: QueryError.self) { try EventEndpoint.parse("alerts=t:json", over: defaults) }
    }
}

/// `/eventroutes` as ADT's data plane has it.
@Suite struct EventRouteRESTTests {
    func json(_ response: TestResponse) throws -> JSONValue {
        try JSONValue.parse(response.body.getBytes(at: response.body.readerIndex, length: response.body.readableBytes) ?? [])
    }

    @Test func createGetListDeleteAndErrors() async throws {
        let fixture = try await GraphFixture.make("seed")
        let router = Router()
        TwinServiceRoutes.add(to: router, graph: fixture.graph)
        try await Application(router: router).test(.router) { client in
            let defaults = try json(try await client.execute(uri: "/eventroutes", method: .get))
            #expect(defaults["value"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["default-telemetry", "default-twin-events"])

            let route: JSONValue = ["endpointName": "twin-events", "filter": "type = 'Microsoft.DigitalTwins.Twin.Create'"]
            let put = try await client.execute(
                uri: "/eventroutes/eventroute-001?api-version=2023-10-31", method: .put, body: ByteBuffer(bytes: route.serialized())
            )
            #expect(put.status == .noContent)
            let got = try await client.execute(uri: "/eventroutes/eventroute-001", method: .get)
            #expect(got.status == .ok)
            #expect(
                try json(got) == ["id": "eventroute-001", "endpointName": "twin-events", "filter": "type = 'Microsoft.DigitalTwins.Twin.Create'"])
            #expect(try json(try await client.execute(uri: "/eventroutes", method: .get))["value"]?.arrayValue?.count == 3)

            let noEndpoint = try await client.execute(
                uri: "/eventroutes/r2", method: .put, body: ByteBuffer(bytes: literal(["endpointName": "nowhere", "filter": "true"]).serialized())
            )
            #expect(noEndpoint.status == .badRequest)
            #expect(try json(noEndpoint)["error"]?["code"] == "EventRouteEndpointInvalid")
            let badFilter = try await client.execute(
                uri: "/eventroutes/r2", method: .put,
                body: ByteBuffer(bytes: literal(["endpointName": "twin-events", "filter": "type ="]).serialized())
            )
            #expect(badFilter.status == .badRequest)
            #expect(try json(badFilter)["error"]?["code"] == "EventRouteFilterInvalid")
            let noFilter = try await client.execute(
                uri: "/eventroutes/r2", method: .put, body: ByteBuffer(bytes: literal(["endpointName": "twin-events"]).serialized())
            )
            #expect(noFilter.status == .badRequest)

            // Up to the limit, then LimitExceeded for a new route; one that exists may still be replaced.
            let held = try json(try await client.execute(uri: "/eventroutes", method: .get))["value"]?.arrayValue?.count ?? 0
            for index in held..<DigitalTwinGraph.maximumEventRoutes {
                let filler = try await client.execute(uri: "/eventroutes/filler-\(index)", method: .put, body: ByteBuffer(bytes: route.serialized()))
                #expect(filler.status == .noContent)
            }
            let over = try await client.execute(uri: "/eventroutes/one-too-many", method: .put, body: ByteBuffer(bytes: route.serialized()))
            #expect(over.status == .badRequest)
            #expect(try json(over)["error"]?["code"] == "LimitExceeded")
            let replaced = try await client.execute(uri: "/eventroutes/eventroute-001", method: .put, body: ByteBuffer(bytes: route.serialized()))
            #expect(replaced.status == .noContent)
            for index in held..<DigitalTwinGraph.maximumEventRoutes {
                #expect(try await client.execute(uri: "/eventroutes/filler-\(index)", method: .delete).status == .noContent)
            }

            #expect(try await client.execute(uri: "/eventroutes/eventroute-001", method: .delete).status == .noContent)
            let gone = try await client.execute(uri: "/eventroutes/eventroute-001", method: .get)
            #expect(gone.status == .notFound)
            #expect(try json(gone)["error"]?["code"] == "EventRouteNotFound")
            #expect(try await client.execute(uri: "/eventroutes/eventroute-001", method: .delete).status == .notFound)
        }
        let reopened = try await DigitalTwinGraph(store: SQLiteTwinStore(path: fixture.directory.appending(path: "twins.sqlite").path))
        #expect(
            reopened.eventRoutes().map(\.id) == ["default-telemetry", "default-twin-events"], "routes are stored; a deleted default stays deleted")
    }

    @Test func routesDecideWhereEachEventGoes() async throws {
        let endpoints =
            EventEndpoint.defaults(twinEventsTopic: "eventgrid.twin-events", telemetryTopic: "eventhub.telemetry")
            + [EventEndpoint(name: "temperatures", topic: "building.temperatures", format: .binary)]
        let directory = ScratchDirectory.make("routes")
        let graph = try await DigitalTwinGraph(store: SQLiteTwinStore(path: directory.appending(path: "twins.sqlite").path), endpoints: endpoints)
        _ = try await graph.addModels(Fixtures.upload("seed"))
        try await graph.putEventRoute("temps", body: ["endpointName": "temperatures", "filter": "TOUCHES('/Temperature')"])
        try await graph.deleteEventRoute("default-telemetry")
        try await graph.putTwin("thermo_0001", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"]])
        try await graph.patchTwin("thermo_0001", patch: [["op": "add", "path": "/Temperature", "value": 21]])
        try await graph.publishTelemetry("thermo_0001", messageID: "m", payload: Array("{}".utf8))
        let topics = try await graph.pendingEvents(after: 0, limit: 10).map { entry in
            OutboxRelay.messages(for: entry, graph: graph).map(\.topic)
        }
        #expect(topics == [["eventgrid.twin-events"], ["building.temperatures", "eventgrid.twin-events"], []])
    }
}

private func literal(_ value: JSONValue) -> JSONValue { value }
