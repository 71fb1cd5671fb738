import TwinflowCodec

/// One DTDL interface as uploaded: its own contents, not those it inherits (see ``ModelSet``).
public struct Interface: Sendable, Hashable {
    public var id: DTMI
    /// 2 or 3: the DTDL language version of its `@context`.
    public var dtdlVersion: Int
    public var extends: [DTMI]
    public var displayName: [String: String]
    public var description: [String: String]
    public var properties: [String: Property]
    public var telemetries: [String: Telemetry]
    public var relationships: [String: Relationship]
    public var components: [String: Component]
    public var commands: Set<String>
    /// Reusable schemas defined in `schemas` (and inline schemas with an `@id`).
    public var schemas: [DTMI: Schema]
    /// Interfaces defined inline (in `extends` or a component's `schema`), uploaded with this one.
    public var inlineInterfaces: [Interface]
    /// The definition exactly as uploaded, for `includeModelDefinition`.
    public var definition: JSONValue

    public struct Property: Sendable, Hashable {
        public var name: String
        public var schema: Schema
        public var writable: Bool
        /// Co-types such as `Temperature` in `["Property", "Temperature"]`.
        public var semanticTypes: [String]
        public var unit: String?
    }

    public struct Telemetry: Sendable, Hashable {
        public var name: String
        public var schema: Schema
        public var semanticTypes: [String]
        public var unit: String?
    }

    public struct Relationship: Sendable, Hashable {
        public var name: String
        /// The model a target twin must be of (or extend); any model when `nil`.
        public var target: DTMI?
        public var properties: [String: Property]
        public var maxMultiplicity: Int?
    }

    public struct Component: Sendable, Hashable {
        public var name: String
        public var schema: DTMI
    }

    /// Every model this interface refers to: what it extends, component schemas, relationship
    /// targets and schema references.
    public var references: Set<DTMI> {
        var result = Set(extends)
        result.formUnion(components.values.map(\.schema))
        result.formUnion(relationships.values.compactMap(\.target))
        for property in properties.values { result.formUnion(property.schema.references) }
        for telemetry in telemetries.values { result.formUnion(telemetry.schema.references) }
        for relationship in relationships.values {
            for property in relationship.properties.values { result.formUnion(property.schema.references) }
        }
        for schema in schemas.values { result.formUnion(schema.references) }
        result.subtract(schemas.keys)
        return result
    }
}
