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
            let now = clock()
            let stored = topLevel.map { StoredModel(id: $0.id.rawValue, definition: $0.definition, uploadTime: now, decommissioned: false) }
            var candidate = models
            do throws(ModelError) {
                // A broken stored model is not in the model set, but its id is taken.
                if let clash = state.withLock({ state in interfaces.first { state.stored[$0.id.rawValue] != nil } }) {
                    throw ModelError(.alreadyExists, model: clash.id.rawValue, "a model with this id exists already")
                }
                try candidate.add(interfaces)
            } catch {
                throw ServiceError(error)
            }
            try await store.addModels(stored)
            return state.withLock { state in
                state.set = candidate
                for model in stored {
                    state.stored[model.id] = model
                    state.order.append(model.id)
                }
                return stored.map { Self.modelData($0, state: state, includeDefinition: false) }
            }
        }
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
            guard state.withLock({ $0.stored[id] }) != nil else { throw ServiceError.modelNotFound(id) }
            guard patch.operations.count == 1, case .replace(let path, let value) = patch.operations[0], path.description == "/decommissioned",
                value == .bool(true)
            else {
                throw ServiceError.invalidArgument("The only model update is {\"op\":\"replace\",\"path\":\"/decommissioned\",\"value\":true}.")
            }
            try await store.setDecommissioned(model: id, true)
            state.withLock { $0.stored[id]?.decommissioned = true }
        }
    }

    /// Deletes a model; refused while another model refers to it. A broken model (see ``brokenModels``)
    /// can always be deleted: no loaded model refers to it.
    public func deleteModel(_ id: String) async throws {
        try await modelWrites.run {
            let (known, broken) = state.withLock { ($0.stored[id] != nil, $0.broken[id] != nil) }
            guard let dtmi = DTMI(id), known else { throw ServiceError.modelNotFound(id) }
            var candidate = models
            if !broken {
                do throws(ModelError) {
                    try candidate.remove(dtmi)
                } catch {
                    throw ServiceError(error)
                }
            }
            try await store.deleteModel(id)
            state.withLock { state in
                state.set = candidate
                state.stored[id] = nil
                state.broken[id] = nil
                state.order.removeAll { $0 == id }
            }
        }
    }

    /// The stored models that could not be loaded when the graph opened, and why.
    public var brokenModels: [ModelError] {
        state.withLock { state in state.order.compactMap { state.broken[$0] } }
    }
}
