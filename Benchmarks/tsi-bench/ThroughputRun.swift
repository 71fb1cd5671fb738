import BenchmarkSupport
import Foundation
import Logging
import TwinflowCodec
import TwinflowKafka

/// One service's throughput in steady state, as propagator-bench measures it: one event per twin
/// goes through first (group joined, every twin seen), then the service is paused (SIGSTOP) while
/// `events` more are written to its input topic, then goes on (SIGCONT) and is timed from its first
/// new output to its last. tsi-forwarder is counted by its output topic's high watermarks,
/// tsi-store by its `stored` counter; every event must come out exactly once, with no dead letters.
struct ThroughputRun {
    enum Part: String {
        case forwarder = "tsi-forwarder"
        case store = "tsi-store"
    }

    var part: Part
    var run: Int
    var events: Int
    var twins: Int
    var devbroker: DevBrokerChild
    var partitions: Int
    var logger: Logger
    /// More of the service's environment (tsi-store's `TWINFLOW_DATABASE_URL`).
    var environment: [String: String] = [:]

    static let stallLimit: Duration = .seconds(20)

    static func topics(run: Int) -> [String] { [inputTopic(run), outputTopic(run), deadLetterTopic(run), storeTopic(run)] }
    static func inputTopic(_ run: Int) -> String { "tsi-bench.telemetry.\(run)" }
    static func outputTopic(_ run: Int) -> String { "tsi-bench.tsi.\(run)" }
    static func storeTopic(_ run: Int) -> String { "tsi-bench.store.\(run)" }
    static func deadLetterTopic(_ run: Int) -> String { "tsi-bench.deadletter.\(run)" }

    struct Result {
        var rate: Double
        var warmUp: Double
    }

    var kafka: KafkaConfiguration { KafkaConfiguration(bootstrapServers: devbroker.bootstrap) }

    func measure() async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appending(path: "tsi-bench-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let service = try ServiceChild(
            part.rawValue,
            environment: [
                "KAFKA_BOOTSTRAP_SERVERS": devbroker.bootstrap, "TWINFLOW_DATA_DIR": directory.path,
                // Paused while the measured events are produced: its session must outlast that.
                "KAFKA_CONFIG_SESSION_TIMEOUT_MS": ProcessInfo.processInfo.environment["KAFKA_CONFIG_SESSION_TIMEOUT_MS"] ?? "30000",
                "KAFKA_CONFIG_GROUP_ID": "tsi-bench-\(part.rawValue)-\(run)",
                Topics.variable(for: Topics.defaults.telemetry): Self.inputTopic(run),
                Topics.variable(for: Topics.defaults.timeSeries): part == .forwarder ? Self.outputTopic(run) : Self.storeTopic(run),
                Topics.variable(for: Topics.defaults.deadLetter): Self.deadLetterTopic(run),
            ].merging(environment) { _, extra in extra })
        defer { service.stop() }
        try await service.waitUntilAnswering("/readyz", within: .seconds(120))
        let admin = try KafkaAdmin(configuration: kafka, logger: logger)
        let started = ContinuousClock.now
        try await produce(0..<twins)
        _ = try await waitForOutputs(twins, service: service, admin: admin)
        let warmUp = (ContinuousClock.now - started).seconds
        service.pause()
        try await produce(twins..<(twins + events))
        service.resume()
        let rate = try await waitForOutputs(twins + events, service: service, admin: admin)
        return Result(rate: rate, warmUp: warmUp)
    }

    /// Event `index` is twin `index % twins`'s reading at a time of its own, nested as devices send it.
    private func produce(_ indices: Range<Int>) async throws {
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: kafka), logger: logger)
        let base = Telemetry.now() - 86_400_000
        for start in stride(from: indices.lowerBound, to: indices.upperBound, by: 10_000) {
            let batch = (start..<min(start + 10_000, indices.upperBound)).map { index in
                let twin = "thermo-\(index % twins)"
                let time = TimeSeriesTime.string(milliseconds: base + Int64(index))
                let payload: JSONValue = ["Temperature": .double(20 + Double(index % 100) / 10), "Front": ["Humidity": .integer(Int64(index % 60))]]
                switch part {
                case .forwarder:
                    return Telemetry.message(topic: Self.inputTopic(run), twin: twin, id: "bench-\(index)", sourceTime: time, payload: payload)
                case .store:
                    return TimeSeriesEvent(
                        twinID: twin, timestamp: time,
                        values: ["Temperature": payload["Temperature"]!, "Front.Humidity": payload["Front"]!["Humidity"]!],
                        id: "telemetry/bench-\(index)"
                    ).kafkaMessage(topic: Self.storeTopic(run))
                }
            }
            try await producer.send(batch)
        }
        await producer.shutdown()
    }

    private func outputs(service: ServiceChild, admin: KafkaAdmin) async throws -> Int {
        switch part {
        case .forwarder: Int(try await admin.highWatermarks(topic: Self.outputTopic(run), partitions: partitions).reduce(0, +))
        case .store: try await BenchHTTP.counter(port: service.httpPort, "twinflow_tsi_store_stored_total")
        }
    }

    /// Waits until `expected` events came out; the rate from the first new one seen to the last.
    private func waitForOutputs(_ expected: Int, service: ServiceChild, admin: KafkaAdmin) async throws -> Double {
        var count = try await outputs(service: service, admin: admin)
        let before = count
        var first: ContinuousClock.Instant?
        var last = ContinuousClock.now
        var lastProgress = last
        while count < expected {
            try service.checkRunning()
            guard ContinuousClock.now - lastProgress < (first == nil ? Self.stallLimit * 3 : Self.stallLimit) else {
                let deadLetters = try await admin.highWatermarks(topic: Self.deadLetterTopic(run), partitions: partitions).reduce(0, +)
                throw BenchmarkError(
                    "lost events: \(part.rawValue) put out \(count) of \(expected) (\(deadLetters) dead-lettered); none more came in \(Self.stallLimit)"
                )
            }
            try await Task.sleep(for: .milliseconds(10))
            let now = try await outputs(service: service, admin: admin)
            let seen = ContinuousClock.now
            if now > count {
                if first == nil { first = seen }
                count = now
                last = seen
                lastProgress = seen
            }
        }
        let deadLetters = try await admin.highWatermarks(topic: Self.deadLetterTopic(run), partitions: partitions).reduce(0, +)
        guard deadLetters == 0 else { throw BenchmarkError("\(deadLetters) events were dead-lettered by \(part.rawValue)") }
        guard count == expected else { throw BenchmarkError("\(part.rawValue) put out \(count) events for \(expected): some twice") }
        if part == .store {
            let duplicates = try await BenchHTTP.counter(port: service.httpPort, "twinflow_tsi_store_duplicates_total")
            guard duplicates == 0 else { throw BenchmarkError("tsi-store counted \(duplicates) repeats of events sent once") }
        }
        guard let first, last > first else { return .infinity }
        return Double(count - before) / (last - first).seconds
    }
}
