import TwinflowCodec

/// Where tsi-store keeps time-series events and their per-minute rollups. The query code reads
/// only through this protocol, so a store on another database (PostgreSQL) drops in beside
/// ``SQLiteTimeSeriesStore``. Times are milliseconds since 1970, UTC.
public protocol TimeSeriesStore: Sendable {
    /// Stores a batch in one transaction: each event not stored before (by series, time and ID) goes in
    /// with its numeric values added to the rollups of its own minute; repeats change nothing;
    /// events older than the raw retention are not stored.
    func ingest(_ events: [StoredEvent], now: Int64) async throws -> IngestReport

    /// Events of `series` with `from <= time < to`, by time (then event ID), after `cursor`, at most `limit`.
    func events(series: String, from: Int64, to: Int64, after cursor: EventCursor?, limit: Int) async throws -> [EventRow]

    /// Per-bucket aggregates of each of `variables` (`""` is the series' event count) over
    /// `[from, to)`, buckets of `bucket` milliseconds from `from` (a multiple of a minute, as are
    /// `from` and `bucket`), read from the rollups only. `withEnds`: also the first and last values.
    func aggregates(
        series: String, variables: [String], from: Int64, to: Int64, bucket: Int64, withEnds: Bool
    ) async throws
        -> [String: [BucketAggregate]]

    /// The time series with their variables, by ID, those after `after`, at most `limit`.
    func instances(after: String?, limit: Int) async throws -> [SeriesInstance]

    /// Deletes raw events and rollups older than their retention; how many rows of each went.
    func applyRetention(now: Int64) async throws -> (events: Int, rollups: Int)

    /// Moves committed writes out of the store's write-ahead log, beside its writer (a no-op for a
    /// store that does this itself); tsi-store calls it about once a second.
    func checkpoint() async throws

    /// A small write, for the readiness probe.
    func probe() async throws
}

/// How long raw events and rollups are kept, in milliseconds.
public struct RetentionPolicy: Sendable, Hashable {
    public var events: Int64
    public var rollups: Int64

    public init(events: Int64, rollups: Int64) {
        self.events = events
        self.rollups = rollups
    }

    /// 31 days of raw events (TSI's warm store held 7 to 31), two years of rollups.
    public static let `default` = RetentionPolicy(events: 31 * 86_400_000, rollups: 731 * 86_400_000)
}

/// An event as stored: its series, time, ID, and flattened values (and their JSON text).
public struct StoredEvent: Sendable, Hashable {
    public var series: String
    public var time: Int64
    public var id: String
    public var values: [String: JSONValue]
    /// `values` serialized: the stored body.
    public var body: [UInt8]

    public init(series: String, time: Int64, id: String, values: [String: JSONValue]) {
        self.series = series
        self.time = time
        self.id = id
        self.values = values
        self.body = JSONValue.object(values).serialized()
    }
}

/// What a batch did to the store.
public struct IngestReport: Sendable, Hashable {
    public var stored = 0
    /// Events stored before (same series, time and event ID): dropped.
    public var duplicates = 0
    /// Events older than the raw retention: dropped.
    public var expired = 0

    public init(stored: Int = 0, duplicates: Int = 0, expired: Int = 0) {
        self.stored = stored
        self.duplicates = duplicates
        self.expired = expired
    }
}

/// A position in a series' events, which are ordered by time, then event ID.
public struct EventCursor: Sendable, Hashable {
    public var time: Int64
    public var id: String

    public init(time: Int64, id: String) {
        self.time = time
        self.id = id
    }
}

/// A stored event as read back.
public struct EventRow: Sendable, Hashable {
    public var cursor: EventCursor
    public var body: [UInt8]

    public init(cursor: EventCursor, body: [UInt8]) {
        self.cursor = cursor
        self.body = body
    }
}

/// One bucket's aggregates of a variable; buckets with no value are absent.
public struct BucketAggregate: Sendable, Hashable {
    /// The bucket's index from the query's `from`.
    public var index: Int
    public var count: Int64
    public var sum: Double
    public var min: Double
    public var max: Double
    public var first: Double?
    public var last: Double?

    public init(index: Int, count: Int64, sum: Double, min: Double, max: Double, first: Double? = nil, last: Double? = nil) {
        self.index = index
        self.count = count
        self.sum = sum
        self.min = min
        self.max = max
        self.first = first
        self.last = last
    }
}

/// A time series and its variables with their TSI types (`Double`, `Long`, `String`, `Bool`, `Dynamic`).
public struct SeriesInstance: Sendable, Hashable {
    public var id: String
    public var variables: [String: String]

    public init(id: String, variables: [String: String]) {
        self.id = id
        self.variables = variables
    }
}

/// The TSI type of a value: numbers are `Long` (integers) or `Double`, arrays `Dynamic`.
public func timeSeriesType(of value: JSONValue) -> String {
    switch value {
    case .integer: "Long"
    case .double: "Double"
    case .string: "String"
    case .bool: "Bool"
    case .null, .array, .object: "Dynamic"
    }
}

/// The type of values of two types under one name: `Long` and `Double` make `Double`; any other mix `Dynamic`.
public func mergedTimeSeriesType(_ a: String, _ b: String) -> String {
    if a == b { return a }
    if Set([a, b]) == ["Long", "Double"] { return "Double" }
    return "Dynamic"
}
