import Synchronization
import TwinflowCodec

/// A relationship change as it was applied.
public struct RelationshipChange: Sendable, Hashable {
    public enum Kind: Sendable, Hashable { case create, update, delete }
    public var kind: Kind
    public var relationship: StoredRelationship
    /// The source twin's model, which ADT's Relationship.Update notification names.
    public var sourceModel: String
    public var patch: JSONPatch?
    /// The `sequence` of the change's notification (numbered with the source twin's events).
    public var sequence: Int64 = 0
}

extension DigitalTwinGraph {
    public func relationship(_ sourceID: String, _ id: String) async throws -> StoredRelationship {
        _ = try await twin(sourceID)
        guard let relationship = try await store.relationship(sourceID: sourceID, id: id) else {
            throw ServiceError.relationshipNotFound(sourceID, id)
        }
        return relationship
    }

    /// Outgoing relationships of a twin, optionally only those named `name`.
    public func relationships(of sourceID: String, name: String?) async throws -> [StoredRelationship] {
        _ = try await twin(sourceID)
        return try await store.relationships(sourceID: sourceID, name: name)
    }

    /// ADT's incoming relationship shape: `$relationshipId`, `$sourceId`, `$relationshipName`, `$relationshipLink`.
    public func incomingRelationships(of targetID: String) async throws -> [JSONValue] {
        guard let incoming = try await store.incomingLinks(targetID: targetID) else { throw ServiceError.twinNotFound(targetID) }
        return incoming.map { relationship in
            [
                "$relationshipId": .string(relationship.id),
                "$sourceId": .string(relationship.sourceID),
                "$relationshipName": .string(relationship.name),
                "$relationshipLink": .string("/digitaltwins/\(relationship.sourceID)/relationships/\(relationship.id)"),
            ]
        }
    }

    /// Creates or replaces a relationship from ADT's body (`$targetId`, `$relationshipName`, properties).
    /// Replacing one is an update: its notification is `Relationship.Update` with the patch of its properties.
    @discardableResult
    public func putRelationship(
        _ sourceID: String, _ id: String, body: JSONValue, ifNoneMatch: Bool = false, origin: ChangeOrigin = ChangeOrigin()
    ) async throws -> RelationshipChange {
        try Self.checkID(id, of: "relationship")
        guard case .object(var members) = body else { throw ServiceError.invalidArgument("The relationship must be a JSON object.") }
        guard let targetID = members["$targetId"]?.stringValue, !targetID.isEmpty else {
            throw ServiceError.invalidArgument("$targetId is required.")
        }
        guard let name = members["$relationshipName"]?.stringValue, !name.isEmpty else {
            throw ServiceError.invalidArgument("$relationshipName is required.")
        }
        if let given = members["$sourceId"], given != .string(sourceID) {
            throw ServiceError.invalidArgument("$sourceId \(given.jsonString()) does not match the twin in the path, \(sourceID).")
        }
        guard targetID != sourceID else {
            throw ServiceError(code: "InvalidRelationship", status: 400, "A twin cannot have a relationship to itself.")
        }
        for key in ["$relationshipId", "$sourceId", "$targetId", "$relationshipName", "$etag"] { members[key] = nil }
        let properties = members
        let models = self.models
        return try await write { transaction in
            guard let source = try transaction.twin(sourceID).live else { throw ServiceError.twinNotFound(sourceID) }
            guard let target = try transaction.twin(targetID).live else {
                throw ServiceError(code: "TargetTwinNotFound", status: 404, "The target twin \(targetID) does not exist.")
            }
            guard let sourceModel = DTMI(source.model), let definition = models.resolvedInterface(sourceModel)?.relationships[name] else {
                throw ServiceError(
                    code: "InvalidRelationship", status: 400, "The model \(source.model) of \(sourceID) has no relationship named \(name).")
            }
            if let required = definition.target {
                guard let targetModel = DTMI(target.model), models.model(targetModel, isOfModel: required) else {
                    throw ServiceError(
                        code: "InvalidRelationship", status: 400,
                        "Relationship \(name) must target a twin of \(required); \(targetID) is a \(target.model)."
                    )
                }
            }
            do throws(ValidationError) {
                try models.validate(relationshipProperties: properties, of: definition)
            } catch {
                throw ServiceError(error)
            }
            let (existing, lastVersion) = try transaction.relationship(sourceID: sourceID, id: id)
            if ifNoneMatch, existing != nil {
                throw ServiceError.preconditionFailed("A relationship with the id \(id) exists, and If-None-Match: * was given.")
            }
            if existing == nil, let maximum = definition.maxMultiplicity {
                let count = try transaction.relationships(sourceID: sourceID, name: name).count
                guard count < maximum else {
                    throw ServiceError(
                        code: "InvalidRelationship", status: 400,
                        "\(sourceID) has \(count) \(name) relationships already; at most \(maximum) are allowed.")
                }
            }
            let version = lastVersion + 1
            var document = properties
            document["$relationshipId"] = .string(id)
            document["$sourceId"] = .string(sourceID)
            document["$targetId"] = .string(targetID)
            document["$relationshipName"] = .string(name)
            document["$etag"] = .string(Self.etag(version))
            let relationship = StoredRelationship(
                sourceID: sourceID, id: id, name: name, targetID: targetID, version: version, document: .object(document))
            try transaction.putRelationship(relationship)
            var change = RelationshipChange(kind: .create, relationship: relationship, sourceModel: source.model, patch: nil)
            if let existing, case .object(let old) = existing.document {
                change = RelationshipChange(
                    kind: .update, relationship: relationship, sourceModel: source.model, patch: Self.difference(from: old, to: document)
                )
            }
            change.sequence = try transaction.emit(self.event(for: change, origin: origin, time: self.clock()))
            return change
        }
    }

