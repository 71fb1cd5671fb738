import Foundation
import TwinflowCodec

/// A `POST /timeseries/query` body in Time Series Insights Gen2's shapes: `getEvents`, `getSeries`
/// or `aggregateSeries`, read and checked before anything is read from the store.
public enum TimeSeriesQuery: Sendable, Hashable {
    case getEvents(GetEvents)
    case getSeries(GetSeries)
    case aggregateSeries(AggregateSeries)

    /// The most events a page holds, and the default.
    public static let maximumTake = 250_000
    public static let defaultTake = 10_000
    /// The most intervals an `aggregateSeries` answers.
    public static let maximumIntervals = 100_000
    /// The most values an answer holds (its properties times its timestamps): an `aggregateSeries`
    /// asking for more is refused, a page of events ends early, with a continuation token.
    public static let maximumValues = 1_000_000

    /// `[from, to)` in milliseconds.
    public struct SearchSpan: Sendable, Hashable {
        public var from: Int64
        public var to: Int64
    }

    /// Raw events of a series, filtered, a page of `take`.
    public struct GetEvents: Sendable, Hashable {
        public var series: String
        public var span: SearchSpan
        public var filter: Tsx.Filter?
        /// The properties to return (all when `nil`).
        public var projected: [String]?
        public var take: Int
        public var continuation: EventCursor?
    }

    /// A numeric variable's values at each event.
    public struct SeriesVariable: Sendable, Hashable {
        public var name: String
        public var property: String
        public var filter: Tsx.Filter?
    }

    public struct GetSeries: Sendable, Hashable {
        public var series: String
        public var span: SearchSpan
        public var filter: Tsx.Filter?
        public var variables: [SeriesVariable]
        public var take: Int
        public var continuation: EventCursor?
    }

    /// A variable aggregated per interval: `function` of `property` (`""`: the events themselves, `count()`).
    public struct AggregateVariable: Sendable, Hashable {
        public var name: String
        public var property: String
        public var function: Tsx.Function

        public init(name: String, property: String, function: Tsx.Function) {
            self.name = name
            self.property = property
            self.function = function
        }
    }

    public struct AggregateSeries: Sendable, Hashable {
        public var series: String
        /// Widened to whole intervals from the epoch: `from` rounded down, `to` up.
        public var span: SearchSpan
        public var interval: Int64
        public var variables: [AggregateVariable]

        public var intervals: Int { Int((span.to - span.from) / interval) }
    }

