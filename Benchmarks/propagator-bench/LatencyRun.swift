import BenchmarkSupport
import Foundation
import Histogram
import Logging
import Synchronization
import TwinBenchSupport
import TwinflowCodec
import TwinflowKafka

/// The latency run: twin-service and the propagator on the contract's topics, thermostat patch
/// commands at a fixed rate, and each thermostat's Twin.Update timed to its room's Twin.Update, both
/// as read from `eventgrid.twin-events` by one consumer (so its own delay counts on both sides).
/// Every command sets a value no thermostat had before, so the room's update names its cause.
struct LatencyRun {
    var rate: Int
    var seconds: Int
    var fixture: TwinFixture
    /// One command goes to a thermostat with no room, so its room's update never comes.
    var losingOne: Bool
    /// The reader also reads `twins.commands`, to time each hop by the broker's timestamps. It is a
    /// consumer more on the path being measured (the broker walks its log for every message set a
    /// consumer reads), so it is off unless asked for.
    var measuringHops: Bool
    var logger: Logger

    static let deliveryLimit: Duration = .seconds(10)
    static let warmUpUpdates = 50

    struct Result {
        var histogram: Histogram<UInt64>
        var updates: Int
        /// By the broker's timestamps (milliseconds): thermostat update → room command (the
        /// propagator's hop), and room command → room update (twin-service's).
        var propagatorHop: Histogram<UInt64>
        var twinServiceHop: Histogram<UInt64>
        /// p99 of each second's updates, in milliseconds, in the order they were sent.
        var p99BySecond: [Double]
        /// Each process's share of one core during the measured phase.
        var cpu: String
    }

