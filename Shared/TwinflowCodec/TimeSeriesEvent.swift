import KafkaRecords

/// The flattened event the time-series store reads (`eventhub.tsi`, key = `$dtId`, the time-series ID):
/// `{"$dtId":"thermo_0001","timestamp":"…","Temperature":21.5}`.
///
/// The value is exactly the contract's shape; the event's ID (derived from the source event's, so
/// a repeat of the source event has the same ID) travels in the ``idHeader`` header.
public struct TimeSeriesEvent: Sendable, Hashable {
    /// The Kafka header holding the event's ID.
    public static let idHeader = "twinflow.event-id"

    public var twinID: String
    public var timestamp: String
    /// The telemetry's fields, flattened beside `$dtId` and `timestamp`.
    public var values: [String: JSONValue]
    /// The event's ID, unique per time series; `nil` when the message carries none.
    public var id: String?

    public init(twinID: String, timestamp: String, values: [String: JSONValue], id: String? = nil) {
        self.twinID = twinID
        self.timestamp = timestamp
        self.values = values
        self.id = id
    }

    public init(decoding bytes: [UInt8]?) throws(CodecError) {
        var object = try JSONValue.parseObject(bytes, what: "the time-series event")
        self.twinID = try object.requiredString("$dtId", in: "$")
        self.timestamp = try object.requiredString("timestamp", in: "$")
        guard TimeSeriesTime.milliseconds(from: timestamp) != nil else {
            throw CodecError(field: "timestamp", reason: "must be an RFC 3339 time, found '\(timestamp)'")
        }
        object["$dtId"] = nil
        object["timestamp"] = nil
        self.values = object
        self.id = nil
    }

    /// Reads the value and the ID header.
    public init(decoding message: KafkaConsumerMessage) throws(CodecError) {
        try self.init(decoding: message.value)
        self.id = message.headers.string(for: Self.idHeader)
    }

    /// The event's time in milliseconds since 1970 (UTC); `timestamp` was checked when decoded.
    public var milliseconds: Int64? { TimeSeriesTime.milliseconds(from: timestamp) }

    public var json: JSONValue {
        var object = values
        object["$dtId"] = .string(twinID)
        object["timestamp"] = .string(timestamp)
        return .object(object)
    }

    /// ``json`` serialized as ``JSONValue`` writes it (members by name), without building it first:
    /// the forwarder does this for every event.
    public func serialized() -> [UInt8] {
        var members: [(name: String, value: JSONValue)] = [("$dtId", .string(twinID)), ("timestamp", .string(timestamp))]
        members.reserveCapacity(values.count + 2)
        for (name, value) in values where name != "$dtId" && name != "timestamp" { members.append((name, value)) }
        members.sort { $0.name < $1.name }
        var output: [UInt8] = []
        output.reserveCapacity(64 + 32 * members.count)
        output.append(UInt8(ascii: "{"))
        for (position, member) in members.enumerated() {
            if position > 0 { output.append(UInt8(ascii: ",")) }
            JSONWriter.writeString(member.name, into: &output)
            output.append(UInt8(ascii: ":"))
            JSONWriter.write(member.value, into: &output)
        }
        output.append(UInt8(ascii: "}"))
        return output
    }

    /// The Kafka message, keyed by twin ID (the partition key of the time series), with the ID header when there is an ID.
    public func kafkaMessage(topic: String) -> KafkaProducerMessage {
        KafkaProducerMessage(
            topic: topic, key: twinID, value: serialized(), headers: id.map { [KafkaHeader(key: Self.idHeader, string: $0)] } ?? [])
    }
}

/// RFC 3339 times as milliseconds since 1970 (UTC), read and written without Foundation's
/// formatters: the time-series services do this for every event and every bucket.
public enum TimeSeriesTime {
    /// The times RFC 3339 can write, 0000-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z, in
    /// milliseconds since 1970.
    public static let representable: ClosedRange<Int64> = -62_167_219_200_000...253_402_300_799_999

