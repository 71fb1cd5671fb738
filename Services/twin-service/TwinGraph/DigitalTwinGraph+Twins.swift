import Synchronization
import TwinflowCodec

/// A twin change as it was applied: what the notification of it will carry.
public struct TwinChange: Sendable, Hashable {
    public enum Kind: Sendable, Hashable { case create, update, delete }
    public var kind: Kind
    public var twin: StoredTwin
    /// For an update, the operations as applied (a `replace` of an unset property counts as `add`).
    public var patch: JSONPatch?
    /// The `sequence` of the change's notification.
    public var sequence: Int64 = 0
}

extension DigitalTwinGraph {
    public func twin(_ id: String) async throws -> StoredTwin {
        guard let twin = try await store.twin(id) else { throw ServiceError.twinNotFound(id) }
        return twin
    }

    /// Creates or replaces a twin from ADT's body (`$metadata.$model` and properties). With
    /// `ifNoneMatch` (`If-None-Match: *`) an existing twin is left alone and the answer is 412.
    /// Replacing a twin is an update: its notification is `Twin.Update` with the patch from the old
    /// properties to the new.
    @discardableResult
    public func putTwin(_ id: String, body: JSONValue, ifNoneMatch: Bool = false, origin: ChangeOrigin = ChangeOrigin()) async throws -> TwinChange {
        try Self.checkID(id, of: "twin")
        guard case .object(var members) = body else { throw ServiceError.invalidArgument("The twin must be a JSON object.") }
        if let given = members["$dtId"], given != .string(id) {
            throw ServiceError.invalidArgument("$dtId \(given.jsonString()) does not match the id in the path, \(id).")
        }
        guard let modelText = members["$metadata"]?["$model"]?.stringValue else {
            throw ServiceError.validationFailed("$metadata.$model is required.")
        }
        guard let model = DTMI(modelText), let stored = state.withLock({ $0.stored[modelText] }) else {
            throw ServiceError.modelNotFound(modelText)
        }
        guard !stored.decommissioned else {
            throw ServiceError(code: "ModelDecommissioned", status: 400, "The model \(modelText) is decommissioned: no new twins of it.")
        }
        members["$dtId"] = nil
        members["$etag"] = nil
        members["$metadata"] = nil
        let models = self.models
        guard let resolved = models.resolvedInterface(model) else { throw ServiceError.modelNotFound(modelText) }
        // Components left out start empty, rather than being refused as ADT does.
        for name in resolved.components.keys where members[name] == nil {
            members[name] = .object(["$metadata": .object([:])])
        }
        do {
            try models.validate(properties: members, of: model)
        } catch {
            throw ServiceError(error)
        }

        let validated = members
        let clock = self.clock
        return try await write { transaction in
            let (existing, lastVersion, lastSequence) = try transaction.twin(id)
            if ifNoneMatch, existing != nil {
                throw ServiceError.preconditionFailed("A twin with the id \(id) exists, and If-None-Match: * was given.")
            }
            let version = lastVersion + 1
            let now = clock()
            var document = validated
            for (name, component) in resolved.components {
                guard case .object(var componentMembers) = document[name] else { continue }
                var metadata: [String: JSONValue] = ["$lastUpdateTime": .string(now)]
                for key in componentMembers.keys where !key.hasPrefix("$") { metadata[key] = ["lastUpdateTime": .string(now)] }
                componentMembers["$metadata"] = .object(metadata)
                document[component.name] = .object(componentMembers)
            }
            var metadata: [String: JSONValue] = ["$model": .string(modelText), "$lastUpdateTime": .string(now)]
            for key in validated.keys where !key.hasPrefix("$") && resolved.components[key] == nil {
                metadata[key] = ["lastUpdateTime": .string(now)]
            }
            document["$metadata"] = .object(metadata)
            document["$dtId"] = .string(id)
            document["$etag"] = .string(Self.etag(version))
            let twin = StoredTwin(id: id, model: modelText, version: version, document: .object(document))
            let serialized = try Self.serializedWithinLimit(twin.document)
            var change = TwinChange(kind: .create, twin: twin, patch: nil, sequence: lastSequence + 1)
            if let existing, case .object(let old) = existing.document {
                change = TwinChange(kind: .update, twin: twin, patch: Self.difference(from: old, to: document), sequence: lastSequence + 1)
            }
            try transaction.putTwin(
                twin, revision: RandomID.int64(), serialized: serialized, notification: self.event(for: change, origin: origin, time: now),
                sequence: change.sequence
            )
            return change
        }
    }

