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
    /// The largest JSON Patch a REST request or a command may carry for a twin or relationship: the
    /// Twin.Update or Relationship.Update notification carries the patch whole, so it too must stay
    /// well under Kafka's default `message.max.bytes`.
    public static let maximumPatchBytes = 256 * 1024
    /// The longest command id or telemetry `Message-Id`, in UTF-8 bytes: room for a propagated
    /// command's id (its cause's id, its rule and its parent's id), and short enough for a key in
    /// any store's index (PostgreSQL's B-tree refuses entries of more than about 2.7 kB).
    public static let maximumIdempotencyIDBytes = 1024

    /// Refuses a command id or `Message-Id` longer than ``maximumIdempotencyIDBytes``.
    static func checkIdempotencyID(_ id: String, named name: String) throws(ServiceError) {
        let bytes = id.utf8.count
        guard bytes <= maximumIdempotencyIDBytes else {
            throw ServiceError.invalidArgument("The \(name) is \(bytes) bytes long; at most \(maximumIdempotencyIDBytes) are allowed.")
        }
    }

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
    /// Model uploads, updates and deletes, one at a time: each checks against the models as the
    /// one before left them, so none is lost and none leaves a reference dangling (across processes
    /// sharing a store, see ``checkingAgainWhenCatalogMoved(_:)``).
    let modelWrites = SerialGate()

    struct ModelState: Sendable {
        var set = ModelSet()
        var stored: [String: StoredModel] = [:]
        var order: [String] = []
        /// Stored models that could not be loaded, and why; listed, but no twin can use them.
        var broken: [String: ModelError] = [:]
        /// The store's catalog version these models were read at (see ``refreshCatalog()``).
        var catalogVersion: Int64?
    }

    /// Opens the graph over `store`, loading its models. A stored model that cannot be loaded (one
    /// that refers to a model the store lacks) does not stop the graph from opening: it is listed in
    /// ``brokenModels`` and stays listed by `GET /models`, but no twin can be of it until it is
    /// deleted and uploaded again.
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
        let catalogVersion = try await store.catalogVersion()
        self.routes = Mutex(RouteTable(active: try await Self.loadRoutes(store)))
        let outboxBell = outboxBell
        self.writes = WriteBatcher(store: store, committed: { outboxBell.ring() })
        var models = Self.loadModels(try await store.models())
        models.catalogVersion = catalogVersion
        self.state = Mutex(models)
    }

    var models: ModelSet { state.withLock { $0.set } }

    /// Runs `body` in a store transaction shared with the writes that arrive meanwhile; returns once committed.
    func write<Result: Sendable>(_ body: @escaping @Sendable (any TwinStoreTransaction) throws -> Result) async throws -> Result {
        let result = try await writes.perform { transaction in try body(transaction) }
        guard let typed = result as? Result else { preconditionFailure("a write returned another type than it promised") }
        return typed
    }

    static func etag(_ version: Int64) -> String { "W/\"\(version)\"" }

    /// Answers `If-Match`: nil or `*` match anything, else one of its comma-separated ETags must be
    /// the current one.
    static func check(ifMatch: String?, etag: String) throws(ServiceError) {
        guard let ifMatch, ifMatch != "*" else { return }
        // ETags here are `W/"<number>"`: no comma or space inside one.
        let given = ifMatch.split(separator: ",").map { String($0.filter { !$0.isWhitespace }) }
        guard given.contains(etag) || given.contains("*") else {
            throw ServiceError.preconditionFailed("The If-Match header \(ifMatch) does not match the current ETag \(etag).")
        }
    }
}
