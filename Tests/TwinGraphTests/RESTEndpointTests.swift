import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TwinGraph
import TwinService
import TwinflowCodec

/// Every endpoint's success and error answers through HTTP, on the seed scenario
/// (Room_01 → thermo_0001 by rel_has_thermostat, relationship r1).
@Suite struct RESTEndpointTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var method: HTTPRequest.Method
        var uri: String
        var body: String?
        var headers: [String: String] = [:]
        var status: HTTPResponse.Status
        var code: String?
        /// For a success with a body: what the body must hold.
        var answer: (@Sendable (JSONValue) -> Bool)? = nil

        var testDescription: String { "\(method) \(uri) → \(status.code)\(code.map { " \($0)" } ?? "")" }
    }

    static let thermostat = #"{"$metadata":{"$model":"dtmi:contosocom:DigitalTwins:Thermostat;1"},"Temperature":20}"#
    static let room = #"{"$metadata":{"$model":"dtmi:contosocom:DigitalTwins:Room;1"}}"#
    static let patch = #"[{"op":"replace","path":"/Temperature","value":21}]"#

    static let cases: [Case] = [
        // models
        Case(
            method: .get, uri: "/models", status: .ok,
            answer: { $0["value"]?.arrayValue?.count == 2 && $0["value"]?.arrayValue?.first?["model"] == nil }),
        Case(
            method: .get, uri: "/models?dependenciesFor=dtmi:contosocom:DigitalTwins:Room;1&includeModelDefinition=true", status: .ok,
            answer: { body in
                Set(body["value"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [])
                    == ["dtmi:contosocom:DigitalTwins:Room;1", "dtmi:contosocom:DigitalTwins:Thermostat;1"]
                    && body["value"]?.arrayValue?.first?["model"]?["@type"] == "Interface"
            }),
        Case(method: .get, uri: "/models?dependenciesFor=dtmi:x:None;1", status: .notFound, code: "ModelNotFound"),
        Case(
            method: .get, uri: "/models/dtmi:contosocom:DigitalTwins:Room;1?includeModelDefinition=true", status: .ok,
            answer: { $0["id"] == "dtmi:contosocom:DigitalTwins:Room;1" && $0["model"]?["@id"] == "dtmi:contosocom:DigitalTwins:Room;1" }),
        Case(method: .get, uri: "/models/dtmi:x:None;1", status: .notFound, code: "ModelNotFound"),
        Case(method: .post, uri: "/models", body: "{}", status: .badRequest, code: "DTDLParserError"),
        Case(method: .post, uri: "/models", body: "[", status: .badRequest, code: "InvalidArgument"),
        Case(
            method: .patch, uri: "/models/dtmi:contosocom:DigitalTwins:Room;1", body: #"[{"op":"replace","path":"/decommissioned","value":true}]"#,
            status: .noContent),
        Case(
            method: .patch, uri: "/models/dtmi:contosocom:DigitalTwins:Room;1", body: #"[{"op":"replace","path":"/displayName","value":"x"}]"#,
            status: .badRequest, code: "InvalidArgument"),
        Case(method: .patch, uri: "/models/dtmi:x:None;1", body: "[]", status: .notFound, code: "ModelNotFound"),
        Case(method: .delete, uri: "/models/dtmi:contosocom:DigitalTwins:Thermostat;1", status: .conflict, code: "ModelReferencesNotDeleted"),
        Case(method: .delete, uri: "/models/dtmi:x:None;1", status: .notFound, code: "ModelNotFound"),
        // twins
        Case(
            method: .get, uri: "/digitaltwins/thermo_0001", status: .ok,
            answer: { $0["$dtId"] == "thermo_0001" && $0["Temperature"] == 20 && $0["$etag"] == "W/\"1\"" }),
        Case(method: .get, uri: "/digitaltwins/none", status: .notFound, code: "DigitalTwinNotFound"),
        Case(
            method: .put, uri: "/digitaltwins/t2", body: thermostat, status: .ok,
            answer: { $0["$dtId"] == "t2" && $0["Temperature"] == 20 && $0["$metadata"]?["$model"] == "dtmi:contosocom:DigitalTwins:Thermostat;1" }),
        Case(
            method: .put, uri: "/digitaltwins/thermo_0001", body: thermostat, headers: ["If-None-Match": "*"], status: .preconditionFailed,
            code: "PreconditionFailed"),
        Case(
            method: .put, uri: "/digitaltwins/t2", body: #"{"$metadata":{"$model":"dtmi:contosocom:DigitalTwins:Thermostat;1"},"Temperature":"x"}"#,
            status: .badRequest, code: "ValidationFailed"),
        Case(
            method: .put, uri: "/digitaltwins/t2", body: #"{"$metadata":{"$model":"dtmi:contosocom:DigitalTwins:Thermostat;1"},"Nope":1}"#,
            status: .badRequest, code: "ValidationFailed"),
        Case(method: .put, uri: "/digitaltwins/t2", body: #"{"$metadata":{"$model":"dtmi:x:None;1"}}"#, status: .notFound, code: "ModelNotFound"),
        Case(method: .put, uri: "/digitaltwins/t2", body: "not json", status: .badRequest, code: "InvalidArgument"),
        Case(method: .patch, uri: "/digitaltwins/thermo_0001", body: patch, status: .noContent),
        Case(
            method: .patch, uri: "/digitaltwins/thermo_0001", body: patch, headers: ["If-Match": "W/\"99\""], status: .preconditionFailed,
            code: "PreconditionFailed"),
        Case(
            method: .patch, uri: "/digitaltwins/thermo_0001", body: #"[{"op":"replace","path":"/Temperature","value":"x"}]"#, status: .badRequest,
            code: "ValidationFailed"),
        Case(method: .patch, uri: "/digitaltwins/thermo_0001", body: #"[{"op":"move","path":"/a"}]"#, status: .badRequest, code: "JsonPatchInvalid"),
        Case(method: .patch, uri: "/digitaltwins/none", body: patch, status: .notFound, code: "DigitalTwinNotFound"),
        Case(method: .delete, uri: "/digitaltwins/thermo_0001", status: .badRequest, code: "RelationshipsNotDeleted"),
        Case(
            method: .delete, uri: "/digitaltwins/thermo_0001?cascade=true", headers: ["If-Match": "W/\"99\""], status: .preconditionFailed,
            code: "PreconditionFailed"),
        Case(method: .delete, uri: "/digitaltwins/thermo_0001?cascade=true", status: .noContent),
        Case(method: .delete, uri: "/digitaltwins/none", status: .notFound, code: "DigitalTwinNotFound"),
        // components
        Case(method: .get, uri: "/digitaltwins/thermo_0001/components/none", status: .notFound, code: "ComponentNotFound"),
        Case(method: .patch, uri: "/digitaltwins/thermo_0001/components/none", body: "[]", status: .notFound, code: "ComponentNotFound"),
        Case(method: .get, uri: "/digitaltwins/none/components/c", status: .notFound, code: "DigitalTwinNotFound"),
        // relationships
        Case(
            method: .get, uri: "/digitaltwins/Room_01/relationships", status: .ok,
            answer: { $0["value"]?.arrayValue?.map { $0["$relationshipId"] } == ["r1"] }),
        Case(
            method: .get, uri: "/digitaltwins/Room_01/relationships?relationshipName=rel_has_thermostat", status: .ok,
            answer: { $0["value"]?.arrayValue?.map { $0["$targetId"] } == ["thermo_0001"] }),
        Case(method: .get, uri: "/digitaltwins/none/relationships", status: .notFound, code: "DigitalTwinNotFound"),
        Case(
            method: .get, uri: "/digitaltwins/thermo_0001/incomingrelationships", status: .ok,
            answer: {
                $0["value"]?.arrayValue?.map { $0["$sourceId"] } == ["Room_01"]
                    && $0["value"]?.arrayValue?.first?["$relationshipName"] == "rel_has_thermostat"
            }),
        Case(method: .get, uri: "/digitaltwins/none/incomingrelationships", status: .notFound, code: "DigitalTwinNotFound"),
        Case(
            method: .get, uri: "/digitaltwins/Room_01/relationships/r1", status: .ok,
            answer: { $0["$relationshipId"] == "r1" && $0["$sourceId"] == "Room_01" && $0["$targetId"] == "thermo_0001" }),
        Case(method: .get, uri: "/digitaltwins/Room_01/relationships/none", status: .notFound, code: "RelationshipNotFound"),
        Case(
            method: .put, uri: "/digitaltwins/Room_01/relationships/r2",
            body: #"{"$targetId":"thermo_0001","$relationshipName":"rel_has_thermostat"}"#, status: .ok,
            answer: { $0["$relationshipId"] == "r2" && $0["$sourceId"] == "Room_01" && $0["$etag"] == "W/\"1\"" }),
        Case(
            method: .put, uri: "/digitaltwins/Room_01/relationships/r1",
            body: #"{"$targetId":"thermo_0001","$relationshipName":"rel_has_thermostat"}"#, headers: ["If-None-Match": "*"],
            status: .preconditionFailed, code: "PreconditionFailed"),
        Case(
            method: .put, uri: "/digitaltwins/Room_01/relationships/r2", body: #"{"$targetId":"none","$relationshipName":"rel_has_thermostat"}"#,
            status: .notFound, code: "TargetTwinNotFound"),
        Case(
            method: .put, uri: "/digitaltwins/Room_01/relationships/r2", body: #"{"$targetId":"thermo_0001","$relationshipName":"owns"}"#,
            status: .badRequest, code: "InvalidRelationship"),
        Case(
            method: .put, uri: "/digitaltwins/Room_01/relationships/r2", body: #"{"$relationshipName":"rel_has_thermostat"}"#, status: .badRequest,
            code: "InvalidArgument"),
        Case(
            method: .put, uri: "/digitaltwins/thermo_0001/relationships/r2",
            body: #"{"$targetId":"Room_01","$relationshipName":"rel_has_thermostat"}"#, status: .badRequest, code: "InvalidRelationship"),
        Case(
            method: .patch, uri: "/digitaltwins/Room_01/relationships/r1", body: #"[{"op":"add","path":"/since","value":1}]"#, status: .badRequest,
            code: "ValidationFailed"),
        Case(
            method: .patch, uri: "/digitaltwins/Room_01/relationships/r1", body: "[]", headers: ["If-Match": "W/\"99\""], status: .preconditionFailed,
            code: "PreconditionFailed"),
        Case(method: .patch, uri: "/digitaltwins/Room_01/relationships/r1", body: "[]", status: .noContent),
        Case(method: .delete, uri: "/digitaltwins/Room_01/relationships/none", status: .notFound, code: "RelationshipNotFound"),
        Case(method: .delete, uri: "/digitaltwins/Room_01/relationships/r1", headers: ["If-Match": "W/\"1\""], status: .noContent),
        // query
        Case(
            method: .post, uri: "/query", body: #"{"query":"SELECT * FROM DIGITALTWINS"}"#, status: .ok,
            answer: { body in
                Set(body["value"]?.arrayValue?.compactMap { $0["$dtId"]?.stringValue } ?? []) == ["Room_01", "thermo_0001"]
                    && body["continuationToken"] == .null
            }),
        Case(method: .post, uri: "/query", body: #"{"query":"SELECT * FROM"}"#, status: .badRequest, code: "SqlQueryError"),
        Case(method: .post, uri: "/query", body: #"{}"#, status: .badRequest, code: "InvalidArgument"),
        Case(method: .post, uri: "/query", body: #"{"continuationToken":"bm9wZQ=="}"#, status: .badRequest, code: "BadRequest"),
        Case(
            method: .post, uri: "/query", body: #"{"query":"SELECT * FROM DIGITALTWINS"}"#, headers: ["max-items-per-page": "1"], status: .ok,
            answer: { body in body["value"]?.arrayValue?.count == 1 && body["continuationToken"]?.stringValue != nil }),
        Case(
            method: .post, uri: "/query", body: #"{"query":"SELECT * FROM DIGITALTWINS"}"#, headers: ["max-items-per-page": "0"],
            status: .badRequest, code: "InvalidArgument"),
    ]

    @Test(arguments: cases)
    func answers(_ testCase: Case) async throws {
        let fixture = try await GraphFixture.seed()
        let router = Router()
        TwinServiceRoutes.add(to: router, graph: fixture.graph)
        try await Application(router: router).test(.router) { client in
            var headers = HTTPFields()
            for (name, value) in testCase.headers { headers[HTTPField.Name(name)!] = value }
            let response = try await client.execute(
                uri: testCase.uri, method: testCase.method, headers: headers, body: testCase.body.map { ByteBuffer(string: $0) }
            )
            #expect(response.status == testCase.status)
            let bytes = response.body.getBytes(at: response.body.readerIndex, length: response.body.readableBytes) ?? []
            switch testCase.status {
            case .ok, .created:
                let answer = try #require(testCase.answer, "a success with a body says what the body holds")
                let body = try JSONValue.parse(bytes)
                #expect(answer(body), "\(body)")
            case .noContent:
                #expect(bytes.isEmpty)
            default:
                #expect(testCase.answer == nil)
            }
            if let code = testCase.code {
                let body = try JSONValue.parse(response.body.getBytes(at: response.body.readerIndex, length: response.body.readableBytes) ?? [])
                #expect(body["error"]?["code"] == .string(code))
                #expect(body["error"]?["message"]?.stringValue?.isEmpty == false)
            }
        }
    }
}
