import Synchronization

/// The fatal error that made a client unusable, for whoever waits for one: set once, from
/// librdkafka's thread; every waiter, present and future, gets it.
final class FatalErrorSignal: Sendable {
    private struct State {
        var error: KafkaError?
        var waiters: [UInt64: CheckedContinuation<KafkaError?, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    var error: KafkaError? { state.withLock { $0.error } }

    func fire(_ error: KafkaError) {
        let waiters = state.withLock { state in
            guard state.error == nil else { return [CheckedContinuation<KafkaError?, Never>]() }
            state.error = error
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: error) }
    }

    /// The fatal error once there is one; `nil` when the waiting task is cancelled first.
    func wait() async -> KafkaError? {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let immediate: KafkaError?? = state.withLock { state in
                    if let error = state.error { return .some(error) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
    }
}
