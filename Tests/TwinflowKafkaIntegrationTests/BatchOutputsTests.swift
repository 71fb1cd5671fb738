import KafkaRecords
import Testing
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime
import TwinflowTestSupport

/// `KafkaProducer.sendOutputs`: what the broker refuses for its content is dead-lettered as the
/// input it answered, and the rest of the batch is delivered.
@Suite struct BatchOutputsTests {
    @Test func anOutputTheBrokerRefusesIsReplacedByADeadLetterOfItsInput() async throws {
        let kafka = try MockKafka()
        let outputTopic = try kafka.makeTopic("outputs", partitions: 1)
        let deadLetterTopic = try kafka.makeTopic("deadletter", partitions: 1)
        let inputs = (0..<4).map { index in
            KafkaConsumerMessage(
                topic: "inputs", partition: 0, offset: Int64(10 + index), key: Array("k\(index)".utf8), value: Array("input \(index)".utf8),
                headers: [KafkaHeader(key: "h", string: "\(index)")])
        }
        let batch = KafkaConsumerBatch(messages: inputs)
        let tooLarge = [UInt8](repeating: UInt8(ascii: "x"), count: 1_100_000)
        let refusedLetter = DeadLetter(service: "test", reason: "input 3 is no good", original: inputs[3])
            .kafkaMessage(for: inputs[3], topic: deadLetterTopic)
        let outputs = [
            KafkaProducerMessage(topic: outputTopic, key: "k0", value: Array("output 0".utf8)),
            KafkaProducerMessage(topic: outputTopic, key: "k1", value: tooLarge),
            KafkaProducerMessage(topic: outputTopic, key: "k2", value: Array("output 2".utf8)),
            KafkaProducerMessage(topic: deadLetterTopic, key: refusedLetter.key, value: tooLarge, headers: refusedLetter.headers),
        ]
        let producer = try kafka.makeProducer()
        do {
            try await producer.send(outputs[1])
            Issue.record("the broker took a message over message.max.bytes: the test shows nothing")
        } catch {
            #expect(error.isContentRefusal, "\(error)")
        }

        let refused = try await producer.sendOutputs(
            outputs, inputs: [0, 1, 2, 3], of: batch, service: "test", deadLetterTopic: deadLetterTopic)
        #expect(refused == [1, 3])

        let reader = try TopicReader(kafka: kafka.configuration, topics: [outputTopic, deadLetterTopic], logger: kafka.logger)
        let delivered = try await reader.waitFor(4, on: outputTopic)
        let letters = try await reader.waitFor(2, on: deadLetterTopic)
        // The whole batch went once (delivering all but the refused), then one output at a time.
        #expect(delivered.map { String(decoding: $0.value ?? [], as: UTF8.self) } == ["output 0", "output 2", "output 0", "output 2"])
        #expect(letters.count == 2)
        let first = try DeadLetter(decoding: letters[0])
        #expect(first.reason.hasPrefix("the broker refused its output to \(outputTopic): "), "\(first.reason)")
        #expect(first.sourceOffset == 11)
        #expect(letters[0].value == inputs[1].value, "the input goes untouched")
        #expect(letters[0].headers.string(for: "h") == "1")
        let second = try DeadLetter(decoding: letters[1])
        #expect(second.reason == "input 3 is no good", "a refused dead letter keeps its reason")
        #expect(letters[1].value == nil)
        #expect(letters[1].headers.string(for: DeadLetter.valueOmittedHeader) == "7 bytes")
        try await reader.stop()
        await producer.shutdown()
    }

