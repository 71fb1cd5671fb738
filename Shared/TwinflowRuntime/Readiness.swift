import ServiceLifecycle
import Synchronization

/// What one readiness check found: ready or not, and in words why.
public struct ReadinessStatus: Sendable, Hashable {
    public var ready: Bool
    public var detail: String

    public init(ready: Bool, detail: String) {
        self.ready = ready
        self.detail = detail
    }

    public static func ready(_ detail: String = "ok") -> Self { Self(ready: true, detail: detail) }
    public static func notReady(_ detail: String) -> Self { Self(ready: false, detail: detail) }
}

/// The checks behind `GET /readyz`: a service is ready while every registered check passes.
///
/// A check is either evaluated on every request (``register(_:_:)``: it must be cheap and must not
/// block, such as reading a consumer's group state) or a probe that does I/O (``registerProbe(_:every:_:)``:
/// a metadata request, a write to the store), run in the background by ``run()`` every interval,
/// whose last result `/readyz` reports. A probe that has not answered yet is not ready, and so is
/// one whose last answer is older than twice its interval plus four seconds: a probe that hangs (a
/// database that stopped answering without closing its connections) does not leave its last
/// "ready" standing.
/// ``Readiness`` is a service: ``ServiceRunner`` runs it beside the service's own parts.
public final class Readiness: Service, Sendable {
    public typealias Check = @Sendable () -> ReadinessStatus
    public typealias Probe = @Sendable () async -> ReadinessStatus

    private enum Entry {
        case check(Check)
        case probe(index: Int)
    }

    private struct Registered {
        var name: String
        var entry: Entry
    }

    private struct ScheduledProbe {
        var name: String
        var interval: Duration
        var probe: Probe
    }

    private struct ProbeResult {
        var status: ReadinessStatus
        /// When the probe answered; nil before its first answer.
        var at: ContinuousClock.Instant?
    }

    private struct State {
        var topics: Set<String> = []
        var checks: [Registered] = []
        var probes: [ScheduledProbe] = []
        var probeResults: [ProbeResult] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// Adds a check evaluated on every `/readyz` request.
    public func register(_ name: String, _ check: @escaping Check) {
        state.withLock { $0.checks.append(Registered(name: name, entry: .check(check))) }
    }

    /// Adds a probe run every `interval` by ``run()``; until its first answer the check says so and is not ready.
    public func registerProbe(_ name: String, every interval: Duration = .seconds(1), _ probe: @escaping Probe) {
        state.withLock { state in
            state.checks.append(Registered(name: name, entry: .probe(index: state.probes.count)))
            state.probes.append(ScheduledProbe(name: name, interval: interval, probe: probe))
            state.probeResults.append(ProbeResult(status: .notReady("not checked yet"), at: nil))
        }
    }

    /// Notes topics the service's consumers read, for the `kafka` probe to look for in the cluster.
    public func noteTopicsRead(_ topics: [String]) {
        state.withLock { $0.topics.formUnion(topics) }
    }

    /// Notes topics the service writes to, for the `kafka` probe to look for too: a batch whose
    /// outputs go to a missing topic waits for their delivery reports until they time out.
    public func noteTopicsWritten(_ topics: [String]) {
        state.withLock { $0.topics.formUnion(topics) }
    }

    /// The topics noted by ``noteTopicsRead(_:)`` and ``noteTopicsWritten(_:)``, sorted.
    public var topicsUsed: [String] { state.withLock { $0.topics.sorted() } }

    /// Every check's name and status now, in the order they were registered.
    public func evaluate() -> [(name: String, status: ReadinessStatus)] {
        let (checks, probes, probeResults) = state.withLock { ($0.checks, $0.probes, $0.probeResults) }
        let now = ContinuousClock.now
        return checks.map { registered in
            switch registered.entry {
            case .check(let check):
                return (registered.name, check())
            case .probe(let index):
                let result = probeResults[index]
                guard let answered = result.at else { return (registered.name, result.status) }
                let silence = now - answered
                guard silence <= Self.answerLimit(every: probes[index].interval) else {
                    return (registered.name, .notReady("no answer for \(silence.components.seconds) s (the last: \(result.status.detail))"))
                }
                return (registered.name, result.status)
            }
        }
    }

    /// How long a probe run every `interval` may go without an answer before it counts as not ready.
    static func answerLimit(every interval: Duration) -> Duration { interval * 2 + .seconds(4) }

    /// Whether every check passes now.
    public var isReady: Bool { evaluate().allSatisfy(\.status.ready) }

    /// Runs every registered probe at its interval until shutdown. Register probes before it runs
    /// (a service's setup does): one registered later is never run, so it stays not ready.
    public func run() async throws {
        let probes = state.withLock { $0.probes }
        guard !probes.isEmpty else {
            // A service that returns early ends its group: wait for the shutdown like the others.
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                for (index, scheduled) in probes.enumerated() {
                    group.addTask { await self.runProbe(scheduled, index: index) }
                }
            }
        }
    }

    private func runProbe(_ scheduled: ScheduledProbe, index: Int) async {
        while !Task.isCancelled {
            let status = await scheduled.probe()
            state.withLock { $0.probeResults[index] = ProbeResult(status: status, at: .now) }
            try? await Task.sleep(for: scheduled.interval)
        }
    }
}
