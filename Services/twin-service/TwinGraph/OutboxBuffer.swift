import Synchronization

/// The outbox's newest entries in memory, handed over by the writer as each transaction commits, so
/// the relay reads what was just written without going back to the database. Entries at or before
/// `completeAfter` (from before this process opened the store, or dropped when the relay fell far
/// behind) are read from the database instead.
final class OutboxBuffer: Sendable {
    private struct State {
        var completeAfter: Int64
        var entries: [OutboxEntry] = []
    }

    /// How many entries it holds before it drops the oldest (the database still has them).
    static let capacity = 200_000

    private let state: Mutex<State>

    /// A buffer that knows every entry after `position`: the newest in the store when it was opened.
    init(completeAfter position: Int64) {
        state = Mutex(State(completeAfter: position))
    }

    /// Entries of a transaction that committed, in position order.
    func append(_ committed: [OutboxEntry]) {
        state.withLock { state in
            state.entries.append(contentsOf: committed)
            let excess = state.entries.count - Self.capacity
            if excess > 0 {
                state.completeAfter = state.entries[excess - 1].position
                state.entries.removeFirst(excess)
            }
        }
    }

    /// Entries after `position`, at most `limit`; nil when the buffer cannot tell (read the database).
    func entries(after position: Int64, limit: Int) -> [OutboxEntry]? {
        state.withLock { state in
            guard position >= state.completeAfter else { return nil }
            guard let start = state.entries.firstIndex(where: { $0.position > position }) else { return [] }
            return Array(state.entries[start..<min(start + limit, state.entries.count)])
        }
    }

    func remove(through position: Int64) {
        state.withLock { state in
            let delivered = state.entries.prefix { $0.position <= position }.count
            state.entries.removeFirst(delivered)
        }
    }
}

/// The outbox entries a write transaction added so far, handed to the ``OutboxBuffer`` on commit.
final class OutboxCollector {
    var entries: [OutboxEntry] = []
}
