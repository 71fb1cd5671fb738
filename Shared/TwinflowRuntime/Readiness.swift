import Synchronization

/// The checks behind `GET /readyz`: a service is ready when every registered check passes
/// (connected, assigned partitions, store open…).
public final class Readiness: Sendable {
    public typealias Check = @Sendable () -> Bool

    private let checks = Mutex<[(name: String, check: Check)]>([])

    public init() {}

    /// Adds a named check; `/readyz` reports each by name.
    public func register(_ name: String, _ check: @escaping Check) {
        checks.withLock { $0.append((name, check)) }
    }

    /// Every check's name and whether it passes now.
    public func evaluate() -> [(name: String, ready: Bool)] {
        checks.withLock { $0 }.map { ($0.name, $0.check()) }
    }

    public var isReady: Bool { evaluate().allSatisfy(\.ready) }
}
