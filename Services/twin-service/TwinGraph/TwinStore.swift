import TwinflowCodec

/// A twin as stored: its document is exactly what GET returns (`$dtId`, `$etag`, `$metadata`, properties).
public struct StoredTwin: Sendable, Hashable {
    public var id: String
    public var model: String
    /// Increases with every change of this twin, across deletes: it makes the ETag and numbers the twin's events.
    public var version: Int64
    public var document: JSONValue

    public init(id: String, model: String, version: Int64, document: JSONValue) {
        self.id = id
        self.model = model
        self.version = version
        self.document = document
    }
}

/// A relationship as stored, its document as GET returns it.
public struct StoredRelationship: Sendable, Hashable {
    public var sourceID: String
    public var id: String
    public var name: String
    public var targetID: String
    public var version: Int64
    public var document: JSONValue

    public init(sourceID: String, id: String, name: String, targetID: String, version: Int64, document: JSONValue) {
        self.sourceID = sourceID
        self.id = id
        self.name = name
        self.targetID = targetID
        self.version = version
        self.document = document
    }
}

/// A relationship seen from its target.
public struct IncomingLink: Sendable, Hashable {
    public var sourceID: String
    public var id: String
    public var name: String

    public init(sourceID: String, id: String, name: String) {
        self.sourceID = sourceID
        self.id = id
        self.name = name
    }
}

/// A model as stored.
public struct StoredModel: Sendable, Hashable {
    public var id: String
    public var definition: JSONValue
    public var uploadTime: String
    public var decommissioned: Bool

    public init(id: String, definition: JSONValue, uploadTime: String, decommissioned: Bool) {
        self.id = id
        self.definition = definition
        self.uploadTime = uploadTime
        self.decommissioned = decommissioned
    }
}

/// What a write expects to find: the optimistic check that keeps concurrent writers honest.
public enum StoreExpectation: Sendable, Hashable {
    /// No live row (never created, or deleted).
    case absent
    /// The live row at exactly this version.
    case version(Int64)
}

/// One change of a write; a write's changes commit together or not at all.
public enum StoreChange: Sendable, Hashable {
    case deleteTwin(id: String, expecting: StoreExpectation)
    case putRelationship(StoredRelationship, expecting: StoreExpectation)
    case deleteRelationship(sourceID: String, id: String, expecting: StoreExpectation)
}

/// A write found a row other than it expected: another writer came first. Read again and retry.
public struct StoreConflict: Error, Sendable {
    public var description: String
}

/// Where the twin graph lives. Reads see every write whose call returned; `commit` is one
/// transaction. Implementations: SQLite (embedded default); PostgreSQL to follow.
public protocol TwinStore: Sendable {
    func twin(_ id: String) async throws -> StoredTwin?
    /// Live twins in id order, after `id` (from the start when nil), at most `limit`: a scan in pages.
    func twins(after id: String?, limit: Int) async throws -> [StoredTwin]
    func relationship(sourceID: String, id: String) async throws -> StoredRelationship?
    func lastVersion(ofRelationship id: String, sourceID: String) async throws -> Int64
    /// Outgoing relationships of a twin, optionally only those of one name.
    func relationships(sourceID: String, name: String?) async throws -> [StoredRelationship]
    /// Who points at the twin (source, relationship id and name, from the index alone), or nil when
    /// the twin does not exist; one read.
    func incomingLinks(targetID: String) async throws -> [IncomingLink]?
    /// Relationships whose target is the twin, or nil when the twin does not exist; one read.
    func incomingRelationships(targetID: String) async throws -> [StoredRelationship]?
    func commit(_ changes: [StoreChange]) async throws

    /// Read-modify-write of one twin in one transaction: `change` gets the live twin (if any) and the
    /// last version the id had (0 if never), and returns the twin to store (or nil to store nothing)
    /// with a result. Writers of one twin never race, so there is nothing to retry.
    func modifyTwin<Result: Sendable>(
        _ id: String,
        _ change: @escaping @Sendable (_ current: StoredTwin?, _ lastVersion: Int64) throws -> (StoredTwin?, Result)
    ) async throws -> Result

    func models() async throws -> [StoredModel]
    func addModels(_ models: [StoredModel]) async throws
    func setDecommissioned(model id: String, _ decommissioned: Bool) async throws
    func deleteModel(_ id: String) async throws
}
