import Foundation
import TwinflowCodec

/// Answers ``TimeSeriesQuery`` requests from any ``TimeSeriesStore``, in TSI Gen2's response
/// shapes: `{"timestamps": […], "properties": [{"name", "type", "values"}], "continuationToken", "progress"}`.
public struct TimeSeriesQueryEngine: Sendable {
    public let store: any TimeSeriesStore
    /// The most values a page of events holds (its properties times its events).
    public let maximumValues: Int
    /// The most events a page reads from the store (matching its filter or not) before it is
    /// answered, full or not, with a continuation token: a filter that matches little of a long span
    /// is answered in steps, not by one request that reads the span.
    public let maximumScanned: Int
    /// The most bytes of event bodies a page holds (arrays are kept whole, so a few wide events can
    /// be large), and about the most it reads from the store at once.
    public let maximumBodyBytes: Int
    /// Events read from the store per step while a page is filled (fewer when bodies are large).
    static let readChunk = 5_000

    public init(
        store: any TimeSeriesStore, maximumValues: Int = TimeSeriesQuery.maximumValues, maximumScanned: Int = 100_000,
        maximumBodyBytes: Int = 32 * 1024 * 1024
    ) {
        self.store = store
        self.maximumValues = maximumValues
        self.maximumScanned = maximumScanned
        self.maximumBodyBytes = maximumBodyBytes
    }

    public func answer(_ query: TimeSeriesQuery) async throws -> JSONValue {
        switch query {
        case .getEvents(let request): try await getEvents(request)
        case .getSeries(let request): try await getSeries(request)
        case .aggregateSeries(let request): try await aggregateSeries(request)
        }
    }

    /// Reads events of the span in order, `readChunk` at a time, until `take` pass `filter`; the
    /// cursor to go on from, when more may follow. An event keeps only the values named in
    /// `keeping`, when given. The page also ends before what it holds passes the answer's limit:
    /// its events' values, and with `columnsOfEvery`, each name any of its events has times its
    /// events (every event's properties are a column of the page); so a span of wide events costs
    /// memory in proportion to the answer, not to `take`. It ends too once it has read
    /// ``maximumScanned`` events or holds ``maximumBodyBytes`` of bodies, with a cursor to go on from.
    private func page(
        series: String, span: TimeSeriesQuery.SearchSpan, filter: Tsx.Filter?, take: Int, after: EventCursor?, keeping: Set<String>? = nil,
        columnsOfEvery: Bool = false
    ) async throws -> (events: [(cursor: EventCursor, values: [String: JSONValue])], next: EventCursor?) {
        var events: [(cursor: EventCursor, values: [String: JSONValue])] = []
        var cursor = after
        var names = Set<String>()
        var valuesHeld = 0
        var scanned = 0
        var bytesHeld = 0
        var chunk = Self.readChunk
        while events.count < take {
            try Task.checkCancellation()
            if scanned >= maximumScanned { return (events, cursor) }
            let limit = min(filter == nil ? min(take - events.count, chunk) : chunk, maximumScanned - scanned)
            let rows = try await store.events(series: series, from: span.from, to: span.to, after: cursor, limit: limit)
            scanned += rows.count
            // The next read takes about as many bytes as a page may hold, by the bodies of this one.
            let bytesRead = rows.reduce(0) { $0 + $1.body.count }
            if !rows.isEmpty { chunk = max(1, min(Self.readChunk, maximumBodyBytes / max(1, bytesRead / rows.count))) }
            for row in rows {
                guard var values = (try? JSONValue.parse(row.body))?.objectValue, filter?.matches(values) ?? true else {
                    cursor = row.cursor
                    continue
                }
                if !events.isEmpty, bytesHeld + row.body.count > maximumBodyBytes { return (events, cursor) }
                bytesHeld += row.body.count
                if let keeping { values = values.filter { keeping.contains($0.key) } }
                if columnsOfEvery {
                    let widened = names.union(values.keys)
                    if !events.isEmpty, widened.count * (events.count + 1) > maximumValues { return (events, cursor) }
                    names = widened
                }
                if !events.isEmpty, valuesHeld + values.count > maximumValues { return (events, cursor) }
                valuesHeld += values.count
                cursor = row.cursor
                events.append((row.cursor, values))
                if events.count == take { return (events, row.cursor) }
            }
            if rows.count < limit { return (events, nil) }
        }
        return (events, cursor)
    }

