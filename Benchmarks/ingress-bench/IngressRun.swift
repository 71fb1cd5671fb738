import BenchmarkSupport
import Foundation
import Logging
import TwinflowCodec
import TwinflowKafka

/// One run: `messages` device messages in IoT Hub's shape wait on the run's device topic; kcat
/// copies them to another topic (one hop: consume, produce), then one ingress instance turns them
/// into twin commands. Both are counted by the output topics' high watermarks (what the broker
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
        var ingressFromStart: Double
        var kcat: Double
    }

    func measure() async throws -> Result {
        try await produce()
        let kcat = try await kcatHop()
        let (steady, overall) = try await ingress()
        return Result(ingress: steady, ingressFromStart: overall, kcat: kcat)
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

    private func produce() async throws {
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: fixture.kafka), logger: logger)
        let enqueued = Timestamp.now()
        for start in stride(from: 0, to: messages, by: 10_000) {
            let batch = (start..<min(start + 10_000, messages)).map { index in
                let device = losingOne && index == messages / 2 ? "thermo-missing" : BenchFixture.deviceID(index % devices)
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
    private func kcatHop() async throws -> Double {
        let pipe = Pipe()
        let consume = try kcat(
            [
                "-C", "-b", fixture.kafka.bootstrapServers, "-t", BenchFixture.deviceTopic(run), "-o", "beginning", "-e", "-q", "-c", "\(messages)",
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
        guard copied == messages else { throw BenchmarkError("kcat copied \(copied) of \(messages) messages") }
        return Double(messages) / seconds
    }

    /// ingress from its start (the release binary beside this one) until the commands topic holds
    /// a command for every message; per second from the first command (the first batch's look-ups
    /// done) to the last, and from the start.
    private func ingress() async throws -> (steady: Double, overall: Double) {
        let process = Process()
        process.executableURL = BenchFixture.sibling("ingress")
        var environment = ProcessInfo.processInfo.environment
        environment["KAFKA_BOOTSTRAP_SERVERS"] = fixture.kafka.bootstrapServers
        environment["TWINS_URL"] = fixture.twinsURL
        environment["HTTP_PORT"] = "\(Int.random(in: 50000..<60000))"
        environment["LOG_LEVEL"] = "error"
        environment[Topics.variable(for: Topics.defaults.deviceMessages)] = BenchFixture.deviceTopic(run)
        environment[Topics.variable(for: Topics.defaults.twinCommands)] = BenchFixture.commandsTopic(run)
        environment[Topics.variable(for: Topics.defaults.deadLetter)] = BenchFixture.deadLetterTopic(run)
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        let admin = try KafkaAdmin(configuration: fixture.kafka, logger: logger)
        try process.run()
        defer {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }
        let started = ContinuousClock.now
        var commands = 0
        var first: ContinuousClock.Instant?
        var last = started
        var lastProgress = started
        while commands < messages {
            guard process.isRunning else { throw BenchmarkError("ingress exited with status \(process.terminationStatus)") }
            try fixture.checkServiceRunning()
            guard ContinuousClock.now - lastProgress < (first == nil ? Self.stallLimit * 3 : Self.stallLimit) else {
                let deadLetters = Int(
                    try await admin.highWatermarks(topic: BenchFixture.deadLetterTopic(run), partitions: BenchFixture.partitions).reduce(0, +))
                throw BenchmarkError(
                    "lost messages: \(commands) commands for \(messages) device messages (\(deadLetters) dead-lettered); none more came in \(Self.stallLimit)"
                )
            }
            try await Task.sleep(for: .milliseconds(10))
            let count = Int(try await admin.highWatermarks(topic: BenchFixture.commandsTopic(run), partitions: BenchFixture.partitions).reduce(0, +))
            let seen = ContinuousClock.now
            if count > commands {
                if first == nil { first = seen }
                commands = count
                last = seen
                lastProgress = seen
            }
        }
        let deadLetters = Int(
            try await admin.highWatermarks(topic: BenchFixture.deadLetterTopic(run), partitions: BenchFixture.partitions).reduce(0, +))
        guard deadLetters == 0 else { throw BenchmarkError("\(deadLetters) device messages were dead-lettered") }
        guard commands == messages else { throw BenchmarkError("\(commands) commands for \(messages) device messages: some were sent twice") }
        guard let first, last > first else { throw BenchmarkError("every command arrived in one look, too fast to time; send more messages") }
        return (Double(messages) / (last - first).seconds, Double(messages) / (last - started).seconds)
    }

    private func kcat(_ arguments: [String], input: Pipe? = nil, output: Pipe? = nil) throws -> KcatProcess {
        let kcat = try KcatProcess(arguments)
        if let input { kcat.process.standardInput = input }
        kcat.process.standardOutput = output ?? FileHandle.nullDevice
        return kcat
    }
}

/// kcat as a child process, its stderr kept in a file for the error when it fails.
final class KcatProcess {
    let process = Process()
    private let errorFile: URL

    init(_ arguments: [String]) throws {
        errorFile = FileManager.default.temporaryDirectory.appending(path: "ingress-bench-kcat-\(UUID()).err")
        guard FileManager.default.createFile(atPath: errorFile.path, contents: nil) else {
            throw BenchmarkError("cannot create \(errorFile.path) for kcat's stderr")
        }
        process.executableURL = URL(filePath: "/usr/bin/env")
        process.arguments = ["kcat"] + arguments
        process.standardError = try FileHandle(forWritingTo: errorFile)
    }

    /// Waits for kcat to exit; throws with its stderr unless it exited 0.
    func waitForSuccess() throws {
        process.waitUntilExit()
        defer { try? FileManager.default.removeItem(at: errorFile) }
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let errors = (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
            throw BenchmarkError(
                "kcat \(process.arguments?.dropFirst().joined(separator: " ") ?? "") exited with status \(process.terminationStatus):\n\(errors)")
        }
    }
}