    /// Applies a JSON Patch to a twin (ADT's UpdateDigitalTwin), validated after applying.
    /// `componentPath` patches inside one component, as `/digitaltwins/{id}/components/{path}` does.
    @discardableResult
    public func patchTwin(
        _ id: String,
        patch body: JSONValue,
        ifMatch: String? = nil,
        componentPath: String? = nil,
        sourceTime: String? = nil,
        origin: ChangeOrigin = ChangeOrigin()
    ) async throws -> TwinChange {
        let requested: JSONPatch
        do {
            requested = try JSONPatch(json: body)
        } catch {
            throw ServiceError.jsonPatchInvalid(error.description)
        }
        try Self.checkPaths(of: requested, inComponent: componentPath != nil)
        let prepared = store.knownTwin(id).map { known in
            prepare(requested, for: known, ifMatch: ifMatch, componentPath: componentPath, sourceTime: sourceTime, origin: origin)
        }
        return try await write { transaction in
            try self.patchTwin(
                id, requested, in: transaction, ifMatch: ifMatch, componentPath: componentPath, sourceTime: sourceTime, origin: origin,
                prepared: prepared
            )
        }
    }

    /// Refuses what ADT refuses in a twin's patch: operations other than `add`, `replace` and
    /// `remove`, and changes of `$` members (`$dtId`, `$etag`, `$metadata`) or of the whole twin,
    /// but for `add`/`replace` of `/$metadata/$model` with a model ID, which changes the twin's
    /// model (not a component's).
    static func checkPaths(of patch: JSONPatch, inComponent: Bool = false) throws(ServiceError) {
        try checkOperationKinds(of: patch)
        for operation in patch.operations {
            switch operation {
            case .add(let path, let value) where path == modelPointer, .replace(let path, let value) where path == modelPointer:
                guard !inComponent else { throw ServiceError.jsonPatchInvalid("A component's model cannot be changed.") }
                guard value.stringValue != nil else { throw ServiceError.jsonPatchInvalid("'\(path)' must be a model ID.") }
            default:
                let path = operation.path
                if path.tokens.contains(where: { $0.hasPrefix("$") }) || path.isRoot {
                    throw ServiceError.jsonPatchInvalid("'\(path)' is not a property the patch may change.")
                }
            }
        }
    }

    /// ADT's JSON Patch operations are limited to `add`, `replace` and `remove`.
    static func checkOperationKinds(of patch: JSONPatch) throws(ServiceError) {
        for operation in patch.operations {
            switch operation {
            case .add, .replace, .remove: continue
            case .move, .copy, .test:
                throw ServiceError.jsonPatchInvalid("'\(operation.name)' is not supported: operations are limited to add, replace and remove.")
            }
        }
    }

    /// `/$metadata/$model`: setting it changes a twin's model.
    static let modelPointer = JSONPointer(tokens: ["$metadata", "$model"])

    /// The patch of a twin inside a write: read, apply, validate, store, and emit its notification.
    /// A patch `prepared` outside the writer is stored as it is when the twin is still the one it
    /// was prepared against; otherwise the patch is worked out here.
    func patchTwin(
        _ id: String, _ requested: JSONPatch, in transaction: any TwinStoreTransaction, ifMatch: String?, componentPath: String?,
        sourceTime: String?, origin: ChangeOrigin, prepared: PreparedTwinPatch? = nil
    ) throws -> TwinChange {
        if let prepared {
            switch prepared.outcome {
            case .success(let patched):
                let base = (version: prepared.baseVersion, revision: prepared.baseRevision, lastSequence: prepared.baseSequence)
                if let sequence = try transaction.putTwin(
                    patched.twin, revision: patched.revision, serialized: patched.serialized, notification: patched.notification, ifStillAt: base
                ) {
                    return TwinChange(kind: .update, twin: patched.twin, patch: patched.applied, sequence: sequence)
                }
            case .failure(let refusal):
                if let state = try transaction.twinState(id), prepared.applies(to: state) { throw refusal }
            }
        }
        let (current, _, lastSequence) = try transaction.twin(id)
        guard let existing = current else { throw ServiceError.twinNotFound(id) }
        let patched = try patched(existing, with: requested, ifMatch: ifMatch, componentPath: componentPath, sourceTime: sourceTime, origin: origin)
        return try store(patched, after: lastSequence, in: transaction)
    }

