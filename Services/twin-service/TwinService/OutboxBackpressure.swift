import Foundation
import Synchronization

/// Holds commands back while the outbox is stuck: when its oldest undelivered event is older than
/// the outbox's readiness limit (the endpoint topics cannot be written, while `twins.commands` can
/// still be read), a batch of commands is not applied but tried again after a back-off, so the
/// outbox stops growing and the commands wait in Kafka. Asked at most once a second.
public final class OutboxBackpressure: Sendable {
    /// Commands wait for the outbox; the batch is tried again.
    public struct OutboxStuck: Error, CustomStringConvertible {
        public var age: Duration
        public var limit: Duration
        public var description: String {
            "the outbox's oldest undelivered event is \(age.components.seconds) s old (the limit is \(limit.components.seconds) s): commands wait until events are delivered again"
        }
    }

    private let maximumAge: Duration
    private let interval: Duration
    private let oldestUndelivered: @Sendable () async throws -> Date?
    private let last = Mutex<(checked: ContinuousClock.Instant, stuck: OutboxStuck?)?>(nil)

    /// `oldestUndelivered`: the time of the oldest event not delivered yet, `nil` when there is none.
    public init(maximumAge: Duration, interval: Duration = .seconds(1), oldestUndelivered: @escaping @Sendable () async throws -> Date?) {
        self.maximumAge = maximumAge
        self.interval = interval
        self.oldestUndelivered = oldestUndelivered
    }

    /// Throws ``OutboxStuck`` while the outbox is stuck.
    public func check() async throws {
        let now = ContinuousClock.now
        if let last = last.withLock({ $0 }), now - last.checked < interval {
            if let stuck = last.stuck { throw stuck }
            return
        }
        var stuck: OutboxStuck?
        if let oldest = try await oldestUndelivered() {
            let age = Duration.milliseconds(Int64(max(0, Date().timeIntervalSince(oldest)) * 1000))
            if age > maximumAge { stuck = OutboxStuck(age: age, limit: maximumAge) }
        }
        last.withLock { $0 = (now, stuck) }
        if let stuck { throw stuck }
    }
}
