import TwinflowCodec

/// One variable's values in one minute, combined: what a rollup row holds. Combining is
/// order-independent except for ties of `first` (the earlier arrival stays) and `last` (the later wins).
struct RollupCell: Sendable, Hashable {
    var count: Int64 = 0
    var sum: Double = 0
    var min: Double = .infinity
    var max: Double = -.infinity
    var firstTime: Int64 = .max
    var first: Double = 0
    var lastTime: Int64 = .min
    var last: Double = 0

    mutating func add(_ value: Double, at time: Int64) {
        count += 1
        sum = rollupSum(sum, value)
        if value < min { min = value }
        if value > max { max = value }
        if time < firstTime {
            firstTime = time
            first = value
        }
        if time >= lastTime {
            lastTime = time
            last = value
        }
    }

    /// Adds the values of `other`, a cell of later arrivals.
    mutating func merge(_ other: RollupCell) {
        count += other.count
        sum = rollupSum(sum, other.sum)
        if other.min < min { min = other.min }
        if other.max > max { max = other.max }
        if other.firstTime < firstTime {
            firstTime = other.firstTime
            first = other.first
        }
        if other.lastTime >= lastTime {
            lastTime = other.lastTime
            last = other.last
        }
    }
}

/// The largest sum a rollup keeps, either sign.
let rollupSumLimit = 1e308

/// `a + b`, held within ±``rollupSumLimit``: values near the largest double (JSON allows them)
/// would add up to an infinity, infinities of both signs to NaN, which SQLite keeps as NULL and
/// PostgreSQL refuses as out of range, and the batch would fail for ever.
func rollupSum(_ a: Double, _ b: Double) -> Double {
    min(max(a + b, -rollupSumLimit), rollupSumLimit)
}

/// The SQL of ``rollupSum(_:_:)`` for a rollup table's upsert, in both stores' dialect, without
/// ever adding past the largest double (PostgreSQL refuses an overflow). The CASEs are nested: SQL
/// does not promise to evaluate `AND` left to right, and `limit - added` overflows for a negative
/// `added` at the limit.
func rollupSumSQL(_ stored: String, _ added: String) -> String {
    """
    CASE WHEN \(stored) > 0 AND \(added) > 0 THEN \
    (CASE WHEN \(stored) > \(rollupSumLimit) - \(added) THEN \(rollupSumLimit) ELSE \(stored) + \(added) END) \
    WHEN \(stored) < 0 AND \(added) < 0 THEN \
    (CASE WHEN \(stored) < -\(rollupSumLimit) - \(added) THEN -\(rollupSumLimit) ELSE \(stored) + \(added) END) \
    ELSE \(stored) + \(added) END
    """
}

/// A rollup row's key: series, variable (`""` for the event count) and the start (ms) of its minute or hour.
struct RollupKey: Sendable, Hashable {
    var series: Int64
    var variable: String
    var minute: Int64
}

/// The start of the minute holding `time` (milliseconds; floor, so times before 1970 work too).
func minuteStart(_ time: Int64) -> Int64 {
    let remainder = time % 60_000
    return remainder < 0 ? time - remainder - 60_000 : time - remainder
}

/// The start of the hour holding `time`.
func hourStart(_ time: Int64) -> Int64 {
    let remainder = time % 3_600_000
    return remainder < 0 ? time - remainder - 3_600_000 : time - remainder
}

/// A variable of a series.
struct VariableKey: Hashable {
    var series: Int64
    var name: String
}

/// What the events a batch stored add to the rollups and to the variables' types: gathered per
/// batch, so each rollup row is written once per batch, whatever the store.
struct RollupBatch {
    /// Minutes before this are past the rollups' retention and left out.
    let rollupCutoff: Int64
    private(set) var minutes: [RollupKey: RollupCell] = [:]
    private(set) var types: [VariableKey: String] = [:]

    init(rollupCutoff: Int64) {
        self.rollupCutoff = rollupCutoff
    }

    /// Adds a stored event of `series`: its count (variable `""`) and each numeric value to its
    /// minute, and each value's type to its variable.
    mutating func add(_ event: StoredEvent, series: Int64) {
        let minute = minuteStart(event.time)
        let rolledUp = minute >= rollupCutoff
        if rolledUp { minutes[RollupKey(series: series, variable: "", minute: minute), default: RollupCell()].add(1, at: event.time) }
        for (name, value) in event.values {
            let type = timeSeriesType(of: value)
            let key = VariableKey(series: series, name: name)
            if let seen = types[key] {
                if seen != type { types[key] = mergedTimeSeriesType(seen, type) }
            } else {
                types[key] = type
            }
            if rolledUp, let number = value.doubleValue {
                minutes[RollupKey(series: series, variable: name, minute: minute), default: RollupCell()].add(number, at: event.time)
            }
        }
    }

    /// The minutes combined into their hours.
    var hours: [RollupKey: RollupCell] {
        var hours: [RollupKey: RollupCell] = [:]
        for (key, cell) in minutes {
            hours[RollupKey(series: key.series, variable: key.variable, minute: hourStart(key.minute)), default: RollupCell()].merge(cell)
        }
        return hours
    }
}

extension Array where Element == BucketAggregate {
    /// Adds a rollup row of bucket `index`, rows coming in time order: a row of the last bucket is
    /// combined with it (its first value stays, its last value is the row's), another starts a bucket.
    mutating func addRow(
        index: Int, count: Int64, sum: Double, min minimum: Double, max maximum: Double, first: @autoclosure () -> Double,
        last: @autoclosure () -> Double, withEnds: Bool
    ) {
        if let lastIndex = indices.last, self[lastIndex].index == index {
            self[lastIndex].count += count
            self[lastIndex].sum = rollupSum(self[lastIndex].sum, sum)
            self[lastIndex].min = Swift.min(self[lastIndex].min, minimum)
            self[lastIndex].max = Swift.max(self[lastIndex].max, maximum)
            if withEnds { self[lastIndex].last = last() }
        } else {
            append(
                BucketAggregate(
                    index: index, count: count, sum: sum, min: minimum, max: maximum, first: withEnds ? first() : nil,
                    last: withEnds ? last() : nil))
        }
    }
}