    /// Works out a patch outside the writer, against the twin as last known.
    func prepare(
        _ requested: JSONPatch, for base: KnownTwin, ifMatch: String?, componentPath: String?, sourceTime: String?, origin: ChangeOrigin
    ) -> PreparedTwinPatch {
        PreparedTwinPatch(
            baseVersion: base.twin.version, baseRevision: base.revision, baseSequence: base.lastSequence,
            outcome: Result { () throws(ServiceError) in
                try patched(base.twin, with: requested, ifMatch: ifMatch, componentPath: componentPath, sourceTime: sourceTime, origin: origin)
            }
        )
    }

    private func store(_ patched: PatchedTwin, after lastSequence: Int64, in transaction: any TwinStoreTransaction) throws -> TwinChange {
        let change = TwinChange(kind: .update, twin: patched.twin, patch: patched.applied, sequence: lastSequence + 1)
        try transaction.putTwin(
            patched.twin, revision: patched.revision, serialized: patched.serialized, notification: patched.notification, sequence: change.sequence
        )
        return change
    }

    /// A patch applied to `existing`: validated, its `$metadata` touched, serialized, its notification
    /// made (without its `sequence`, which the store assigns). Stores nothing.
    func patched(
        _ existing: StoredTwin, with requested: JSONPatch, ifMatch: String?, componentPath: String?, sourceTime: String?, origin: ChangeOrigin
    ) throws(ServiceError) -> PatchedTwin {
        let id = existing.id
        let etag = existing.document["$etag"]?.stringValue ?? ""
        try Self.check(ifMatch: ifMatch, etag: etag)
        let models = self.models
        // A twin whose model was deleted may still be given another one; anything else needs its model.
        let current = models.resolvedInterface(DTMI(checked: existing.model))
        let changesModel = componentPath == nil && requested.operations.contains { $0.path == Self.modelPointer }
        guard current != nil || changesModel else { throw ServiceError.modelNotFound(existing.model) }
        if let componentPath, current?.components[componentPath] == nil {
            throw ServiceError.componentNotFound(id, componentPath)
        }
        // Paths are relative to the component when patching one.
        let prefix = componentPath.map { [$0] } ?? []
        var applied: [JSONPatch.Operation] = []
        var document = existing.document
        var budget = JSONPatch.Budget()
        for operation in requested.operations {
            var operation = operation.prefixed(by: prefix)
            if case .replace(let path, let value) = operation, document.value(at: path) == nil, document.value(at: path.parent) != nil {
                operation = .add(path: path, value: value)
            }
            do throws(CodecError) {
                try operation.apply(to: &document, within: &budget)
            } catch {
                throw ServiceError.jsonPatchInvalid(error.reason)
            }
            applied.append(operation)
        }
        guard case .object(var members) = consume document else { throw ServiceError.jsonPatchInvalid("the patch replaced the twin") }
        let now = clock()
        var model = DTMI(checked: existing.model)
        var interface = current
        if let requestedModel = members["$metadata"]?["$model"]?.stringValue, requestedModel != existing.model {
            let (newModel, newInterface) = try remodel(&members, as: requestedModel, models: models, at: now)
            (model, interface) = (newModel, newInterface)
        }
        guard let resolved = interface else { throw ServiceError.modelNotFound(existing.model) }
        do throws(ValidationError) {
            try models.validate(properties: members, of: model)
        } catch {
            throw ServiceError(error)
        }
        let version = existing.version + 1
        Self.touchMetadata(&members, for: applied, at: now, sourceTime: sourceTime, components: Set(resolved.components.keys))
        members["$etag"] = .string(Self.etag(version))
        let twin = StoredTwin(id: id, model: model.rawValue, version: version, document: .object(members))
        let serialized = try Self.serializedWithinLimit(twin.document)
        let patch = JSONPatch(applied)
        let notification = event(for: TwinChange(kind: .update, twin: twin, patch: patch), origin: origin, time: now)
        return PatchedTwin(twin: twin, revision: RandomID.int64(), serialized: serialized, applied: patch, notification: notification)
    }

