import Synchronization

/// The outbox's newest entries in memory, handed over by the writer as each transaction commits, so
/// the relay reads what was just written without going back to the database. Entries at or before
/// `completeAfter` (from before this process opened the store, or dropped when the relay fell far
/// behind) are read from the database instead.
final class OutboxBuffer: Sendable {
    private struct State {
        var completeAfter: Int64
        var entries: [OutboxEntry] = []
        var bytes = 0
    }

    /// How many bytes of events it holds before it drops the oldest (the database still has them).
    static let capacity = 64 << 20

    private static func size(of entry: OutboxEntry) -> Int { entry.event.data.count + 256 }

    private let state: Mutex<State>

    /// A buffer that knows every entry after `position`: the newest in the store when it was opened.
    init(completeAfter position: Int64) {
        state = Mutex(State(completeAfter: position))
    }

    /// Forgets every entry: the buffer knows those after `position` from now on.
    func restart(completeAfter position: Int64) {
        state.withLock { $0 = State(completeAfter: position) }
    }

    /// Entries of a transaction that committed, in position order.
    func append(_ committed: [OutboxEntry]) {
        state.withLock { state in
            state.entries.append(contentsOf: committed)
            state.bytes += committed.reduce(0) { $0 + Self.size(of: $1) }
            var excess = 0
            while state.bytes > Self.capacity, excess < state.entries.count {
                state.bytes -= Self.size(of: state.entries[excess])
                excess += 1
            }
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
            let start = Self.firstIndex(after: position, in: state.entries)
            return Array(state.entries[start..<min(start + limit, state.entries.count)])
        }
    }

    /// For a store several processes write: the entries from `position + 1` on, as far as they follow
    /// each other without a gap (another process's entries fill gaps), at most `limit`; nil when the
    /// buffer does not hold `position + 1` (read the database).
    func consecutiveEntries(after position: Int64, limit: Int) -> [OutboxEntry]? {
        state.withLock { state in
            guard position >= state.completeAfter else { return nil }
            let start = Self.firstIndex(after: position, in: state.entries)
            guard start < state.entries.count, state.entries[start].position == position + 1 else { return nil }
            var end = start + 1
            while end < min(start + limit, state.entries.count), state.entries[end].position == state.entries[end - 1].position + 1 { end += 1 }
            return Array(state.entries[start..<end])
        }
    }

    func remove(through position: Int64) {
        state.withLock { state in
            let delivered = Self.firstIndex(after: position, in: state.entries)
            state.bytes -= state.entries[..<delivered].reduce(0) { $0 + Self.size(of: $1) }
            state.entries.removeFirst(delivered)
        }
    }

    /// The index of the first entry after `position` (binary search; entries are in position order).
    private static func firstIndex(after position: Int64, in entries: [OutboxEntry]) -> Int {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].position <= position { low = middle + 1 } else { high = middle }
        }
        return low
    }
}

/// The outbox entries a write transaction added so far, handed to the ``OutboxBuffer`` on commit.
final class OutboxCollector {
    var entries: [OutboxEntry] = []
}
