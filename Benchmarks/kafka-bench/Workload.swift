import BenchmarkSupport
import Foundation
import Logging
import TwinflowKafka

/// The same messages for kcat and for Twinflow: keys over 10,000 twins, values of `size` bytes.
///
/// Both sides are timed the same way: producing from the client's start to its last delivery
/// (Twinflow's producer created, every message delivered, the producer closed; kcat -P as a whole
/// process), consuming from the first message received to the last. A side that receives fewer
/// messages or bytes than were sent, or a kcat that exits non-zero, fails the run.
struct Workload {
    /// How many messages each consumer must receive.
    let count: Int
    /// How many messages the producers send: one fewer than ``count`` when a lost message is simulated.
    let sent: Int
    let keys: [String]
    let values: [[UInt8]]
    /// kcat's input: `key<TAB>value` lines.
    let kcatInput: URL
    /// How long a consumer may wait for its next message before the messages still missing count as lost.
    static let stallLimit: Duration = .seconds(15)

    /// `losingOne` leaves the last message out of what both producers send, while the consumers still
    /// expect all `count`: it shows the benchmark failing on a lost message.
    init(count: Int, size: Int, losingOne: Bool = false) throws {
        self.count = count
        self.sent = losingOne ? count - 1 : count
        self.keys = (0..<count).map { "twin-\($0 % 10_000)" }
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var generator = SystemRandomNumberGenerator()
        let distinct = (0..<1024).map { _ in (0..<size).map { _ in alphabet.randomElement(using: &generator)! } }
        self.values = (0..<count).map { distinct[$0 % distinct.count] }
        self.kcatInput = FileManager.default.temporaryDirectory.appending(path: "kafka-bench-\(UUID()).txt")
        var text = [UInt8]()
        text.reserveCapacity(count * (size + 16))
        for index in 0..<sent {
            text += Array(keys[index].utf8)
            text.append(UInt8(ascii: "\t"))
            text += values[index]
            text.append(UInt8(ascii: "\n"))
        }
        try Data(text).write(to: kcatInput)
    }

    /// The bytes of every value a consumer must receive.
    var expectedBytes: Int { values.reduce(0) { $0 + $1.count } }

    /// The producer settings both sides use (kcat gets them as `-X`).
    static let producerProperties = KafkaProducerConfiguration.defaultProperties

    /// kcat -P from a file of `key<TAB>value` lines: the whole process, which exits once all were delivered.
    func kcatProduce(bootstrap: String, topic: String) throws -> Double {
        let properties = Self.producerProperties.sorted { $0.key < $1.key }.flatMap { ["-X", "\($0.key)=\($0.value)"] }
        let kcat = try KcatProcess(["-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-l", kcatInput.path] + properties)
        let output = Pipe()
        kcat.process.standardOutput = output
        let start = ContinuousClock.now
        try kcat.run()
        _ = output.fileHandleForReading.readDataToEndOfFile()
        try kcat.waitForSuccess()
        return (ContinuousClock.now - start).seconds
    }

    /// kcat -C of every message from the beginning (no group, so no join to wait for), printing each
    /// value's length on a line of its own: timed from the first line read to the last.
    func kcatConsume(bootstrap: String, topic: String) throws -> ConsumeRun {
        // `-e` ends kcat at the end of every partition, so a lost message ends the run short instead of waiting.
        let kcat = try KcatProcess(["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-c", "\(count)", "-e", "-q", "-f", "%S\n"])
        let kcatOutput = Pipe()
        kcat.process.standardOutput = kcatOutput
        try kcat.run()
        var lengths = ValueLengthLines()
        var first: (at: ContinuousClock.Instant, messages: Int)?
        var last = ContinuousClock.now
        let output = kcatOutput.fileHandleForReading
        while true {
            let chunk = output.availableData
            guard !chunk.isEmpty else { break }
            last = .now
            lengths.add(chunk)
            if first == nil { first = (last, lengths.messages) }
        }
        try kcat.waitForSuccess()
        try checkReceived(side: "kcat", messages: lengths.messages, bytes: lengths.bytes)
        guard let first else { throw BenchmarkError("kcat received no message") }
        return ConsumeRun(messagesTimed: count - first.messages, seconds: (last - first.at).seconds)
    }

    /// Twinflow's producer from its creation to its close, the messages made beforehand.
    func swiftProduce(bootstrap: String, topic: String, logger: Logger) async throws -> Double {
        let messages = (0..<sent).map { KafkaProducerMessage(topic: topic, key: Array(keys[$0].utf8), value: values[$0]) }
        let start = ContinuousClock.now
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(kafka: KafkaConfiguration(bootstrapServers: bootstrap), clientID: "kafka-bench"),
            logger: logger
        )
        try await producer.send(messages)
        await producer.shutdown()
        return (ContinuousClock.now - start).seconds
    }

    /// A consumer-group member reading every message, storing offsets per batch: timed from the
    /// first batch received to the last, so the group join is not counted (nor is kcat's start).
    func swiftConsume(bootstrap: String, topic: String, logger: Logger) async throws -> ConsumeRun {
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
        var first: (at: ContinuousClock.Instant, messages: Int)?
        var last = ContinuousClock.now
        while received < count, let batch = try await consumer.nextBatch(within: Self.stallLimit) {
            last = .now
            received += batch.count
            for message in batch.messages { bytes += message.value?.count ?? 0 }
            if first == nil { first = (last, received) }
            try consumer.store(batch)
        }
        await consumer.close()
        try checkReceived(side: "Twinflow's consumer", messages: received, bytes: bytes)
        guard let first else { throw BenchmarkError("Twinflow's consumer received no message") }
        return ConsumeRun(messagesTimed: count - first.messages, seconds: (last - first.at).seconds)
    }

    private func checkReceived(side: String, messages: Int, bytes: Int) throws {
        guard messages == count, bytes == expectedBytes else {
            throw BenchmarkError(
                "\(side) received \(messages) of the \(count) messages (\(bytes) of \(expectedBytes) value bytes)"
                    + (messages < count ? ": \(count - messages) lost" : "")
            )
        }
    }
}

/// A consumer's measured span: the messages after the first delivery, and the seconds from the first
/// delivery to the last (the messages that came with the first are not timed).
struct ConsumeRun {
    var messagesTimed: Int
    var seconds: Double
    var messagesPerSecond: Double { Double(messagesTimed) / seconds }
}

/// kcat's `%S\n` output read chunk by chunk: a count of lines and the sum of the lengths they give.
struct ValueLengthLines {
    private(set) var messages = 0
    private(set) var bytes = 0
    private var pending = 0

    mutating func add(_ chunk: Data) {
        for byte in chunk {
            if byte == UInt8(ascii: "\n") {
                messages += 1
                bytes += pending
                pending = 0
            } else if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                pending = pending * 10 + Int(byte - UInt8(ascii: "0"))
            }
        }
    }
}

extension KafkaConsumer {
    /// The next batch, or `nil` when none came within `limit` (or the consumer is closing).
    func nextBatch(within limit: Duration) async throws -> KafkaConsumerBatch? {
        try await withThrowingTaskGroup(of: KafkaConsumerBatch?.self) { group in
            group.addTask { try await self.nextBatch() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }
}