    /// Applies a JSON Patch to a relationship's properties.
    @discardableResult
    public func patchRelationship(
        _ sourceID: String, _ id: String, patch body: JSONValue, ifMatch: String? = nil, origin: ChangeOrigin = ChangeOrigin()
    ) async throws -> RelationshipChange {
        let patch: JSONPatch
        do {
            patch = try JSONPatch(json: body)
        } catch {
            throw ServiceError.jsonPatchInvalid(error.description)
        }
        try Self.checkOperationKinds(of: patch)
        for operation in patch.operations where operation.path.tokens.first?.hasPrefix("$") ?? true {
            throw ServiceError.jsonPatchInvalid("'\(operation.path)' is not a property the patch may change.")
        }
        let models = self.models
        return try await write { transaction in
            guard let source = try transaction.twin(sourceID).live else { throw ServiceError.twinNotFound(sourceID) }
            guard let existing = try transaction.relationship(sourceID: sourceID, id: id).live else {
                throw ServiceError.relationshipNotFound(sourceID, id)
            }
            try Self.check(ifMatch: ifMatch, etag: existing.document["$etag"]?.stringValue ?? "")
            var document: JSONValue
            do throws(CodecError) {
                document = try patch.apply(to: existing.document)
            } catch {
                throw ServiceError.jsonPatchInvalid(error.reason)
            }
            guard case .object(var members) = document, let model = DTMI(source.model),
                let definition = models.resolvedInterface(model)?.relationships[existing.name]
            else { throw ServiceError.jsonPatchInvalid("the patch replaced the relationship") }
            do throws(ValidationError) {
                try models.validate(relationshipProperties: members, of: definition)
            } catch {
                throw ServiceError(error)
            }
            let version = existing.version + 1
            members["$etag"] = .string(Self.etag(version))
            var relationship = existing
            relationship.version = version
            relationship.document = .object(members)
            try transaction.putRelationship(relationship)
            var change = RelationshipChange(kind: .update, relationship: relationship, sourceModel: source.model, patch: patch)
            change.sequence = try transaction.emit(self.event(for: change, origin: origin, time: self.clock()))
            return change
        }
    }

    @discardableResult
    public func deleteRelationship(
        _ sourceID: String, _ id: String, ifMatch: String? = nil, origin: ChangeOrigin = ChangeOrigin()
    ) async throws -> RelationshipChange {
        try await write { transaction in
            guard let source = try transaction.twin(sourceID).live else { throw ServiceError.twinNotFound(sourceID) }
            guard let existing = try transaction.relationship(sourceID: sourceID, id: id).live else {
                throw ServiceError.relationshipNotFound(sourceID, id)
            }
            try Self.check(ifMatch: ifMatch, etag: existing.document["$etag"]?.stringValue ?? "")
            try transaction.deleteRelationship(sourceID: sourceID, id: id)
            var change = RelationshipChange(kind: .delete, relationship: existing, sourceModel: source.model, patch: nil)
            change.sequence = try transaction.emit(self.event(for: change, origin: origin, time: self.clock()))
            return change
        }
    }
}
