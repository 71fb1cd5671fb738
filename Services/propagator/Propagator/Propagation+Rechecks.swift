import TwinflowCodec
import TwinflowKafka

/// Aggregates with several instances. The instance that reads a child's change works out its
/// parent's aggregate from its view, which may not have read a change of another child yet (that
/// one is read by another instance, from another partition, at the same moment). So the instance
/// that reads a parent's own changes, which all land on the parent's partition, checks each value a
/// propagation step gave the parent against the children's values as its view holds them, and
/// sends the right value when they differ; and when its view reads a change of that parent's child
/// later, it checks again. Every wrong value is followed by a right one, from the same instance and
/// so in order on the parent's partition, once the views have read every change.
///
/// An instance that stops between sending a wrong value and reading the change it missed leaves
/// that to the partition's next owner: an instance given partitions (by a rebalance, or at its
/// start) reconciles their aggregate parents once its view has read the whole topic.
extension Propagation {
    /// The key of a parent this instance checks under `rule`.
    static func checkedKey(_ rule: PropagationRule, _ parent: String) -> String { "\(rule.key)\u{0}\(parent)" }

    /// A parent's own change, read from the group's partitions (and already applied to the view):
    /// under each aggregate rule it is a parent of, the parent is now checked by this instance, and a
    /// value a propagation step gave it is checked against its children's.
    func recheck(
        ownChange notification: TwinNotification, position: Int, view: inout RelationshipView.State, models: inout ModelLookup,
        now: ContinuousClock.Instant, outcome: inout Outcome
    ) {
        switch notification.change {
        case .twinCreated, .twinUpdated: break
        default: return
        }
        let parent = notification.twinID
        for rule in aggregates where !view.children(of: parent, by: rule).isEmpty {
            view.checkedParents.insert(Self.checkedKey(rule, parent))
            guard notification.hop > 0, notification.hop + 1 <= hopLimit, notification.value(at: rule.targetProperty) != nil else { continue }
            if let output = recheck(parent, by: rule, cause: notification, view: &view, models: &models, now: now) {
                outcome.outputs.append(Output(position: position, command: output))
                outcome.counts.propagated += 1
                outcome.counts.rechecked += 1
            }
        }
    }

    /// Applies what the view's follower read; for the children's changes newer than what the view
    /// held, and for the children that came, went or moved, the parents this instance checks are
    /// worked out again, and get a command when they hold, or are about to take, another value.
    func apply(
        followed notifications: [TwinNotification], to view: inout RelationshipView.State, tracked: Set<JSONPointer>, names: Set<String>,
        models: inout ModelLookup, now: ContinuousClock.Instant
    ) -> [TwinCommand] {
        var outputs: [Output] = []
        for (position, notification) in notifications.enumerated() {
            let moved = parentsMoved(by: notification, in: view)
            guard RelationshipView.apply(notification, to: &view, tracked: tracked, names: names), !view.checkedParents.isEmpty else { continue }
            var checked: [(PropagationRule, String)] = moved
            for (rule, _) in matchingRules(notification, models: &models) where rule.kind.aggregates && notification.hop + 1 <= hopLimit {
                for parent in view.parents(of: notification.twinID, by: rule) { checked.append((rule, parent)) }
            }
            for (rule, parent) in checked where view.checkedParents.contains(Self.checkedKey(rule, parent)) {
                if let command = recheck(parent, by: rule, cause: notification, view: &view, models: &models, now: now) {
                    outputs.append(Output(position: position, command: command))
                }
            }
        }
        var counts = PropagatorCounts()
        return Self.coalesced(outputs, counts: &counts).map(\.command)
    }