    /// A producer whose `message.max.bytes` is below a dead letter's size still delivers it, without
    /// the original's value; the other messages of the batch go as they are.
    @Test func aDeadLetterOverTheProducersLimitGoesWithoutItsValue() async throws {
        let kafka = try MockKafka()
        let outputTopic = try kafka.makeTopic("outputs", partitions: 1)
        let deadLetterTopic = try kafka.makeTopic("deadletter", partitions: 1)
        var configuration = kafka.configuration
        configuration.properties["message.max.bytes"] = "200000"
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: configuration), logger: kafka.logger)
        let input = KafkaConsumerMessage(
            topic: "inputs", partition: 0, offset: 5, key: Array("k".utf8), value: [UInt8](repeating: 120, count: 300_000))
        let letter = DeadLetter(service: "test", reason: "no good", original: input).kafkaMessage(for: input, topic: deadLetterTopic)
        #expect(letter.value?.count == 300_000, "under the dead letter's own limit, the value is kept")
        let output = KafkaProducerMessage(topic: outputTopic, key: "k", value: Array("output".utf8))
        do {
            try await producer.send([letter])
            Issue.record("the producer took a message over its message.max.bytes: the test shows nothing")
        } catch {
            #expect(error.isContentRefusal, "\(error)")
        }

        try await producer.send([output, letter], deadLettersTo: deadLetterTopic)

        let reader = try TopicReader(kafka: kafka.configuration, topics: [outputTopic, deadLetterTopic], logger: kafka.logger)
        let letters = try await reader.waitFor(1, on: deadLetterTopic)
        let outputs = try await reader.waitFor(1, on: outputTopic)
        #expect(letters.count == 1 && letters.first?.value == nil)
        #expect(letters.first?.headers.string(for: DeadLetter.valueOmittedHeader) == "300000 bytes")
        #expect(try DeadLetter(decoding: try #require(letters.first)).reason == "no good")
        #expect(outputs.allSatisfy { $0.value == Array("output".utf8) } && !outputs.isEmpty)
        try await reader.stop()
        await producer.shutdown()
    }

    /// A broker refuses a whole request for one message in it: outputs refused beside the one too
    /// large go again alone and are delivered; only that one is dead-lettered.
    @Test func outputsRefusedBesideATooLargeOneAreDeliveredAlone() async throws {
        let kafka = try MockKafka()
        let outputTopic = try kafka.makeTopic("outputs", partitions: 1)
        let deadLetterTopic = try kafka.makeTopic("deadletter", partitions: 1)
        let inputs = (0..<4).map { index in
            KafkaConsumerMessage(topic: "inputs", partition: 0, offset: Int64(index), key: Array("k".utf8), value: Array("input \(index)".utf8))
        }
        let outputs = (0..<4).map { index in
            KafkaProducerMessage(
                topic: outputTopic, key: "k", value: index == 1 ? [UInt8](repeating: 120, count: 1_100_000) : Array("output \(index)".utf8))
        }
        let producer = try kafka.makeProducer()
        try await producer.send(KafkaProducerMessage(topic: outputTopic, key: "warm-up", value: Array("warm-up".utf8)))
        // The next two produce requests (the batch, then its outputs side by side) are refused as a
        // broker refuses a request that holds a message too large: with MESSAGE_TOO_LARGE (10).
        kafka.cluster.failNextRequests(apiKey: 0, errorCodes: [10, 10])

        let refused = try await producer.sendOutputs(
            outputs, inputs: [0, 1, 2, 3], of: KafkaConsumerBatch(messages: inputs), service: "test", deadLetterTopic: deadLetterTopic)
        #expect(refused == [1])

        // Without the two refusals the batch's first attempt and the outputs side by side would each
        // have delivered outputs 0, 2 and 3: seven messages, not four.
        let admin = try KafkaAdmin(configuration: kafka.configuration, logger: kafka.logger)
        #expect(try await admin.highWatermarks(topic: outputTopic, partitions: 1) == [4], "each good output delivered once")
        let reader = try TopicReader(kafka: kafka.configuration, topics: [outputTopic, deadLetterTopic], logger: kafka.logger)
        let letters = try await reader.waitFor(1, on: deadLetterTopic)
        let delivered = try await reader.waitFor(4, on: outputTopic)
        #expect(
            delivered.map { String(decoding: $0.value ?? [], as: UTF8.self) }.sorted() == ["output 0", "output 2", "output 3", "warm-up"])
        #expect(try letters.map { try DeadLetter(decoding: $0).sourceOffset } == [1])
        try await reader.stop()
        await producer.shutdown()
    }
}
