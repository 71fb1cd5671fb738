import Synchronization

/// The steps of a ``BatchConsumerService`` that are failing now: which, since when, and why.
/// The `batches` readiness check reads it.
public final class BatchRetries: Sendable {
    /// A step that failed on its batch and has not succeeded since.
    public struct Failure: Sendable {
        public var step: String
        public var messages: Int
        public var since: ContinuousClock.Instant
        public var attempts: Int
        public var lastError: String
    }

    private let failures = Mutex<[String: Failure]>([:])

    public init() {}

    /// Notes that `step` failed on a batch of `messages` messages.
    func noteFailure(step: String, messages: Int, error: any Error) {
        failures.withLock { failures in
            var failure = failures[step] ?? Failure(step: step, messages: messages, since: .now, attempts: 0, lastError: "")
            failure.attempts += 1
            failure.lastError = "\(error)"
            failures[step] = failure
        }
    }

    /// Notes that `step` succeeded.
    func noteSuccess(step: String) {
        failures.withLock { failures in
            if !failures.isEmpty { failures[step] = nil }
        }
    }

    /// The step failing longest, if any step is failing.
    public var oldestFailure: Failure? {
        failures.withLock { $0.values.min { $0.since < $1.since } }
    }

    /// Not ready once a step has failed on its batch, without a success between, for longer than
    /// `limit`: the service retries, but its input is not moving.
    public func status(notReadyAfter limit: Duration) -> ReadinessStatus {
        guard let failure = oldestFailure else { return .ready("no batch failing") }
        let age = ContinuousClock.now - failure.since
        let summary =
            "the \(failure.step) step has failed on a batch of \(failure.messages) message(s) for \(age.components.seconds) s, "
            + "\(failure.attempts) attempt(s); the last error: \(failure.lastError)"
        return age > limit ? .notReady(summary) : .ready("retrying: \(summary)")
    }
}
