import BenchmarkSupport
import Foundation
import Logging
import TwinflowCodec
import TwinflowKafka

/// The throughput mode's run: `commands` patch commands waiting on `twins.commands` before
/// twin-service starts, counted as their notifications reach `eventgrid.twin-events`.
struct ThroughputRun {
    var twins: Int
    var commands: Int
    /// One command goes to a twin that does not exist, so its notification never comes.
    var losingOne: Bool
    var logger: Logger

    /// How long the notification count may stand still before the ones missing count as lost:
    /// before the first notification (twin-service starting and joining) and after it.
    static let startLimit: Duration = .seconds(120)
    static let stallLimit: Duration = .seconds(20)

    /// Commands per second from the first update to the last notification, and from twin-service's start.
    func measure() async throws -> (steady: Double, overall: Double) {
        let fixture = try await ServiceFixture(twins: twins)
        defer { fixture.stop() }

        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: fixture.kafka), logger: logger)
        for start in stride(from: 0, to: commands, by: 10_000) {
            let batch = (start..<min(start + 10_000, commands)).map { index in
                let twinID = losingOne && index == commands / 2 ? ServiceFixture.missingTwinID : ServiceFixture.twinID(index % twins)
                return temperatureCommand(id: "bench-\(index)", twinID: twinID, temperature: Double(index % 400) / 10)
                    .kafkaMessage(topic: Topics.defaults.twinCommands)
            }
            try await producer.send(batch)
        }
        await producer.shutdown()
        print("command-bench: \(commands) patch commands for \(twins) twins waiting on \(Topics.defaults.twinCommands)")

        let admin = try KafkaAdmin(configuration: fixture.kafka, logger: logger)
        let expected = twins + commands
        try fixture.startService()
        let started = ContinuousClock.now

        // Notifications are counted by the topic's high watermarks every 10 ms: what the broker has
        // acknowledged, read without a consumer taking CPU from twin-service on this 2-core machine. The
        // twins' Create notifications go out first (the outbox keeps order), so the first count above
        // `twins` marks the first update.
        var eventPartitions: Int?  // known once twin-service has made the topic
        var notifications = 0
        var firstUpdate: ContinuousClock.Instant?
        var last: ContinuousClock.Instant?
        var lastProgress = started
        while notifications < expected {
            try fixture.checkServiceRunning()
            let now = ContinuousClock.now
            let limit = last == nil ? Self.startLimit : Self.stallLimit
            guard now - lastProgress < limit else {
                throw BenchmarkError(
                    "lost notifications: \(notifications) of \(expected) (\(twins) Create, \(commands) Update) reached \(Topics.defaults.twinEvents); "
                        + "none more came in \(limit)")
            }
            try await Task.sleep(for: .milliseconds(10))
            guard let partitions = eventPartitions else {
                eventPartitions = try await admin.metadata().topic(named: Topics.defaults.twinEvents).flatMap {
                    $0.error == nil ? $0.partitionCount : nil
                }
                continue
            }
            let delivered = Int(try await admin.highWatermarks(topic: Topics.defaults.twinEvents, partitions: partitions).reduce(0, +))
            let seen = ContinuousClock.now
            if firstUpdate == nil, delivered > twins { firstUpdate = seen }
            if delivered > notifications {
                notifications = delivered
                last = seen
                lastProgress = seen
            }
        }
        guard let firstUpdate, let last else { throw BenchmarkError("no update notification arrived") }
        return (Double(commands) / (last - firstUpdate).seconds, Double(commands) / (last - started).seconds)
    }
}
