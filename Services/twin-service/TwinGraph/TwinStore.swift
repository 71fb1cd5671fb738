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

/// A twin as this process last read or wrote it, with the revision that tells one write of a version
/// from another (a write may be rolled back and its version written again, differently).
public struct KnownTwin: Sendable, Hashable {
    public var twin: StoredTwin
    /// Random per write of the twin's row.
    public var revision: Int64
    /// The last `sequence` the twin's events took as of that write (a relationship event since
    /// makes it stale, and a write prepared against it is worked out again).
    public var lastSequence: Int64

    public init(twin: StoredTwin, revision: Int64, lastSequence: Int64) {
        self.twin = twin
        self.revision = revision
        self.lastSequence = lastSequence
    }
}

/// A twin's row as a transaction sees it, without its document.
public struct TwinRowState: Sendable, Hashable {
    public var live: Bool
    public var version: Int64
    public var revision: Int64
    /// The last `sequence` the twin's events took (0 if never).
    public var lastSequence: Int64

    public init(live: Bool, version: Int64, revision: Int64, lastSequence: Int64) {
        self.live = live
        self.version = version
        self.revision = revision
        self.lastSequence = lastSequence
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

/// A notification or telemetry event on its way out: written to the outbox in the transaction of the
/// change it reports, published by the relay after the commit.
public struct PendingEvent: Sendable, Hashable {
    /// The Kafka key: the twin the event is about (the source twin of a relationship).
    public var twinID: String
    /// Every attribute but `sequence`, which the store assigns (see ``numbered(_:)``).
    public private(set) var attributes: CloudEventAttributes
    /// `attributes` serialized, once, when the event is made (for a prepared patch, outside the writer).
    public private(set) var serializedAttributes: [UInt8]
    /// The event's data: JSON for notifications, the payload exactly as sent for telemetry.
    public var data: [UInt8]
    /// Whether the event takes the next `sequence` of its twin: notifications do, so a twin's
    /// notifications are numbered without gaps; telemetry does not.
    public var sequenced: Bool

    public init(twinID: String, attributes: CloudEventAttributes, data: [UInt8], sequenced: Bool = true) {
        self.twinID = twinID
        self.attributes = attributes
        self.serializedAttributes = attributes.serialized()
        self.data = data
        self.sequenced = sequenced
    }

    /// The event with its `sequence`. The serialized attributes gain it without being written again
    /// when `sequence` is their last attribute (no extension attributes follow it).
    public func numbered(_ sequence: Int64) -> PendingEvent {
        var numbered = self
        numbered.attributes.sequence = String(sequence)
        guard attributes.sequence == nil, attributes.extensions.isEmpty, serializedAttributes.last == UInt8(ascii: "}") else {
            numbered.serializedAttributes = numbered.attributes.serialized()
            return numbered
        }
        numbered.serializedAttributes.removeLast()
        numbered.serializedAttributes.append(contentsOf: Array(#","sequence":""#.utf8))
        numbered.serializedAttributes.append(contentsOf: Array(String(sequence).utf8))
        numbered.serializedAttributes.append(contentsOf: Array(#""}"#.utf8))
        return numbered
    }
}

/// An event in the outbox, numbered in commit order, its `sequence` set.
public struct OutboxEntry: Sendable, Hashable {
    public var position: Int64
    public var event: PendingEvent

    public init(position: Int64, event: PendingEvent) {
        self.position = position
        self.event = event
    }
}

/// ADT's event route: events that pass `filter` go to the endpoint named `endpointName`.
public struct EventRoute: Sendable, Hashable {
    public var id: String
    public var endpointName: String
    public var filter: String

    public init(id: String, endpointName: String, filter: String) {
        self.id = id
        self.endpointName = endpointName
        self.filter = filter
    }
}

/// What a write sees and does, inside one transaction. Only valid during the write that handed it out.
public protocol TwinStoreTransaction {
    /// The live twin (nil when absent or deleted), the last version its id had and the last
    /// `sequence` its events took (0 if never).
    func twin(_ id: String) throws -> (live: StoredTwin?, lastVersion: Int64, lastSequence: Int64)
    /// The twin's row without its document (nil when the id never had a twin): enough to confirm
    /// that a write prepared against a ``KnownTwin`` still applies.
    func twinState(_ id: String) throws -> TwinRowState?
    /// Stores the twin with its notification, which takes `sequence` (the twin's last plus one):
    /// one write of the row, which takes `revision` (new and random for every write). `document` is
    /// the twin's document serialized (the caller checked its size).
    func putTwin(_ twin: StoredTwin, revision: Int64, serialized document: [UInt8], notification: PendingEvent, sequence: Int64) throws
    /// Stores a patch prepared against the twin at `base` (version, revision and last sequence), only
    /// if its row is still that one, with its notification: one write of the row. Returns the
    /// `sequence` the notification took (the base's plus one), or nil when the twin changed since (and
    /// nothing was written).
    func putTwin(
        _ twin: StoredTwin, revision: Int64, serialized document: [UInt8], notification: PendingEvent,
        ifStillAt base: (version: Int64, revision: Int64, lastSequence: Int64)
    ) throws -> Int64?
    /// Deletes the twin; its id keeps its version and sequence counting.
    func deleteTwin(_ id: String) throws
    /// The live relationship and the last version its id had (0 if never).
    func relationship(sourceID: String, id: String) throws -> (live: StoredRelationship?, lastVersion: Int64)
    func relationships(sourceID: String, name: String?) throws -> [StoredRelationship]
    func incomingRelationships(targetID: String) throws -> [StoredRelationship]
    func putRelationship(_ relationship: StoredRelationship) throws
    func deleteRelationship(sourceID: String, id: String) throws
    /// Adds the event to the outbox, a sequenced one with the next `sequence` of its twin, which it
    /// returns (0 for an event without).
    @discardableResult
    func emit(_ event: PendingEvent) throws -> Int64
    /// Records an idempotency key (a command id, a telemetry Message-Id); false when it was recorded before.
    func recordOnce(_ key: String) throws -> Bool
}

/// One write of a batch: runs inside the batch's transaction and returns its result.
public typealias StoreWrite = @Sendable (any TwinStoreTransaction) throws -> any Sendable

/// Where the twin graph lives. Reads see every write whose call returned. Implementations: SQLite
/// (embedded default, one process) and PostgreSQL (shared by several).
public protocol TwinStore: Sendable {
    func twin(_ id: String) async throws -> StoredTwin?
    /// Live twins in id order, after `id` (from the start when nil), at most `limit`: a scan in pages.
    func twins(after id: String?, limit: Int) async throws -> [StoredTwin]
    func relationship(sourceID: String, id: String) async throws -> StoredRelationship?
    /// Outgoing relationships of a twin, optionally only those of one name.
    func relationships(sourceID: String, name: String?) async throws -> [StoredRelationship]
    /// Who points at the twin (source, relationship id and name, from the index alone), or nil when
    /// the twin does not exist; one read.
    func incomingLinks(targetID: String) async throws -> [IncomingLink]?
    /// The twin as this process last read or wrote it, without reading the store, or nil: a guess
    /// to prepare a write against, outside the writer; the write confirms it with ``TwinStoreTransaction/twinState(_:)``.
    func knownTwin(_ id: String) -> KnownTwin?
    /// Notes the twin as a write prepared against a known twin will leave it, before that write is
    /// stored: a guess like every known twin, for the next write to be prepared against.
    func remember(_ twin: KnownTwin)
    /// Reads those of the twins this process does not know yet, in one go, so that writes can be
    /// prepared against them (a no-op for a store whose reads in a write cost little).
    func learnTwins(_ ids: [String]) async throws

    /// Runs the writes in one transaction, in order: a write that throws leaves nothing behind and
    /// its error is its result; the others commit together. Throws only when the transaction itself
    /// fails, and then nothing of the batch is stored. A write may run more than once (a store may
    /// roll a batch back and run it again), so it acts only through its transaction, and on the
    /// known twins, which are guesses anyway.
    func write(_ writes: [StoreWrite]) async throws -> [Result<any Sendable, any Error>]

    /// Outbox entries after `position`, in order, at most `limit`.
    func outbox(after position: Int64, limit: Int) async throws -> [OutboxEntry]
    /// The position through which the outbox was delivered, by whichever process relayed it: where
    /// a relay that takes the turn starts, and what an instance that does not relay counts as
    /// delivered. Entries this process holds in memory up to it are forgotten.
    func outboxDeliveredThrough() async throws -> Int64
    /// Removes the entries up to and including `position`: they were delivered.
    func removeFromOutbox(through position: Int64) async throws
    /// Moves committed writes out of the store's write-ahead log, beside its writer (a no-op for a
    /// store that does this itself); the relay calls it about once a second.
    func checkpoint() async throws
    /// Forgets idempotency keys recorded before `time` (an RFC 3339 timestamp), in steps short
    /// enough that other writes go between them.
    @discardableResult
    func forgetKeys(recordedBefore time: String) async throws -> KeyPurge
    /// Makes a small write through the writer that changes nothing a reader sees: it throws when
    /// the store does not accept writes (readiness).
    func probeWrite() async throws
    /// Returns once this process may publish the outbox: at once for a store only this process
    /// writes; for a shared one, when no other process publishes it. `committedElsewhere` runs
    /// while the turn is held whenever another process commits events (and once when it is lost).
    func relayTurn(committedElsewhere: @escaping @Sendable () -> Void) async throws -> any RelayTurn
    /// A number that changes with every change of the models or the event routes, by any process;
    /// nil for a store only this process writes (it knows its own changes).
    func catalogVersion() async throws -> Int64?

    func eventRoutes() async throws -> [EventRoute]
    func putEventRoute(_ route: EventRoute) async throws
    /// False when there was no such route.
    func deleteEventRoute(_ id: String) async throws -> Bool

    func models() async throws -> [StoredModel]
    /// A model change is stored only while the catalog is still at `expected`, the version the
    /// change was checked against (nil: no check); otherwise it throws ``CatalogMoved`` and stores
    /// nothing. Returns the catalog's version after the change (nil for a store only this process
    /// writes). Concurrent model changes of several processes take turns.
    func addModels(_ models: [StoredModel], ifCatalogAt expected: Int64?) async throws -> Int64?
    func setDecommissioned(model id: String, _ decommissioned: Bool, ifCatalogAt expected: Int64?) async throws -> Int64?
    func deleteModel(_ id: String, ifCatalogAt expected: Int64?) async throws -> Int64?
}

/// Another process changed the models or the event routes after a model change was checked
/// against them: the change has to be checked again against the catalog as it is now.
public struct CatalogMoved: Error, Sendable, CustomStringConvertible {
    public var description: String { "the models changed in another process while this change was checked" }
}

/// What forgetting idempotency keys did: how many, in how many steps, and the longest step's time
/// in the writer (the longest any other write waited behind it).
public struct KeyPurge: Sendable, Hashable {
    public var forgotten: Int
    public var steps: Int
    public var longestStep: Duration

    public init(forgotten: Int = 0, steps: Int = 0, longestStep: Duration = .zero) {
        self.forgotten = forgotten
        self.steps = steps
        self.longestStep = longestStep
    }
}

/// The right to publish the outbox, held by one process at a time.
public protocol RelayTurn: Sendable {
    /// False once the turn is lost: the relay stops publishing and asks for a turn again.
    var isHeld: Bool { get }
    /// Gives the turn up.
    func release() async
}

/// The turn of the only process that writes the store: held until the process ends.
public struct SoleRelayTurn: RelayTurn {
    public init() {}
    public var isHeld: Bool { true }
    public func release() async {}
}
