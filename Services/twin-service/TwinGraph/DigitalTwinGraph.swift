import Foundation
import Synchronization
import TwinflowCodec

/// The twin graph: models, twins and relationships with ADT's semantics, over a ``TwinStore``.
///
/// Every change is a read-modify-write inside one store transaction, validated against the models,
/// and writes its notification into the store's outbox in the same transaction. Concurrent writes
/// share transactions (group commit), so concurrent patches to one twin all apply, one after the other.
public final class DigitalTwinGraph: Sendable {
    /// ADT's limit on a twin's size.
    public static let maximumTwinBytes = 32 * 1024
    /// The largest telemetry payload: well under Kafka's default `message.max.bytes` (1 MB), so every
    /// event in the outbox can be delivered.
    public static let maximumTelemetryBytes = 256 * 1024

    let store: any TwinStore
    let state: Mutex<ModelState>
    let clock: @Sendable () -> String
    let writes: WriteBatcher
    /// The `source` of every notification (ADT's instance host name).
    public let instanceName: String
    /// The configured endpoints by name: where routes can send events.
    public let endpoints: [String: EventEndpoint]
    let routes: Mutex<RouteTable>
    let outboxBell = Doorbell()

    struct ModelState: Sendable {
        var set = ModelSet()
        var stored: [String: StoredModel] = [:]
        var order: [String] = []
    }

    /// Opens the graph over `store`, loading its models.
    public init(
        store: any TwinStore,
        instanceName: String = "twinflow.local",
        endpoints: [EventEndpoint] = EventEndpoint.defaults(twinEventsTopic: Topics.defaults.twinEvents, telemetryTopic: Topics.defaults.telemetry),
        clock: @escaping @Sendable () -> String = Timestamp.now
    ) async throws {
        self.store = store
        self.clock = clock
        self.instanceName = instanceName
        self.endpoints = Dictionary(endpoints.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
        self.routes = Mutex(RouteTable(active: try await Self.loadRoutes(store)))
        let outboxBell = outboxBell
        self.writes = WriteBatcher(store: store, committed: { outboxBell.ring() })
        var state = ModelState()
        let stored = try await store.models()
        if !stored.isEmpty {
            let interfaces = try stored.map { model throws(ModelError) in try DTDLParser.parseInterface(model.definition, inheritedContext: nil) }
            try state.set.add(interfaces + interfaces.flatMap(\.allInlineInterfaces))
            for model in stored {
                state.stored[model.id] = model
                state.order.append(model.id)
            }
        }
        self.state = Mutex(state)
    }

    var models: ModelSet { state.withLock { $0.set } }

    /// Runs `body` in a store transaction shared with the writes that arrive meanwhile; returns once committed.
    func write<Result: Sendable>(_ body: @escaping @Sendable (any TwinStoreTransaction) throws -> Result) async throws -> Result {
        let result = try await writes.perform { transaction in try body(transaction) }
        guard let typed = result as? Result else { preconditionFailure("a write returned another type than it promised") }
        return typed
    }

    static func etag(_ version: Int64) -> String { "W/\"\(version)\"" }

    /// Answers `If-Match`: nil or `*` match anything.
    static func check(ifMatch: String?, etag: String) throws(ServiceError) {
        guard let ifMatch, ifMatch != "*" else { return }
        guard ifMatch == etag else {
            throw ServiceError.preconditionFailed("The If-Match header \(ifMatch) does not match the current ETag \(etag).")
        }
    }
}

// MARK: - Models

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
        let now = clock()
        // Inline interfaces are stored inside the interface that defines them.
        let topLevelIDs = Set((body.arrayValue ?? []).compactMap { $0["@id"]?.stringValue })
        let stored = interfaces.filter { topLevelIDs.contains($0.id.rawValue) }
            .map { StoredModel(id: $0.id.rawValue, definition: $0.definition, uploadTime: now, decommissioned: false) }
        var candidate = models
        do {
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
        guard state.withLock({ $0.stored[id] }) != nil else { throw ServiceError.modelNotFound(id) }
        let patch: JSONPatch
        do {
            patch = try JSONPatch(json: body)
        } catch {
            throw ServiceError.jsonPatchInvalid(error.description)
        }
        guard patch.operations.count == 1, case .replace(let path, let value) = patch.operations[0], path.description == "/decommissioned",
            value == .bool(true)
        else {
            throw ServiceError.invalidArgument("The only model update is {\"op\":\"replace\",\"path\":\"/decommissioned\",\"value\":true}.")
        }
        try await store.setDecommissioned(model: id, true)
        state.withLock { $0.stored[id]?.decommissioned = true }
    }

    /// Deletes a model; refused while another model refers to it.
    public func deleteModel(_ id: String) async throws {
        guard let dtmi = DTMI(id), state.withLock({ $0.stored[id] }) != nil else { throw ServiceError.modelNotFound(id) }
        var candidate = models
        do {
            try candidate.remove(dtmi)
        } catch {
            throw ServiceError(error)
        }
        try await store.deleteModel(id)
        state.withLock { state in
            state.set = candidate
            state.stored[id] = nil
            state.order.removeAll { $0 == id }
        }
    }
}
