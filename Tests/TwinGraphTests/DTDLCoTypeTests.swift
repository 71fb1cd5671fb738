import Testing
import TwinGraph
import TwinflowCodec
import TwinflowTestSupport

/// An element's `@type` as published ontologies write it: the DTDL class and its co-types in any order.
@Suite struct DTDLCoTypeTests {
    static let quantitativeTypes = "dtmi:dtdl:extension:quantitativeTypes;1"

    struct Case: Sendable, CustomTestStringConvertible {
        var types: [String]
        var coTypes: [String]
        var contexts: [String]

        var testDescription: String { "\(types) in \(contexts)" }
    }

    /// Every position of the class among one and two co-types, in v2, and in v3 with and without the extension.
    static let cases: [Case] = {
        let orders: [(types: [String], coTypes: [String])] = [
            (["CLASS"], []),
            (["CLASS", "TimeSpan"], ["TimeSpan"]),
            (["TimeSpan", "CLASS"], ["TimeSpan"]),
            (["CLASS", "TimeSpan", "Historized"], ["TimeSpan", "Historized"]),
            (["TimeSpan", "CLASS", "Historized"], ["TimeSpan", "Historized"]),
            (["TimeSpan", "Historized", "CLASS"], ["TimeSpan", "Historized"]),
        ]
        let contexts = [["dtmi:dtdl:context;2"], ["dtmi:dtdl:context;3"], ["dtmi:dtdl:context;3", quantitativeTypes]]
        return contexts.flatMap { context in orders.map { Case(types: $0.types, coTypes: $0.coTypes, contexts: context) } }
    }()

    static func interface(_ contexts: [String], type: JSONValue = "Interface", contents: [JSONValue]) -> JSONValue {
        [
            "@id": "dtmi:example:Timer;1", "@type": type, "@context": .array(contexts.map(JSONValue.string)),
            "contents": .array(contents),
        ]
    }

    static func typed(_ types: [String], as dtdlClass: String) -> JSONValue {
        .array(types.map { .string($0 == "CLASS" ? dtdlClass : $0) })
    }

    @Test(arguments: cases)
    func propertyAndTelemetryCoTypesInAnyPosition(_ testCase: Case) throws {
        let upload: JSONValue = .array([
            Self.interface(
                testCase.contexts,
                contents: [
                    ["@type": Self.typed(testCase.types, as: "Property"), "name": "uptime", "schema": "double", "unit": "second"],
                    ["@type": Self.typed(testCase.types, as: "Telemetry"), "name": "elapsed", "schema": "double", "unit": "second"],
                    [
                        "@type": "Relationship", "name": "feeds",
                        "properties": [["@type": Self.typed(testCase.types, as: "Property"), "name": "lag", "schema": "double"]],
                    ],
                ])
        ])
        var models = ModelSet()
        try models.add(DTDLParser.parseUpload(upload))
        let timer = try #require(models.resolvedInterface(Fixtures.dtmi("dtmi:example:Timer;1")))
        #expect(timer.properties["uptime"]?.semanticTypes == testCase.coTypes)
        #expect(timer.properties["uptime"]?.schema == .primitive(.double))
        #expect(timer.properties["uptime"]?.unit == "second")
        #expect(timer.telemetries["elapsed"]?.semanticTypes == testCase.coTypes)
        #expect(timer.relationships["feeds"]?.properties["lag"]?.semanticTypes == testCase.coTypes)
        try models.validate(properties: ["uptime": 12.5], of: Fixtures.dtmi("dtmi:example:Timer;1"))
    }

    @Test(arguments: [["Interface", "Mixin"], ["Mixin", "Interface"]])
    func interfaceCoTypes(_ types: [String]) throws {
        let upload = Self.interface(["dtmi:dtdl:context;3"], type: .array(types.map(JSONValue.string)), contents: [])
        let parsed = try DTDLParser.parseUpload([upload])
        #expect(parsed.map(\.id) == [Fixtures.dtmi("dtmi:example:Timer;1")])
    }

    @Test(arguments: [["Historized", "Enum"], ["Enum", "Historized"]])
    func schemaCoTypes(_ types: [String]) throws {
        let schema: JSONValue = [
            "@type": .array(types.map(JSONValue.string)), "valueSchema": "string", "enumValues": [["name": "on", "enumValue": "on"]],
        ]
        let parsed = try DTDLParser.parseUpload([
            Self.interface(["dtmi:dtdl:context;3"], contents: [["@type": "Property", "name": "mode", "schema": schema]])
        ])
        guard case .enumeration(let valueSchema, let values)? = parsed.first?.properties["mode"]?.schema else {
            Issue.record("mode is not an enumeration")
            return
        }
        #expect(valueSchema == .string)
        #expect(values.map(\.name) == ["on"])
    }

    struct Refusal: Sendable, CustomTestStringConvertible {
        var types: [String]
        var message: String

        var testDescription: String { "\(types)" }
    }

    @Test(arguments: [
        Refusal(types: ["TimeSpan"], message: "contents[0].@type must name one of Command, Component, Property, Relationship, Telemetry"),
        Refusal(types: ["TimeSpan", "Historized"], message: "found TimeSpan, Historized"),
        Refusal(types: ["Property", "Telemetry"], message: "contents[0].@type names both Property and Telemetry"),
        Refusal(types: ["TimeSpan", "Telemetry", "Property"], message: "names both Telemetry and Property"),
        Refusal(types: [], message: "contents[0].@type must not be empty"),
    ])
    func elementsWithoutExactlyOneClassAreRefused(_ refusal: Refusal) {
        let upload: JSONValue = [
            Self.interface(
                ["dtmi:dtdl:context;3", Self.quantitativeTypes],
                contents: [["@type": .array(refusal.types.map(JSONValue.string)), "name": "uptime", "schema": "double"]])
        ]
        #expect {
            try DTDLParser.parseUpload(upload)
        } throws: { error in
            guard let error = error as? ModelError else { return false }
            return error.kind == .invalidModel && error.model == "dtmi:example:Timer;1" && error.message.contains(refusal.message)
        }
    }

    @Test func interfaceWithoutTheInterfaceClassIsRefused() {
        let upload = Self.interface(["dtmi:dtdl:context;3"], type: ["Mixin"], contents: [])
        #expect {
            try DTDLParser.parseUpload([upload])
        } throws: { error in
            (error as? ModelError)?.message == "@type must name one of Interface; found Mixin"
        }
    }
}
