import Synchronization

/// The steps of a ``BatchConsumerService`` that are failing or running now: which, since when, and
/// why. The `batches` readiness check reads it.
public final class BatchRetries: Sendable {
    /// A step that failed on its batch and has not succeeded since.
    public struct Failure: Sendable {
        public var step: String
        public var messages: Int
        public var since: ContinuousClock.Instant
        public var attempts: Int
        public var lastError: String
    }

    /// A step's attempt on a batch that has not returned yet.
    public struct Attempt: Sendable {
        public var step: String
        public var messages: Int
        public var since: ContinuousClock.Instant
    }

    private struct State {
        var failures: [String: Failure] = [:]
        var running: [String: Attempt] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Notes that `step` started an attempt on a batch of `messages` messages.
    func noteStarted(step: String, messages: Int) {
        state.withLock { $0.running[step] = Attempt(step: step, messages: messages, since: .now) }
    }

    /// Notes that `step` failed on a batch of `messages` messages.
    func noteFailure(step: String, messages: Int, error: any Error) {
        state.withLock { state in
            state.running[step] = nil
            var failure = state.failures[step] ?? Failure(step: step, messages: messages, since: .now, attempts: 0, lastError: "")
            failure.attempts += 1
            failure.lastError = String(describingError: error)
            state.failures[step] = failure
        }
    }

    /// Notes that `step` succeeded.
    func noteSuccess(step: String) {
        state.withLock { state in
            state.running[step] = nil
            if !state.failures.isEmpty { state.failures[step] = nil }
        }
    }

    /// The step failing longest, if any step is failing.
    public var oldestFailure: Failure? {
        state.withLock { $0.failures.values.min { $0.since < $1.since } }
    }

    /// The attempt running longest, if a step is running.
    public var oldestAttempt: Attempt? {
        state.withLock { $0.running.values.min { $0.since < $1.since } }
    }

    /// Not ready once a step has failed on its batch, without a success between, for longer than
    /// `limit` (the service retries, but its input is not moving), or once one attempt of a step
    /// has run for longer than `hangLimit` (a call that neither answers nor fails, such as a
    /// delivery report that never comes).
    public func status(notReadyAfter limit: Duration, hangLimit: Duration = .seconds(30)) -> ReadinessStatus {
        let now = ContinuousClock.now
        if let attempt = oldestAttempt, now - attempt.since > hangLimit {
            return .notReady(
                "the \(attempt.step) step has been running on a batch of \(attempt.messages) message(s) for "
                    + "\((now - attempt.since).components.seconds) s (limit \(hangLimit.components.seconds) s) without an answer")
        }
        guard let failure = oldestFailure else { return .ready("no batch failing") }
        let age = now - failure.since
        let summary =
            "the \(failure.step) step has failed on a batch of \(failure.messages) message(s) for \(age.components.seconds) s, "
            + "\(failure.attempts) attempt(s); the last error: \(failure.lastError)"
        return age > limit ? .notReady(summary) : .ready("retrying: \(summary)")
    }
}