    /// Reads a request body; `continuationHeader` is TSI's `x-ms-continuation` header, if sent.
    public init(json: JSONValue, continuationHeader: String? = nil) throws(QueryError) {
        guard let object = json.objectValue, object.count == 1, let (kind, body) = object.first, let request = body.objectValue else {
            throw QueryError("the body must be one of {\"getEvents\": …}, {\"getSeries\": …} or {\"aggregateSeries\": …}")
        }
        let series = try Self.series(request["timeSeriesId"])
        let span = try Self.span(request["searchSpan"])
        let filter = try Self.present(request["filter"]).map { (value) throws(QueryError) in try Tsx.filter(try Self.tsx(value, "filter")) }
        switch kind {
        case "getEvents":
            var projected: [String]?
            if let properties = request["projectedProperties"], properties != .null {
                guard let list = properties.arrayValue else { throw QueryError("projectedProperties must be an array of {name, type}") }
                let names = try list.map { (item) throws(QueryError) -> String in
                    guard let name = item["name"]?.stringValue ?? item.stringValue else {
                        throw QueryError("each of projectedProperties must be {\"name\": …, \"type\": …}")
                    }
                    return name
                }
                try Self.refuseRepeats(names, "projectedProperties")
                projected = names
            }
            self = .getEvents(
                GetEvents(
                    series: series, span: span, filter: filter, projected: projected, take: try Self.take(request["take"]),
                    continuation: try Self.continuation(request["continuationToken"]?.stringValue ?? continuationHeader)))
        case "getSeries":
            let variables = try Self.variables(request).map { (name, definition) throws(QueryError) -> SeriesVariable in
                guard definition["kind"]?.stringValue?.lowercased() == "numeric" else {
                    throw QueryError("getSeries takes numeric variables; \(name) is \(definition["kind"]?.stringValue ?? "without a kind")")
                }
                let property = try Tsx.property(try Self.tsx(definition["value"], "inlineVariables.\(name).value"))
                let filter = try Self.present(definition["filter"]).map { (value) throws(QueryError) in
                    try Tsx.filter(try Self.tsx(value, "inlineVariables.\(name).filter"))
                }
                return SeriesVariable(name: name, property: property, filter: filter)
            }
            self = .getSeries(
                GetSeries(
                    series: series, span: span, filter: filter, variables: variables, take: try Self.take(request["take"]),
                    continuation: try Self.continuation(request["continuationToken"]?.stringValue ?? continuationHeader)))
        case "aggregateSeries":
            guard filter == nil else { throw QueryError("aggregateSeries takes no filter here: its aggregates come from per-minute rollups") }
            guard let intervalText = request["interval"]?.stringValue else { throw QueryError("aggregateSeries needs an interval, such as PT1M") }
            guard let interval = ISODuration.milliseconds(intervalText) else {
                throw QueryError("interval '\(intervalText)' is not an ISO 8601 duration of fixed length, such as PT1M, PT1H or P1D")
            }
            guard interval % 60_000 == 0 else {
                throw QueryError("interval '\(intervalText)' must be a whole number of minutes (rollups are per minute)")
            }
            let from = Self.floor(span.from, interval)
            let to = Self.floor(span.to - 1, interval) + interval
            guard TimeSeriesTime.representable.contains(from), TimeSeriesTime.representable.contains(to - interval) else {
                throw QueryError("the search span widened to whole intervals of \(intervalText) reaches outside the years 0000 to 9999")
            }
            guard (to - from) / interval <= Int64(Self.maximumIntervals) else {
                throw QueryError(
                    "the search span holds \((to - from) / interval) intervals of \(intervalText); at most \(Self.maximumIntervals) are answered")
            }
            let definitions = try Self.variables(request)
            let values = definitions.count * Int((to - from) / interval)
            guard values <= Self.maximumValues else {
                throw QueryError(
                    "the answer would hold \(values) values (\(definitions.count) variables × \((to - from) / interval) intervals); at most \(Self.maximumValues) are answered"
                )
            }
            let variables = try definitions.map { (name, definition) throws(QueryError) -> AggregateVariable in
                guard definition["filter"] == nil || definition["filter"] == .null else {
                    throw QueryError("variable \(name): aggregateSeries takes no filter here: its aggregates come from per-minute rollups")
                }
                let (function, argument) = try Tsx.aggregation(try Self.tsx(definition["aggregation"], "inlineVariables.\(name).aggregation"))
                switch (definition["kind"]?.stringValue?.lowercased(), argument) {
                case ("numeric", .value):
                    let property = try Tsx.property(try Self.tsx(definition["value"], "inlineVariables.\(name).value"))
                    return AggregateVariable(name: name, property: property, function: function)
                case ("numeric", _):
                    throw QueryError("variable \(name): a numeric variable aggregates $value, such as avg($value)")
                case ("aggregate", .property(let property)):
                    return AggregateVariable(name: name, property: property, function: function)
                case ("aggregate", .none):
                    return AggregateVariable(name: name, property: "", function: .count)
                case ("aggregate", .value):
                    throw QueryError("variable \(name): an aggregate variable reads an event property, such as sum($event.Temperature), or count()")
                default:
                    throw QueryError("variable \(name): kind must be numeric or aggregate (categorical variables are not supported)")
                }
            }
            self = .aggregateSeries(
                AggregateSeries(series: series, span: SearchSpan(from: from, to: to), interval: interval, variables: variables))
        default:
            throw QueryError("'\(kind)' is not a query: use getEvents, getSeries or aggregateSeries")
        }
    }

    /// A member's value, `nil` when it is absent or `null`.
    static func present(_ value: JSONValue?) -> JSONValue? {
        value == .null ? nil : value
    }