    /// The twin's new model, which a patch set in `$metadata.$model`: one twin-service holds and has
    /// not decommissioned (as for a new twin), else `ValidationFailed`, ADT's answer to a patch that
    /// leaves an invalid twin. The new model's components that the twin lacks start
    /// empty, as they do when a twin is created; the properties are validated by the caller.
    private func remodel(
        _ members: inout [String: JSONValue], as text: String, models: ModelSet, at now: String
    ) throws(ServiceError) -> (DTMI, ModelSet.ResolvedInterface) {
        guard let model = DTMI(text), let stored = state.withLock({ $0.stored[text] }), let resolved = models.resolvedInterface(model) else {
            throw ServiceError.validationFailed("The twin cannot take on the model \(text): there is no such model.")
        }
        guard !stored.decommissioned else {
            throw ServiceError.validationFailed("The twin cannot take on the model \(text): it is decommissioned.")
        }
        for name in resolved.components.keys where members[name] == nil {
            members[name] = .object(["$metadata": .object(["$lastUpdateTime": .string(now)])])
        }
        return (model, resolved)
    }

    /// Deletes a twin; refused while it has relationships (in or out), unless `cascade` deletes them
    /// too, each with its own notification before the twin's.
    @discardableResult
    public func deleteTwin(
        _ id: String, ifMatch: String? = nil, cascade: Bool = false, origin: ChangeOrigin = ChangeOrigin()
    ) async throws -> TwinChange {
        try await write { transaction in
            guard let existing = try transaction.twin(id).live else { throw ServiceError.twinNotFound(id) }
            try Self.check(ifMatch: ifMatch, etag: existing.document["$etag"]?.stringValue ?? "")
            let outgoing = try transaction.relationships(sourceID: id, name: nil)
            let incoming = try transaction.incomingRelationships(targetID: id)
            if !cascade, !outgoing.isEmpty || !incoming.isEmpty {
                throw ServiceError(
                    code: "RelationshipsNotDeleted", status: 400,
                    "The digital twin \(id) has \(outgoing.count) outgoing and \(incoming.count) incoming relationships; delete them first, or use ?cascade=true."
                )
            }
            let now = self.clock()
            var seen = Set<StoredRelationship>()
            for relationship in outgoing + incoming where seen.insert(relationship).inserted {
                let sourceModel = relationship.sourceID == id ? existing.model : try transaction.twin(relationship.sourceID).live?.model ?? ""
                try transaction.deleteRelationship(sourceID: relationship.sourceID, id: relationship.id)
                let change = RelationshipChange(kind: .delete, relationship: relationship, sourceModel: sourceModel, patch: nil)
                try transaction.emit(self.event(for: change, origin: origin, time: now))
            }
            try transaction.deleteTwin(id)
            var change = TwinChange(kind: .delete, twin: existing, patch: nil)
            change.sequence = try transaction.emit(self.event(for: change, origin: origin, time: now))
            return change
        }
    }

    /// The patch that turns one twin's properties (or a relationship's) into another's: `add`, `replace`
    /// or `remove` per top-level property, components compared without their `$metadata`.
    static func difference(from old: [String: JSONValue], to new: [String: JSONValue]) -> JSONPatch {
        func comparable(_ value: JSONValue?) -> JSONValue? {
            guard case .object(var members)? = value else { return value }
            members["$metadata"] = nil
            return .object(members)
        }
        var operations: [JSONPatch.Operation] = []
        for name in Set(old.keys).union(new.keys).sorted() where !name.hasPrefix("$") {
            let before = comparable(old[name])
            let after = comparable(new[name])
            let path = JSONPointer(tokens: [name])
            switch (before, after) {
            case (nil, let value?): operations.append(.add(path: path, value: value))
            case (_?, nil): operations.append(.remove(path: path))
            case (let before?, let value?) where before != value: operations.append(.replace(path: path, value: value))
            default: break
            }
        }
        return JSONPatch(operations)
    }

