import TwinflowCodec

/// Reads DTDL v2 and v3 interfaces (with v3's standard extensions, such as QuantitativeTypes) from
/// their JSON-LD form. It checks each interface on its own; references between interfaces are
/// checked by ``ModelSet``.
public enum DTDLParser {
    static let v2Context = "dtmi:dtdl:context;2"
    static let v3Context = "dtmi:dtdl:context;3"
    static let knownExtensionPrefix = "dtmi:dtdl:extension:"

    /// Parses an upload: a JSON array of interfaces. Inline interfaces come out as interfaces of their own.
    public static func parseUpload(_ json: JSONValue) throws(ModelError) -> [Interface] {
        guard case .array(let elements) = json else {
            throw ModelError(.invalidModel, model: nil, "the body must be a JSON array of DTDL interfaces")
        }
        var result: [Interface] = []
        for element in elements {
            let interface = try parseInterface(element, inheritedContext: nil)
            result.append(interface)
            result.append(contentsOf: interface.allInlineInterfaces)
        }
        return result
    }

    /// Parses one interface object; `inheritedContext` is the DTDL version of the interface it is
    /// nested in, for inline interfaces without an `@context` of their own.
    public static func parseInterface(_ json: JSONValue, inheritedContext: Int?) throws(ModelError) -> Interface {
        guard case .object(let object) = json else {
            throw ModelError(.invalidModel, model: nil, "each model must be a JSON object, found \(json.typeName)")
        }
        let idText = object["@id"]?.stringValue
        let context = Context(model: idText)
        guard let idText else { throw context.error("@id is required") }
        guard let id = DTMI(idText) else { throw context.error("@id '\(idText)' is not a valid DTMI") }
        _ = try context.classify(object["@type"], field: "@type", among: ["Interface"])
        let version = try context.dtdlVersion(object["@context"], inherited: inheritedContext)
        var parser = InterfaceParser(context: context, version: version)
        return try parser.parse(object, id: id)
    }
}

/// Where in an upload an error is, for messages like `dtmi:x;1: contents[2].schema: …`.
struct Context {
    var model: String?

    func error(_ message: String) -> ModelError {
        ModelError(.invalidModel, model: model, message)
    }

    func types(_ value: JSONValue?, field: String) throws(ModelError) -> [String] {
        switch value {
        case .string(let type)?: return [type]
        case .array(let elements)?:
            var types: [String] = []
            for element in elements {
                guard case .string(let type) = element else { throw error("\(field) must hold strings") }
                types.append(type)
            }
            guard !types.isEmpty else { throw error("\(field) must not be empty") }
            return types
        case nil: throw error("\(field) is required")
        case let other?: throw error("\(field) must be a string or an array of strings, found \(other.typeName)")
        }
    }

    /// Splits an element's `@type` into its DTDL class, one of `classes`, and its co-types (semantic
    /// types such as `Temperature`, adjunct types such as `Historized`). DTDL lets them come in any
    /// order, and co-types need not be defined by a context the model names.
    func classify(
        _ value: JSONValue?, field: String, among classes: Set<String>
    ) throws(ModelError) -> (dtdlClass: String, coTypes: [String]) {
        let types = try types(value, field: field)
        let named = types.filter(classes.contains)
        guard let dtdlClass = named.first else {
            throw error("\(field) must name one of \(classes.sorted().joined(separator: ", ")); found \(types.joined(separator: ", "))")
        }
        guard named.count == 1 else { throw error("\(field) names both \(named[0]) and \(named[1])") }
        return (dtdlClass, types.filter { $0 != dtdlClass })
    }

