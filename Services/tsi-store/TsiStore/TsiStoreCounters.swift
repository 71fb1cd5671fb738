import Synchronization
import TwinflowRuntime

/// What tsi-store did with the events it consumed, counted after each batch's commit, served at
/// `GET /metrics` in Prometheus' text format.
public final class TsiStoreCounters: Sendable {
    public struct Counts: Sendable, Hashable {
        public var stored = 0
        /// Repeats of events stored before (same series, time and event ID).
        public var duplicates = 0
        /// Events older than the raw retention.
        public var expired = 0
        public var deadLettered = 0
        public var retainedEventsDeleted = 0
        public var retainedRollupsDeleted = 0

        public init() {}
    }

    private let counts = Mutex(Counts())

    public init() {}

    public var current: Counts { counts.withLock { $0 } }

    func add(_ report: IngestReport, deadLettered: Int) {
        counts.withLock {
            $0.stored += report.stored
            $0.duplicates += report.duplicates
            $0.expired += report.expired
            $0.deadLettered += deadLettered
        }
    }

    func addRetention(events: Int, rollups: Int) {
        counts.withLock {
            $0.retainedEventsDeleted += events
            $0.retainedRollupsDeleted += rollups
        }
    }

    /// The counts in Prometheus' text format.
    public var prometheusText: String {
        let counts = current
        let rows: [(String, Int)] = [
            ("stored", counts.stored), ("duplicates", counts.duplicates), ("expired", counts.expired), ("dead_letters", counts.deadLettered),
            ("retention_deleted_events", counts.retainedEventsDeleted), ("retention_deleted_rollups", counts.retainedRollupsDeleted),
        ]
        return PrometheusText.counters(service: "tsi_store", rows)
    }
}
