import BenchmarkSupport
import Foundation
import Histogram
import Synchronization
import TwinBenchSupport
import TwinflowCodec
import TwinflowKafka

/// Latency at a fixed rate: device messages paced at `rate` a second for `seconds`, each timed from
/// just before it was produced to
/// - its room's Twin.Update with `currentTemp` at its value or a later one of the same thermostat (the
///   propagator sends the last value of a batch, so a later value can stand for an earlier one), as
///   read from `eventgrid.twin-events` by a reader of its own;
/// - for every tenth message, which goes to one probe device, the `getEvents` answer of tsi-store
///   that first held it, from a poller asking for the probe's events not yet seen every 5 ms (the
///   figures may overstate by that much).
struct LatencyRun {
    var pipeline: Pipeline
    var devices: Int
    var rate: Int
    var seconds: Int
    /// The first value of this run; values are unique and increase for each device.
    var firstValue: Int
    /// The reader also reads `twins.commands`, to time each hop; a consumer more on the measured path.
    var measuringHops: Bool

    static let deliveryLimit: Duration = .seconds(20)
    static let probeEvery = 10

    struct Result {
        var room: Histogram<UInt64>
        var tsi: Histogram<UInt64>
        /// Device message → its thermostat's Twin.Update (ingress and twin-service), the first hop of `room`.
        var thermostat: Histogram<UInt64>
        /// p99 of device → room for each second's messages, in milliseconds, in the order they were sent.
        var roomP99BySecond: [Double]
        /// Each process's share of one core while the messages were sent and delivered.
        var cpu: String
        /// With `measuringHops`: each hop's milliseconds by the broker's timestamps (the device message
        /// by the benchmark's clock): ingress, twin-service (thermostat), propagator, twin-service (room).
        var hops: [(name: String, histogram: Histogram<UInt64>)]
    }

    /// Message `offset`'s device: every tenth goes to device 0 (the probe), the others round the rest.
    private func device(_ offset: Int) -> Int { offset % Self.probeEvery == 0 ? 0 : 1 + offset % (devices - 1) }

