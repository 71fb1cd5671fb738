import Foundation
import Testing
import TwinGraph
import TwinflowCodec
import TwinflowTestSupport

extension Fixtures {
    /// The parsed models of some of `deploy/models/`'s sets.
    static func models(_ sets: String...) throws -> ModelSet {
        var models = ModelSet()
        for set in sets { try models.add(DTDLParser.parseUpload(upload(set))) }
        return models
    }

    static func dtmi(_ text: String) -> DTMI { DTMI(text)! }
}

@Suite struct DTMITests {
    @Test(arguments: ["dtmi:contosocom:DigitalTwins:Thermostat;1", "dtmi:a;1", "dtmi:a_b:c2;12", "dtmi:example:x;1.2"])
    func accepts(_ text: String) { #expect(DTMI(text) != nil) }

    @Test(arguments: ["dtmi:a", "urn:a;1", "dtmi:1a;1", "dtmi:a_;1", "dtmi:a;0", "dtmi:a;01", "dtmi::a;1", "dtmi:a;1;2", "dtmi:a-b;1"])
    func rejects(_ text: String) { #expect(DTMI(text) == nil) }
}

@Suite struct ModelUploadTests {
    @Test func seedModelsResolve() throws {
        let models = try Fixtures.models("seed")
        let room = try #require(models.resolvedInterface(Fixtures.dtmi("dtmi:contosocom:DigitalTwins:Room;1")))
        #expect(room.properties["currentTemp"]?.schema == .primitive(.double))
        #expect(room.relationships["rel_has_thermostat"]?.target == Fixtures.dtmi("dtmi:contosocom:DigitalTwins:Thermostat;1"))
        let thermostat = try #require(models.interfaces[Fixtures.dtmi("dtmi:contosocom:DigitalTwins:Thermostat;1")])
        #expect(thermostat.properties["Temperature"]?.semanticTypes == ["Temperature"])
        #expect(thermostat.properties["Temperature"]?.unit == "degreeCelsius")
        #expect(thermostat.displayName == ["en": "Thermostat"])
    }

    @Test func buildingModelsInheritAndCompose() throws {
        let models = try Fixtures.models("building")
        let floor = try #require(models.resolvedInterface(Fixtures.dtmi("dtmi:example:building:Floor;1")))
        #expect(Set(floor.properties.keys) == ["name", "Temperature", "tags", "level"])
        #expect(models.model(Fixtures.dtmi("dtmi:example:building:Room;1"), isOfModel: Fixtures.dtmi("dtmi:example:building:Space;1")))
        #expect(!models.model(Fixtures.dtmi("dtmi:example:building:Space;1"), isOfModel: Fixtures.dtmi("dtmi:example:building:Room;1")))
        let thermostat = try #require(models.resolvedInterface(Fixtures.dtmi("dtmi:example:building:Thermostat;1")))
        #expect(thermostat.components["settings"]?.schema == Fixtures.dtmi("dtmi:example:building:ThermostatSettings;1"))
        #expect(models.dependencies(of: [Fixtures.dtmi("dtmi:example:building:Floor;1")]).count == 4)
    }

    @Test func uploadIsAllOrNothing() throws {
        var models = try Fixtures.models("seed")
        let upload = try JSONValue.parse(
            #"""
            [{"@id":"dtmi:x:Good;1","@type":"Interface","@context":"dtmi:dtdl:context;2"},
             {"@id":"dtmi:x:Bad;1","@type":"Interface","@context":"dtmi:dtdl:context;2","extends":"dtmi:x:Missing;1"}]
            """#)
        do {
            try models.add(DTDLParser.parseUpload(upload))
            Issue.record("uploaded a model with a missing reference")
        } catch {
            #expect(error.kind == .missingReference)
            #expect(error.model == "dtmi:x:Bad;1")
        }
        #expect(models.interfaces[Fixtures.dtmi("dtmi:x:Good;1")] == nil, "nothing of a refused upload is kept")
    }

    @Test func dependenciesResolveWithinOneUploadInAnyOrder() throws {
        let building = try Fixtures.upload("building")
        var models = ModelSet()
        try models.add(DTDLParser.parseUpload(.array(building.arrayValue!.reversed())))
        #expect(models.interfaces.count == 5)
    }

    @Test(arguments: [
        (#"{"@id":"dtmi:x:A;1","@type":"Interface"}"#, ModelError.Kind.invalidModel, "@context"),
        (#"{"@id":"x:A;1","@type":"Interface","@context":"dtmi:dtdl:context;2"}"#, .invalidModel, "DTMI"),
        (#"{"@id":"dtmi:x:A;1","@type":"Telemetry","@context":"dtmi:dtdl:context;2"}"#, .invalidModel, "Interface"),
        (#"{"@id":"dtmi:x:A;1","@type":"Interface","@context":"dtmi:dtdl:context;9"}"#, .invalidModel, "not DTDL"),
        (
            #"{"@id":"dtmi:x:A;1","@type":"Interface","@context":"dtmi:dtdl:context;2","contents":[{"@type":"Property","name":"a","schema":"short"}]}"#,
            .invalidModel, "v3"
        ),
        (
            #"{"@id":"dtmi:x:A;1","@type":"Interface","@context":"dtmi:dtdl:context;2","contents":[{"@type":"Property","name":"a","schema":"double"},{"@type":"Telemetry","name":"a","schema":"double"}]}"#,
            .invalidModel, "twice"
        ),
        (
            #"{"@id":"dtmi:x:A;1","@type":"Interface","@context":"dtmi:dtdl:context;2","contents":[{"@type":"Property","name":"1a","schema":"double"}]}"#,
            .invalidModel, "letter"
        ),
        (
            #"{"@id":"dtmi:x:A;1","@type":"Interface","@context":"dtmi:dtdl:context;2","contents":[{"@type":"Property","name":"a","schema":"decimalish"}]}"#,
            .invalidModel, "neither"
        ),
        (
            #"{"@id":"dtmi:x:A;1","@type":"Interface","@context":"dtmi:dtdl:context;2","contents":[{"@type":"Property","name":"a","schema":{"@type":"Enum","valueSchema":"integer","enumValues":[{"name":"x","enumValue":"one"}]}}]}"#,
            .invalidModel, "integer"
        ),
        (
            #"{"@id":"dtmi:x:A;1","@type":"Interface","@context":"dtmi:dtdl:context;2","contents":[{"@type":"Property","name":"a"}]}"#, .invalidModel,
            "schema is required"
        ),
        (
            #"{"@id":"dtmi:x:A;1","@type":"Interface","@context":"dtmi:dtdl:context;2","contents":[{"@type":"Relationship","name":"r","target":"dtmi:x:Nowhere;1"}]}"#,
            .missingReference, "Nowhere"
        ),
        (#"{"@id":"dtmi:x:A;1","@type":"Interface","@context":"dtmi:dtdl:context;2","extends":"dtmi:x:A;1"}"#, .invalidModel, "extends itself"),
    ])
    func refusesBadModels(text: String, kind: ModelError.Kind, words: String) throws {
        var models = ModelSet()
        let json = try JSONValue.parse(text)
        do {
            try models.add(DTDLParser.parseUpload(.array([json])))
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.kind == kind, "\(error)")
            #expect(error.message.contains(words), "\(error)")
        }
    }

    /// DTDL limits an `extends` hierarchy to 10 levels: a chain of 11 is refused, listed either way
    /// (deepest first it recursed once a level, through any number of them, before).
    @Test(arguments: [false, true]) func anExtendsChainDeeperThanTenLevelsIsRefused(deepestFirst: Bool) throws {
        let chain: [JSONValue] = (0...11).map { level in
            var interface: [String: JSONValue] = ["@id": .string("dtmi:x:A\(level);1"), "@type": "Interface", "@context": "dtmi:dtdl:context;2"]
            if level > 0 { interface["extends"] = .string("dtmi:x:A\(level - 1);1") }
            return .object(interface)
        }
        var models = ModelSet()
        do {
            try models.add(DTDLParser.parseUpload(.array(deepestFirst ? chain.reversed() : chain)))
            Issue.record("accepted a chain of 11 levels")
        } catch {
            #expect(error.message.contains("more than 10 levels deep"), "\(error)")
        }
        var ten = ModelSet()
        try ten.add(DTDLParser.parseUpload(.array(deepestFirst ? chain.prefix(11).reversed() : Array(chain.prefix(11)))))
        #expect(ten.resolvedInterface(DTMI("dtmi:x:A10;1")!)?.extendsDepth == 10)
    }

    @Test func refusesDuplicatesAndExistingModels() throws {
        var models = try Fixtures.models("seed")
        let again = try Fixtures.upload("seed")
        do {
            try models.add(DTDLParser.parseUpload(again))
            Issue.record("uploaded the same models twice")
        } catch {
            #expect(error.kind == .alreadyExists)
        }
    }

    @Test func conflictingInheritanceIsRefused() throws {
        var models = ModelSet()
        let upload = try JSONValue.parse(
            #"""
            [{"@id":"dtmi:x:A;1","@type":"Interface","@context":"dtmi:dtdl:context;2","contents":[{"@type":"Property","name":"p","schema":"double"}]},
             {"@id":"dtmi:x:B;1","@type":"Interface","@context":"dtmi:dtdl:context;2","contents":[{"@type":"Property","name":"p","schema":"string"}]},
             {"@id":"dtmi:x:C;1","@type":"Interface","@context":"dtmi:dtdl:context;2","extends":["dtmi:x:A;1","dtmi:x:B;1"]}]
            """#)
        #expect(throws: ModelError.self) { try models.add(DTDLParser.parseUpload(upload)) }
    }

    @Test func inlineInterfacesAreUploadedToo() throws {
        var models = ModelSet()
        let upload = try JSONValue.parse(
            #"""
            [{"@id":"dtmi:x:Device;1","@type":"Interface","@context":"dtmi:dtdl:context;2",
              "contents":[{"@type":"Component","name":"info","schema":{"@id":"dtmi:x:Info;1","@type":"Interface","contents":[{"@type":"Property","name":"serial","schema":"string"}]}}]}]
            """#)
        try models.add(DTDLParser.parseUpload(upload))
        #expect(models.interfaces[Fixtures.dtmi("dtmi:x:Info;1")] != nil)
        try models.validate(properties: ["info": ["serial": "A1", "$metadata": [:]]], of: Fixtures.dtmi("dtmi:x:Device;1"))
    }

    @Test func removeIsRefusedWhileReferenced() throws {
        var models = try Fixtures.models("seed")
        do {
            try models.remove(Fixtures.dtmi("dtmi:contosocom:DigitalTwins:Thermostat;1"))
            Issue.record("removed a referenced model")
        } catch {
            #expect(error.kind == .referenced)
        }
        try models.remove(Fixtures.dtmi("dtmi:contosocom:DigitalTwins:Room;1"))
        try models.remove(Fixtures.dtmi("dtmi:contosocom:DigitalTwins:Thermostat;1"))
        #expect(models.interfaces.isEmpty)
    }

    @Test func severalHundredInterfacesUploadInOneRequest() throws {
        var interfaces: [JSONValue] = []
        for index in 0..<600 {
            var object: [String: JSONValue] = [
                "@id": .string("dtmi:x:ontology:Type\(index);1"), "@type": "Interface", "@context": "dtmi:dtdl:context;3",
                "contents": [
                    ["@type": "Property", "name": .string("p\(index)"), "schema": "double"],
                    ["@type": "Relationship", "name": .string("next\(index)"), "target": .string("dtmi:x:ontology:Type\((index + 1) % 600);1")],
                ],
            ]
            // Chains of ten, as deep as DTDL allows an extends hierarchy.
            if index % 10 > 0 { object["extends"] = .string("dtmi:x:ontology:Type\(index - 1);1") }
            interfaces.append(.object(object))
        }
        var models = ModelSet()
        try models.add(DTDLParser.parseUpload(.array(interfaces.reversed())))
        let deepest = try #require(models.resolvedInterface(Fixtures.dtmi("dtmi:x:ontology:Type599;1")))
        #expect(deepest.properties.count == 10)
        #expect(deepest.ancestors.count == 10)
        #expect(deepest.extendsDepth == 9)
        #expect(models.interfaces.count == 600)
    }
}

@Suite struct TwinValidationTests {
    @Test func seedTwinsValidate() throws {
        let models = try Fixtures.models("seed")
        try models.validate(properties: ["currentTemp": 21.5], of: Fixtures.dtmi("dtmi:contosocom:DigitalTwins:Room;1"))
        try models.validate(properties: ["Temperature": 20, "$dtId": "thermo_0001"], of: Fixtures.dtmi("dtmi:contosocom:DigitalTwins:Thermostat;1"))
    }

    @Test func buildingTwinWithComponentValidates() throws {
        let models = try Fixtures.models("building")
        try models.validate(
            properties: [
                "Temperature": 21, "mode": "heat", "location": ["x": 1.5, "y": 2],
                "settings": ["setpoint": 22.5, "schedule": ["07:00:00", "22:30:00"], "$metadata": [:]],
            ],
            of: Fixtures.dtmi("dtmi:example:building:Thermostat;1")
        )
        try models.validate(
            properties: ["name": "Floor 1", "level": 1, "tags": ["wing": "east"]], of: Fixtures.dtmi("dtmi:example:building:Floor;1"))
    }

    @Test(arguments: [
        (#"{"Temperature":"hot"}"#, "/Temperature"),
        (#"{"Humidity":5}"#, "/Humidity"),
        (#"{"mode":"warm"}"#, "/mode"),
        (#"{"location":{"z":1}}"#, "/location/z"),
        (#"{"settings":{"setpoint":true}}"#, "/settings/setpoint"),
        (#"{"settings":{"schedule":["25:99"]}}"#, "/settings/schedule/0"),
        (#"{"settings":5}"#, "/settings"),
        (#"{"TemperatureReading":20}"#, "/TemperatureReading"),
    ])
    func namesWhatDoesNotFit(text: String, path: String) throws {
        let models = try Fixtures.models("building")
        guard case .object(let properties) = try JSONValue.parse(text) else { return }
        do {
            try models.validate(properties: properties, of: Fixtures.dtmi("dtmi:example:building:Thermostat;1"))
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.path == path, "\(error)")
        }
    }

    @Test func integerRangesAreChecked() throws {
        let models = try Fixtures.models("building")
        #expect(throws: ValidationError.self) {
            try models.validate(properties: ["level": 3_000_000_000], of: Fixtures.dtmi("dtmi:example:building:Floor;1"))
        }
        #expect(throws: ValidationError.self) {
            try models.validate(properties: ["level": 1.5], of: Fixtures.dtmi("dtmi:example:building:Floor;1"))
        }
    }
}