    /// Reads `2026-11-26T17:00:00Z`, with any fraction of a second (kept to the millisecond) and a
    /// `Z` or `±hh:mm` offset; `t` and `z` and a space for `T` are accepted as RFC 3339 allows.
    /// `nil` for a time the offset takes out of ``representable`` (`0000-01-01T00:00:00+01:00`).
    public static func milliseconds(from text: String) -> Int64? {
        var text = text
        return text.withUTF8 { bytes -> Int64? in
            let count = bytes.count
            guard count >= 20 else { return nil }
            func number(_ start: Int, _ length: Int) -> Int64? {
                var value: Int64 = 0
                for index in start..<(start + length) {
                    let digit = Int64(bytes[index]) - 48
                    guard digit >= 0 && digit <= 9 else { return nil }
                    value = value * 10 + digit
                }
                return value
            }
            guard bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
                [UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: " ")].contains(bytes[10]),
                bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
                let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2), let minute = number(14, 2),
                let second = number(17, 2),
                (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year), hour < 24, minute < 60, second < 61
            else { return nil }
            var index = 19
            var fraction: Int64 = 0
            if bytes[index] == UInt8(ascii: ".") {
                index += 1
                var digits = 0
                while index < count, bytes[index] >= 48, bytes[index] <= 57 {
                    if digits < 3 { fraction = fraction * 10 + Int64(bytes[index] - 48) }
                    digits += 1
                    index += 1
                }
                guard digits > 0 else { return nil }
                for _ in min(digits, 3)..<3 { fraction *= 10 }
            }
            guard index < count else { return nil }
            var offset: Int64 = 0
            switch bytes[index] {
            case UInt8(ascii: "Z"), UInt8(ascii: "z"):
                guard index + 1 == count else { return nil }
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                guard index + 6 == count, bytes[index + 3] == UInt8(ascii: ":"), let hours = number(index + 1, 2), let minutes = number(index + 4, 2),
                    hours < 24, minutes < 60
                else { return nil }
                offset = (hours * 60 + minutes) * 60_000 * (bytes[index] == UInt8(ascii: "+") ? 1 : -1)
            default:
                return nil
            }
            let days = daysFromCivil(year: year, month: month, day: day)
            let seconds = ((days * 24 + hour) * 60 + minute) * 60 + min(second, 59)
            let milliseconds = seconds * 1000 + fraction - offset
            return representable.contains(milliseconds) ? milliseconds : nil
        }
    }

    /// `2026-11-26T17:00:00.123Z`: UTC with milliseconds, as ADT writes times. A time outside
    /// ``representable`` is written as the nearest end of it: callers check their inputs against
    /// it, and a time string never has a fifth year digit or a sign.
    public static func string(milliseconds: Int64) -> String {
        let milliseconds = min(max(milliseconds, representable.lowerBound), representable.upperBound)
        let (days, rest) = milliseconds.quotientAndRemainder(dividingBy: 86_400_000)
        let (day, dayMilliseconds) = rest < 0 ? (days - 1, rest + 86_400_000) : (days, rest)
        let (year, month, dayOfMonth) = civil(fromDays: day)
        var text: [UInt8] = []
        text.reserveCapacity(24)
        func digits(_ value: Int64, _ count: Int) {
            var divisor: Int64 = 1
            for _ in 1..<count { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                text.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(year, 4)
        text.append(UInt8(ascii: "-"))
        digits(month, 2)
        text.append(UInt8(ascii: "-"))
        digits(dayOfMonth, 2)
        text.append(UInt8(ascii: "T"))
        digits(dayMilliseconds / 3_600_000, 2)
        text.append(UInt8(ascii: ":"))
        digits(dayMilliseconds / 60_000 % 60, 2)
        text.append(UInt8(ascii: ":"))
        digits(dayMilliseconds / 1000 % 60, 2)
        text.append(UInt8(ascii: "."))
        digits(dayMilliseconds % 1000, 3)
        text.append(UInt8(ascii: "Z"))
        return String(decoding: text, as: UTF8.self)
    }

    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
