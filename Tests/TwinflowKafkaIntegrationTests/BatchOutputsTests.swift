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
}