    func dtdlVersion(_ value: JSONValue?, inherited: Int?) throws(ModelError) -> Int {
        let contexts: [String]
        switch value {
        case nil:
            if let inherited { return inherited }
            throw error("@context is required ('\(DTDLParser.v2Context)' or '\(DTDLParser.v3Context)')")
        case .string(let context)?: contexts = [context]
        case .array(let elements)?: contexts = elements.compactMap(\.stringValue)
        case let other?: throw error("@context must be a string or an array, found \(other.typeName)")
        }
        guard let base = contexts.first else { throw error("@context must not be empty") }
        let version: Int
        switch base {
        case DTDLParser.v2Context: version = 2
        case DTDLParser.v3Context: version = 3
        default: throw error("@context '\(base)' is not DTDL v2 or v3")
        }
        for extensionContext in contexts.dropFirst() where !extensionContext.hasPrefix(DTDLParser.knownExtensionPrefix) {
            throw error("@context '\(extensionContext)' is not a DTDL extension")
        }
        return version
    }

    func name(_ value: JSONValue?, field: String, version: Int) throws(ModelError) -> String {
        guard case .string(let name)? = value else { throw error("\(field) is required and must be a string") }
        let limit = version >= 3 ? 512 : 64
        let scalars = Array(name.unicodeScalars)
        let valid =
            !scalars.isEmpty && scalars.count <= limit && scalars[0].isASCII && scalars[0].properties.isAlphabetic
            && scalars.last != "_"
            && scalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }
        guard valid else {
            throw error("\(field) '\(name)' must start with a letter and hold only letters, digits and '_' (at most \(limit))")
        }
        return name
    }

    func dtmi(_ value: JSONValue?, field: String) throws(ModelError) -> DTMI {
        guard case .string(let text)? = value else { throw error("\(field) must be a DTMI string") }
        guard let id = DTMI(text) else { throw error("\(field) '\(text)' is not a valid DTMI") }
        return id
    }

    func localized(_ value: JSONValue?, field: String) throws(ModelError) -> [String: String] {
        switch value {
        case nil: return [:]
        case .string(let text)?: return ["en": text]
        case .object(let texts)?:
            var result: [String: String] = [:]
            for (language, text) in texts {
                guard case .string(let string) = text else { throw error("\(field).\(language) must be a string") }
                result[language] = string
            }
            return result
        case let other?: throw error("\(field) must be a string or a language map, found \(other.typeName)")
        }
    }
}

/// Parses one interface's members, collecting reusable and inline definitions as it goes.
struct InterfaceParser {
    let context: Context
    let version: Int
    var schemas: [DTMI: Schema] = [:]
    var inlineInterfaces: [Interface] = []

    init(context: Context, version: Int) {
        self.context = context
        self.version = version
    }

    mutating func parse(_ object: [String: JSONValue], id: DTMI) throws(ModelError) -> Interface {
        var extends: [DTMI] = []
        switch object["extends"] {
        case nil: break
        case .array(let elements)?:
            for (index, element) in elements.enumerated() { extends.append(try reference(to: element, field: "extends[\(index)]")) }
        case let element?:
            extends.append(try reference(to: element, field: "extends"))
        }
        if case .array(let reusable)? = object["schemas"] {
            for (index, element) in reusable.enumerated() {
                guard let schemaID = element["@id"] else { throw context.error("schemas[\(index)] needs an @id") }
                let key = try context.dtmi(schemaID, field: "schemas[\(index)].@id")
                schemas[key] = try schema(element, field: "schemas[\(index)]")
            }
        } else if let other = object["schemas"] {
            throw context.error("schemas must be an array, found \(other.typeName)")
        }

        var interface = Interface(
            id: id,
            dtdlVersion: version,
            extends: extends,
            displayName: try context.localized(object["displayName"], field: "displayName"),
            description: try context.localized(object["description"], field: "description"),
            properties: [:],
            telemetries: [:],
            relationships: [:],
            components: [:],
            commands: [],
            schemas: [:],
            inlineInterfaces: [],
            definition: .object(object)
        )
        var names: Set<String> = []
        let contents: [JSONValue]
        switch object["contents"] {
        case nil: contents = []
        case .array(let elements)?: contents = elements
        case let other?: throw context.error("contents must be an array, found \(other.typeName)")
        }
        for (index, element) in contents.enumerated() {
            let field = "contents[\(index)]"
            guard case .object(let content) = element else { throw context.error("\(field) must be an object") }
            let (dtdlClass, coTypes) = try context.classify(content["@type"], field: "\(field).@type", among: Self.contentClasses)
            let name = try context.name(content["name"], field: "\(field).name", version: version)
            guard names.insert(name).inserted else { throw context.error("\(field).name '\(name)' is used twice") }
            switch dtdlClass {
            case "Property":
                interface.properties[name] = try property(content, name: name, coTypes: coTypes, field: field)
            case "Telemetry":
                interface.telemetries[name] = Interface.Telemetry(
                    name: name,
                    schema: try schema(required: content["schema"], field: "\(field).schema"),
                    semanticTypes: coTypes,
                    unit: content["unit"]?.stringValue
                )
            case "Relationship":
                interface.relationships[name] = try relationship(content, name: name, field: field)
            case "Component":
                guard let schemaValue = content["schema"] else { throw context.error("\(field).schema is required") }
                interface.components[name] = Interface.Component(name: name, schema: try reference(to: schemaValue, field: "\(field).schema"))
            case "Command":
                interface.commands.insert(name)
            default:
                throw context.error("\(field).@type '\(dtdlClass)' is not Property, Telemetry, Relationship, Component or Command")
            }
        }
        interface.schemas = schemas
        interface.inlineInterfaces = inlineInterfaces
        return interface
    }

