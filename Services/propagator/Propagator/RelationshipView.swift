import Synchronization
import TwinflowCodec

/// What the propagator knows of the twin graph, kept in memory so that no event costs a round trip:
/// the relationships its rules follow, and each twin's model and values of the properties its rules
/// read or write. Loaded from twin-service's API at start, then kept current from the notifications
/// on `eventgrid.twin-events` (every partition, whichever this instance owns in its group).
///
/// Values are kept per twin with the `sequence` of the notification that set them, so a notification
/// read twice, or late, never takes a twin back to an older value.
public final class RelationshipView: Sendable {
    struct Edge: Sendable, Hashable {
        var source: String
        var target: String
    }

    /// A relationship's identity: its ID is unique among its source twin's relationships only,
    /// as in ADT (two rooms may each have a relationship `thermostat`).
    struct EdgeKey: Sendable, Hashable {
        var source: String
        var id: String
    }

    struct TwinState: Sendable {
        var sequence: Int64 = -1
        var model: String?
        var values: [JSONPointer: JSONValue] = [:]
    }

    struct State: Sendable {
        /// Relationships by name, then by source and ID.
        var edges: [String: [EdgeKey: Edge]] = [:]
        /// Relationships by name, then by source twin; and by target twin.
        var bySource: [String: [String: Set<EdgeKey>]] = [:]
        var byTarget: [String: [String: Set<EdgeKey>]] = [:]
        var twins: [String: TwinState] = [:]
        /// Parents (by rule, ``Propagation/checkedKey(_:_:)``) whose own changes this instance has read
        /// from the group's partitions: it checks their aggregates.
        var checkedParents: Set<String> = []
        /// Values this instance sent to parents that the view has not seen them take yet.
        var pending: [String: [JSONPointer: InFlightValues]] = [:]
        var loaded = false
        var relationshipCount = 0
    }

    let tracked: Set<JSONPointer>
    let names: Set<String>
    private let state = Mutex(State())

    /// A view of the relationships named `names`, keeping the values at `tracked`.
    public init(names: Set<String>, tracked: Set<JSONPointer>) {
        self.names = names
        self.tracked = tracked
    }

    public var isLoaded: Bool { state.withLock { $0.loaded } }

    /// Relationships held, and twins with values held.
    public var size: (relationships: Int, twins: Int) { state.withLock { ($0.relationshipCount, $0.twins.count) } }

    /// Replaces the view with a snapshot from twin-service: its relationships, and its twins'
    /// documents. Values already known from newer notifications stay.
    func load(relationships: [TwinNotification.Relationship], twins: [String: JSONValue]) {
        state.withLock { state in
            var fresh = State()
            for relationship in relationships { Self.add(relationship, to: &fresh) }
            for (id, document) in twins {
                var twin = TwinState(sequence: -1, model: document["$metadata"]?["$model"]?.stringValue)
                for pointer in tracked {
                    if let value = document.value(at: pointer) { twin.values[pointer] = value }
                }
                fresh.twins[id] = twin
            }
            for (id, known) in state.twins where known.sequence >= 0 { fresh.twins[id] = known }
            fresh.pending = state.pending
            fresh.checkedParents = state.checkedParents
            fresh.loaded = true
            state = fresh
        }
    }

    /// Applies notifications: relationships added or removed, values and models updated.
    func apply(_ notifications: [TwinNotification]) {
        state.withLock { state in
            for notification in notifications { Self.apply(notification, to: &state, tracked: tracked, names: names) }
        }
    }

    /// Runs `body` with the view held still.
    func withState<Result>(_ body: (inout State) -> Result) -> Result {
        state.withLock { body(&$0) }
    }

    /// Returns false for a twin's change older than one the view holds, and for a relationship's
    /// change the view held already (or of a name no rule follows).
    @discardableResult
    static func apply(_ notification: TwinNotification, to state: inout State, tracked: Set<JSONPointer>, names: Set<String>) -> Bool {
        switch notification.change {
        case .relationshipCreated(let relationship):
            return names.contains(relationship.name) && add(relationship, to: &state)
        case .relationshipDeleted(let relationship):
            return names.contains(relationship.name) && remove(relationship, from: &state)
        case .relationshipUpdated:
            return false
        case .twinDeleted:
            // A tombstone: a change older than the deletion, read late on the group's partitions,
            // does not bring the twin back (twin-service's sequences go on across a re-creation).
            let sequence = max(state.twins[notification.twinID]?.sequence ?? -1, notification.sequence ?? -1)
            state.twins[notification.twinID] = TwinState(sequence: sequence)
            state.pending[notification.twinID] = nil
            state.checkedParents = state.checkedParents.filter { !$0.hasSuffix("\u{0}\(notification.twinID)") }
        case .twinCreated, .twinUpdated:
            return updateValues(notification, in: &state, tracked: tracked)
        }
        return true
    }

