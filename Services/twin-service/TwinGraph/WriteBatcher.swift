import Synchronization

/// Group commit: writes that arrive while a transaction runs wait and then share the next one, so
/// concurrent requests cost one commit per batch instead of one each.
///
/// Backpressure: at most ``maximumQueued`` writes wait for a transaction; a caller past that waits
/// for room before its write is queued, so a flood of requests holds memory for a bounded queue
/// and slows its senders instead of growing without limit.
final class WriteBatcher: Sendable {
    typealias Waiter = CheckedContinuation<any Sendable, any Error>

    private struct State {
        var pending: [(write: StoreWrite, waiter: Waiter)] = []
        var writing = false
        /// Callers waiting for room in the queue, first come first served.
        var waitingForRoom: [CheckedContinuation<Void, Never>] = []
        /// Places given to callers that have not queued their write yet.
        var reserved = 0
    }

    /// The most writes one transaction takes, so a long queue still commits in steady steps.
    static let maximumBatch = 512
    /// The most writes that wait for a transaction at once.
    let maximumQueued: Int

    private let store: any TwinStore
    private let committed: @Sendable () -> Void
    private let state = Mutex(State())

    /// `committed` runs after each transaction that committed.
    init(store: any TwinStore, maximumQueued: Int = 4096, committed: @escaping @Sendable () -> Void) {
        self.store = store
        self.maximumQueued = max(1, maximumQueued)
        self.committed = committed
    }

    /// Runs `write` in the next transaction and returns its result once that transaction committed.
    func perform(_ write: @escaping StoreWrite) async throws -> any Sendable {
        await waitForRoom()
        return try await withCheckedThrowingContinuation { waiter in
            let startWriter = state.withLock { state in
                state.reserved -= 1
                state.pending.append((write, waiter))
                guard !state.writing else { return false }
                state.writing = true
                return true
            }
            if startWriter {
                Task { await self.writeUntilDrained() }
            }
        }
    }

    /// Reserves a place in the queue, waiting while it is full.
    private func waitForRoom() async {
        await withCheckedContinuation { room in
            let admitted = state.withLock { state in
                guard state.pending.count + state.reserved >= maximumQueued else {
                    state.reserved += 1
                    return true
                }
                state.waitingForRoom.append(room)
                return false
            }
            if admitted { room.resume() }
        }
    }

    /// How many writes wait for a transaction now, and how many callers wait for room.
    var queued: (writes: Int, callersWaiting: Int) {
        state.withLock { ($0.pending.count, $0.waitingForRoom.count) }
    }

    /// Runs `writes` as one transaction of their own (a batch from Kafka), in order.
    func performAll(_ writes: [StoreWrite]) async throws -> [Result<any Sendable, any Error>] {
        let results = try await store.write(writes)
        precondition(results.count == writes.count, "the store answers every write of a batch")
        committed()
        return results
    }

    private func writeUntilDrained() async {
        while true {
            let (batch, admitted) = state.withLock { state in
                let batch = Array(state.pending.prefix(Self.maximumBatch))
                state.pending.removeFirst(batch.count)
                if batch.isEmpty { state.writing = false }
                let room = max(0, maximumQueued - state.pending.count - state.reserved)
                let admitted = Array(state.waitingForRoom.prefix(room))
                state.waitingForRoom.removeFirst(admitted.count)
                state.reserved += admitted.count
                return (batch, admitted)
            }
            for caller in admitted { caller.resume() }
            guard !batch.isEmpty else { return }
            do {
                let results = try await store.write(batch.map(\.write))
                precondition(results.count == batch.count, "the store answers every write of a batch")
                committed()
                for (entry, result) in zip(batch, results) { entry.waiter.resume(with: result) }
            } catch {
                for entry in batch { entry.waiter.resume(throwing: error) }
            }
        }
    }
}
