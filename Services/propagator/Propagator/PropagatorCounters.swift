import TwinflowRuntime

/// What the propagator did with the notifications it consumed, counted once each (after the
/// batch's outputs were delivered).
public typealias PropagatorCounters = ServiceCounters<PropagatorCounts>

public struct PropagatorCounts: ServiceCounts, Hashable {
    /// Patch commands sent to parents.
    public var propagated = 0
    /// Commands left out because a later change in the same batch set the same parent's property.
    public var coalesced = 0
    /// Parents that held the value already (or had it on its way): nothing sent.
    public var unchanged = 0
    /// Changes older than one already propagated for the same child and rule.
    public var stale = 0
    /// Changes of twins with no parent under the rule.
    public var orphans = 0
    /// Changes not propagated because the hop limit was reached (long chains, cycles).
    public var hopLimited = 0
    /// Changes that gave the rule no value (a copied property removed, an aggregate with no numbers).
    public var noValue = 0
    /// Aggregates worked out again because the parent took, or was about to take, a value made
    /// without a child's newest change (another instance's, read late); each sent a command.
    public var rechecked = 0
    /// CloudEvents of another type than a twin or relationship notification (a route may send
    /// telemetry to the same topic): passed over.
    public var ignored = 0
    public var deadLettered = 0

    public init() {}

    public mutating func add(_ other: PropagatorCounts) {
        propagated += other.propagated
        coalesced += other.coalesced
        unchanged += other.unchanged
        stale += other.stale
        orphans += other.orphans
        hopLimited += other.hopLimited
        noValue += other.noValue
        rechecked += other.rechecked
        ignored += other.ignored
        deadLettered += other.deadLettered
    }

    public var counterRows: [(name: String, value: Int)] {
        [
            ("propagated", propagated), ("coalesced", coalesced), ("unchanged", unchanged), ("stale", stale),
            ("orphans", orphans),
            ("hop_limited", hopLimited), ("no_value", noValue), ("rechecked", rechecked), ("ignored", ignored),
            ("dead_letters", deadLettered),
        ]
    }
}
