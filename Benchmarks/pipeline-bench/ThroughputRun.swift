import BenchmarkSupport
import Foundation
import TwinBenchSupport
import TwinflowCodec
import TwinflowKafka

/// The highest sustainable rate, in steady state: with the pipeline warm, ingress is paused
/// (SIGSTOP) while `messages` device messages are produced and kcat copies them once (the broker's
/// raw pass-through); then ingress goes on (SIGCONT) and the run is timed until tsi-store has stored
/// every message and every room holds its thermostat's last value. Every stage's output is sampled
/// every 20 ms meanwhile, without a consumer taking CPU from the pipeline: the topics' high
/// watermarks, and tsi-store's stored count from its `/metrics`.
struct ThroughputRun {
    var pipeline: Pipeline
    var devices: Int
    var messages: Int
    /// One message goes to a device with no twin, so it is never stored and its room is not updated.
    var losingOne: Bool

    static let stallLimit: Duration = .seconds(20)
    static let missingDevice = "thermo-missing"

    /// Where a stage's output is counted: a topic's high watermarks, or a service's counters.
    enum Source {
        case topic(String)
        case counters(Service, [String])
    }

    enum Service { case ingress, propagator, store }

    /// What is sampled, in the order of the pipeline.
    static let stages: [(name: String, source: Source)] = [
        ("ingress: twin commands", .counters(.ingress, ["twinflow_ingress_commands_total"])),
        ("twin-service → eventhub.telemetry", .topic(Topics.defaults.telemetry)),
        ("twin-service → eventgrid.twin-events (thermostats and rooms)", .topic(Topics.defaults.twinEvents)),
        (
            "propagator: thermostat changes propagated or coalesced",
            .counters(.propagator, ["twinflow_propagator_propagated_total", "twinflow_propagator_coalesced_total"])
        ),
        ("twins.commands (ingress's and the propagator's)", .topic(Topics.defaults.twinCommands)),
        ("tsi-forwarder → eventhub.tsi", .topic(Topics.defaults.timeSeries)),
        ("tsi-store: stored", .counters(.store, ["twinflow_tsi_store_stored_total"])),
    ]
    static let storedStage = stages.count - 1
    static let roomsStage = 2

    struct Stage {
        var name: String
        var count = 0
        var rate = 0.0
    }

    struct Result {
        var endToEnd: Double
        var seconds: Double
        var kcat: Double
        var stages: [Stage]
        var warmUp: Double
    }

    /// Value of message `index`: unique, and increasing for each device.
    static func value(_ index: Int) -> Int { 1_000_000 + index }

    func measure() async throws -> Result {
        let warmUpStart = ContinuousClock.now
        try await produce(0..<devices)
        _ = try await waitUntilComplete(storing: devices, lastIndex: devices - 1, from: [Int](repeating: 0, count: Self.stages.count))
        let warmUp = (ContinuousClock.now - warmUpStart).seconds

        let before = try await sample()
        pipeline.ingress.pause()
        try await produce(devices..<(devices + messages))
        let kcat = try await pipeline.kcatPassThrough(count: devices + messages)
        pipeline.ingress.resume()
        let start = ContinuousClock.now
        let (end, stages) = try await waitUntilComplete(storing: messages, lastIndex: devices + messages - 1, from: before)
        let seconds = (end - start).seconds
        return Result(endToEnd: Double(messages) / seconds, seconds: seconds, kcat: kcat, stages: stages, warmUp: warmUp)
    }

    /// Message `index` goes to device `index % devices`, with enqueued time now.
    private func produce(_ indices: Range<Int>) async throws {
        let producer = try pipeline.producer()
        let lost = devices + messages / 2
        for start in stride(from: indices.lowerBound, to: indices.upperBound, by: 10_000) {
            let enqueued = Int64(Date().timeIntervalSince1970 * 1000)
            let batch = (start..<min(start + 10_000, indices.upperBound)).map { index in
                let device = losingOne && index == lost ? Self.missingDevice : Pipeline.deviceID(index % devices)
                return Pipeline.message(device: device, value: Self.value(index), enqueued: enqueued)
            }
            try await producer.send(batch)
        }
        await producer.shutdown()
    }