    func measure() async throws -> Result {
        let rooms = RoomLog()
        let events = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(
                kafka: KafkaConfiguration(
                    bootstrapServers: pipeline.fixture.devbroker.bootstrap, properties: ["fetch.wait.max.ms": "1", "auto.offset.reset": "latest"]),
                groupID: "pipeline-bench-\(UUID())",
                topics: measuringHops ? [Topics.defaults.twinEvents, Topics.defaults.twinCommands] : [Topics.defaults.twinEvents],
                clientID: "pipeline-bench"),
            logger: pipeline.logger)
        let reader = Task {
            while let batch = try await events.nextBatch() {
                let arrived = ContinuousClock.now
                for message in batch.messages { rooms.record(message, arrivedAt: arrived) }
            }
        }
        let result: Result
        do {
            result = try await measure(rooms: rooms)
        } catch {
            reader.cancel()
            throw error
        }
        events.stopConsuming()
        try? await reader.value
        await events.close()
        return result
    }

    private func measure(rooms: RoomLog) async throws -> Result {
        let producer = try pipeline.producer(["linger.ms": "0"])

        // Until the reader is assigned its partitions: one message every 20 ms until a room's update is seen.
        var value = firstValue
        let attached = ContinuousClock.now + .seconds(60)
        while rooms.count == 0 {
            guard ContinuousClock.now < attached else { throw BenchmarkError("no room update reached the latency reader within 60 s") }
            try pipeline.checkRunning()
            try await producer.send([Pipeline.message(device: Pipeline.deviceID(1 + value % (devices - 1)), value: value, enqueued: now())])
            value += 1
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .seconds(1))

        let total = rate * seconds
        let first = value + devices  // past every value sent so far, whatever its device
        let base = now() - 3_600_000
        var sentTimes: [ContinuousClock.Instant] = []
        sentTimes.reserveCapacity(total)
        var sentStamps: [Int64] = []
        sentStamps.reserveCapacity(total)
        let probe = ProbeLog()
        let probeCount = (total + Self.probeEvery - 1) / Self.probeEvery
        let port = pipeline.store.httpPort
        let poller = Task { try await Self.poll(port: port, base: base, first: first, total: total, into: probe) }
        defer { poller.cancel() }
        var tickets: [KafkaSendTicket] = []
        let cpu = CPUShares(
            [("devbroker", pipeline.fixture.devbroker.pid)] + pipeline.services.map { ($0.name, $0.pid) } + [("benchmark", getpid())])
        let start = ContinuousClock.now + .milliseconds(10)
        let interval = Duration.seconds(1) / rate
        for offset in 0..<total {
            try await Task.sleep(until: start + interval * offset, clock: .continuous)
            let device = device(offset)
            let message = Pipeline.message(
                device: Pipeline.deviceID(device), value: first + offset, enqueued: device == 0 ? base + Int64(offset) : now())
            sentTimes.append(ContinuousClock.now)
            sentStamps.append(now())
            tickets.append(try await producer.enqueue([message][...]))
        }
        for ticket in tickets { try await producer.delivered(ticket) }
        await producer.shutdown()

        let deadline = ContinuousClock.now + Self.deliveryLimit
        while true {
            let roomLatencies = latenciesToRooms(first: first, sent: sentTimes, log: rooms)
            let probed = probe.count
            if roomLatencies.count == total, probed == probeCount {
                var room = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                for latency in roomLatencies { room.record(latency) }
                var tsi = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                for (offset, seen) in probe.seen { tsi.record(microseconds(seen - sentTimes[offset])) }
                var thermostat = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                let thermostats = rooms.thermostatArrivals
                for offset in 0..<total {
                    if let arrival = thermostats[first + offset] { thermostat.record(microseconds(arrival - sentTimes[offset])) }
                }
                let bySecond = p99BySecond(roomLatencies.reversed(), rate: rate)
                return Result(
                    room: room, tsi: tsi, thermostat: thermostat, roomP99BySecond: bySecond, cpu: cpu.summary(),
                    hops: measuringHops ? Self.hops(first: first, sent: sentStamps, stamps: rooms.stamps) : [])
            }
            try pipeline.checkRunning()
            guard ContinuousClock.now < deadline else {
                throw BenchmarkError(
                    "lost \(total - roomLatencies.count + probeCount - probed) at \(rate)/s: \(total - roomLatencies.count) of \(total) device messages did not reach their room and \(probeCount - probed) of \(probeCount) probe messages were not queryable in tsi-store within \(Self.deliveryLimit)"
                )
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Each hop's milliseconds for the values that reached their room themselves (not coalesced).
    private static func hops(first: Int, sent: [Int64], stamps: [Int: HopStamps]) -> [(name: String, histogram: Histogram<UInt64>)] {
        let names = ["ingress", "twin-service (thermostat)", "propagator", "twin-service (room)"]
        var histograms = names.map { _ in Histogram<UInt64>(highestTrackableValue: 60_000, numberOfSignificantValueDigits: .three) }
        for (offset, sentAt) in sent.enumerated() {
            guard let stamp = stamps[first + offset], let command = stamp.thermostatCommand, let update = stamp.thermostatUpdate,
                let roomCommand = stamp.roomCommand, let roomUpdate = stamp.roomUpdate
            else { continue }
            for (index, (from, to)) in [(sentAt, command), (command, update), (update, roomCommand), (roomCommand, roomUpdate)].enumerated() {
                histograms[index].record(UInt64(max(0, to - from)))
            }
        }
        return Array(zip(names, histograms))
    }

    /// Each message's latency to its room in microseconds: to the first room update with its value
    /// or a later one of the same device. Messages whose room update has not come yet are left out.
    private func latenciesToRooms(first: Int, sent: [ContinuousClock.Instant], log: RoomLog) -> [UInt64] {
        let arrivals = log.arrivals
        var earliest: [Int: ContinuousClock.Instant] = [:]  // by device: the earliest update of a value at or after this offset
        var latencies: [UInt64] = []
        for offset in sent.indices.reversed() {
            let device = device(offset)
            if let arrival = arrivals[first + offset], earliest[device].map({ arrival < $0 }) ?? true { earliest[device] = arrival }
            if let arrival = earliest[device] { latencies.append(microseconds(arrival - sent[offset])) }
        }
        return latencies
    }

    /// Polls tsi-store for the probe device's events from the first probe message not yet seen on;
    /// records when each was first seen, by offset (its enqueued time is `base` + offset ms).
    private static func poll(port: Int, base: Int64, first: Int, total: Int, into probe: ProbeLog) async throws {
        var next = 0
        while next < total, !Task.isCancelled {
            let response = try await Pipeline.query(
                port: port,
                [
                    "getEvents": [
                        "timeSeriesId": [.string(Pipeline.deviceID(0))],
                        "searchSpan": [
                            "from": .string(TimeSeriesTime.string(milliseconds: base + Int64(next))),
                            "to": .string(TimeSeriesTime.string(milliseconds: base + Int64(total))),
                        ],
                    ]
                ])
            let arrived = ContinuousClock.now
            let values = (response["properties"]?.arrayValue?.first { $0["name"]?.stringValue == "Temperature" }?["values"]?.arrayValue ?? [])
                .compactMap { $0.doubleValue.map { Int($0) - first } }
            let advanced = probe.record(values.filter { $0 >= 0 && $0 < total }, arrivedAt: arrived, next: next, step: Self.probeEvery)
            // A query every 5 ms at the most: asking back to back would take a core from the pipeline.
            try await Task.sleep(for: .milliseconds(5))
            next = advanced
        }
    }

    private func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

func microseconds(_ duration: Duration) -> UInt64 {
    UInt64(max(0, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000))
}

/// When each probe message (by offset) was first seen in a tsi-store answer.
final class ProbeLog: Sendable {
    private let mutex = Mutex([Int: ContinuousClock.Instant]())

    /// Records `offsets`; returns the first offset from `next` on, by `step`, not seen yet.
    func record(_ offsets: [Int], arrivedAt: ContinuousClock.Instant, next: Int, step: Int) -> Int {
        mutex.withLock { seen in
            for offset in offsets where seen[offset] == nil { seen[offset] = arrivedAt }
            var next = next
            while seen[next] != nil { next += step }
            return next
        }
    }

    var count: Int { mutex.withLock { $0.count } }
    var seen: [Int: ContinuousClock.Instant] { mutex.withLock { $0 } }
}

/// When each `currentTemp` value was first seen on a room, and each `Temperature` on a thermostat,
/// as the reader met the Twin.Updates; and, by the broker's timestamps (milliseconds), when each
/// value's thermostat and room commands and Twin.Updates were produced.
final class RoomLog: Sendable {
    private struct Seen {
        var rooms: [Int: ContinuousClock.Instant] = [:]
        var thermostats: [Int: ContinuousClock.Instant] = [:]
        var stamps: [Int: HopStamps] = [:]
    }

    private let seen = Mutex(Seen())

    func record(_ message: KafkaConsumerMessage, arrivedAt: ContinuousClock.Instant) {
        if message.topic == Topics.defaults.twinCommands {
            guard let command = try? TwinCommand(decoding: message), let operations = command.patch?.operations else { return }
            record(operations, stamp: message.timestamp, arrivedAt: nil)
            return
        }
        guard let notification = try? TwinNotification(decoding: message), case .twinUpdated(let patch) = notification.change else { return }
        record(patch.operations, stamp: message.timestamp, arrivedAt: arrivedAt)
    }

    /// `arrivedAt` is nil for a command.
    private func record(_ operations: [JSONPatch.Operation], stamp: Int64?, arrivedAt: ContinuousClock.Instant?) {
        for operation in operations {
            switch operation {
            case .add(let path, let value), .replace(let path, let value):
                guard let number = value.doubleValue.map({ Int($0) }) else { continue }
                seen.withLock { seen in
                    switch (path.tokens, arrivedAt) {
                    case (["currentTemp"], nil) where seen.stamps[number]?.roomCommand == nil:
                        seen.stamps[number, default: HopStamps()].roomCommand = stamp
                    case (["Temperature"], nil) where seen.stamps[number]?.thermostatCommand == nil:
                        seen.stamps[number, default: HopStamps()].thermostatCommand = stamp
                    case (["currentTemp"], let arrivedAt?) where seen.rooms[number] == nil:
                        seen.rooms[number] = arrivedAt
                        seen.stamps[number, default: HopStamps()].roomUpdate = stamp
                    case (["Temperature"], let arrivedAt?) where seen.thermostats[number] == nil:
                        seen.thermostats[number] = arrivedAt
                        seen.stamps[number, default: HopStamps()].thermostatUpdate = stamp
                    default: break
                    }
                }
            default: continue
            }
        }
    }

    var count: Int { seen.withLock { $0.rooms.count } }
    var arrivals: [Int: ContinuousClock.Instant] { seen.withLock { $0.rooms } }
    var thermostatArrivals: [Int: ContinuousClock.Instant] { seen.withLock { $0.thermostats } }
    var stamps: [Int: HopStamps] { seen.withLock { $0.stamps } }
}

/// When a value's four messages on the way from device to room were produced (broker timestamps, ms).
struct HopStamps {
    var thermostatCommand: Int64?
    var thermostatUpdate: Int64?
    var roomCommand: Int64?
    var roomUpdate: Int64?
}
