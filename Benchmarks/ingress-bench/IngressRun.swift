import BenchmarkSupport
import Foundation
import Logging
import TwinflowCodec
import TwinflowKafka

/// One run, in steady state: a message from every device goes through ingress first (its group
/// joined, every device's twin and model looked up and cached), then ingress is paused (SIGSTOP)
/// while `messages` more device messages are produced and kcat copies the whole topic to another
/// topic (one hop: consume, produce); then ingress goes on (SIGCONT) and is timed from its first new
/// command to its last. Both are counted by the output topics' high watermarks (what the broker
/// acknowledged), read without a consumer taking CPU from the measured side.
struct IngressRun {
    var run: Int
    var messages: Int
    var devices: Int
    var fixture: BenchFixture
    /// One message goes to a device with no twin, so it is dead-lettered and its command never comes.
    var losingOne: Bool
    var logger: Logger

    static let stallLimit: Duration = .seconds(20)

    struct Result {
        var ingress: Double
        /// How long the first message of every device took: ingress's start, group join and look-ups.
        var warmUp: Double
        var kcat: Double
    }

    func measure() async throws -> Result {
        try await produce(0..<devices)
        let ingress = try ingressProcess(run: run, fixture: fixture)
        defer { ingress.stop() }
        let admin = try KafkaAdmin(configuration: fixture.kafka, logger: logger)
        let started = ContinuousClock.now
        _ = try await waitForCommands(devices, ingress: ingress, admin: admin)
        let warmUp = (ContinuousClock.now - started).seconds
        ingress.pause()
        try await produce(devices..<(devices + messages))
        let kcat = try await kcatHop(count: devices + messages)
        ingress.resume()
        let rate = try await waitForCommands(devices + messages, ingress: ingress, admin: admin)
        return Result(ingress: rate, warmUp: warmUp, kcat: kcat)
    }

    /// IoT Hub's DeviceTelemetry data, as its Event Grid endpoint delivers it, with a message ID.
    static func value(device: String, index: Int, enqueued: String) -> [UInt8] {
        let system: JSONValue = [
            "iothub-content-type": "application/json", "iothub-content-encoding": "utf-8",
            "iothub-connection-device-id": .string(device),
            "iothub-connection-auth-method": #"{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}"#,
            "iothub-connection-auth-generation-id": "636958779458093046", "iothub-enqueuedtime": .string(enqueued),
            "iothub-message-source": "Telemetry", "message-id": .string("m-\(index)"),
        ]
        let body: JSONValue = ["Temperature": .double(Double(index % 400) / 10 + 0.5)]
        return (["body": body, "properties": [:], "systemProperties": system] as JSONValue).serialized()
    }

