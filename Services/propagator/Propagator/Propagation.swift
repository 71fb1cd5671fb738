import TwinGraph
import TwinflowCodec
import TwinflowRuntime

/// The propagator's decisions for a batch of twin notifications, made against the relationship
/// view: which parents get which value, and what is left out and why. Pure bookkeeping in memory;
/// the handler sends what it decides.
struct Propagation {
    /// A patch for a parent, caused by one notification.
    struct Output {
        var position: Int
        var command: TwinCommand
    }

    struct Outcome {
        var outputs: [Output] = []
        /// Notifications whose value does not fit the parent's model, by position, with the reason.
        var refused: [(position: Int, reason: String)] = []
        var counts = PropagatorCounts()
        /// Twins to name in the log, once each: children with no parent, and changes stopped by the hop limit.
        var orphans: [String] = []
        var hopLimited: [String] = []
    }

    let rules: [PropagationRule]
    let hopLimit: Int
    /// How long a value sent to a parent counts as on its way (after that, sending it again is not skipped).
    let pendingTimeout: Duration
    /// The rules of `rules` that aggregate.
    let aggregates: [PropagationRule]

    init(rules: [PropagationRule], hopLimit: Int, pendingTimeout: Duration = .seconds(10)) {
        self.rules = rules
        self.hopLimit = hopLimit
        self.pendingTimeout = pendingTimeout
        aggregates = rules.filter(\.kind.aggregates)
    }

    /// The rules a notification's change falls under: its model matches and the change touches the
    /// rule's source property.
    func matchingRules(_ notification: TwinNotification, models: inout ModelLookup) -> [(rule: PropagationRule, change: TwinNotification.ValueChange)]
    {
        switch notification.change {
        case .twinCreated, .twinUpdated: break
        default: return []
        }
        let matching = models.matches(notification.modelID, rules)
        return rules.indices.compactMap { index in
            guard matching[index], let change = notification.value(at: rules[index].sourceProperty) else { return nil }
            return (rules[index], change)
        }
    }

    /// The twins whose notifications fall under a rule but that have no parent in the view yet.
    func orphans(
        _ notifications: [(position: Int, notification: TwinNotification)], in state: RelationshipView.State, models: inout ModelLookup
    ) -> Set<String> {
        var orphans: Set<String> = []
        for (_, notification) in notifications
        where matchingRules(notification, models: &models).contains(where: { state.parents(of: notification.twinID, by: $0.rule).isEmpty }) {
            orphans.insert(notification.twinID)
        }
        return orphans
    }

    /// Decides the batch, in order, updating the view with each change first (so an aggregate
    /// counts the value that triggered it) and `memory` with the newest sequence per child and rule.
    func decide(
        _ notifications: [(position: Int, notification: TwinNotification)], view: inout RelationshipView.State, memory: inout [String: Int64],
        models: inout ModelLookup, tracked: Set<JSONPointer>, now: ContinuousClock.Instant
    ) -> Outcome {
        var outcome = Outcome()
        for (position, notification) in notifications {
            let matches = matchingRules(notification, models: &models)
            RelationshipView.updateValues(notification, in: &view, tracked: tracked)
            for (rule, change) in matches {
                let memoryKey = "\(rule.key)\u{0}\(notification.twinID)"
                if let sequence = notification.sequence {
                    if let newest = memory[memoryKey], sequence <= newest {
                        outcome.counts.stale += 1
                        continue
                    }
                    memory[memoryKey] = sequence
                }
                let parents = view.parents(of: notification.twinID, by: rule)
                if parents.isEmpty {
                    outcome.counts.orphans += 1
                    outcome.orphans.append(notification.twinID)
                    continue
                }
                if notification.hop + 1 > hopLimit {
                    outcome.counts.hopLimited += 1
                    outcome.hopLimited.append(notification.twinID)
                    continue
                }
                for parent in parents {
                    guard let value = self.value(for: parent, by: rule, change: change, in: view, models: &models) else {
                        outcome.counts.noValue += 1
                        continue
                    }
                    if let problem = models.problem(with: value, at: rule.targetProperty, model: view.twins[parent]?.model) {
                        outcome.refused.append((position, "\(rule) cannot set \(parent)'s \(rule.targetProperty): \(problem)"))
                        continue
                    }
                    if isHeld(value, by: parent, at: rule.targetProperty, in: view, now: now) {
                        outcome.counts.unchanged += 1
                        continue
                    }
                    view.pending[parent, default: [:]][rule.targetProperty, default: InFlightValues()].send(value, at: now)
                    outcome.outputs.append(Output(position: position, command: command(parent, rule, value, cause: notification)))
                    outcome.counts.propagated += 1
                }
            }
            if !aggregates.isEmpty {
                recheck(ownChange: notification, position: position, view: &view, models: &models, now: now, outcome: &outcome)
            }
        }
        outcome.outputs = Self.coalesced(outcome.outputs, counts: &outcome.counts)
        return outcome
    }