    static func floor(_ value: Int64, _ step: Int64) -> Int64 {
        let remainder = value % step
        return remainder < 0 ? value - remainder - step : value - remainder
    }

    static func series(_ value: JSONValue?) throws(QueryError) -> String {
        switch value {
        case .string(let id) where Self.isSeriesID(id): return id
        case .array(let ids) where ids.count == 1: if let id = ids[0].stringValue, Self.isSeriesID(id) { return id }
        default: break
        }
        throw QueryError(
            "timeSeriesId must be an array of one non-empty string (the twin ID, without U+0000), such as [\"thermo_0001\"]"
        )
    }

    /// Whether `id` could name a series: not empty, no U+0000 (which PostgreSQL refuses in text).
    private static func isSeriesID(_ id: String) -> Bool {
        !id.isEmpty && !id.utf8.contains(0)
    }

    static func span(_ value: JSONValue?) throws(QueryError) -> SearchSpan {
        guard let from = value?["from"]?.stringValue, let to = value?["to"]?.stringValue else {
            throw QueryError("searchSpan must be {\"from\": <RFC 3339 time>, \"to\": <RFC 3339 time>}")
        }
        guard let start = TimeSeriesTime.milliseconds(from: from) else {
            throw QueryError("searchSpan.from '\(from)' is not an RFC 3339 time from year 0000 to 9999")
        }
        guard let end = TimeSeriesTime.milliseconds(from: to) else {
            throw QueryError("searchSpan.to '\(to)' is not an RFC 3339 time from year 0000 to 9999")
        }
        guard start < end else { throw QueryError("searchSpan.from must be before searchSpan.to") }
        return SearchSpan(from: start, to: end)
    }

    static func tsx(_ value: JSONValue?, _ field: String) throws(QueryError) -> String {
        if let text = value?["tsx"]?.stringValue ?? value?.stringValue { return text }
        throw QueryError("\(field) must be {\"tsx\": \"…\"}")
    }

    static func take(_ value: JSONValue?) throws(QueryError) -> Int {
        guard let value, value != .null else { return defaultTake }
        guard let take = value.integerValue, (1...Int64(maximumTake)).contains(take) else {
            throw QueryError("take must be an integer from 1 to \(maximumTake)")
        }
        return Int(take)
    }

    /// The projected inline variables in order (all of them, by name, when none are projected).
    static func variables(_ request: [String: JSONValue]) throws(QueryError) -> [(String, JSONValue)] {
        guard let inline = request["inlineVariables"]?.objectValue, !inline.isEmpty else {
            throw QueryError("inlineVariables must define the variables, such as {\"Avg\": {\"kind\": \"numeric\", …}}")
        }
        var names = inline.keys.sorted()
        if let projected = request["projectedVariables"], projected != .null {
            guard let list = projected.arrayValue?.compactMap(\.stringValue), !list.isEmpty else {
                throw QueryError("projectedVariables must be a non-empty array of variable names")
            }
            for name in list where inline[name] == nil {
                throw QueryError("projected variable \(name) is not among inlineVariables (variables of time series types are not supported)")
            }
            try refuseRepeats(list, "projectedVariables")
            names = list
        }
        return names.map { ($0, inline[$0]!) }
    }

    static func refuseRepeats(_ names: [String], _ field: String) throws(QueryError) {
        var seen = Set<String>()
        for name in names where !seen.insert(name).inserted { throw QueryError("\(field) names \(name) more than once") }
    }

    /// A continuation token: the base64 of `<time>:<event ID>` of the last event of the page before.
    public static func token(_ cursor: EventCursor) -> String {
        Data("\(cursor.time):\(cursor.id)".utf8).base64EncodedString()
    }

    static func continuation(_ token: String?) throws(QueryError) -> EventCursor? {
        guard let token, !token.isEmpty else { return nil }
        guard let data = Data(base64Encoded: token) else { throw QueryError("the continuation token is not one this service gave") }
        let parts = String(decoding: data, as: UTF8.self).split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let time = Int64(parts[0]), !parts[1].utf8.contains(0)
        else { throw QueryError("the continuation token is not one this service gave") }
        return EventCursor(time: time, id: String(parts[1]))
    }
}