    private func getEvents(_ request: TimeSeriesQuery.GetEvents) async throws -> JSONValue {
        let (events, next) = try await page(
            series: request.series, span: request.span, filter: request.filter, take: take(request.take, properties: request.projected?.count),
            after: request.continuation, keeping: request.projected.map(Set.init), columnsOfEvery: request.projected == nil)
        let names = request.projected ?? Set(events.flatMap(\.values.keys)).sorted()
        let properties: [JSONValue] = names.map { name in
            var type: String?
            let values: [JSONValue] = events.map { event in
                guard let value = event.values[name] else { return .null }
                let valueType = timeSeriesType(of: value)
                type = type.map { mergedTimeSeriesType($0, valueType) } ?? valueType
                return value
            }
            return ["name": .string(name), "type": .string(type ?? "Dynamic"), "values": .array(values)]
        }
        return Self.response(timestamps: events.map(\.cursor.time), properties: properties, next: next)
    }

    /// A page's size: `take`, or fewer when `properties` columns of it would pass the answer's limit.
    private func take(_ take: Int, properties: Int?) -> Int {
        guard let properties, properties > 0 else { return take }
        return max(1, min(take, maximumValues / properties))
    }

    private func getSeries(_ request: TimeSeriesQuery.GetSeries) async throws -> JSONValue {
        let (events, next) = try await page(
            series: request.series, span: request.span, filter: request.filter, take: take(request.take, properties: request.variables.count),
            after: request.continuation)
        let properties: [JSONValue] = request.variables.map { variable in
            let values: [JSONValue] = events.map { event in
                if let filter = variable.filter, !filter.matches(event.values) { return .null }
                return event.values[variable.property]?.doubleValue.map(JSONValue.double) ?? .null
            }
            return ["name": .string(variable.name), "type": "Double", "values": .array(values)]
        }
        return Self.response(timestamps: events.map(\.cursor.time), properties: properties, next: next)
    }

    private func aggregateSeries(_ request: TimeSeriesQuery.AggregateSeries) async throws -> JSONValue {
        let count = request.intervals
        let withEnds = request.variables.contains { $0.function == .first || $0.function == .last }
        let aggregates = try await store.aggregates(
            series: request.series, variables: request.variables.map(\.property), from: request.span.from, to: request.span.to,
            bucket: request.interval, withEnds: withEnds)
        let properties: [JSONValue] = request.variables.map { variable in
            var values = [JSONValue](repeating: variable.function == .count ? .integer(0) : .null, count: count)
            for bucket in aggregates[variable.property] ?? [] where bucket.index >= 0 && bucket.index < count && bucket.count > 0 {
                values[bucket.index] =
                    switch variable.function {
                    case .count: .integer(bucket.count)
                    case .sum: .double(bucket.sum)
                    case .avg: .double(bucket.sum / Double(bucket.count))
                    case .min: .double(bucket.min)
                    case .max: .double(bucket.max)
                    case .first: bucket.first.map(JSONValue.double) ?? .null
                    case .last: bucket.last.map(JSONValue.double) ?? .null
                    }
            }
            return ["name": .string(variable.name), "type": variable.function == .count ? "Long" : "Double", "values": .array(values)]
        }
        let timestamps = (0..<count).map { request.span.from + Int64($0) * request.interval }
        return Self.response(timestamps: timestamps, properties: properties, next: nil)
    }

    static func response(timestamps: [Int64], properties: [JSONValue], next: EventCursor?) -> JSONValue {
        [
            "timestamps": .array(timestamps.map { .string(TimeSeriesTime.string(milliseconds: $0)) }),
            "properties": .array(properties),
            "continuationToken": next.map { .string(TimeSeriesQuery.token($0)) } ?? .null,
            "progress": 100,
        ]
    }

    /// `GET /timeseries/instances`: TSI's instance list, each with the variables its events carried.
    public func instances(continuationToken: String?, maximumCount: Int) async throws -> JSONValue {
        let after = try continuationToken.map { (token) throws(QueryError) -> String in
            guard let data = Data(base64Encoded: token) else { throw QueryError("the continuation token is not one this service gave") }
            return String(decoding: data, as: UTF8.self)
        }
        let instances = try await store.instances(after: after, limit: maximumCount)
        let list: [JSONValue] = instances.map { instance in
            [
                "timeSeriesId": [.string(instance.id)],
                "variables": .object(instance.variables.mapValues { ["type": .string($0)] }),
            ]
        }
        let next: JSONValue =
            instances.count == maximumCount ? instances.last.map { .string(Data($0.id.utf8).base64EncodedString()) } ?? .null : .null
        return ["instances": .array(list), "continuationToken": next]
    }
}