    /// Only the last command of a batch for each parent and property: the ones before it would be
    /// overwritten at once (a busy thermostat's readings, or many children of one aggregate).
    static func coalesced(_ outputs: [Output], counts: inout PropagatorCounts) -> [Output] {
        var last: [String: Int] = [:]
        for (index, output) in outputs.enumerated() {
            guard let path = output.command.patch?.operations.first?.path else { continue }
            last["\(output.command.twinID)\u{0}\(path)"] = index
        }
        guard last.count < outputs.count else { return outputs }
        let kept = Set(last.values)
        counts.coalesced += outputs.count - kept.count
        counts.propagated -= outputs.count - kept.count
        return outputs.indices.filter { kept.contains($0) || outputs[$0].command.patch == nil }.map { outputs[$0] }
    }

    /// The value `rule` gives `parent`: the child's own for `copy`, else made from every child's
    /// current number; `nil` when there is nothing to set.
    private func value(
        for parent: String, by rule: PropagationRule, change: TwinNotification.ValueChange, in view: RelationshipView.State,
        models: inout ModelLookup
    ) -> JSONValue? {
        guard rule.kind.aggregates else {
            if case .set(let value) = change { return value }
            return nil
        }
        return aggregate(for: parent, by: rule, in: view, models: &models)
    }

    /// `parent`'s aggregate under `rule`, from the current number of every child the rule reads
    /// (of its source model, when it names one); `nil` when no such child has one.
    func aggregate(for parent: String, by rule: PropagationRule, in view: RelationshipView.State, models: inout ModelLookup) -> JSONValue? {
        let ruleIndex = rule.sourceModel == nil ? nil : rules.firstIndex(of: rule)
        var numbers: [Double] = []
        for child in view.children(of: parent, by: rule) {
            if let ruleIndex, !models.matches(view.twins[child]?.model, rules)[ruleIndex] { continue }
            if let number = view.value(of: child, at: rule.sourceProperty)?.doubleValue, number.isFinite { numbers.append(number) }
        }
        guard !numbers.isEmpty else { return nil }
        switch rule.kind {
        case .average: return .double(Self.mean(numbers))
        case .min: return Self.number(numbers.min()!)
        case .max: return Self.number(numbers.max()!)
        case .copy: return nil
        }
    }

    /// The mean of finite numbers, finite too: when their sum overflows, each is divided first.
    static func mean(_ numbers: [Double]) -> Double {
        let count = Double(numbers.count)
        let sum = numbers.reduce(0, +)
        return sum.isFinite ? sum / count : numbers.reduce(0) { $0 + $1 / count }
    }

    /// A whole number as an integer, so an integer property takes a minimum or maximum of integers.
    private static func number(_ value: Double) -> JSONValue {
        if value.rounded() == value, abs(value) < 9e15 { return .integer(Int64(value)) }
        return .double(value)
    }

    /// Whether `parent` holds `value` already, or is about to: the view shows it and nothing is on
    /// its way, or the last value this instance sent it is this one. Values on their way land after
    /// what the view shows, the last one last. The last one sent over `pendingTimeout` ago and not
    /// seen taken (a repeated command twin-service applied before, or one another writer came
    /// after) counts only when the view shows it too.
    func isHeld(
        _ value: JSONValue, by parent: String, at pointer: JSONPointer, in view: RelationshipView.State, now: ContinuousClock.Instant
    ) -> Bool {
        if let last = view.pending[parent]?[pointer]?.entries.last {
            guard last.value == value else { return false }
            return now - last.sent < pendingTimeout || view.value(of: parent, at: pointer) == value
        }
        return view.value(of: parent, at: pointer) == value
    }

    /// The patch for `parent`: its ID is derived from the cause's ID and the rule, so a notification
    /// read twice makes the same command, which twin-service applies once.
    func command(_ parent: String, _ rule: PropagationRule, _ value: JSONValue, cause: TwinNotification) -> TwinCommand {
        TwinCommand(
            id: "\(cause.attributes.id)/\(rule.key)/\(parent)", twinID: parent,
            patch: JSONPatch([.add(path: rule.targetProperty, value: value)]), causationID: cause.attributes.id, hop: cause.hop + 1,
            traceparent: Traceparent.child(of: cause.attributes.traceparent))
    }
}
