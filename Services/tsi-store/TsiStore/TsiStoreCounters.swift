import TwinflowRuntime

/// What tsi-store did with the events it consumed, counted after each batch's commit, and what
/// retention deleted.
public typealias TsiStoreCounters = ServiceCounters<TsiStoreCounts>

public struct TsiStoreCounts: ServiceCounts, Hashable {
    public var stored = 0
    /// Repeats of events stored before (same series, time and event ID).
    public var duplicates = 0
    /// Events older than the raw retention.
    public var expired = 0
    public var deadLettered = 0
    public var retainedEventsDeleted = 0
    public var retainedRollupsDeleted = 0

    public init() {}

    /// A batch's counts: what the store did with its events, and its dead letters.
    public init(_ report: IngestReport, deadLettered: Int) {
        stored = report.stored
        duplicates = report.duplicates
        expired = report.expired
        self.deadLettered = deadLettered
    }

    /// A retention pass's counts.
    public init(retainedEventsDeleted: Int, retainedRollupsDeleted: Int) {
        self.retainedEventsDeleted = retainedEventsDeleted
        self.retainedRollupsDeleted = retainedRollupsDeleted
    }

    public mutating func add(_ other: TsiStoreCounts) {
        stored += other.stored
        duplicates += other.duplicates
        expired += other.expired
        deadLettered += other.deadLettered
        retainedEventsDeleted += other.retainedEventsDeleted
        retainedRollupsDeleted += other.retainedRollupsDeleted
    }

    public var counterRows: [(name: String, value: Int)] {
        [
            ("stored", stored), ("duplicates", duplicates), ("expired", expired), ("dead_letters", deadLettered),
            ("retention_deleted_events", retainedEventsDeleted), ("retention_deleted_rollups", retainedRollupsDeleted),
        ]
    }
}
