import Synchronization

/// Parsed twins by id and version, for the store's writer. A twin is only ever taken for the version
/// the database holds, so an entry from a write that was rolled back is never used: the version it
/// carries is not the stored one, or was overwritten by the write that did commit with that version.
final class ParsedTwinCache: Sendable {
    /// Bounded so a store of many twins does not keep them all parsed.
    static let capacity = 100_000

    private let twins = Mutex<[String: StoredTwin]>([:])

    func twin(_ id: String, version: Int64) -> StoredTwin? {
        twins.withLock { twins in
            guard let twin = twins[id], twin.version == version else { return nil }
            return twin
        }
    }

    func remember(_ twin: StoredTwin) {
        twins.withLock { twins in
            if twins.count >= Self.capacity, twins[twin.id] == nil, let any = twins.indices.first {
                twins.remove(at: any)
            }
            twins[twin.id] = twin
        }
    }
}