    /// The parents under aggregate rules that a relationship's creation, move or deletion gives or
    /// takes a child: the parent it names, and the one the view had for it before (a move).
    func parentsMoved(by notification: TwinNotification, in view: RelationshipView.State) -> [(PropagationRule, String)] {
        let relationship: TwinNotification.Relationship
        switch notification.change {
        case .relationshipCreated(let changed), .relationshipDeleted(let changed): relationship = changed
        default: return []
        }
        let held = view.edges[relationship.name]?[RelationshipView.EdgeKey(source: relationship.sourceID, id: relationship.id)]
        var parents: [(PropagationRule, String)] = []
        for rule in aggregates where rule.relationship == relationship.name {
            switch rule.direction {
            case .incoming:
                parents.append((rule, relationship.sourceID))
            case .outgoing:
                parents.append((rule, relationship.targetID))
                if let held, held.target != relationship.targetID { parents.append((rule, held.target)) }
            }
        }
        return parents
    }

    /// Stops checking the parents whose twin ID falls on one of `lost` (of `partitionCount`
    /// partitions): they went to another instance, whose checks would race this one's.
    static func stopChecking(parentsOn lost: Set<Int32>, of partitionCount: Int32, in view: inout RelationshipView.State) {
        view.checkedParents = view.checkedParents.filter { key in
            guard let separator = key.firstIndex(of: "\u{0}") else { return false }
            let parent = String(key[key.index(after: separator)...])
            return !lost.contains(KafkaPartitioner.partition(ofKey: parent, partitionCount: partitionCount))
        }
    }

    /// Every twin with a child under an aggregate rule.
    func aggregateParents(in view: RelationshipView.State) -> Set<String> {
        var parents: Set<String> = []
        for rule in aggregates { parents.formUnion(view.parents(by: rule)) }
        return parents
    }

    /// `parents`, on partitions this instance was just given: under each aggregate rule, each is
    /// checked by this instance from now on, and one that holds another value than its children's
    /// aggregate gets it. `pass` names this reconciliation in the commands' IDs (it has no cause to
    /// derive them from; a command sent twice is still applied once).
    func reconcile(
        _ parents: [String], pass: String, view: inout RelationshipView.State, models: inout ModelLookup, now: ContinuousClock.Instant
    ) -> [TwinCommand] {
        var commands: [TwinCommand] = []
        for rule in aggregates {
            for parent in parents where !view.children(of: parent, by: rule).isEmpty {
                view.checkedParents.insert(Self.checkedKey(rule, parent))
                guard let value = aggregate(for: parent, by: rule, in: view, models: &models),
                    models.problem(with: value, at: rule.targetProperty, model: view.twins[parent]?.model) == nil,
                    !isHeld(value, by: parent, at: rule.targetProperty, in: view, now: now)
                else { continue }
                view.pending[parent, default: [:]][rule.targetProperty, default: InFlightValues()].send(value, at: now)
                commands.append(
                    TwinCommand(
                        id: "reconcile/\(pass)/\(rule.key)/\(parent)", twinID: parent,
                        patch: JSONPatch([.add(path: rule.targetProperty, value: value)]), hop: 1))
            }
        }
        return commands
    }

    /// The command that sets `parent` to its aggregate under `rule`, when it holds another value
    /// and has no command for this one on its way. A value that does not fit the parent's model is
    /// left to the consumer's decision, which dead-letters it.
    private func recheck(
        _ parent: String, by rule: PropagationRule, cause: TwinNotification, view: inout RelationshipView.State, models: inout ModelLookup,
        now: ContinuousClock.Instant
    ) -> TwinCommand? {
        guard let value = aggregate(for: parent, by: rule, in: view, models: &models),
            models.problem(with: value, at: rule.targetProperty, model: view.twins[parent]?.model) == nil,
            !isHeld(value, by: parent, at: rule.targetProperty, in: view, now: now)
        else { return nil }
        view.pending[parent, default: [:]][rule.targetProperty, default: InFlightValues()].send(value, at: now)
        var command = command(parent, rule, value, cause: cause)
        // The value in the ID: an event read again after a restart (a relationship's, which the view
        // may take again) can give another value, which must not be dropped as a repeat.
        command.id += "/recheck/" + String(decoding: value.serialized(), as: UTF8.self)
        return command
    }
}
