import Synchronization

/// Parsed twins by id and version, for the store's writer. A twin is only ever taken for the version
/// the database holds, so an entry from a write that was rolled back is never used: the version it
/// carries is not the stored one, or was overwritten by the write that did commit with that version.
final class ParsedTwinCache: Sendable {
    /// Bounded so a store of many twins does not keep them all parsed.
    static let capacity = 100_000

    private struct State {
        var twins: [String: StoredTwin] = [:]
        /// Ids in the order they were first cached: the oldest is evicted first.
        var order: [String] = []
        var oldest = 0
    }

    private let state = Mutex(State())

    func twin(_ id: String, version: Int64) -> StoredTwin? {
        state.withLock { state in
            guard let twin = state.twins[id], twin.version == version else { return nil }
            return twin
        }
    }

    func remember(_ twin: StoredTwin) {
        state.withLock { state in
            if state.twins.updateValue(twin, forKey: twin.id) != nil { return }
            state.order.append(twin.id)
            if state.twins.count > Self.capacity {
                state.twins[state.order[state.oldest]] = nil
                state.oldest += 1
                if state.oldest >= Self.capacity {
                    state.order.removeFirst(state.oldest)
                    state.oldest = 0
                }
            }
        }
    }
}
