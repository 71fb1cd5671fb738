import Histogram

/// The p99 in milliseconds of each second's samples (microseconds, in the order they were sent at
/// `rate` a second): whether the latency holds over a run or grows with it.
public func p99BySecond(_ samples: [UInt64], rate: Int) -> [Double] {
    stride(from: 0, to: samples.count, by: max(1, rate)).map { first in
        var second = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for microseconds in samples[first..<min(first + max(1, rate), samples.count)] { second.record(microseconds) }
        return Double(second.valueAtPercentile(99)) / 1000
    }
}
