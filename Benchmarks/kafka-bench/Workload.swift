import BenchmarkSupport
import Foundation
import Logging
import TwinflowKafka

/// The same messages for kcat and for Twinflow: keys over 10,000 twins, values of `size` bytes.
struct Workload {
    let count: Int
    let keys: [String]
    let values: [[UInt8]]
    /// kcat's input: `key<TAB>value` lines.
    let kcatInput: URL

    init(count: Int, size: Int) throws {
        self.count = count
        self.keys = (0..<count).map { "twin-\($0 % 10_000)" }
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var generator = SystemRandomNumberGenerator()
        let distinct = (0..<1024).map { _ in (0..<size).map { _ in alphabet.randomElement(using: &generator)! } }
        self.values = (0..<count).map { distinct[$0 % distinct.count] }
        self.kcatInput = FileManager.default.temporaryDirectory.appending(path: "kafka-bench-\(UUID()).txt")
        var text = [UInt8]()
        text.reserveCapacity(count * (size + 16))
        for index in 0..<count {
            text += Array(keys[index].utf8)
            text.append(UInt8(ascii: "\t"))
            text += values[index]
            text.append(UInt8(ascii: "\n"))
        }
        try Data(text).write(to: kcatInput)
    }

    /// The producer settings both sides use (kcat gets them as `-X`).
    static let producerProperties = KafkaProducerConfiguration.defaultProperties

    /// kcat -P from a file of `key<TAB>value` lines; returns the seconds until it exited (all delivered).
    func kcatProduce(bootstrap: String, topic: String) throws -> Double {
        let properties = Self.producerProperties.sorted { $0.key < $1.key }.flatMap { ["-X", "\($0.key)=\($0.value)"] }
        return try timed("kcat", ["-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-l", kcatInput.path] + properties)
    }

    /// kcat -C of every message from the beginning (no group, so no join to wait for).
    func kcatConsume(bootstrap: String, topic: String) throws -> Double {
        try timed("kcat", ["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-c", "\(count)", "-q", "-f", "%k%s\n"])
    }

    func swiftProduce(bootstrap: String, topic: String, logger: Logger) async throws -> Double {
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(kafka: KafkaConfiguration(bootstrapServers: bootstrap), clientID: "kafka-bench"),
            logger: logger
        )
        let messages = (0..<count).map { KafkaProducerMessage(topic: topic, key: Array(keys[$0].utf8), value: values[$0]) }
        let start = ContinuousClock.now
        try await producer.send(messages)
        let elapsed = ContinuousClock.now - start
        await producer.shutdown()
        return elapsed.seconds
    }

    /// A consumer-group member reading every message, storing offsets per batch; timed from the first
    /// batch, so the group join is not counted.
    func swiftConsume(bootstrap: String, topic: String, logger: Logger) async throws -> Double {
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(
                kafka: KafkaConfiguration(bootstrapServers: bootstrap),
                groupID: "kafka-bench-\(UUID())",
                topics: [topic],
                clientID: "kafka-bench",
                maxBatchSize: 10_000
            ),
            logger: logger
        )
        var received = 0
        var bytes = 0
        var start: ContinuousClock.Instant?
        while received < count, let batch = try await consumer.nextBatch() {
            if start == nil { start = .now }
            received += batch.count
            for message in batch.messages { bytes += message.value?.count ?? 0 }
            try consumer.store(batch)
        }
        let elapsed = ContinuousClock.now - (start ?? .now)
        await consumer.close()
        guard received >= count, bytes >= count * values[0].count else {
            throw BenchmarkError("consumed \(received) of \(count) messages")
        }
        return elapsed.seconds
    }

    private func timed(_ command: String, _ arguments: [String]) throws -> Double {
        let process = Process()
        process.executableURL = URL(filePath: "/usr/bin/env")
        process.arguments = [command] + arguments
        process.standardOutput = FileHandle.nullDevice
        let start = ContinuousClock.now
        try process.run()
        process.waitUntilExit()
        let elapsed = ContinuousClock.now - start
        guard process.terminationStatus == 0 else { throw BenchmarkError("\(command) exited with \(process.terminationStatus)") }
        return elapsed.seconds
    }
}

