import Foundation
import KafkaRecords
import TwinflowCodec

/// How twin telemetry and twin changes become Time Series Insights events: `{"$dtId", "timestamp",
/// …values}`, values flattened (`{"Front":{"Temperature":1}}` and the path `/Front/Temperature`
/// both become `Front.Temperature`). Pure: no I/O.
public enum TimeSeriesMapping {
    /// ADT's telemetry type; other types routed to the telemetry topic are ignored.
    public static let telemetryType = "microsoft.iot.telemetry"
    public static let twinUpdateType = "Microsoft.DigitalTwins.Twin.Update"

    /// Why an event cannot become a time-series event; it goes to the dead letters with this reason.
    public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// The time-series event of a telemetry event (binary mode): `$dtId` from the source
    /// (`<host>/digitaltwins/<id>`) or else the subject or the Kafka key; `timestamp` from the
    /// `telemetrysourcetime` extension, or else the event's `time`, or else `fallbackTime` (the Kafka
    /// timestamp; an event with none of the three is refused: a time taken from the clock would differ
    /// on a redelivery, and the store would keep both); the
    /// payload's members flattened. The ID is `telemetry/<the event's id>`.
    public static func event(fromTelemetry event: BinaryCloudEvent, key: String?, fallbackTime: Int64?) throws(Refusal) -> TimeSeriesEvent {
        let attributes = event.attributes
        guard let twinID = twinID(source: attributes.source, subject: attributes.subject, key: key) else {
            throw Refusal("no twin ID: the source is not <host>/digitaltwins/<id> and there is no subject or key")
        }
        let milliseconds: Int64
        if let sourceTime = attributes.extensions["telemetrysourcetime"] {
            guard let parsed = TimeSeriesTime.milliseconds(from: sourceTime) else {
                throw Refusal("telemetrysourcetime '\(sourceTime)' is not an RFC 3339 time from year 0000 to 9999")
            }
            milliseconds = parsed
        } else if let time = attributes.time {
            guard let parsed = TimeSeriesTime.milliseconds(from: time) else {
                throw Refusal("time '\(time)' is not an RFC 3339 time from year 0000 to 9999")
            }
            milliseconds = parsed
        } else if let fallbackTime {
            milliseconds = try kafkaTime(fallbackTime)
        } else {
            throw Refusal(noTime)
        }
        let payload: JSONValue
        do {
            payload = try JSONValue.parse(event.data)
        } catch {
            throw Refusal("the telemetry is not JSON: \(error)")
        }
        guard case .object(let object) = payload else { throw Refusal("the telemetry must be a JSON object, not \(payload.typeName)") }
        // Most members are flat already: only the others are taken out and put back flattened.
        var values = object
        for (name, value) in object {
            if isReserved(name) {
                values[name] = nil
                continue
            }
            switch value {
            case .object, .null:
                values[name] = nil
                flatten(value, name: name, into: &values)
            default:
                continue
            }
        }
        return TimeSeriesEvent(
            twinID: twinID, timestamp: TimeSeriesTime.string(milliseconds: milliseconds), values: values, id: "telemetry/\(attributes.id)")
    }

    /// The time-series event of a `Twin.Update` notification: its `add` and `replace` operations'
    /// values of properties by flattened path, at the event's `time`; `nil` for other notifications, and for an
    /// update with no such operation; without a `time`, at `fallbackTime` (the Kafka timestamp),
    /// and refused without either. The ID is `update/<the event's id>`.
    public static func event(fromNotification notification: TwinNotification, fallbackTime: Int64?) throws(Refusal) -> TimeSeriesEvent? {
        guard case .twinUpdated(let patch) = notification.change else { return nil }
        var values: [String: JSONValue] = [:]
        for operation in patch.operations {
            switch operation {
            case .add(let path, let value), .replace(let path, let value):
                // `/$metadata/$model` (a change of the twin's model) is not a value; properties never start with `$`.
                guard let first = path.tokens.first, !first.hasPrefix("$") else { continue }
                let name = path.tokens.joined(separator: ".")
                guard !isReserved(name) else { continue }
                flatten(value, name: name, into: &values)
            default:
                continue
            }
        }
        guard !values.isEmpty else { return nil }
        let milliseconds: Int64
        if let time = notification.attributes.time {
            guard let parsed = TimeSeriesTime.milliseconds(from: time) else {
                throw Refusal("time '\(time)' is not an RFC 3339 time from year 0000 to 9999")
            }
            milliseconds = parsed
        } else if let fallbackTime {
            milliseconds = try kafkaTime(fallbackTime)
        } else {
            throw Refusal(noTime)
        }
        return TimeSeriesEvent(
            twinID: notification.twinID, timestamp: TimeSeriesTime.string(milliseconds: milliseconds), values: values,
            id: "update/\(notification.attributes.id)")
    }

