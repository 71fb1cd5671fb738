import TwinflowCodec

/// A transaction's outbox entries as the bytes of one database row: per event the twin id, the
/// serialized attributes and the data, each as a 4-byte little-endian length and its bytes. The
/// entries' positions are consecutive from the row's first position, so they are not stored.
enum OutboxPacking {
    static func pack(_ entries: [OutboxEntry]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.reduce(0) { $0 + 12 + $1.event.twinID.utf8.count + $1.event.serializedAttributes.count + $1.event.data.count })
        for entry in entries {
            append(entry.event.twinID.utf8, to: &bytes)
            append(entry.event.serializedAttributes, to: &bytes)
            append(entry.event.data, to: &bytes)
        }
        return bytes
    }

    /// The entries of a row whose first entry is at `firstPosition`.
    static func unpack(_ bytes: [UInt8], firstPosition: Int64) throws -> [OutboxEntry] {
        var entries: [OutboxEntry] = []
        var reader = Reader(bytes: bytes)
        while !reader.atEnd {
            let event = try storedEvent(
                twinID: String(decoding: try reader.field(), as: UTF8.self), attributes: try reader.field(), data: Array(try reader.field())
            )
            entries.append(OutboxEntry(position: firstPosition + Int64(entries.count), event: event))
        }
        return entries
    }

    /// An event as the outbox stored it: its attributes serialized, `sequence` among them.
    static func storedEvent(twinID: String, attributes: some Collection<UInt8>, data: [UInt8]) throws -> PendingEvent {
        guard case .object(let members) = try JSONValue.parse(attributes, field: "attributes") else {
            throw CodecError(field: "attributes", reason: "must be an object")
        }
        return PendingEvent(twinID: twinID, attributes: try CloudEventAttributes(json: members), data: data)
    }

    private static func append<Bytes: Collection<UInt8>>(_ field: Bytes, to bytes: inout [UInt8]) {
        let count = UInt32(field.count)
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: count >> UInt32(shift))) }
        bytes.append(contentsOf: field)
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        var atEnd: Bool { offset == bytes.count }

        mutating func field() throws -> ArraySlice<UInt8> {
            guard bytes.count - offset >= 4 else { throw CodecError(field: "$", reason: "ends inside a length") }
            var count = 0
            for shift in 0..<4 { count |= Int(bytes[offset + shift]) << (8 * shift) }
            offset += 4
            guard bytes.count - offset >= count else { throw CodecError(field: "$", reason: "ends inside a field") }
            defer { offset += count }
            return bytes[offset..<offset + count]
        }
    }
}
