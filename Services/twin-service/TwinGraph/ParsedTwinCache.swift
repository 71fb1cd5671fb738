import Synchronization
import TwinflowCodec

/// Parsed twins by id, each with the version, revision and last sequence of the row it was read from
/// or written as. An entry is only ever used for the row the database holds (same version and
/// revision; a write prepared against it also checks the sequence), so an entry from a write that
/// was rolled back is never taken for the stored twin.
///
/// Bounded in bytes: each entry counts the memory its parsed document takes (estimated from its
/// strings and nodes), and the entries cached first are dropped first once the total passes
/// ``capacityBytes``.
public final class ParsedTwinCache: Sendable {
    /// 256 MiB by default: about 200,000 twins of the seed's size.
    public static let defaultCapacityBytes = 256 << 20

    let capacityBytes: Int

    private struct Entry {
        var known: KnownTwin
        var bytes: Int
        /// Its place in the eviction order (counted from the first id ever cached).
        var slot: Int
    }

    private struct State {
        var twins: [String: Entry] = [:]
        /// Ids in the order they were first cached: the oldest is evicted first.
        var order: [String] = []
        var oldest = 0
        /// The slot of `order[0]`.
        var firstSlot = 0
        var bytes = 0
    }

    private let state = Mutex(State())

    init(capacityBytes: Int = ParsedTwinCache.defaultCapacityBytes) {
        self.capacityBytes = capacityBytes
    }

    /// The twin of the row with this version and revision, if cached.
    func twin(_ id: String, version: Int64, revision: Int64) -> StoredTwin? {
        state.withLock { state in
            guard let known = state.twins[id]?.known, known.twin.version == version, known.revision == revision else { return nil }
            return known.twin
        }
    }

    /// The twin as last read or written, whether or not that write committed.
    func latest(_ id: String) -> KnownTwin? {
        state.withLock { $0.twins[id]?.known }
    }

    /// The bytes the cached twins take, as estimated, and how many there are.
    var size: (bytes: Int, twins: Int) {
        state.withLock { ($0.bytes, $0.twins.count) }
    }

    /// Caches the twin. `unlessNewer`: not when this version or a later one is cached already (a
    /// patch prepared outside the writer noted its result before the writer stored it).
    func remember(_ twin: StoredTwin, revision: Int64, lastSequence: Int64, unlessNewer: Bool = false) {
        let bytes = Self.footprint(of: twin.document) + twin.id.utf8.count + twin.model.utf8.count + 128
        state.withLock { state in
            if unlessNewer, let cached = state.twins[twin.id], cached.known.twin.version >= twin.version { return }
            if var cached = state.twins[twin.id] {
                state.bytes += bytes - cached.bytes
                cached.known = KnownTwin(twin: twin, revision: revision, lastSequence: lastSequence)
                cached.bytes = bytes
                state.twins[twin.id] = cached
            } else {
                let slot = state.firstSlot + state.order.count
                state.twins[twin.id] = Entry(known: KnownTwin(twin: twin, revision: revision, lastSequence: lastSequence), bytes: bytes, slot: slot)
                state.bytes += bytes
                state.order.append(twin.id)
            }
            while state.bytes > capacityBytes, state.oldest < state.order.count {
                let evicted = state.order[state.oldest]
                let slot = state.firstSlot + state.oldest
                state.oldest += 1
                // An id evicted before and cached again has a later slot: that entry stays.
                if let entry = state.twins[evicted], entry.slot == slot {
                    state.twins[evicted] = nil
                    state.bytes -= entry.bytes
                }
            }
            if state.oldest > 4096, state.oldest * 2 > state.order.count {
                state.order.removeFirst(state.oldest)
                state.firstSlot += state.oldest
                state.oldest = 0
            }
        }
    }

    /// About what a parsed document takes in memory: its strings, plus a node's overhead each.
    static func footprint(of value: JSONValue) -> Int {
        switch value {
        case .object(let members): members.reduce(64) { $0 + 48 + $1.key.utf8.count + footprint(of: $1.value) }
        case .array(let elements): elements.reduce(32) { $0 + footprint(of: $1) }
        case .string(let text): 16 + text.utf8.count
        case .null, .bool, .integer, .double: 16
        }
    }
}
