import Synchronization

/// Group commit: writes that arrive while a transaction runs wait and then share the next one, so
/// concurrent requests cost one commit per batch instead of one each.
final class WriteBatcher: Sendable {
    typealias Waiter = CheckedContinuation<any Sendable, any Error>

    private struct State {
        var pending: [(write: StoreWrite, waiter: Waiter)] = []
        var writing = false
    }

    /// The most writes one transaction takes, so a long queue still commits in steady steps.
    static let maximumBatch = 512

    private let store: any TwinStore
    private let committed: @Sendable () -> Void
    private let state = Mutex(State())

    /// `committed` runs after each transaction that committed.
    init(store: any TwinStore, committed: @escaping @Sendable () -> Void) {
        self.store = store
        self.committed = committed
    }

    /// Runs `write` in the next transaction and returns its result once that transaction committed.
    func perform(_ write: @escaping StoreWrite) async throws -> any Sendable {
        try await withCheckedThrowingContinuation { waiter in
            let startWriter = state.withLock { state in
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

    /// Runs `writes` as one transaction of their own (a batch from Kafka), in order.
    func performAll(_ writes: [StoreWrite]) async throws -> [Result<any Sendable, any Error>] {
        let results = try await store.write(writes)
        precondition(results.count == writes.count, "the store answers every write of a batch")
        committed()
        return results
    }

    private func writeUntilDrained() async {
        while true {
            let batch = state.withLock { state in
                let batch = Array(state.pending.prefix(Self.maximumBatch))
                state.pending.removeFirst(batch.count)
                if batch.isEmpty { state.writing = false }
                return batch
            }
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
