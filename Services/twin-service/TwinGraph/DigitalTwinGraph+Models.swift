import Synchronization
import TwinflowCodec

extension DigitalTwinGraph {
    /// ADT's model data: `id`, `displayName`, `description`, `uploadTime`, `decommissioned`, and `model` when asked for.
    public func modelData(_ id: String, includeDefinition: Bool) -> JSONValue? {
        state.withLock { state in state.stored[id].map { Self.modelData($0, state: state, includeDefinition: includeDefinition) } }
    }

    static func modelData(_ model: StoredModel, state: ModelState, includeDefinition: Bool) -> JSONValue {
        var data: [String: JSONValue] = [
            "id": .string(model.id), "uploadTime": .string(model.uploadTime), "decommissioned": .bool(model.decommissioned),
        ]
        if let interface = DTMI(model.id).flatMap({ state.set.interfaces[$0] }) {
            if !interface.displayName.isEmpty { data["displayName"] = .object(interface.displayName.mapValues(JSONValue.string)) }
            if !interface.description.isEmpty { data["description"] = .object(interface.description.mapValues(JSONValue.string)) }
        }
        if includeDefinition { data["model"] = model.definition }
        return .object(data)
    }

    /// Uploads an array of interfaces, all or nothing, and returns their model data.
    public func addModels(_ body: JSONValue) async throws -> [JSONValue] {
        let interfaces: [Interface]
        do {
            interfaces = try DTDLParser.parseUpload(body)
        } catch {
            throw ServiceError(error)
        }
        // Inline interfaces are stored inside the interface that defines them.
        let topLevelIDs = Set((body.arrayValue ?? []).compactMap { $0["@id"]?.stringValue })
        let topLevel = interfaces.filter { topLevelIDs.contains($0.id.rawValue) }
        return try await modelWrites.run {
            try await checkingAgainWhenCatalogMoved {
                let now = clock()
                let stored = topLevel.map { StoredModel(id: $0.id.rawValue, definition: $0.definition, uploadTime: now, decommissioned: false) }
                // A broken stored model is not in the model set, but its id is taken.
                let (models, clash, expected) = state.withLock { state in
                    (state.set, interfaces.first { state.stored[$0.id.rawValue] != nil }, state.catalogVersion)
                }
                var candidate = models
                do throws(ModelError) {
                    if let clash { throw ModelError(.alreadyExists, model: clash.id.rawValue, "a model with this id exists already") }
                    try candidate.add(interfaces)
                } catch {
                    throw ServiceError(error)
                }
                let version = try await store.addModels(stored, ifCatalogAt: expected)
                return state.withLock { state in
                    if Self.isNewer(version, than: state) {
                        state.set = candidate
                        for model in stored {
                            state.stored[model.id] = model
                            state.order.append(model.id)
                        }
                        state.catalogVersion = version ?? state.catalogVersion
                    }
                    return stored.map { Self.modelData($0, state: state, includeDefinition: false) }
                }
            }
        }
    }

    /// The most times a model change is checked again because another process changed the catalog
    /// between this one's check and its write.
    public static let catalogAttempts = 8

    /// Runs `change`, a model change checked against the models as this process last read them;
    /// when the store says another process changed the catalog meanwhile, reads it again and runs
    /// `change` again, so a change is always checked against the models it is stored beside.
    func checkingAgainWhenCatalogMoved<Result: Sendable>(_ change: () async throws -> Result) async throws -> Result {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await change()
            } catch is CatalogMoved where attempt < Self.catalogAttempts {
                try await refreshCatalog()
            } catch is CatalogMoved {
                throw ServiceError(code: "ServiceUnavailable", status: 503, "The models kept changing in other instances; try again.")
            }
        }
    }

    /// Whether a change that left the catalog at `version` is news to `state`: false when a refresh
    /// has already read the catalog at that version or later (a store only this process writes has
    /// no version: always news).
    static func isNewer(_ version: Int64?, than state: ModelState) -> Bool {
        guard let version, let current = state.catalogVersion else { return true }
        return current < version
    }

    /// Lists models: all, or `dependenciesFor` some and what they depend on.
    public func listModels(dependenciesFor: [String], includeDefinition: Bool) throws(ServiceError) -> [JSONValue] {
        try state.withLock { state throws(ServiceError) in
            var ids = state.order
            if !dependenciesFor.isEmpty {
                var wanted: [DTMI] = []
                for id in dependenciesFor {
                    guard let dtmi = DTMI(id), state.set.interfaces[dtmi] != nil else { throw ServiceError.modelNotFound(id) }
                    wanted.append(dtmi)
                }
                let keep = Set(wanted.map(\.rawValue)).union(state.set.dependencies(of: wanted).map(\.rawValue))
                ids = ids.filter(keep.contains)
            }
            return ids.compactMap { state.stored[$0] }.map { Self.modelData($0, state: state, includeDefinition: includeDefinition) }
        }
    }

    /// ADT's model update: a JSON Patch whose only allowed operation is replacing `/decommissioned` with `true`.
    public func updateModel(_ id: String, patch body: JSONValue) async throws {
        let patch: JSONPatch
        do {
            patch = try JSONPatch(json: body)
        } catch {
            guard state.withLock({ $0.stored[id] }) != nil else { throw ServiceError.modelNotFound(id) }
            throw ServiceError.jsonPatchInvalid(error.description)
        }
        try await modelWrites.run {
            try await checkingAgainWhenCatalogMoved {
                let (known, expected) = state.withLock { ($0.stored[id] != nil, $0.catalogVersion) }
                guard known else { throw ServiceError.modelNotFound(id) }
                guard patch.operations.count == 1, case .replace(let path, let value) = patch.operations[0], path.description == "/decommissioned",
                    value == .bool(true)
                else {
                    throw ServiceError.invalidArgument("The only model update is {\"op\":\"replace\",\"path\":\"/decommissioned\",\"value\":true}.")
                }
                let version = try await store.setDecommissioned(model: id, true, ifCatalogAt: expected)
                state.withLock { state in
                    guard Self.isNewer(version, than: state) else { return }
                    state.stored[id]?.decommissioned = true
                    state.catalogVersion = version ?? state.catalogVersion
                }
            }
        }
    }

    /// Deletes a model; refused while another model refers to it. A broken model (see ``brokenModels``)
    /// can always be deleted: no loaded model refers to it.
    public func deleteModel(_ id: String) async throws {
        try await modelWrites.run {
            try await checkingAgainWhenCatalogMoved {
                let (models, known, broken, expected) = state.withLock { ($0.set, $0.stored[id] != nil, $0.broken[id] != nil, $0.catalogVersion) }
                guard let dtmi = DTMI(id), known else { throw ServiceError.modelNotFound(id) }
                var candidate = models
                if !broken {
                    do throws(ModelError) {
                        try candidate.remove(dtmi)
                    } catch {
                        throw ServiceError(error)
                    }
                }
                let version = try await store.deleteModel(id, ifCatalogAt: expected)
                state.withLock { state in
                    guard Self.isNewer(version, than: state) else { return }
                    state.set = candidate
                    state.stored[id] = nil
                    state.broken[id] = nil
                    state.order.removeAll { $0 == id }
                    state.catalogVersion = version ?? state.catalogVersion
                }
            }
        }
    }

    /// The stored models that could not be loaded when the graph opened, and why.
    public var brokenModels: [ModelError] {
        state.withLock { state in state.order.compactMap { state.broken[$0] } }
    }
}