    private func produce(_ indices: Range<Int>) async throws {
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: fixture.kafka), logger: logger)
        let enqueued = Timestamp.now()
        for start in stride(from: indices.lowerBound, to: indices.upperBound, by: 10_000) {
            let batch = (start..<min(start + 10_000, indices.upperBound)).map { index in
                let device = losingOne && index == devices + messages / 2 ? "thermo-missing" : BenchFixture.deviceID(index % devices)
                return KafkaProducerMessage(
                    topic: BenchFixture.deviceTopic(run), key: device, value: Self.value(device: device, index: index, enqueued: enqueued))
            }
            try await producer.send(batch)
        }
        await producer.shutdown()
    }

    /// `kcat -C … | kcat -P …` from the device topic to the run's kcat topic, with Twinflow's
    /// producer settings: the whole pipeline from its start until the producing kcat exited, every
    /// message acknowledged.
    private func kcatHop(count: Int) async throws -> Double {
        let pipe = Pipe()
        let consume = try kcat(
            [
                "-C", "-b", fixture.kafka.bootstrapServers, "-t", BenchFixture.deviceTopic(run), "-o", "beginning", "-e", "-q", "-c", "\(count)",
                "-f", "%k\t%s\n",
            ], output: pipe)
        let properties = KafkaProducerConfiguration.defaultProperties.sorted { $0.key < $1.key }.flatMap { ["-X", "\($0.key)=\($0.value)"] }
        let produce = try kcat(["-P", "-b", fixture.kafka.bootstrapServers, "-t", BenchFixture.kcatTopic(run), "-K", "\t"] + properties, input: pipe)
        let start = ContinuousClock.now
        try consume.process.run()
        try produce.process.run()
        try consume.waitForSuccess()
        try produce.waitForSuccess()
        let seconds = (ContinuousClock.now - start).seconds
        let admin = try KafkaAdmin(configuration: fixture.kafka, logger: logger)
        let copied = Int(try await admin.highWatermarks(topic: BenchFixture.kcatTopic(run), partitions: BenchFixture.partitions).reduce(0, +))
        guard copied == count else { throw BenchmarkError("kcat copied \(copied) of \(count) messages") }
        return Double(count) / seconds
    }

    /// Waits until the commands topic holds `expected` commands; the rate from the first new
    /// command seen to the last. Fails when the count stands still too long, or when a message was
    /// dead-lettered or sent twice.
    private func waitForCommands(_ expected: Int, ingress: ServiceChild, admin: KafkaAdmin) async throws -> Double {
        func count(_ topic: String) async throws -> Int {
            Int(try await admin.highWatermarks(topic: topic, partitions: BenchFixture.partitions).reduce(0, +))
        }
        var commands = try await count(BenchFixture.commandsTopic(run))
        let before = commands
        var first: ContinuousClock.Instant?
        var last = ContinuousClock.now
        var lastProgress = last
        while commands < expected {
            try ingress.checkRunning()
            try fixture.checkServiceRunning()
            guard ContinuousClock.now - lastProgress < (first == nil ? Self.stallLimit * 3 : Self.stallLimit) else {
                let deadLetters = try await count(BenchFixture.deadLetterTopic(run))
                throw BenchmarkError(
                    "lost messages: \(commands) commands for \(expected) device messages (\(deadLetters) dead-lettered); none more came in \(Self.stallLimit)"
                )
            }
            try await Task.sleep(for: .milliseconds(10))
            let now = try await count(BenchFixture.commandsTopic(run))
            let seen = ContinuousClock.now
            if now > commands {
                if first == nil { first = seen }
                commands = now
                last = seen
                lastProgress = seen
            }
        }
        let deadLetters = try await count(BenchFixture.deadLetterTopic(run))
        guard deadLetters == 0 else { throw BenchmarkError("\(deadLetters) device messages were dead-lettered") }
        guard commands == expected else { throw BenchmarkError("\(commands) commands for \(expected) device messages: some were sent twice") }
        guard let first, last > first else { return .infinity }
        return Double(commands - before) / (last - first).seconds
    }

    private func kcat(_ arguments: [String], input: Pipe? = nil, output: Pipe? = nil) throws -> KcatProcess {
        let kcat = try KcatProcess(arguments)
        if let input { kcat.process.standardInput = input }
        kcat.process.standardOutput = output ?? FileHandle.nullDevice
        return kcat
    }
}

/// The ingress release binary beside this one, on the run's topics.
func ingressProcess(run: Int, fixture: BenchFixture) throws -> ServiceChild {
    let environment = ProcessInfo.processInfo.environment
    return try ServiceChild(
        "ingress",
        environment: [
            "KAFKA_BOOTSTRAP_SERVERS": fixture.kafka.bootstrapServers, "TWINS_URL": fixture.twinsURL,
            // Paused while the measured messages are produced and kcat runs: its session must outlast that.
            "KAFKA_CONFIG_SESSION_TIMEOUT_MS": environment["KAFKA_CONFIG_SESSION_TIMEOUT_MS"] ?? "20000",
            // A group of its own per run: a run's join never waits on the member of the run before.
            "KAFKA_CONFIG_GROUP_ID": "ingress-bench-\(run)",
            Topics.variable(for: Topics.defaults.deviceMessages): BenchFixture.deviceTopic(run),
            Topics.variable(for: Topics.defaults.twinCommands): BenchFixture.commandsTopic(run),
            Topics.variable(for: Topics.defaults.deadLetter): BenchFixture.deadLetterTopic(run),
        ])
}
