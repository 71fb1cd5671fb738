import BenchmarkSupport
import Foundation
import Logging
import Synchronization
import TwinGraph
import TwinflowCodec
import TwinflowKafka

/// The latency mode's run: with twin-service running and caught up, patch commands produced at
/// fixed rates, each timed from its hand-off to the producer to its Twin.Update notification read
/// from `eventgrid.twin-events`. A command carries a trace of its own (`traceparent`), which
/// twin-service gives the notification of the change it made, so each notification finds its command.
struct LatencyRun {
    var twins: Int
    /// Commands per second, one phase each, in order.
    var rates: [Int]
    var secondsPerRate: Int
    /// One command of each phase goes to a twin that does not exist, so its notification never comes.
    var losingOne: Bool
    var logger: Logger

    /// How long after a phase's last command its notifications may still arrive; later ones count as lost.
    static let deliveryLimit: Duration = .seconds(10)
    /// Commands sent and awaited before the phases, so twin-service's group join is not measured.
    static let warmUpCommands = 20

    struct Phase {
        var rate: Int
        var commands: Int
        /// Milliseconds from each command's hand-off to its notification's arrival, sorted.
        var milliseconds: [Double]

        /// The nearest-rank percentile of the samples.
        func percentile(_ percent: Double) -> Double {
            let rank = Int((Double(milliseconds.count) * percent / 100).rounded(.up))
            return milliseconds[min(milliseconds.count - 1, max(0, rank - 1))]
        }
    }

    func measure() async throws -> [Phase] {
        let fixture = try await ServiceFixture(twins: twins)
        defer { fixture.stop() }

        // The notifications are read as they come, by a consumer that starts at the topic's beginning.
        // The broker answers an empty fetch only after `fetch.wait.max.ms`; this consumer's own wait
        // must not add to the figures, so it asks again after 1 ms.
        let events = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(
                kafka: KafkaConfiguration(bootstrapServers: fixture.devbroker.bootstrap, properties: ["fetch.wait.max.ms": "1"]),
                groupID: "command-bench-\(UUID())",
                topics: [Topics.defaults.twinEvents],
                clientID: "command-bench"
            ),
            logger: logger
        )
        let notifications = NotificationLog()
        let reader = Task {
            while let batch = try await events.nextBatch() {
                let arrived = ContinuousClock.now
                for message in batch.messages { notifications.record(message, arrivedAt: arrived) }
            }
        }
        defer { reader.cancel() }