    private mutating func property(
        _ content: [String: JSONValue], name: String, coTypes: [String], field: String
    ) throws(ModelError) -> Interface.Property {
        var writable = false
        if let value = content["writable"] {
            guard case .bool(let flag) = value else { throw context.error("\(field).writable must be a boolean") }
            writable = flag
        }
        return Interface.Property(
            name: name,
            schema: try schema(required: content["schema"], field: "\(field).schema"),
            writable: writable,
            semanticTypes: coTypes,
            unit: content["unit"]?.stringValue
        )
    }

    private mutating func relationship(_ content: [String: JSONValue], name: String, field: String) throws(ModelError) -> Interface.Relationship {
        var properties: [String: Interface.Property] = [:]
        if case .array(let elements)? = content["properties"] {
            for (index, element) in elements.enumerated() {
                guard case .object(let object) = element else { throw context.error("\(field).properties[\(index)] must be an object") }
                let (_, coTypes) = try context.classify(
                    object["@type"] ?? "Property", field: "\(field).properties[\(index)].@type", among: ["Property"])
                let propertyName = try context.name(object["name"], field: "\(field).properties[\(index)].name", version: version)
                properties[propertyName] = try property(object, name: propertyName, coTypes: coTypes, field: "\(field).properties[\(index)]")
            }
        }
        var maxMultiplicity: Int?
        if let value = content["maxMultiplicity"] {
            guard let count = value.integerValue, count >= 1 else { throw context.error("\(field).maxMultiplicity must be a positive integer") }
            maxMultiplicity = Int(count)
        }
        return Interface.Relationship(
            name: name,
            target: try content["target"].map { (value) throws(ModelError) in try context.dtmi(value, field: "\(field).target") },
            properties: properties,
            maxMultiplicity: maxMultiplicity
        )
    }

    /// A DTMI, or an inline interface (which is then uploaded too) standing for one.
    private mutating func reference(to value: JSONValue, field: String) throws(ModelError) -> DTMI {
        if case .object = value {
            let inline = try DTDLParser.parseInterface(value, inheritedContext: version)
            inlineInterfaces.append(inline)
            return inline.id
        }
        return try context.dtmi(value, field: field)
    }

    private mutating func schema(required value: JSONValue?, field: String) throws(ModelError) -> Schema {
        guard let value else { throw context.error("\(field) is required") }
        return try schema(value, field: field)
    }

