import Synchronization
import TwinflowRuntime

/// What the propagator did with the notifications it consumed, counted once each (after the
/// batch's outputs were delivered), served at `GET /metrics` in Prometheus' text format.
public final class PropagatorCounters: Sendable {
    public struct Counts: Sendable, Hashable {
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
        public var deadLettered = 0

        public init() {}

        mutating func add(_ other: Counts) {
            propagated += other.propagated
            coalesced += other.coalesced
            unchanged += other.unchanged
            stale += other.stale
            orphans += other.orphans
            hopLimited += other.hopLimited
            noValue += other.noValue
            deadLettered += other.deadLettered
        }
    }

    private let counts = Mutex(Counts())

    public init() {}

    public var current: Counts { counts.withLock { $0 } }

    func add(_ batch: Counts) {
        counts.withLock { $0.add(batch) }
    }

    /// The counts in Prometheus' text format.
    public var prometheusText: String {
        let counts = current
        let rows: [(String, Int)] = [
            ("propagated", counts.propagated), ("coalesced", counts.coalesced), ("unchanged", counts.unchanged), ("stale", counts.stale),
            ("orphans", counts.orphans),
            ("hop_limited", counts.hopLimited), ("no_value", counts.noValue), ("dead_letters", counts.deadLettered),
        ]
        return PrometheusText.counters(service: "propagator", rows)
    }
}
