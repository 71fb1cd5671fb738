import TwinflowCodec

/// The models a twin graph knows, with inheritance resolved: what a twin of a model may hold.
///
/// Adding an upload is all or nothing: every reference of every new interface must resolve within
/// the upload or among the models already known, `extends` must not loop, and an interface must not
/// inherit two different definitions of one name.
public struct ModelSet: Sendable {
    public private(set) var interfaces: [DTMI: Interface] = [:]
    /// Reusable schemas of every interface, by `@id`.
    private var schemas: [DTMI: Schema] = [:]
    /// Effective contents per interface, its own and inherited.
    private var resolved: [DTMI: ResolvedInterface] = [:]

    public init() {}

    public struct ResolvedInterface: Sendable {
        public var id: DTMI
        /// The interface and every interface it extends, directly or not.
        public var ancestors: Set<DTMI>
        public var properties: [String: Interface.Property]
        public var telemetries: [String: Interface.Telemetry]
        public var relationships: [String: Interface.Relationship]
        public var components: [String: Interface.Component]
        /// The longest chain of `extends` above the interface (0 when it extends nothing).
        public var extendsDepth = 0
    }

    /// DTDL's limit on the depth of an `extends` hierarchy.
    public static let maximumExtendsDepth = 10

    public func resolvedInterface(_ id: DTMI) -> ResolvedInterface? { resolved[id] }

    public func schema(_ id: DTMI) -> Schema? { schemas[id] }

    /// Whether a twin of `model` counts as a twin of `base` (`IS_OF_MODEL`, relationship targets).
    public func model(_ model: DTMI, isOfModel base: DTMI) -> Bool {
        resolved[model]?.ancestors.contains(base) ?? false
    }

    /// Checks `upload` against the known models and adds it.
    public mutating func add(_ upload: [Interface]) throws(ModelError) {
        var candidate = self
        var seen: Set<DTMI> = []
        for interface in upload {
            guard seen.insert(interface.id).inserted else {
                throw ModelError(.invalidModel, model: interface.id.rawValue, "appears twice in the upload")
            }
            guard interfaces[interface.id] == nil else {
                throw ModelError(.alreadyExists, model: interface.id.rawValue, "a model with this id exists already")
            }
            candidate.interfaces[interface.id] = interface
            for (id, schema) in interface.schemas { candidate.schemas[id] = schema }
        }
        for interface in upload {
            for reference in interface.references.sorted() where candidate.interfaces[reference] == nil && candidate.schemas[reference] == nil {
                throw ModelError(
                    .missingReference, model: interface.id.rawValue, "refers to '\(reference)', which is neither in the upload nor stored")
            }
            for component in interface.components.values where candidate.interfaces[component.schema] == nil {
                throw ModelError(
                    .invalidModel, model: interface.id.rawValue,
                    "component '\(component.name)' must name an interface, '\(component.schema)' is not one")
            }
        }
        for interface in upload {
            _ = try candidate.resolve(interface.id, visiting: [])
        }
        self = candidate
    }

    /// Removes a model; refused while another model refers to it.
    public mutating func remove(_ id: DTMI) throws(ModelError) {
        guard interfaces[id] != nil else { throw ModelError(.notFound, model: id.rawValue, "no such model") }
        if let user = interfaces.values.first(where: { $0.id != id && $0.references.contains(id) }) {
            throw ModelError(.referenced, model: id.rawValue, "model '\(user.id)' refers to it; delete that one first")
        }
        for schemaID in interfaces[id]!.schemas.keys { schemas[schemaID] = nil }
        interfaces[id] = nil
        resolved[id] = nil
    }

    /// The models `ids` depend on (what they extend, their components, relationship targets), transitively.
    public func dependencies(of ids: [DTMI]) -> Set<DTMI> {
        var result: Set<DTMI> = []
        var queue = ids
        while let next = queue.popLast() {
            guard let interface = interfaces[next] else { continue }
            for reference in interface.references where interfaces[reference] != nil && result.insert(reference).inserted {
                queue.append(reference)
            }
        }
        return result
    }

    private mutating func resolve(_ id: DTMI, visiting: Set<DTMI>) throws(ModelError) -> ResolvedInterface {
        if let done = resolved[id] { return done }
        guard !visiting.contains(id) else {
            throw ModelError(.invalidModel, model: id.rawValue, "extends itself through \(visiting.sorted().map(\.rawValue))")
        }
        // Checked on the way down too: a chain of thousands would overflow the stack before any depth came back.
        guard visiting.count <= Self.maximumExtendsDepth else {
            throw ModelError(.invalidModel, model: id.rawValue, "is extended more than \(Self.maximumExtendsDepth) levels deep")
        }
        guard let interface = interfaces[id] else {
            throw ModelError(.missingReference, model: id.rawValue, "is not known")
        }
        var result = ResolvedInterface(
            id: id,
            ancestors: [id],
            properties: interface.properties,
            telemetries: interface.telemetries,
            relationships: interface.relationships,
            components: interface.components
        )
        var origin: [String: DTMI] = [:]
        for name in interface.ownNames { origin[name] = id }
        for parentID in interface.extends {
            let parent = try resolve(parentID, visiting: visiting.union([id]))
            result.extendsDepth = max(result.extendsDepth, parent.extendsDepth + 1)
            guard result.extendsDepth <= Self.maximumExtendsDepth else {
                throw ModelError(.invalidModel, model: id.rawValue, "extends interfaces more than \(Self.maximumExtendsDepth) levels deep")
            }
            result.ancestors.formUnion(parent.ancestors)
            func merge<Content: Equatable>(_ own: inout [String: Content], _ inherited: [String: Content]) throws(ModelError) {
                for (name, content) in inherited {
                    if let existing = own[name] {
                        guard existing == content else {
                            throw ModelError(
                                .invalidModel, model: id.rawValue,
                                "'\(name)' is defined differently by '\(origin[name]?.rawValue ?? "?")' and '\(parentID)'")
                        }
                    } else if origin[name] != nil {
                        throw ModelError(
                            .invalidModel, model: id.rawValue,
                            "'\(name)' is defined by '\(origin[name]!)' and inherited from '\(parentID)' as something else")
                    } else {
                        own[name] = content
                        origin[name] = parentID
                    }
                }
            }
            try merge(&result.properties, parent.properties)
            try merge(&result.telemetries, parent.telemetries)
            try merge(&result.relationships, parent.relationships)
            try merge(&result.components, parent.components)
        }
        resolved[id] = result
        return result
    }
}

extension Interface {
    var ownNames: [String] {
        Array(properties.keys) + Array(telemetries.keys) + Array(relationships.keys) + Array(components.keys) + Array(commands)
    }
}
