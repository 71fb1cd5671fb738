import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TwinGraph
import TwinService
import TwinflowCodec

/// Requests a hostile client sends, on the seed scenario (Room_01 → thermo_0001 by r1): each is
/// refused with ADT's error, the service still answers afterwards, and the store holds nothing of it.
@Suite struct HostileRequestTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var method: HTTPRequest.Method
        var uri: String
        var body: [UInt8]?
        var headers: [String: String] = [:]
        var status: HTTPResponse.Status
        var code: String
        /// Words the error message holds.
        var message: String
        /// What must not exist afterwards.
        var absent: String?

        var testDescription: String { name }
    }

    static let thermostatModel = "dtmi:contosocom:DigitalTwins:Thermostat;1"

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// A valid thermostat, with `padding` spaces of JSON whitespace and `extra` members.
    static func twinBody(padding: Int = 0, extra: [UInt8] = []) -> [UInt8] {
        bytes(#"{"$metadata":{"$model":"\#(thermostatModel)"},"#) + extra + Array(repeating: UInt8(ascii: " "), count: padding)
            + bytes(#""Temperature":20}"#)
    }

    static let relationshipBody = bytes(#"{"$targetId":"thermo_0001","$relationshipName":"rel_has_thermostat"}"#)
    static let routeBody = bytes(#"{"endpointName":"twin-events","filter":"true"}"#)
    static let longID = String(repeating: "a", count: 20_000)
    static let justTooLongID = String(repeating: "b", count: DigitalTwinGraph.maximumIDLength + 1)

    /// IDs no twin, relationship or route may have, as sent in the path.
    static let badIDs: [(name: String, path: String, message: String)] = [
        ("blank", "%20", "must not be empty or blank"),
        ("blank tab", "%20%09%20", "must not be empty or blank"),
        ("NUL", "a%00b", "must not hold control characters"),
        ("line break", "a%0Ab", "must not hold control characters"),
        ("DEL", "a%7Fb", "must not hold control characters"),
        ("C1 control", "a%C2%85b", "must not hold control characters"),
        ("20,000 characters", longID, "at most 128 characters"),
        ("129 characters", justTooLongID, "at most 128 characters"),
    ]

    static let invalidUTF8: [(name: String, bytes: [UInt8])] = [
        ("a stray continuation byte", [0x80]),
        ("0xFF", [0xFF]),
        ("an overlong slash", [0xC0, 0xAF]),
        ("a surrogate", [0xED, 0xA0, 0x80]),
        ("past U+10FFFF", [0xF4, 0x90, 0x80, 0x80]),
        ("a truncated sequence", [0xE2, 0x82]),
    ]

    static let cases: [Case] = {
        var cases: [Case] = []
        for id in badIDs {
            cases.append(
                Case(
                    name: "twin id \(id.name)", method: .put, uri: "/digitaltwins/\(id.path)", body: twinBody(), status: .badRequest,
                    code: "InvalidArgument", message: id.message, absent: "/digitaltwins/\(id.path)"))
            cases.append(
                Case(
                    name: "relationship id \(id.name)", method: .put, uri: "/digitaltwins/Room_01/relationships/\(id.path)", body: relationshipBody,
                    status: .badRequest, code: "InvalidArgument", message: id.message, absent: "/digitaltwins/Room_01/relationships/\(id.path)"))
            cases.append(
                Case(
                    name: "route id \(id.name)", method: .put, uri: "/eventroutes/\(id.path)", body: routeBody, status: .badRequest,
                    code: "EventRouteIdInvalid", message: id.message, absent: "/eventroutes/\(id.path)"))
        }
        for invalid in invalidUTF8 {
            let name = #"{"$metadata":{"$model":"\#(thermostatModel)"},"Temp"#
            cases.append(
                Case(
                    name: "twin with \(invalid.name) in a property name", method: .put, uri: "/digitaltwins/t_utf8",
                    body: bytes(name) + invalid.bytes + bytes(#"":1}"#), status: .badRequest, code: "InvalidArgument", message: "not valid UTF-8",
                    absent: "/digitaltwins/t_utf8"))
        }
        cases += [
            Case(
                name: "twin with invalid UTF-8 in a value", method: .put, uri: "/digitaltwins/t_utf8",
                body: twinBody(extra: bytes(#""x":""#) + [0xFF] + bytes(#"","#)),
                status: .badRequest, code: "InvalidArgument", message: "not valid UTF-8", absent: "/digitaltwins/t_utf8"),
            Case(
                name: "relationship with invalid UTF-8", method: .put, uri: "/digitaltwins/Room_01/relationships/r_utf8",
                body: bytes(#"{"$targetId":"thermo_0001","$relationshipName":"rel_has_thermostat","since"#) + [0xC0, 0xAF] + bytes(#"":1}"#),
                status: .badRequest, code: "InvalidArgument", message: "not valid UTF-8", absent: "/digitaltwins/Room_01/relationships/r_utf8"),
            Case(
                name: "model upload with invalid UTF-8", method: .post, uri: "/models",
                body: bytes(#"[{"@id":"dtmi:x:Bad;1","@type":"Interface","@context":"dtmi:dtdl:context;3","displayName":""#) + [0xFF]
                    + bytes(#""}]"#),
                status: .badRequest, code: "InvalidArgument", message: "not valid UTF-8", absent: "/models/dtmi:x:Bad;1"),
            Case(
                name: "telemetry with invalid UTF-8", method: .post, uri: "/digitaltwins/thermo_0001/telemetry",
                body: bytes(#"{"t":""#) + [0xFF] + bytes(#""}"#), headers: ["Message-Id": "m1"], status: .badRequest, code: "InvalidArgument",
                message: "not valid UTF-8"),
            Case(
                name: "telemetry with a source time that is not a timestamp", method: .post, uri: "/digitaltwins/thermo_0001/telemetry",
                body: bytes(#"{"t":1}"#), headers: ["Message-Id": "m2", "Telemetry-Source-Time": String(repeating: "9", count: 900_000)],
                status: .badRequest, code: "InvalidArgument", message: "RFC 3339"),
            Case(
                name: "query with invalid UTF-8", method: .post, uri: "/query",
                body: bytes(#"{"query":"SELECT * FROM DIGITALTWINS WHERE $dtId = '"#) + [0xFF] + bytes(#"'"}"#),
                status: .badRequest, code: "InvalidArgument", message: "not valid UTF-8"),
            Case(
                name: "a 10 MB twin", method: .put, uri: "/digitaltwins/t_big", body: twinBody(padding: 10_000_000), status: .contentTooLarge,
                code: "PayloadTooLarge", message: "larger than 1048576 bytes", absent: "/digitaltwins/t_big"),
            Case(
                name: "a 10 MB patch", method: .patch, uri: "/digitaltwins/thermo_0001",
                body: bytes(#"[{"op":"add","path":"/note","value":""#) + Array(repeating: UInt8(ascii: "x"), count: 10_000_000) + bytes(#""}]"#),
                status: .contentTooLarge, code: "PayloadTooLarge", message: "larger than"),
            Case(
                name: "a patch of 300 KB, whose notification would near Kafka's message limit", method: .patch, uri: "/digitaltwins/thermo_0001",
                body: bytes("[")
                    + Array(
                        Array(repeating: bytes(#"{"op":"replace","path":"/Temperature","value":21.5}"#), count: 6_000).joined(separator: bytes(",")))
                    + bytes("]"),
                status: .contentTooLarge, code: "PayloadTooLarge", message: "larger than 262144 bytes"),
            Case(
                name: "a 10 MB query", method: .post, uri: "/query",
                body: bytes(#"{"query":"SELECT * FROM DIGITALTWINS WHERE $dtId = '"#) + Array(repeating: UInt8(ascii: "x"), count: 10_000_000)
                    + bytes(#"'"}"#),
                status: .contentTooLarge, code: "PayloadTooLarge", message: "larger than"),
            Case(
                name: "a 10 MB route", method: .put, uri: "/eventroutes/big",
                body: bytes(#"{"endpointName":"twin-events","filter":""#) + Array(repeating: UInt8(ascii: " "), count: 10_000_000)
                    + bytes(#"true"}"#),
                status: .contentTooLarge, code: "PayloadTooLarge", message: "larger than", absent: "/eventroutes/big"),
            Case(
                name: "a 10 MB model upload", method: .post, uri: "/models",
                body: bytes(#"[{"@id":"dtmi:x:Big;1","@type":"Interface","@context":"dtmi:dtdl:context;3","description":""#)
                    + Array(repeating: UInt8(ascii: "x"), count: 10_000_000) + bytes(#""}]"#),
                status: .contentTooLarge, code: "PayloadTooLarge", message: "larger than 8388608 bytes", absent: "/models/dtmi:x:Big;1"),
            Case(
                name: "not JSON", method: .put, uri: "/digitaltwins/t_bad", body: bytes("not json"), status: .badRequest, code: "InvalidArgument",
                message: "not valid JSON", absent: "/digitaltwins/t_bad"),
            Case(
                name: "truncated JSON", method: .put, uri: "/digitaltwins/t_bad", body: Array(twinBody().dropLast()), status: .badRequest,
                code: "InvalidArgument", message: "not valid JSON", absent: "/digitaltwins/t_bad"),
            Case(
                name: "an empty body", method: .put, uri: "/digitaltwins/t_bad", body: [], status: .badRequest, code: "InvalidArgument",
                message: "not valid JSON", absent: "/digitaltwins/t_bad"),
            Case(
                name: "JSON nested 100,000 deep", method: .put, uri: "/digitaltwins/t_bad",
                body: Array(repeating: UInt8(ascii: "["), count: 100_000) + Array(repeating: UInt8(ascii: "]"), count: 100_000), status: .badRequest,
                code: "InvalidArgument", message: "not valid JSON", absent: "/digitaltwins/t_bad"),
            Case(
                name: "a patch whose copies double the twin 40 times", method: .patch, uri: "/digitaltwins/thermo_0001",
                body: bytes(
                    "["
                        + ([#"{"op":"add","path":"/p","value":{"v":1}}"#] + (1...40).map { #"{"op":"copy","from":"/p","path":"/p/c\#($0)"}"# })
                        .joined(separator: ",") + "]"),
                status: .badRequest, code: "JsonPatchInvalid", message: "limited to add, replace and remove"),
            Case(
                name: "a patch adding an array of 100,001 values", method: .patch, uri: "/digitaltwins/thermo_0001",
                body: bytes(#"[{"op":"add","path":"/p","value":["# + String(repeating: "0,", count: 100_000) + "0]}]"),
                status: .badRequest, code: "JsonPatchInvalid", message: "more than 100000 values"),
            Case(
                name: "a query nested 100,000 deep", method: .post, uri: "/query",
                body: bytes(
                    #"{"query":"SELECT * FROM DIGITALTWINS WHERE "# + String(repeating: "(", count: 100_000) + "true"
                        + String(repeating: ")", count: 100_000) + #""}"#),
                status: .badRequest, code: "SqlQueryError", message: "at most 8000"),
            Case(
                name: "a route filter nested 40 deep", method: .put, uri: "/eventroutes/deep",
                body: bytes(#"{"endpointName":"twin-events","filter":""# + String(repeating: "NOT ", count: 40) + #"true"}"#),
                status: .badRequest, code: "EventRouteFilterInvalid", message: "more than 32 deep", absent: "/eventroutes/deep"),
            Case(
                name: "a twin that is a JSON string", method: .put, uri: "/digitaltwins/t_bad", body: bytes(#""twin""#), status: .badRequest,
                code: "InvalidArgument", message: "JSON object", absent: "/digitaltwins/t_bad"),
            Case(
                name: "a model upload that is not JSON", method: .post, uri: "/models", body: bytes("[{"), status: .badRequest,
                code: "InvalidArgument",
                message: "not valid JSON"),
            Case(
                name: "HEAD of a missing twin", method: .head, uri: "/digitaltwins/none", status: .notFound, code: "", message: "",
                absent: "/digitaltwins/none"),
        ]
        return cases
    }()

    @Test(arguments: cases)
    func isRefusedAndLeavesNothing(_ testCase: Case) async throws {
        let fixture = try await GraphFixture.seed()
        let router = Router()
        TwinServiceRoutes.add(to: router, graph: fixture.graph)
        try await Application(router: router).test(.router) { client in
            let before = try await Self.contents(client)
            var headers = HTTPFields()
            for (name, value) in testCase.headers { headers[HTTPField.Name(name)!] = value }
            let response = try await client.execute(
                uri: testCase.uri, method: testCase.method, headers: headers, body: testCase.body.map { ByteBuffer(bytes: $0) })
            #expect(response.status == testCase.status)
            if testCase.method == .head {
                #expect(response.body.readableBytes == 0)
            } else {
                let error = try Self.json(response)["error"]
                #expect(error?["code"] == .string(testCase.code))
                let message = error?["message"]?.stringValue ?? ""
                #expect(message.contains(testCase.message), "\(message)")
            }

            let twin = try await client.execute(uri: "/digitaltwins/thermo_0001", method: .get)
            #expect(twin.status == .ok)
            #expect(try Self.json(twin)["$dtId"] == "thermo_0001")
            #expect(try Self.json(twin)["Temperature"] == 20)
            #expect(try await Self.contents(client) == before)
            if let absent = testCase.absent {
                let lookup = try await client.execute(uri: absent, method: .get)
                #expect(lookup.status == .notFound, "\(absent.prefix(80))")
            }
        }
    }

    /// The longest id and ids with spaces, accents and symbols inside are fine.
    @Test(arguments: [
        String(repeating: "c", count: DigitalTwinGraph.maximumIDLength), "thermo%20one", "caf%C3%A9-%E2%84%96%201", "%20padded%20",
    ])
    func idsWithinTheRulesAreAccepted(_ path: String) async throws {
        let fixture = try await GraphFixture.seed()
        let router = Router()
        TwinServiceRoutes.add(to: router, graph: fixture.graph)
        try await Application(router: router).test(.router) { client in
            let twin = try await client.execute(uri: "/digitaltwins/\(path)", method: .put, body: ByteBuffer(bytes: Self.twinBody()))
            #expect(twin.status == .ok)
            #expect(try Self.json(twin)["$dtId"] == .string(path.removingPercentEncoding!))
            let relationship = try await client.execute(
                uri: "/digitaltwins/Room_01/relationships/\(path)", method: .put, body: ByteBuffer(bytes: Self.relationshipBody))
            #expect(relationship.status == .ok)
            let route = try await client.execute(uri: "/eventroutes/\(path)", method: .put, body: ByteBuffer(bytes: Self.routeBody))
            #expect(route.status == .noContent)
            let read = try await client.execute(uri: "/eventroutes/\(path)", method: .get)
            #expect(try Self.json(read)["id"] == .string(path.removingPercentEncoding!))
        }
    }

    /// The limits are the caller's: a model upload has its own, larger one.
    @Test func bodyLimitsAreConfigurable() async throws {
        let fixture = try await GraphFixture.seed()
        let router = Router()
        TwinServiceRoutes.add(to: router, graph: fixture.graph, maximumBodyBytes: 4096, maximumModelUploadBytes: 64 * 1024)
        try await Application(router: router).test(.router) { client in
            let small = try await client.execute(uri: "/digitaltwins/t_small", method: .put, body: ByteBuffer(bytes: Self.twinBody(padding: 3000)))
            #expect(small.status == .ok)
            let large = try await client.execute(uri: "/digitaltwins/t_large", method: .put, body: ByteBuffer(bytes: Self.twinBody(padding: 5000)))
            #expect(large.status == .contentTooLarge)
            #expect(try Self.json(large)["error"]?["message"] == "The request body is larger than 4096 bytes.")
            #expect(try await client.execute(uri: "/digitaltwins/t_large", method: .get).status == .notFound)

            let description = String(repeating: "d", count: 20_000)
            let model = #"[{"@id":"dtmi:x:Described;1","@type":"Interface","@context":"dtmi:dtdl:context;3","description":"\#(description)"}]"#
            let upload = try await client.execute(uri: "/models", method: .post, body: ByteBuffer(string: model))
            #expect(upload.status == .created)
            #expect(try Self.json(upload).arrayValue?.first?["id"] == "dtmi:x:Described;1")
            let tooLarge = try await client.execute(
                uri: "/models", method: .post,
                body: ByteBuffer(string: model.replacingOccurrences(of: "Described", with: "Huge") + String(repeating: " ", count: 70_000)))
            #expect(tooLarge.status == .contentTooLarge)
            #expect(try Self.json(tooLarge)["error"]?["code"] == "PayloadTooLarge")
            #expect(try await client.execute(uri: "/models/dtmi:x:Huge;1", method: .get).status == .notFound)
        }
    }

    /// What the service holds, as listed through the API: twins, Room_01's relationships, routes and models.
    static func contents(_ client: any TestClientProtocol) async throws -> [JSONValue] {
        let twins = try await client.execute(uri: "/query", method: .post, body: ByteBuffer(string: #"{"query":"SELECT * FROM DIGITALTWINS"}"#))
        return [
            try json(twins)["value"] ?? nil,
            try json(try await client.execute(uri: "/digitaltwins/Room_01/relationships", method: .get))["value"] ?? nil,
            try json(try await client.execute(uri: "/eventroutes", method: .get))["value"] ?? nil,
            try json(try await client.execute(uri: "/models", method: .get))["value"] ?? nil,
        ]
    }

    static func json(_ response: TestResponse) throws -> JSONValue {
        try JSONValue.parse(response.body.getBytes(at: response.body.readerIndex, length: response.body.readableBytes) ?? [])
    }
}