    func measure() async throws -> Result {
        let log = UpdateLog()
        // The broker answers an empty fetch only after `fetch.wait.max.ms`; this reader asks again after 1 ms.
        let events = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(
                kafka: KafkaConfiguration(bootstrapServers: fixture.devbroker.bootstrap, properties: ["fetch.wait.max.ms": "1"]),
                groupID: "propagator-bench-\(UUID())",
                topics: measuringHops ? [Topics.defaults.twinEvents, Topics.defaults.twinCommands] : [Topics.defaults.twinEvents],
                clientID: "propagator-bench"),
            logger: logger)
        let reader = Task {
            while let batch = try await events.nextBatch() {
                let arrived = ContinuousClock.now
                for message in batch.messages { log.record(message, arrivedAt: arrived) }
            }
        }
        defer { reader.cancel() }
        let propagator = try await fixture.startPropagator()
        defer { propagator.stop() }
        // The thermostats' Create notifications (each with a Temperature) set every room once at
        // start; the measured updates come after that has settled.
        let settled = ContinuousClock.now + .seconds(120)
        while log.roomUpdates < fixture.rooms {
            guard ContinuousClock.now < settled else {
                throw BenchmarkError("only \(log.roomUpdates) of \(fixture.rooms) rooms took their thermostat's first value within 120 s")
            }
            try propagator.checkRunning()
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .seconds(1))
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(
                kafka: KafkaConfiguration(bootstrapServers: fixture.devbroker.bootstrap, properties: ["linger.ms": "0"]),
                clientID: "propagator-bench"),
            logger: logger)

        _ = try await phase(rate: 50, count: Self.warmUpUpdates, first: 0, producer: producer, log: log, propagator: propagator, losingOne: false)
        let cpu = CPUShares([
            ("devbroker", fixture.devbroker.pid), ("twin-service", fixture.twinService.pid), ("propagator", propagator.pid),
            ("benchmark", getpid()),
        ])
        let samples = try await phase(
            rate: rate, count: rate * seconds, first: Self.warmUpUpdates, producer: producer, log: log, propagator: propagator,
            losingOne: losingOne)
        let cpuSummary = cpu.summary()
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for microseconds in samples { histogram.record(microseconds) }
        let p99BySecond = BenchmarkSupport.p99BySecond(samples, rate: rate)
        let values = (Self.warmUpUpdates..<(Self.warmUpUpdates + rate * seconds)).map { 1_000_000 + $0 }
        var propagatorHop = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var twinServiceHop = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for (propagating, applying) in log.hops(values) {
            propagatorHop.record(propagating * 1000)
            twinServiceHop.record(applying * 1000)
        }
        await producer.shutdown()
        events.stopConsuming()
        try? await reader.value
        await events.close()
        return Result(
            histogram: histogram, updates: samples.count, propagatorHop: propagatorHop, twinServiceHop: twinServiceHop,
            p99BySecond: p99BySecond, cpu: cpuSummary)
    }

    /// Sends `count` thermostat commands paced at `rate` a second; returns each one's latency in
    /// microseconds, thermostat update to room update. Throws when a room update did not come
    /// within ``deliveryLimit`` of the last command.
    private func phase(
        rate: Int, count: Int, first: Int, producer: KafkaProducer, log: UpdateLog, propagator: ServiceChild, losingOne: Bool
    ) async throws -> [UInt64] {
        let interval = Duration.seconds(1) / rate
        let start = ContinuousClock.now + .milliseconds(10)
        var tickets: [KafkaSendTicket] = []
        var values: [Int] = []
        for offset in 0..<count {
            try await Task.sleep(until: start + interval * offset, clock: .continuous)
            let index = first + offset
            let thermostat =
                losingOne && offset == count / 2 ? "thermo-without-room" : TwinFixture.thermostatID(index % fixture.rooms)
            let command = TwinCommand(
                id: "latency-\(index)", twinID: thermostat,
                patch: JSONPatch([.add(path: JSONPointer(tokens: ["Temperature"]), value: .integer(Int64(1_000_000 + index)))]))
            values.append(1_000_000 + index)
            tickets.append(try await producer.enqueue([command.kafkaMessage(topic: Topics.defaults.twinCommands)][...]))
        }
        for ticket in tickets { try await producer.delivered(ticket) }
        let deadline = ContinuousClock.now + Self.deliveryLimit
        while log.complete(values) < values.count {
            try propagator.checkRunning()
            try fixture.twinService.checkRunning()
            guard ContinuousClock.now < deadline else {
                throw BenchmarkError(
                    "lost updates: \(log.complete(values)) of \(values.count) thermostat updates reached their room within \(Self.deliveryLimit)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        return log.latencies(values)
    }
}

/// When each value was seen on a thermostat and on a room, as the reader met the updates.
final class UpdateLog: Sendable {
    private struct Seen {
        var thermostat: [Int: ContinuousClock.Instant] = [:]
        var room: [Int: ContinuousClock.Instant] = [:]
        var roomUpdates = 0
        /// Broker timestamps (ms) of each value's thermostat update, room command and room update.
        var stamps: [Int: (thermostat: Int64?, command: Int64?, room: Int64?)] = [:]
    }

    private let seen = Mutex(Seen())

    func record(_ message: KafkaConsumerMessage, arrivedAt: ContinuousClock.Instant) {
        if message.topic == Topics.defaults.twinCommands {
            guard let command = try? TwinCommand(decoding: message), command.hop == 1, let operation = command.patch?.operations.first,
                let (_, value) = Self.written(operation), let number = value.integerValue, let stamp = message.timestamp
            else { return }
            seen.withLock { $0.stamps[Int(number), default: (nil, nil, nil)].command = stamp }
            return
        }
        guard let notification = try? TwinNotification(decoding: message), case .twinUpdated(let patch) = notification.change,
            let operation = patch.operations.first, let (path, value) = Self.written(operation), let number = value.integerValue
        else { return }
        seen.withLock { seen in
            switch path.tokens {
            case ["Temperature"]:
                seen.thermostat[Int(number)] = seen.thermostat[Int(number)] ?? arrivedAt
                seen.stamps[Int(number), default: (nil, nil, nil)].thermostat = message.timestamp
            case ["currentTemp"]:
                seen.room[Int(number)] = seen.room[Int(number)] ?? arrivedAt
                seen.stamps[Int(number), default: (nil, nil, nil)].room = message.timestamp
                seen.roomUpdates += 1
            default: break
            }
        }
    }

    /// Each value's two hops in milliseconds, by the broker's timestamps.
    func hops(_ values: [Int]) -> [(UInt64, UInt64)] {
        seen.withLock { seen in
            values.compactMap { value in
                guard let stamps = seen.stamps[value], let thermostat = stamps.thermostat, let command = stamps.command, let room = stamps.room
                else { return nil }
                return (UInt64(max(0, command - thermostat)), UInt64(max(0, room - command)))
            }
        }
    }

    private static func written(_ operation: JSONPatch.Operation) -> (JSONPointer, JSONValue)? {
        switch operation {
        case .add(let path, let value), .replace(let path, let value): (path, value)
        default: nil
        }
    }

    /// Room updates seen so far, whatever their value.
    var roomUpdates: Int { seen.withLock { $0.roomUpdates } }

    /// How many of `values` were seen on both a thermostat and a room.
    func complete(_ values: [Int]) -> Int {
        seen.withLock { seen in values.count { seen.thermostat[$0] != nil && seen.room[$0] != nil } }
    }

    func latencies(_ values: [Int]) -> [UInt64] {
        seen.withLock { seen in
            values.compactMap { value in
                guard let start = seen.thermostat[value], let end = seen.room[value] else { return nil }
                let duration = end - start
                return UInt64(max(0, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000))
            }
        }
    }
}