    /// A component of a twin, with its `$metadata`.
    public func component(_ id: String, path: String) async throws -> JSONValue {
        try await componentAndETag(id, path: path).component
    }

    /// A component of a twin, with its `$metadata`, and the twin's `$etag` (ADT's `ETag` of the answer).
    public func componentAndETag(_ id: String, path: String) async throws -> (component: JSONValue, etag: String?) {
        let twin = try await twin(id)
        guard let model = DTMI(twin.model), models.resolvedInterface(model)?.components[path] != nil, let value = twin.document[path] else {
            throw ServiceError.componentNotFound(id, path)
        }
        return (value, twin.document["$etag"]?.stringValue)
    }

    /// The twin's document serialized, refused with 413 over ADT's 32 KB.
    static func serializedWithinLimit(_ document: JSONValue) throws(ServiceError) -> [UInt8] {
        let serialized = document.serialized()
        guard serialized.count <= maximumTwinBytes else {
            throw ServiceError.payloadTooLarge("The twin would be \(serialized.count) bytes; at most \(maximumTwinBytes) are allowed.")
        }
        return serialized
    }

    /// Sets `lastUpdateTime` (and `sourceTime`) of each property the operations touched, in the twin's
    /// or its component's `$metadata`; drops the entry of a removed property.
    static func touchMetadata(
        _ members: inout [String: JSONValue], for operations: [JSONPatch.Operation], at now: String, sourceTime: String?, components: Set<String>
    ) {
        func touch(_ metadata: inout [String: JSONValue], _ name: String, removed: Bool) {
            metadata["$lastUpdateTime"] = .string(now)
            if removed {
                metadata[name] = nil
            } else {
                var entry: [String: JSONValue] = ["lastUpdateTime": .string(now)]
                if let sourceTime { entry["sourceTime"] = .string(sourceTime) }
                metadata[name] = .object(entry)
            }
        }
        // Taken out of the twin while it changes, so it is changed in place rather than copied.
        var twinMetadata = members.removeValue(forKey: "$metadata")?.objectValue ?? [:]
        for operation in operations {
            let pointer = operation.path
            // `$metadata.$model` changed the model; the other `$` members are the service's own.
            guard let first = pointer.tokens.first, !first.hasPrefix("$") else { continue }
            let removed = pointer.tokens.count == 1 && members[first] == nil
            if components.contains(first), pointer.tokens.count >= 2, case .object(var component)? = members[first] {
                var metadata = component["$metadata"]?.objectValue ?? [:]
                touch(&metadata, pointer.tokens[1], removed: pointer.tokens.count == 2 && component[pointer.tokens[1]] == nil)
                component["$metadata"] = .object(metadata)
                members[first] = .object(component)
            } else {
                touch(&twinMetadata, first, removed: removed)
            }
        }
        twinMetadata["$lastUpdateTime"] = .string(now)
        members["$metadata"] = .object(twinMetadata)
    }
}

extension JSONPatch.Operation {
    /// The same operation with every pointer placed under `prefix`.
    func prefixed(by prefix: [String]) -> JSONPatch.Operation {
        guard !prefix.isEmpty else { return self }
        func under(_ pointer: JSONPointer) -> JSONPointer { JSONPointer(tokens: prefix + pointer.tokens) }
        switch self {
        case .add(let path, let value): return .add(path: under(path), value: value)
        case .remove(let path): return .remove(path: under(path))
        case .replace(let path, let value): return .replace(path: under(path), value: value)
        case .move(let from, let path): return .move(from: under(from), path: under(path))
        case .copy(let from, let path): return .copy(from: under(from), path: under(path))
        case .test(let path, let value): return .test(path: under(path), value: value)
        }
    }
}
