import Synchronization

/// What a service counts of its work: a batch's counts, added to the service's totals once the
/// batch's outputs were delivered or committed.
public protocol ServiceCounts: Sendable {
    init()
    mutating func add(_ other: Self)
    /// Each counter's name (served as `twinflow_<service>_<name>_total`) and value.
    var counterRows: [(name: String, value: Int)] { get }
}

/// A service's counters: its batches' counts added up behind a lock, served at `GET /metrics` in
/// Prometheus' text format.
public final class ServiceCounters<C: ServiceCounts>: Sendable {
    public typealias Counts = C

    private let service: String
    private let counts = Mutex(C())

    /// Counters named `twinflow_<service>_…_total` (`service` in snake case: `tsi_forwarder`).
    public init(service: String) {
        self.service = service
    }

    public var current: C { counts.withLock { $0 } }

    public func add(_ batch: C) {
        counts.withLock { $0.add(batch) }
    }

    /// The counters in Prometheus' text format.
    public var prometheusText: String { PrometheusText.counters(service: service, current.counterRows) }
}
