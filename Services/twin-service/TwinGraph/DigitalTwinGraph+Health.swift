import Foundation
import TwinflowCodec

extension DigitalTwinGraph {
    /// Makes a small write through the store's writer: throws when the store does not accept writes.
    public func checkStoreAcceptsWrite() async throws {
        try await store.probeWrite()
    }

    /// When the oldest event after `position` in the outbox was written, or nil when there is none.
    public func oldestUndeliveredEventTime(after position: Int64) async throws -> Date? {
        guard let entry = try await store.outbox(after: position, limit: 1).first else { return nil }
        return entry.event.attributes.time.flatMap(Timestamp.date(from:)) ?? Date()
    }
}
