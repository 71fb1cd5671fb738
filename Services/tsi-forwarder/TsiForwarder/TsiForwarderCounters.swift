import Synchronization
import TwinflowRuntime

/// What tsi-forwarder did with the events it consumed, counted once each (after the batch's outputs
/// were delivered), served at `GET /metrics` in Prometheus' text format.
public final class TsiForwarderCounters: Sendable {
    public struct Counts: Sendable, Hashable {
        /// Time-series events published from telemetry.
        public var telemetry = 0
        /// Time-series events published from Twin.Update notifications.
        public var twinUpdates = 0
        /// Events with nothing to publish (other event types, updates with no `add` or `replace`).
        public var ignored = 0
        public var deadLettered = 0

        public init() {}

        public mutating func add(_ other: Counts) {
            telemetry += other.telemetry
            twinUpdates += other.twinUpdates
            ignored += other.ignored
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
            ("forwarded", counts.telemetry + counts.twinUpdates), ("telemetry", counts.telemetry), ("twin_updates", counts.twinUpdates),
            ("ignored", counts.ignored), ("dead_letters", counts.deadLettered),
        ]
        return PrometheusText.counters(service: "tsi_forwarder", rows)
    }
}
