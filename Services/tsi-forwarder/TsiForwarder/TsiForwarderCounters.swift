import TwinflowRuntime

/// What tsi-forwarder did with the events it consumed, counted once each (after the batch's
/// outputs were delivered).
public typealias TsiForwarderCounters = ServiceCounters<TsiForwarderCounts>

public struct TsiForwarderCounts: ServiceCounts, Hashable {
    /// Time-series events published from telemetry.
    public var telemetry = 0
    /// Time-series events published from Twin.Update notifications.
    public var twinUpdates = 0
    /// Events with nothing to publish (other event types, updates with no `add` or `replace`).
    public var ignored = 0
    public var deadLettered = 0

    public init() {}

    public mutating func add(_ other: TsiForwarderCounts) {
        telemetry += other.telemetry
        twinUpdates += other.twinUpdates
        ignored += other.ignored
        deadLettered += other.deadLettered
    }

    public var counterRows: [(name: String, value: Int)] {
        [
            ("forwarded", telemetry + twinUpdates), ("telemetry", telemetry), ("twin_updates", twinUpdates), ("ignored", ignored),
            ("dead_letters", deadLettered),
        ]
    }
}