    mutating func schema(_ value: JSONValue, field: String) throws(ModelError) -> Schema {
        switch value {
        case .string(let name):
            if let primitive = Schema.Primitive(rawValue: name) {
                if version < 3, Self.v3OnlyPrimitives.contains(primitive) {
                    throw context.error("\(field) '\(name)' needs DTDL v3")
                }
                return .primitive(primitive)
            }
            guard let id = DTMI(name) else { throw context.error("\(field) '\(name)' is neither a DTDL schema nor a DTMI") }
            return .reference(id)
        case .object(let object):
            let result: Schema
            let dtdlClass = try context.classify(object["@type"], field: "\(field).@type", among: Self.schemaClasses).dtdlClass
            switch dtdlClass {
            case "Enum": result = try enumeration(object, field: field)
            case "Object":
                guard case .array(let elements)? = object["fields"] else { throw context.error("\(field).fields must be an array") }
                var fields: [Schema.Field] = []
                var names: Set<String> = []
                for (index, element) in elements.enumerated() {
                    let name = try context.name(element["name"], field: "\(field).fields[\(index)].name", version: version)
                    guard names.insert(name).inserted else { throw context.error("\(field).fields[\(index)].name '\(name)' is used twice") }
                    fields.append(
                        Schema.Field(name: name, schema: try schema(required: element["schema"], field: "\(field).fields[\(index)].schema")))
                }
                result = .object(fields: fields)
            case "Map":
                guard let key = object["mapKey"], let mapValue = object["mapValue"] else {
                    throw context.error("\(field) needs mapKey and mapValue")
                }
                guard key["schema"] == "string" else { throw context.error("\(field).mapKey.schema must be 'string'") }
                let keyName = try context.name(key["name"], field: "\(field).mapKey.name", version: version)
                _ = try context.name(mapValue["name"], field: "\(field).mapValue.name", version: version)
                result = .map(keyName: keyName, value: try schema(required: mapValue["schema"], field: "\(field).mapValue.schema"))
            case "Array":
                result = .array(element: try schema(required: object["elementSchema"], field: "\(field).elementSchema"))
            default:
                throw context.error("\(field).@type '\(dtdlClass)' is not Enum, Object, Map or Array")
            }
            if let idValue = object["@id"] {
                let id = try context.dtmi(idValue, field: "\(field).@id")
                schemas[id] = result
            }
            return result
        default:
            throw context.error("\(field) must be a schema name, a DTMI or a schema object, found \(value.typeName)")
        }
    }

    private func enumeration(_ object: [String: JSONValue], field: String) throws(ModelError) -> Schema {
        guard case .string(let valueSchemaName)? = object["valueSchema"],
            let valueSchema = Schema.Primitive(rawValue: valueSchemaName), valueSchema == .integer || valueSchema == .string
        else { throw context.error("\(field).valueSchema must be 'integer' or 'string'") }
        guard case .array(let elements)? = object["enumValues"], !elements.isEmpty else {
            throw context.error("\(field).enumValues must be a non-empty array")
        }
        var values: [Schema.EnumValue] = []
        for (index, element) in elements.enumerated() {
            let name = try context.name(element["name"], field: "\(field).enumValues[\(index)].name", version: version)
            guard let value = element["enumValue"] else { throw context.error("\(field).enumValues[\(index)].enumValue is required") }
            let matches =
                valueSchema == .integer
                ? value.integerValue != nil && value.integerValue.map { Double($0) } == value.doubleValue : value.stringValue != nil
            guard matches else { throw context.error("\(field).enumValues[\(index)].enumValue must be a \(valueSchemaName)") }
            values.append(Schema.EnumValue(name: name, value: value))
        }
        return .enumeration(valueSchema: valueSchema, values: values)
    }

    static let contentClasses: Set<String> = ["Property", "Telemetry", "Relationship", "Component", "Command"]
    static let schemaClasses: Set<String> = ["Enum", "Object", "Map", "Array"]

    static let v3OnlyPrimitives: Set<Schema.Primitive> = [
        .byte, .bytes, .decimal, .short, .uuid, .unsignedByte, .unsignedShort, .unsignedInteger, .unsignedLong,
    ]
}

extension Interface {
    /// Inline interfaces, including those nested in inline interfaces.
    var allInlineInterfaces: [Interface] {
        inlineInterfaces.flatMap { [$0] + $0.allInlineInterfaces }
    }
}
