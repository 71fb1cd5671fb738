import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TwinGraph
import TwinflowCodec

@testable import TwinService

/// HTTP as clients and proxies expect it: `HEAD` answers as `GET` does, without the body, and a
/// failure of the service itself never shows the client its internals.
@Suite struct HTTPSemanticsTests {
    static let readable = [
        "/models", "/models?includeModelDefinition=true", "/models/dtmi:contosocom:DigitalTwins:Room;1", "/models/dtmi:x:None;1",
        "/digitaltwins/thermo_0001", "/digitaltwins/none", "/digitaltwins/Room_01/relationships", "/digitaltwins/none/relationships",
        "/digitaltwins/thermo_0001/incomingrelationships", "/digitaltwins/Room_01/relationships/r1", "/digitaltwins/Room_01/relationships/none",
        "/digitaltwins/thermo_0001/components/none", "/eventroutes", "/eventroutes/route-1", "/eventroutes/none",
    ]

    /// twin-service's routes over `graph`, driven in this process.
    static func withRoutes(_ graph: DigitalTwinGraph, _ test: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let router = Router()
        TwinServiceRoutes.add(to: router, graph: graph)
        try await Application(router: router).test(.router, test)
    }

    @Test(arguments: readable)
    func headAnswersAsGetWithoutTheBody(_ uri: String) async throws {
        let fixture = try await GraphFixture.seed()
        try await fixture.graph.putEventRoute("route-1", body: ["endpointName": "twin-events", "filter": "true"])
        try await Self.withRoutes(fixture.graph) { client in
            let get = try await client.execute(uri: uri, method: .get)
            let head = try await client.execute(uri: uri, method: .head)
            #expect(head.status == get.status)
            #expect(head.body.readableBytes == 0)
            #expect(get.body.readableBytes > 0)
            #expect(head.headers[.contentType] == "application/json; charset=utf-8")
            #expect(head.headers[.contentType] == get.headers[.contentType])
            #expect(head.headers[.contentLength] == String(get.body.readableBytes))
            #expect(head.headers[.eTag] == get.headers[.eTag])
        }
    }

    @Test func headCarriesTheETag() async throws {
        let fixture = try await GraphFixture.seed()
        try await Self.withRoutes(fixture.graph) { client in
            let twin = try await client.execute(uri: "/digitaltwins/thermo_0001", method: .head)
            #expect(twin.status == .ok)
            #expect(twin.headers[.eTag] == "W/\"1\"")
            let relationship = try await client.execute(uri: "/digitaltwins/Room_01/relationships/r1", method: .head)
            #expect(relationship.headers[.eTag] == "W/\"1\"")
        }
    }

    /// A component's answer carries its twin's ETag, as ADT's does.
    @Test func aComponentCarriesItsTwinsETag() async throws {
        let fixture = try await GraphFixture.make("building")
        try await fixture.graph.putTwin("thermostat-1", body: ["$metadata": ["$model": "dtmi:example:building:Thermostat;1"]])
        try await Self.withRoutes(fixture.graph) { client in
            let component = try await client.execute(uri: "/digitaltwins/thermostat-1/components/settings", method: .get)
            #expect(component.status == .ok)
            #expect(component.headers[.eTag] == "W/\"1\"")
        }
    }

    struct StoreFailure: Error, CustomStringConvertible {
        var description: String { "disk /var/lib/twinflow/sqlite-internal-4711 is on fire" }
    }

    /// A failure of the service (any error that is not a client's, or a ServiceError of status 5xx)
    /// is a 500 with ADT's error body and a generic message naming the request: the error's text stays in the log.
    @Test(arguments: [
        StoreFailure() as any Error & Sendable,
        ServiceError(code: "InvalidEventRoute", status: 500, "The stored event route r has a filter that does not parse: sqlite-internal-4711"),
    ])
    func internalErrorsAreNotEchoed(_ failure: any Error & Sendable) async throws {
        let router = Router()
        router.group().add(middleware: HeadMiddleware()).add(middleware: ADTErrorMiddleware())
            .readable("boom") { _, _ -> Response in throw failure }
        try await Application(router: router).test(.router) { client in
            let response = try await client.execute(uri: "/boom", method: .get)
            #expect(response.status == .internalServerError)
            #expect(response.headers[.contentType] == "application/json; charset=utf-8")
            let body = String(buffer: response.body)
            #expect(!body.contains("sqlite-internal-4711"))
            let error = try JSONValue.parse(Array(body.utf8))["error"]
            #expect(error?["code"] == "InternalServerError")
            let message = try #require(error?["message"]?.stringValue)
            #expect(message.hasPrefix("The service could not complete the request (request "), "\(message)")

            let head = try await client.execute(uri: "/boom", method: .head)
            #expect(head.status == .internalServerError)
            #expect(head.body.readableBytes == 0)
        }
    }
}