    /// Every stage's count, read at once.
    private func sample() async throws -> [Int] {
        try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            let read = try pipeline.counts
            for (index, stage) in Self.stages.enumerated() {
                group.addTask {
                    switch stage.source {
                    case .topic(let topic): (index, try await read.count(topic))
                    case .counters(.ingress, let names): (index, try await read.counters(port: read.ingressPort, names))
                    case .counters(.propagator, let names): (index, try await read.counters(port: read.propagatorPort, names))
                    case .counters(.store, let names): (index, try await read.counters(port: read.storePort, names))
                    }
                }
            }
            var counts = [Int](repeating: 0, count: Self.stages.count)
            for try await (index, count) in group { counts[index] = count }
            return counts
        }
    }

    /// Waits until tsi-store has stored `expected` more events than in `before` and every room
    /// holds the value of its thermostat's last message up to `lastIndex`; returns when the last
    /// of those happened (the last sample in which tsi-store's count or the Twin.Updates grew), and
    /// each stage's rate from its first growth to its last. Fails when nothing grows for
    /// ``stallLimit``, naming what was lost.
    private func waitUntilComplete(
        storing expected: Int, lastIndex: Int, from before: [Int]
    ) async throws -> (
        ContinuousClock.Instant, [Stage]
    ) {
        var counts = before
        var first = [ContinuousClock.Instant?](repeating: nil, count: counts.count)
        var last = [ContinuousClock.Instant](repeating: .now, count: counts.count)
        var lastProgress = ContinuousClock.now
        var lastRoomCheck = ContinuousClock.now - .seconds(1)
        var previous = ContinuousClock.now
        while true {
            try pipeline.checkRunning()
            let now = try await sample()
            let seen = ContinuousClock.now
            defer { previous = seen }
            for stage in counts.indices where now[stage] > counts[stage] {
                // Its growth began after the sample before.
                if first[stage] == nil { first[stage] = previous }
                counts[stage] = now[stage]
                last[stage] = seen
                lastProgress = seen
            }
            let stored = counts[Self.storedStage] - before[Self.storedStage]
            if stored >= expected, seen - lastRoomCheck >= .milliseconds(250) {
                lastRoomCheck = seen
                if try await roomsBehind(lastIndex: lastIndex).isEmpty {
                    guard stored == expected else { throw BenchmarkError("tsi-store stored \(stored) events for \(expected) device messages") }
                    let end = max(last[Self.storedStage], last[Self.roomsStage])
                    let stages = Self.stages.indices.map { stage in
                        let count = counts[stage] - before[stage]
                        let span = first[stage].map { (last[stage] - $0).seconds } ?? 0
                        return Stage(name: Self.stages[stage].name, count: count, rate: span > 0 ? Double(count) / span : 0)
                    }
                    return (end, stages)
                }
            }
            if seen - lastProgress > Self.stallLimit {
                let behind = try await roomsBehind(lastIndex: lastIndex)
                let lost = max(0, expected - stored) + behind.count
                print(
                    "lost: \(lost) (\(max(0, expected - stored)) of \(expected) device messages not stored in tsi-store, \(behind.count) rooms not on their last value)"
                )
                throw BenchmarkError(
                    "lost \(lost): tsi-store stored \(stored) of \(expected) device messages, and \(behind.count) of \(devices) rooms are not on their thermostat's last value\(behind.isEmpty ? "" : " (\(behind.prefix(5).joined(separator: ", "))…)"), when nothing had moved for \(Self.stallLimit)"
                )
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The rooms whose `currentTemp` is not their thermostat's last value up to `lastIndex`.
    private func roomsBehind(lastIndex: Int) async throws -> [String] {
        let temperatures = try await pipeline.fixture.roomTemperatures()
        return (0..<devices).compactMap { device in
            let index = lastIndex - ((lastIndex - device) % devices + devices) % devices
            let room = TwinFixture.roomID(device)
            return temperatures[room] == Double(Self.value(index)) ? nil : room
        }
    }
}