    /// A Kafka timestamp as the event's time, refused when RFC 3339 cannot write it (a producer
    /// may set any timestamp).
    static func kafkaTime(_ timestamp: Int64) throws(Refusal) -> Int64 {
        guard TimeSeriesTime.representable.contains(timestamp) else {
            throw Refusal("the Kafka timestamp \(timestamp) is not a time from year 0000 to 9999, and the event has no other time")
        }
        return timestamp
    }

    /// Why an event with no time of any kind is refused.
    public static let noTime = "no time: the event has no telemetrysourcetime, no time attribute and no Kafka timestamp"

    /// The members the event's own `$dtId` and `timestamp` take: a payload member of either name is dropped.
    static func isReserved(_ name: String) -> Bool { name == "$dtId" || name == "timestamp" }

    /// `value` under `name`, an object's members under `name.member` (recursively); an empty object
    /// and `null` leave nothing. Arrays are kept whole, as TSI keeps them (a dynamic value).
    public static func flatten(_ value: JSONValue, name: String, into values: inout [String: JSONValue]) {
        switch value {
        case .object(let members):
            for (member, inner) in members { flatten(inner, name: "\(name).\(member)", into: &values) }
        case .null:
            return
        default:
            values[name] = value
        }
    }

    /// `thermo_0001` from `twinflow.local/digitaltwins/thermo_0001`; else the subject, else the key.
    /// The key (the twin ID, by the contract) when the source ends with it: a twin ID may hold `/`.
    public static func twinID(source: String, subject: String?, key: String?) -> String? {
        if let key, isTwinID(key, endOf: source) { return key }
        if let id = twinID(inSource: source) { return id }
        if let subject, !subject.isEmpty { return subject }
        if let key, !key.isEmpty { return key }
        return nil
    }

    /// The segment after the first `/digitaltwins/` of the source, by bytes (this runs for every event).
    static func twinID(inSource source: String) -> String? {
        var source = source
        return source.withUTF8 { bytes -> String? in
            let marker = digitalTwinsMarker
            guard bytes.count > marker.count else { return nil }
            for start in 0...(bytes.count - marker.count) where bytes[start] == marker[0] {
                guard (1..<marker.count).allSatisfy({ bytes[start + $0] == marker[$0] }) else { continue }
                let from = start + marker.count
                var end = from
                while end < bytes.count, bytes[end] != UInt8(ascii: "/") { end += 1 }
                return end > from ? String(decoding: UnsafeBufferPointer(rebasing: bytes[from..<end]), as: UTF8.self) : nil
            }
            return nil
        }
    }

    /// Whether `source` ends with `/digitaltwins/` and `id`.
    static func isTwinID(_ id: String, endOf source: String) -> Bool {
        let id = id.utf8
        let source = source.utf8
        guard !id.isEmpty, source.count >= id.count + digitalTwinsMarker.count, source.suffix(id.count).elementsEqual(id) else { return false }
        return source.dropLast(id.count).suffix(digitalTwinsMarker.count).elementsEqual(digitalTwinsMarker)
    }

    private static let digitalTwinsMarker: [UInt8] = Array("/digitaltwins/".utf8)
}
