import BenchmarkSupport
import Foundation
import Histogram
import Logging
import Synchronization
import TwinflowCodec
import TwinflowKafka

/// From an event on `eventhub.telemetry` to its being visible in a query: tsi-forwarder and
/// tsi-store on the contract's topics, telemetry of `twins` twins at `rate` a second, and a poller
/// asking tsi-store (`getEvents` of one twin, from the next event it has not seen) as fast as it
/// answers, at most every 5 ms (which the figures may overstate by that much). Each twin's events carry a sequence number; the latency of an event is from just
/// before it was produced to the answer that first held it.
struct LatencyRun {
    var rate: Int
    var seconds: Int
    var devbroker: DevBrokerChild
    var logger: Logger

    static let twin = "latency-1"
    static let deliveryLimit: Duration = .seconds(10)

    struct Result {
        var histogram: Histogram<UInt64>
        var events: Int
    }

    func measure() async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appending(path: "tsi-bench-latency-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let environment = ["KAFKA_BOOTSTRAP_SERVERS": devbroker.bootstrap, "TWINFLOW_DATA_DIR": directory.path]
        let forwarder = try ServiceChild("tsi-forwarder", environment: environment)
        defer { forwarder.stop() }
        let store = try ServiceChild("tsi-store", environment: environment)
        defer { store.stop() }
        try await forwarder.waitUntilAnswering("/readyz", within: .seconds(120))
        try await store.waitUntilAnswering("/readyz", within: .seconds(120))
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(
                kafka: KafkaConfiguration(bootstrapServers: devbroker.bootstrap, properties: ["linger.ms": "0"]), clientID: "tsi-bench"),
            logger: logger)
        let base = (Telemetry.now() - 3_600_000) / 60_000 * 60_000
        let total = 50 + rate * seconds
        let sent = Locked([ContinuousClock.Instant?](repeating: nil, count: total))
        let seen = Locked([ContinuousClock.Instant?](repeating: nil, count: total))
        let port = store.httpPort
        let poller = Task {
            var next = 0
            while next < total, !Task.isCancelled {
                let response = try await BenchHTTP.query(
                    port: port,
                    [
                        "getEvents": [
                            "timeSeriesId": [.string(Self.twin)],
                            "searchSpan": [
                                "from": .string(TimeSeriesTime.string(milliseconds: base + Int64(next))),
                                "to": .string(TimeSeriesTime.string(milliseconds: base + Int64(total))),
                            ],
                        ]
                    ])
                let arrived = ContinuousClock.now
                let sequence = BenchHTTP.values(response, "Sequence").compactMap(\.integerValue).map(Int.init)
                seen.withLock { seen in
                    for index in sequence where index < total && seen[index] == nil { seen[index] = arrived }
                }
                next = seen.withLock { seen in
                    var next = next
                    while next < total, seen[next] != nil { next += 1 }
                    return next
                }
                // A query every 5 ms at the most: asking back to back would take a core from the path measured.
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        defer { poller.cancel() }
        // 50 at 50/s to warm up, then the measured ones at `rate`.
        var tickets: [KafkaSendTicket] = []
        let start = ContinuousClock.now + .milliseconds(10)
        for index in 0..<total {
            let due = index < 50 ? start + .milliseconds(20 * index) : start + .seconds(1) + (Duration.seconds(1) / rate) * (index - 50)
            try await Task.sleep(until: due, clock: .continuous)
            let message = Telemetry.message(
                topic: Topics.defaults.telemetry, twin: Self.twin, id: "latency-\(index)",
                sourceTime: TimeSeriesTime.string(milliseconds: base + Int64(index)),
                payload: ["Sequence": .integer(Int64(index)), "Temperature": .double(21)])
            sent.withLock { $0[index] = ContinuousClock.now }
            tickets.append(try await producer.enqueue([message][...]))
        }
        for ticket in tickets { try await producer.delivered(ticket) }
        await producer.shutdown()
        let deadline = ContinuousClock.now + Self.deliveryLimit
        while seen.withLock({ $0.contains(nil) }) {
            try forwarder.checkRunning()
            try store.checkRunning()
            guard ContinuousClock.now < deadline else {
                let missing = seen.withLock { $0.count { $0 == nil } }
                throw BenchmarkError("lost events: \(missing) of \(total) telemetry events were not visible in a query within \(Self.deliveryLimit)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        poller.cancel()
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        let (sentTimes, seenTimes) = (sent.withLock { $0 }, seen.withLock { $0 })
        for index in 50..<total {
            guard let from = sentTimes[index], let to = seenTimes[index] else { continue }
            let duration = to - from
            histogram.record(UInt64(max(0, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000)))
        }
        if ProcessInfo.processInfo.environment["TSI_BENCH_DUMP"] == "1" {
            for index in 50..<total where (seenTimes[index]! - sentTimes[index]!) > .milliseconds(100) {
                print("slow \(index) at \(sentTimes[index]! - start): \(seenTimes[index]! - sentTimes[index]!)")
            }
        }
        return Result(histogram: histogram, events: total - 50)
    }
}

/// A value the poller and the producing loop share, behind a lock.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result { mutex.withLock { body(&$0) } }
}
