import BenchmarkSupport
import Foundation
import Logging
import TwinBenchSupport
import TwinflowCodec
import TwinflowKafka

/// One throughput run, in steady state: a Twin.Update of every thermostat goes through the
/// propagator first (its group joined, its view loaded), then the propagator is paused (SIGSTOP)
/// while `updates` more are written to the run's notifications topic, and then goes on (SIGCONT)
/// and is timed from the first update it finished to the last, by its own counters (`/metrics`,
/// counted once each batch's commands were delivered).
///
/// Each update gives a thermostat a value it never had, with the next `sequence`, so every one must
/// be propagated, or coalesced with a later one of the same batch (its room takes the later value):
/// one left over is a loss and fails the run, as does a dead letter, or more commands than updates.
struct ThroughputRun {
    var run: Int
    var updates: Int
    var fixture: TwinFixture
    var partitions: Int
    /// One update goes to a thermostat with no room, so no command comes for it.
    var losingOne: Bool
    var logger: Logger

    static let stallLimit: Duration = .seconds(20)

    static func topics(run: Int) -> [String] { [eventsTopic(run), commandsTopic(run), deadLetterTopic(run)] }
    static func eventsTopic(_ run: Int) -> String { "propagator-bench.events.\(run)" }
    static func commandsTopic(_ run: Int) -> String { "propagator-bench.commands.\(run)" }
    static func deadLetterTopic(_ run: Int) -> String { "propagator-bench.deadletter.\(run)" }

    struct Result {
        var rate: Double
        var warmUp: Double
    }

    func measure() async throws -> Result {
        let rooms = fixture.rooms
        let propagator = try await fixture.startPropagator(environment: [
            // Paused while the measured updates are produced: its session must outlast that.
            "KAFKA_CONFIG_SESSION_TIMEOUT_MS": ProcessInfo.processInfo.environment["KAFKA_CONFIG_SESSION_TIMEOUT_MS"] ?? "30000",
            "KAFKA_CONFIG_GROUP_ID": "propagator-bench-\(run)",
            Topics.variable(for: Topics.defaults.twinEvents): Self.eventsTopic(run),
            Topics.variable(for: Topics.defaults.twinCommands): Self.commandsTopic(run),
            Topics.variable(for: Topics.defaults.deadLetter): Self.deadLetterTopic(run),
        ])
        defer { propagator.stop() }
        let admin = try KafkaAdmin(configuration: fixture.kafka, logger: logger)
        let started = ContinuousClock.now
        try await produce(0..<rooms)
        _ = try await waitForCommands(rooms, propagator: propagator, admin: admin)
        let warmUp = (ContinuousClock.now - started).seconds
        propagator.pause()
        try await produce(rooms..<(rooms + updates))
        propagator.resume()
        let rate = try await waitForCommands(rooms + updates, propagator: propagator, admin: admin)
        return Result(rate: rate, warmUp: warmUp)
    }

    /// Update `index` sets thermostat `index % rooms` to `index` (a value it never had) with
    /// sequence `index / rooms + 1`.
    private func produce(_ indices: Range<Int>) async throws {
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: fixture.kafka), logger: logger)
        let time = Timestamp.now()
        for start in stride(from: indices.lowerBound, to: indices.upperBound, by: 10_000) {
            let batch = (start..<min(start + 10_000, indices.upperBound)).map { index in
                let thermostat =
                    losingOne && index == fixture.rooms + updates / 2 ? "thermo-without-room" : TwinFixture.thermostatID(index % fixture.rooms)
                let event = CloudEvent(
                    attributes: CloudEventAttributes(
                        id: "bench-\(run)-\(index)", type: "Microsoft.DigitalTwins.Twin.Update", source: "propagator-bench", subject: thermostat,
                        time: time, traceparent: Traceparent.random(), sequence: String(index / fixture.rooms + 1)),
                    data: [
                        "modelId": "dtmi:contosocom:DigitalTwins:Thermostat;1",
                        "patch": [["op": "replace", "path": "/Temperature", "value": .double(Double(index))]],
                    ])
                return event.kafkaMessage(topic: Self.eventsTopic(run), key: thermostat)
            }
            try await producer.send(batch)
        }
        await producer.shutdown()
    }

    /// Waits until the propagator has propagated or coalesced `expected` updates; the rate from the
    /// first update seen done to the last. Fails when the count stands still too long, or when an
    /// update was dead-lettered, or more commands went out than updates came in.
    private func waitForCommands(_ expected: Int, propagator: ServiceChild, admin: KafkaAdmin) async throws -> Double {
        func count(_ topic: String) async throws -> Int {
            Int(try await admin.highWatermarks(topic: topic, partitions: partitions).reduce(0, +))
        }
        func done() async throws -> Int {
            try await metricsCounters(port: propagator.httpPort, ["twinflow_propagator_propagated_total", "twinflow_propagator_coalesced_total"])
        }
        var updated = try await done()
        let before = updated
        var first: ContinuousClock.Instant?
        var last = ContinuousClock.now
        var lastProgress = last
        while updated < expected {
            try propagator.checkRunning()
            try fixture.twinService.checkRunning()
            guard ContinuousClock.now - lastProgress < (first == nil ? Self.stallLimit * 3 : Self.stallLimit) else {
                let deadLetters = try await count(Self.deadLetterTopic(run))
                throw BenchmarkError(
                    "lost updates: \(updated) of \(expected) thermostat updates propagated (\(deadLetters) dead-lettered); none more came in \(Self.stallLimit)"
                )
            }
            try await Task.sleep(for: .milliseconds(10))
            let now = try await done()
            let seen = ContinuousClock.now
            if now > updated {
                if first == nil { first = seen }
                updated = now
                last = seen
                lastProgress = seen
            }
        }
        let deadLetters = try await count(Self.deadLetterTopic(run))
        guard deadLetters == 0 else { throw BenchmarkError("\(deadLetters) thermostat updates were dead-lettered") }
        guard updated == expected else { throw BenchmarkError("\(updated) updates done for \(expected) thermostat updates: some twice") }
        let commands = try await count(Self.commandsTopic(run))
        guard commands <= expected else { throw BenchmarkError("\(commands) commands for \(expected) thermostat updates: some were sent twice") }
        guard let first, last > first else { return .infinity }
        return Double(updated - before) / (last - first).seconds
    }
}