        // Each command goes out at once (`linger.ms=0`): the benchmark's producer does not hold
        // commands back to batch them, so the figures are what the broker and twin-service take.
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(
                kafka: KafkaConfiguration(bootstrapServers: fixture.devbroker.bootstrap, properties: ["linger.ms": "0"]),
                clientID: "command-bench"
            ),
            logger: logger
        )
        try fixture.startService()
        try await wait(
            until: { notifications.creates >= twins }, within: .seconds(120), fixture: fixture,
            failure: "twin-service relayed \(notifications.creates) of the \(twins) twins' Create notifications")
        _ = try await runPhase(
            0, rate: 20, commands: Self.warmUpCommands, producer: producer, notifications: notifications, fixture: fixture, losingOne: false)
        print("command-bench: twin-service is up with \(twins) twins; \(Self.warmUpCommands) warm-up commands answered")

        var phases: [Phase] = []
        for (index, rate) in rates.enumerated() {
            let commands = rate * secondsPerRate
            let samples = try await runPhase(
                index + 1, rate: rate, commands: commands, producer: producer, notifications: notifications, fixture: fixture,
                losingOne: losingOne)
            let phase = Phase(rate: rate, commands: commands, milliseconds: samples.sorted())
            print(
                "\(rate) commands/s for \(secondsPerRate) s: \(commands) notifications, p50 \(String(format: "%.2f", phase.percentile(50))) ms, "
                    + "p99 \(String(format: "%.2f", phase.percentile(99))) ms")
            phases.append(phase)
        }
        await producer.shutdown()
        events.stopConsuming()
        try await reader.value
        await events.close()
        return phases
    }

    /// Sends `commands` commands paced at `rate` a second and returns each one's latency in milliseconds;
    /// throws when a notification did not arrive within ``deliveryLimit`` of the last command.
    private func runPhase(
        _ phase: Int, rate: Int, commands: Int, producer: KafkaProducer, notifications: NotificationLog, fixture: ServiceFixture,
        losingOne: Bool
    ) async throws -> [Double] {
        let interval = Duration.seconds(1) / rate
        let start = ContinuousClock.now + .milliseconds(10)
        var tickets: [KafkaSendTicket] = []
        tickets.reserveCapacity(commands)
        for index in 0..<commands {
            try await Task.sleep(until: start + interval * index, clock: .continuous)
            let twinID = losingOne && index == commands / 2 ? ServiceFixture.missingTwinID : ServiceFixture.twinID(index % twins)
            let traceparent = Traceparent.random()
            let command = temperatureCommand(
                id: "latency-\(phase)-\(index)", twinID: twinID, temperature: Double(index % 400) / 10, traceparent: traceparent)
            notifications.expect(traceparent: traceparent, twinID: twinID, phase: phase, sentAt: .now)
            tickets.append(try await producer.enqueue([command.kafkaMessage(topic: Topics.defaults.twinCommands)][...]))
        }
        for ticket in tickets { try await producer.delivered(ticket) }
        try await wait(
            until: { notifications.arrived(phase: phase) >= commands }, within: Self.deliveryLimit, fixture: fixture,
            failure: Self.lost(missing: notifications.missing(phase: phase), of: commands, rate: rate))
        if let mismatch = notifications.firstMismatch { throw BenchmarkError(mismatch) }
        return notifications.latencies(phase: phase)
    }

    private static func lost(missing: [String], of commands: Int, rate: Int) -> String {
        "lost notifications: \(commands - missing.count) of the \(commands) commands sent at \(rate)/s got their "
            + "\(EventType.twinUpdate) on \(Topics.defaults.twinEvents) within \(deliveryLimit) of the last; "
            + "missing, for twins: \(missing.prefix(5).joined(separator: ", "))\(missing.count > 5 ? " …" : "")"
    }

    /// Polls `condition` every millisecond until it holds; throws `failure()` after `limit`, or when twin-service exited.
    private func wait(
        until condition: () -> Bool, within limit: Duration, fixture: ServiceFixture, failure: @autoclosure () -> String
    ) async throws {
        let deadline = ContinuousClock.now + limit
        while !condition() {
            try fixture.checkServiceRunning()
            guard ContinuousClock.now < deadline else { throw BenchmarkError(failure()) }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}

/// The commands sent, by trace, and the notifications that answered them.
final class NotificationLog: Sendable {
    private struct Sent {
        var twinID: String
        var phase: Int
        var sentAt: ContinuousClock.Instant
    }

    private struct State {
        var waiting: [String: Sent] = [:]
        var latencies: [Int: [Double]] = [:]
        var creates = 0
        var firstMismatch: String?
    }

    private let state = Mutex(State())

    func expect(traceparent: String, twinID: String, phase: Int, sentAt: ContinuousClock.Instant) {
        state.withLock { $0.waiting[traceparent] = Sent(twinID: twinID, phase: phase, sentAt: sentAt) }
    }

    /// Counts a Create notification; matches an Update to the command whose trace it carries.
    func record(_ message: KafkaConsumerMessage, arrivedAt arrived: ContinuousClock.Instant) {
        guard let event = try? CloudEvent(decoding: message) else { return }
        let attributes = event.attributes
        state.withLock { state in
            switch attributes.type {
            case EventType.twinCreate:
                state.creates += 1
            case EventType.twinUpdate:
                guard let traceparent = attributes.traceparent, let sent = state.waiting.removeValue(forKey: traceparent) else { return }
                if attributes.subject != sent.twinID, state.firstMismatch == nil {
                    state.firstMismatch =
                        "the notification with trace \(traceparent) is about \(attributes.subject ?? "nothing"), "
                        + "but its command was for \(sent.twinID)"
                }
                state.latencies[sent.phase, default: []].append((arrived - sent.sentAt).seconds * 1000)
            default:
                return
            }
        }
    }

    var creates: Int { state.withLock { $0.creates } }
    var firstMismatch: String? { state.withLock { $0.firstMismatch } }

    func arrived(phase: Int) -> Int { state.withLock { $0.latencies[phase]?.count ?? 0 } }
    func latencies(phase: Int) -> [Double] { state.withLock { $0.latencies[phase] ?? [] } }

    /// The twins of the phase's commands still waiting for their notification.
    func missing(phase: Int) -> [String] {
        state.withLock { state in state.waiting.values.filter { $0.phase == phase }.map(\.twinID).sorted() }
    }
}
