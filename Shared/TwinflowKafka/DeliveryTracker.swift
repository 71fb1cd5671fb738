import Synchronization

/// Matches delivery reports to the sends waiting for them.
///
/// Every send (one message or a batch) gets an id; each of its messages carries that id as its
/// librdkafka opaque. The poll thread completes messages as their reports arrive; the send resumes
/// when the last one of its messages is reported.
final class DeliveryTracker: Sendable {
    typealias Outcome = Result<KafkaDeliveryReport?, KafkaError>

    private struct Pending {
        var remaining: Int
        var firstError: KafkaError?
        var lastReport: KafkaDeliveryReport?
        var continuation: CheckedContinuation<Outcome, Never>?
        /// The task that waits (or is about to) was cancelled.
        var cancelled = false

        var result: Outcome {
            if let firstError { return .failure(firstError) }
            return .success(lastReport)
        }
    }

    private struct State {
        var nextID: UInt64 = 1
        var pending: [UInt64: Pending] = [:]
        var closed = false
    }

    private let state = Mutex(State())

    /// Starts tracking `count` messages; returns the id their opaque must carry.
    func begin(count: Int) throws(KafkaError) -> UInt64 {
        let id: UInt64? = state.withLock { state in
            guard !state.closed else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.pending[id] = Pending(remaining: count)
            return id
        }
        guard let id else { throw KafkaError(code: .clientClosed, message: "the producer is shut down") }
        return id
    }

    /// Reports for some messages of one send, as the poll thread tallies them from one event.
    struct Tally {
        var delivered = 0
        var failed = 0
        var firstError: KafkaError?
        var lastReport: KafkaDeliveryReport?
    }

    /// Records the outcome of one message of send `id`.
    func complete(_ id: UInt64, _ outcome: Outcome) {
        var tally = Tally()
        switch outcome {
        case .success(let report):
            tally.delivered = 1
            tally.lastReport = report
        case .failure(let error):
            tally.failed = 1
            tally.firstError = error
        }
        complete([id: tally])
    }

    /// Records tallied reports of many sends under one lock.
    func complete(_ tallies: [UInt64: Tally]) {
        var toResume: [(CheckedContinuation<Outcome, Never>, Outcome)] = []
        state.withLock { state in
            for (id, tally) in tallies {
                guard var pending = state.pending[id] else { continue }
                pending.remaining -= tally.delivered + tally.failed
                if let report = tally.lastReport { pending.lastReport = report }
                if pending.firstError == nil { pending.firstError = tally.firstError }
                if pending.remaining <= 0, let continuation = pending.continuation {
                    state.pending[id] = nil
                    toResume.append((continuation, pending.result))
                } else {
                    state.pending[id] = pending
                }
            }
        }
        for (continuation, outcome) in toResume {
            continuation.resume(returning: outcome)
        }
    }

    /// Forgets send `id` when it stopped before enqueueing all its messages; reports still to come
    /// for the messages it did enqueue are ignored.
    func abandon(_ id: UInt64) {
        _ = state.withLock { $0.pending.removeValue(forKey: id) }
    }

    /// Waits until every message of send `id` has been reported, or until the waiting task is
    /// cancelled: then the wait fails at once with ``KafkaError/Code/cancelled`` and reports still to
    /// come for the send are ignored (its messages may yet be delivered).
    func wait(_ id: UInt64) async -> Outcome {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready: Outcome? = state.withLock { state in
                    guard var pending = state.pending[id] else {
                        return .failure(KafkaError(code: .clientClosed, message: "the producer is shut down"))
                    }
                    if pending.remaining <= 0 {
                        state.pending[id] = nil
                        return pending.result
                    }
                    if pending.cancelled {
                        state.pending[id] = nil
                        return .failure(Self.cancelled(pending))
                    }
                    pending.continuation = continuation
                    state.pending[id] = pending
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiting: (CheckedContinuation<Outcome, Never>, KafkaError)? = state.withLock { state in
                guard var pending = state.pending[id] else { return nil }
                guard let continuation = pending.continuation else {
                    pending.cancelled = true
                    state.pending[id] = pending
                    return nil
                }
                state.pending[id] = nil
                return (continuation, Self.cancelled(pending))
            }
            if let (continuation, error) = waiting { continuation.resume(returning: .failure(error)) }
        }
    }

    private static func cancelled(_ pending: Pending) -> KafkaError {
        KafkaError(
            code: .cancelled, message: "cancelled while waiting for \(pending.remaining) delivery reports; those messages may still be delivered",
            isRetriable: true)
    }

    /// Fails every send still waiting and refuses new ones.
    func close(with error: KafkaError) {
        let waiting: [CheckedContinuation<Outcome, Never>] = state.withLock { state in
            state.closed = true
            var waiting: [CheckedContinuation<Outcome, Never>] = []
            var unwaited: [UInt64: Pending] = [:]
            for (id, var pending) in state.pending {
                if let continuation = pending.continuation {
                    waiting.append(continuation)
                } else {
                    // A send still enqueueing finds its result here when it starts waiting.
                    if pending.remaining > 0 {
                        pending.firstError = pending.firstError ?? error
                    }
                    pending.remaining = 0
                    unwaited[id] = pending
                }
            }
            state.pending = unwaited
            return waiting
        }
        for continuation in waiting {
            continuation.resume(returning: .failure(error))
        }
    }

    var inFlight: Int { state.withLock { $0.pending.count } }
}

extension DeliveryTracker.Tally {
    mutating func merge(_ other: DeliveryTracker.Tally) {
        delivered += other.delivered
        failed += other.failed
        if firstError == nil { firstError = other.firstError }
        if let report = other.lastReport { lastReport = report }
    }
}
