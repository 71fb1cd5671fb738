import Testing
import TsiStore
import TwinflowCodec

/// Requests in TSI Gen2's shapes, read and checked before the store is asked anything.
@Suite struct TimeSeriesQueryTests {
    @Test(arguments: [("PT1M", 60_000), ("PT1H", 3_600_000), ("P1D", 86_400_000), ("P1W", 604_800_000), ("P1DT12H", 129_600_000), ("PT0.5S", 500)])
    func durations(text: String, milliseconds: Int) {
        #expect(ISODuration.milliseconds(text) == Int64(milliseconds))
    }

    @Test(arguments: ["P1M", "P1Y", "PT", "1H", "PT1X", "P0D", ""])
    func durationsWithoutAFixedLengthAreRefused(text: String) {
        #expect(ISODuration.milliseconds(text) == nil)
    }

    static func aggregate(_ changes: [String: JSONValue]) -> JSONValue {
        var request: [String: JSONValue] = [
            "timeSeriesId": ["t1"], "searchSpan": ["from": "2026-11-26T10:00:00Z", "to": "2026-11-26T11:00:00Z"], "interval": "PT1M",
            "inlineVariables": ["Avg": ["kind": "numeric", "value": ["tsx": "$event.Temperature"], "aggregation": ["tsx": "avg($value)"]]],
        ]
        for (key, value) in changes { request[key] = value }
        return ["aggregateSeries": .object(request)]
    }

    @Test func anAggregateSeriesReadsTheContractsShape() throws {
        guard case .aggregateSeries(let request) = try TimeSeriesQuery(json: Self.aggregate([:])) else {
            Issue.record("not an aggregateSeries")
            return
        }
        #expect(request.series == "t1")
        #expect(request.interval == 60_000)
        #expect(request.intervals == 60)
        #expect(request.variables == [.init(name: "Avg", property: "Temperature", function: .avg)])
    }

    static let badRequests: [(String, JSONValue, String)] = [
        ("interval", "PT30S", "whole number of minutes"),
        ("interval", "P1M", "fixed length"),
        ("timeSeriesId", ["a", "b"], "array of one"),
        ("timeSeriesId", ["thermo\u{0}"], "without U+0000"),
        ("searchSpan", ["from": "2026-11-26T11:00:00Z", "to": "2026-11-26T10:00:00Z"], "before"),
        ("searchSpan", ["from": "yesterday", "to": "2026-11-26T10:00:00Z"], "RFC 3339"),
        ("filter", ["tsx": "$event.Temperature > 1"], "no filter"),
        ("inlineVariables", ["X": ["kind": "categorical", "value": ["tsx": "$event.A"], "aggregation": ["tsx": "avg($value)"]]], "categorical"),
        (
            "inlineVariables", ["X": ["kind": "numeric", "value": ["tsx": "$event.A"], "aggregation": ["tsx": "median($value)"]]],
            "not an aggregation"
        ),
        ("projectedVariables", ["Nope"], "not among inlineVariables"),
        ("projectedVariables", ["Avg", "Avg"], "names Avg more than once"),
        ("interval", "PT1M", "intervals of"),
        ("searchSpan", ["from": "0000-01-01T00:00:00+01:00", "to": "2026-11-26T10:00:00Z"], "from year 0000 to 9999"),
        ("interval", "P5000D", "outside the years 0000 to 9999"),
        ("interval", "PT1M", "values (20 variables × 60000 intervals)"),
    ]

    @Test(arguments: badRequests)
    func badRequestsAreRefusedWithTheReason(field: String, value: JSONValue, reason: String) {
        var changes = [field: value]
        if reason == "intervals of" { changes["searchSpan"] = ["from": "2000-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"] }
        if reason.hasPrefix("outside the years") { changes["searchSpan"] = ["from": "0000-01-02T00:00:00Z", "to": "0000-01-03T00:00:00Z"] }
        if reason.hasPrefix("values (") {
            // 60,000 intervals are allowed alone; twenty variables of them pass the limit of values.
            changes["searchSpan"] = ["from": "2026-01-01T00:00:00Z", "to": "2026-02-11T16:00:00Z"]
            changes["inlineVariables"] = .object(
                Dictionary(uniqueKeysWithValues: (1...20).map { ("V\($0)", ["kind": "aggregate", "aggregation": ["tsx": "count()"]]) }))
        }
        do {
            _ = try TimeSeriesQuery(json: Self.aggregate(changes))
            Issue.record("accepted \(field) = \(value)")
        } catch {
            #expect(error.code == "InvalidInput")
            #expect(error.message.contains(reason), "\(error.message)")
        }
    }

    @Test func aNullFilterIsNoFilter() throws {
        #expect(throws: Never.self) { try TimeSeriesQuery(json: Self.aggregate(["filter": nil])) }
    }

    @Test func filtersReadTsxComparisons() throws {
        let filter = try Tsx.filter("($event.Temperature >= 20.5 or $event['Front.Door'] = true) and not $event.Status != 'o''k'")
        #expect(filter.matches(["Temperature": 21, "Status": "o'k"]))
        #expect(!filter.matches(["Temperature": 20, "Status": "o'k"]))
        #expect(filter.matches(["Temperature": 1, "Front.Door": true, "Status": "o'k"]))
        #expect(!filter.matches(["Temperature": 30, "Status": "bad"]))
        #expect(throws: QueryError.self) { try Tsx.filter("$event.Temperature >") }
        #expect(throws: QueryError.self) { try Tsx.filter("$event.Temperature > 1 2") }
    }

    /// A filter's cost is bounded: its length, and its nesting, which parsing and matching recurse
    /// over (100,000 parentheses overflowed the stack before).
    @Test func aFilterTooLongOrTooDeepIsRefused() throws {
        let deep = String(repeating: "(", count: 100_000) + "$event.A = 1" + String(repeating: ")", count: 100_000)
        #expect(throws: QueryError.self) { try Tsx.filter(deep) }
        let nested = String(repeating: "not ", count: Tsx.maximumNesting + 1) + "$event.A = 1"
        let tooDeep = #expect(throws: QueryError.self) { try Tsx.filter(nested) }
        #expect(tooDeep?.message.contains("more than \(Tsx.maximumNesting) deep") == true)
        let allowed = String(repeating: "(", count: Tsx.maximumNesting) + "$event.A = 1" + String(repeating: ")", count: Tsx.maximumNesting)
        #expect(try Tsx.filter(allowed).matches(["A": 1]))
        let long = Array(repeating: "$event.A = 1", count: 400).joined(separator: " or ")
        let tooLong = #expect(throws: QueryError.self) { try Tsx.filter(long) }
        #expect(tooLong?.message.contains("at most \(Tsx.maximumLength) characters") == true)
        let many = Array(repeating: "$event.A=1", count: 290).joined(separator: " or ")
        #expect(many.count <= Tsx.maximumLength)
        #expect(try Tsx.filter(many).matches(["A": 1]))
    }
}
