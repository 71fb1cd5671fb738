import Synchronization

extension DigitalTwinGraph {
    /// The stored models in memory. Those that do not parse, or refer (directly or through another)
    /// to a model the store lacks, are kept as broken rather than stopping the graph from opening.
    static func loadModels(_ stored: [StoredModel]) -> ModelState {
        var state = ModelState()
        var loadable: [String: [Interface]] = [:]
        for model in stored {
            state.stored[model.id] = model
            state.order.append(model.id)
            do {
                let interface = try DTDLParser.parseInterface(model.definition, inheritedContext: nil)
                loadable[model.id] = [interface] + interface.allInlineInterfaces
            } catch {
                state.broken[model.id] = ModelError(error.kind, model: model.id, error.message)
            }
        }
        while let (id, error) = firstDangling(in: loadable) {
            state.broken[id] = error
            loadable[id] = nil
        }
        do {
            try state.set.add(state.order.compactMap { loadable[$0] }.flatMap { $0 })
        } catch {
            addOneByOne(state.order.compactMap { id in loadable[id].map { (id, $0) } }, to: &state)
        }
        return state
    }

    /// A stored model that refers to something no loadable model defines.
    private static func firstDangling(in loadable: [String: [Interface]]) -> (String, ModelError)? {
        var defined: Set<DTMI> = []
        for interface in loadable.values.joined() {
            defined.insert(interface.id)
            defined.formUnion(interface.schemas.keys)
        }
        for (id, interfaces) in loadable {
            for interface in interfaces {
                if let missing = interface.references.subtracting(defined).min() {
                    return (id, ModelError(.missingReference, model: id, "refers to '\(missing)', which is not stored or cannot be loaded"))
                }
            }
        }
        return nil
    }

    /// Adds what can be added, pass after pass, so a model comes in once what it refers to has; for a
    /// store whose models do not load together for a reason other than a missing reference.
    private static func addOneByOne(_ models: [(id: String, interfaces: [Interface])], to state: inout ModelState) {
        var pending = models
        var failures: [String: ModelError] = [:]
        while !pending.isEmpty {
            var next: [(id: String, interfaces: [Interface])] = []
            for model in pending {
                do {
                    try state.set.add(model.interfaces)
                } catch {
                    failures[model.id] = error
                    next.append(model)
                }
            }
            guard next.count < pending.count else { break }
            pending = next
        }
        for model in pending { state.broken[model.id] = failures[model.id] }
    }
}

extension DigitalTwinGraph {
    /// Reads the models and event routes again when another process changed them since they were
    /// read (a store several processes share says so by its catalog version): one small read when
    /// nothing changed, nothing at all for a store only this process writes. The REST API calls it
    /// before each request, the command handler before each batch and the relay before routing one.
    public func refreshCatalog() async throws {
        guard let version = try await store.catalogVersion(), state.withLock({ $0.catalogVersion }) != version else { return }
        var loaded = Self.loadModels(try await store.models())
        try await reloadRoutes()
        loaded.catalogVersion = version
        state.withLock { current in
            // A refresh that read a later version finished first: its models stay.
            guard (current.catalogVersion ?? .min) <= version else { return }
            current = loaded
        }
    }
}
