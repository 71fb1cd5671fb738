import Synchronization

/// Parsed twins by id, each with the version, revision and last sequence of the row it was read from
/// or written as. An entry is only ever used for the row the database holds (same version and
/// revision; a write prepared against it also checks the sequence), so an entry from a write that
/// was rolled back is never taken for the stored twin.
final class ParsedTwinCache: Sendable {
    /// Bounded so a store of many twins does not keep them all parsed.
    static let capacity = 100_000

    private struct State {
        var twins: [String: KnownTwin] = [:]
        /// Ids in the order they were first cached: the oldest is evicted first.
        var order: [String] = []
        var oldest = 0
    }

    private let state = Mutex(State())

    /// The twin of the row with this version and revision, if cached.
    func twin(_ id: String, version: Int64, revision: Int64) -> StoredTwin? {
        state.withLock { state in
            guard let known = state.twins[id], known.twin.version == version, known.revision == revision else { return nil }
            return known.twin
        }
    }

    /// The twin as last read or written, whether or not that write committed.
    func latest(_ id: String) -> KnownTwin? {
        state.withLock { $0.twins[id] }
    }

    /// Caches the twin. `unlessNewer`: not when this version or a later one is cached already (a
    /// patch prepared outside the writer noted its result before the writer stored it).
    func remember(_ twin: StoredTwin, revision: Int64, lastSequence: Int64, unlessNewer: Bool = false) {
        state.withLock { state in
            if unlessNewer, let cached = state.twins[twin.id], cached.twin.version >= twin.version { return }
            if state.twins.updateValue(KnownTwin(twin: twin, revision: revision, lastSequence: lastSequence), forKey: twin.id) != nil { return }
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