    /// Takes a twin change's values, unless the view already holds a newer change of the twin.
    /// Returns false for a stale notification.
    @discardableResult
    static func updateValues(_ notification: TwinNotification, in state: inout State, tracked: Set<JSONPointer>) -> Bool {
        switch notification.change {
        case .twinCreated, .twinUpdated: break
        default: return true
        }
        var twin = state.twins[notification.twinID] ?? TwinState()
        if let sequence = notification.sequence {
            guard sequence > twin.sequence else { return false }
            twin.sequence = sequence
        }
        if case .twinCreated = notification.change { twin.values = [:] }
        if let model = notification.modelID { twin.model = model }
        for pointer in tracked {
            switch notification.value(at: pointer) {
            case .set(let value)?:
                twin.values[pointer] = value
                if state.pending[notification.twinID]?[pointer]?.taken(value) == true {
                    state.pending[notification.twinID]?[pointer] = nil
                    if state.pending[notification.twinID]?.isEmpty == true { state.pending[notification.twinID] = nil }
                }
            case .removed?, .changedInside?: twin.values[pointer] = nil
            case nil: break
            }
        }
        state.twins[notification.twinID] = twin
        return true
    }

    /// Adds or moves the relationship; false when the view held it already.
    @discardableResult
    static func add(_ relationship: TwinNotification.Relationship, to state: inout State) -> Bool {
        let name = relationship.name
        let key = EdgeKey(source: relationship.sourceID, id: relationship.id)
        if let old = state.edges[name]?[key] {
            guard old.target != relationship.targetID else { return false }
            state.byTarget[name]?[old.target]?.remove(key)
            if state.byTarget[name]?[old.target]?.isEmpty == true { state.byTarget[name]?[old.target] = nil }
        } else {
            state.relationshipCount += 1
        }
        state.edges[name, default: [:]][key] = Edge(source: relationship.sourceID, target: relationship.targetID)
        state.bySource[name, default: [:]][relationship.sourceID, default: []].insert(key)
        state.byTarget[name, default: [:]][relationship.targetID, default: []].insert(key)
        return true
    }

    /// Removes the relationship; false when the view did not hold it.
    @discardableResult
    static func remove(_ relationship: TwinNotification.Relationship, from state: inout State) -> Bool {
        let name = relationship.name
        let key = EdgeKey(source: relationship.sourceID, id: relationship.id)
        guard let old = state.edges[name]?.removeValue(forKey: key) else { return false }
        state.relationshipCount -= 1
        state.bySource[name]?[old.source]?.remove(key)
        if state.bySource[name]?[old.source]?.isEmpty == true { state.bySource[name]?[old.source] = nil }
        state.byTarget[name]?[old.target]?.remove(key)
        if state.byTarget[name]?[old.target]?.isEmpty == true { state.byTarget[name]?[old.target] = nil }
        return true
    }
}

extension RelationshipView.State {
    /// The parents of `child` under `rule`, sorted.
    func parents(of child: String, by rule: PropagationRule) -> [String] {
        let name = rule.relationship
        switch rule.direction {
        case .incoming:
            return Set((byTarget[name]?[child] ?? []).compactMap { edges[name]?[$0]?.source }).sorted()
        case .outgoing:
            return Set((bySource[name]?[child] ?? []).compactMap { edges[name]?[$0]?.target }).sorted()
        }
    }

    /// Every twin with a child under `rule`.
    func parents(by rule: PropagationRule) -> Dictionary<String, Set<RelationshipView.EdgeKey>>.Keys {
        switch rule.direction {
        case .incoming: return (bySource[rule.relationship] ?? [:]).keys
        case .outgoing: return (byTarget[rule.relationship] ?? [:]).keys
        }
    }

    /// The children of `parent` under `rule`, each once (two relationships of one name between the
    /// same twins make one child).
    func children(of parent: String, by rule: PropagationRule) -> Set<String> {
        let name = rule.relationship
        switch rule.direction {
        case .incoming:
            return Set((bySource[name]?[parent] ?? []).compactMap { edges[name]?[$0]?.target })
        case .outgoing:
            return Set((byTarget[name]?[parent] ?? []).compactMap { edges[name]?[$0]?.source })
        }
    }

    func value(of twin: String, at pointer: JSONPointer) -> JSONValue? {
        twins[twin]?.values[pointer]
    }
}

/// Values sent to one parent's property that the view has not seen it take yet, oldest first:
/// commands for one parent are applied in the order they were sent, so the last one is what the
/// parent will hold.
struct InFlightValues: Sendable {
    private(set) var entries: [(value: JSONValue, sent: ContinuousClock.Instant)] = []
    /// The most kept: values a parent never takes (a write of another writer came between) are
    /// left behind once this many newer ones were sent.
    static let limit = 64

    /// Notes `value` as sent. A value decided in the same step (`now`) replaces that step's last
    /// one: of a batch's commands for a parent's property only the last is sent.
    mutating func send(_ value: JSONValue, at now: ContinuousClock.Instant) {
        if let last = entries.last, last.sent == now {
            entries[entries.count - 1].value = value
            return
        }
        entries.append((value, now))
        if entries.count > Self.limit { entries.removeFirst(entries.count - Self.limit) }
    }

    /// The parent took `value`: the oldest entry of that value, and those before it, have
    /// landed. Returns whether nothing is left on its way.
    mutating func taken(_ value: JSONValue) -> Bool {
        if let index = entries.firstIndex(where: { $0.value == value }) { entries.removeFirst(index + 1) }
        return entries.isEmpty
    }
}
