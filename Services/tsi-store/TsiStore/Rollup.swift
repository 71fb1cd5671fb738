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
        sum += value
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
        sum += other.sum
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
