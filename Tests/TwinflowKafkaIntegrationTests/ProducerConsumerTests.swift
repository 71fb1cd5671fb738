import Foundation
import Logging
import Synchronization
import Testing
import TwinflowKafka
import TwinflowTestSupport

@Suite(.serialized) struct ProducerConsumerTests {
    @Test func sendReportsWhereTheMessageWentAndConsumerReadsItBack() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 4)
        let producer = try kafka.makeProducer()
        let headers = [KafkaHeader(key: "ce_type", string: "x"), KafkaHeader(key: "empty", value: nil)]
        let report = try await producer.send(KafkaProducerMessage(topic: topic, key: "thermo_0001", value: Array("hello".utf8), headers: headers))
        #expect(report.topic == topic)
        #expect(report.partition == javaMurmur2Partition(Array("thermo_0001".utf8), partitions: 4))
        #expect(report.offset == 0)

        let consumer = try kafka.makeConsumer(group: "g-\(UUID())", topics: [topic])
        let batch = try #require(try await consumer.nextBatch())
        #expect(batch.messages.count == 1)
        let message = batch.messages[0]
        #expect(message.keyString == "thermo_0001")
        #expect(message.value == Array("hello".utf8))
        #expect(message.headers == headers)
        #expect(message.timestamp != nil)
        #expect(batch.nextOffsets == [KafkaTopicPartition(topic: topic, partition: report.partition): 1])
        try consumer.store(batch)
        try await consumer.commit()
        await consumer.close()
        await producer.shutdown()
    }

    @Test func batchesEnqueuedBeforeEarlierOnesAreDeliveredKeepTheirOrder() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 1)
        let producer = try kafka.makeProducer()
        let first = try await producer.enqueue((0..<500).map { KafkaProducerMessage(topic: topic, key: "k", value: Array("\($0)".utf8)) }[...])
        let second = try await producer.enqueue((500..<1000).map { KafkaProducerMessage(topic: topic, key: "k", value: Array("\($0)".utf8)) }[...])
        try await producer.delivered(second)
        try await producer.delivered(first)
        let reader = try TopicReader(kafka: kafka.configuration, topics: [topic], logger: kafka.logger)
        let received = try await reader.waitFor(1000, on: topic)
        try await reader.stop()
        #expect(received.map { String(decoding: $0.value ?? [], as: UTF8.self) } == (0..<1000).map { "\($0)" })
        let failing = try await producer.enqueue([KafkaProducerMessage(topic: topic, partition: 7, key: nil, value: [1])][...])
        await #expect(throws: KafkaError.self) { try await producer.delivered(failing) }
        await producer.shutdown()
    }

    @Test func aBrokerRefusalFailsTheBatchAndTheNextSendGoesThrough() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 1)
        let producer = try kafka.makeProducer()
        try await producer.send(KafkaProducerMessage(topic: topic, key: "k", value: [0]))
        kafka.cluster.failNextRequests(apiKey: 0, errorCodes: [10])  // MESSAGE_TOO_LARGE
        let refused = try await producer.enqueue([KafkaProducerMessage(topic: topic, key: "k", value: [1])][...])
        await #expect(throws: KafkaError.self) { try await producer.delivered(refused) }
        try await producer.send(KafkaProducerMessage(topic: topic, key: "k", value: [2]))
        await producer.shutdown()
    }

    @Test func keysLandOnTheSamePartitionsAsWithJavaClients() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 8)
        let producer = try kafka.makeProducer()
        for key in ["thermo_0001", "Room_01", "a", "abcd", "abcde", "ünïcode-ключ"] {
            let report = try await producer.send(KafkaProducerMessage(topic: topic, key: key, value: []))
            #expect(report.partition == javaMurmur2Partition(Array(key.utf8), partitions: 8), "\(key)")
            #expect(report.partition == KafkaPartitioner.partition(ofKey: key, partitionCount: 8), "\(key): the partitioner tells where it lands")
        }
        await producer.shutdown()
    }

    @Test func batchSendFailsForAnUnknownPartitionAndSaysWhy() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 2)
        let producer = try kafka.makeProducer()
        let messages = [
            KafkaProducerMessage(topic: topic, key: "k", value: [1]),
            KafkaProducerMessage(topic: topic, partition: 99, key: Array("k".utf8), value: [2]),
        ]
        await #expect(throws: KafkaError.self) { try await producer.send(messages) }
        do {
            try await producer.send(messages)
        } catch {
            #expect(error.code == .produce)
            #expect(error.rdkafkaName == "_UNKNOWN_PARTITION")
        }
        await producer.shutdown()
    }

    @Test func sendAfterShutdownIsRefused() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic()
        let producer = try kafka.makeProducer()
        await producer.shutdown()
        do {
            try await producer.send(KafkaProducerMessage(topic: topic, key: "k", value: []))
            Issue.record("sent after shutdown")
        } catch {
            #expect(error.code == .clientClosed)
        }
    }

    /// A send waits for its delivery report only as long as its task is not cancelled: with no broker
    /// to deliver to, a cancelled wait ends at once, whether it was waiting already or not yet.
    @Test func aCancelledSendStopsWaitingForItsDeliveryReport() async throws {
        let configuration = KafkaProducerConfiguration(kafka: KafkaConfiguration(bootstrapServers: "127.0.0.1:1"), flushTimeout: .milliseconds(200))
        let producer = try KafkaProducer(configuration: configuration, logger: Logger(label: "test"))
        let message = KafkaProducerMessage(topic: "nowhere", key: "k", value: [1])

        let waiting = Task { try await producer.send([message]) }
        try await Task.sleep(for: .milliseconds(300))
        #expect(producer.outstandingMessages == 1, "the message is still in flight when the send is cancelled")
        let cancelledAt = ContinuousClock.now
        waiting.cancel()
        do {
            try await waiting.value
            Issue.record("a send to no broker succeeded")
        } catch let error as KafkaError {
            #expect(error.code == .cancelled)
        }
        #expect(ContinuousClock.now - cancelledAt < .seconds(2))

        let ticket = try await producer.enqueue([message][...])
        let cancelledFirst = Task {
            try? await Task.sleep(for: .seconds(60))  // ends when the task is cancelled
            try await producer.delivered(ticket)
        }
        cancelledFirst.cancel()
        do {
            try await cancelledFirst.value
            Issue.record("a send to no broker succeeded")
        } catch let error as KafkaError {
            #expect(error.code == .cancelled)
        }
        #expect(producer.outstandingMessages == 2)
        await producer.shutdown()
    }

    @Test func badPropertyIsAConfigurationError() throws {
        var configuration = KafkaProducerConfiguration(kafka: KafkaConfiguration(bootstrapServers: "localhost:1"))
        configuration.kafka.properties["no.such.property"] = "1"
        do {
            _ = try KafkaProducer(configuration: configuration, logger: .init(label: "test"))
            Issue.record("created")
        } catch {
            #expect(error.code == .configuration)
            #expect(error.message.contains("no.such.property"))
        }
    }

    /// 100,000 keyed messages through a group of two consumers: every message arrives once, and
    /// each key's messages arrive in the order they were sent.
    @Test func hundredThousandKeyedMessagesThroughAGroupOfTwo() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 8)
        let group = "group-\(UUID())"
        let keys = 1000
        let perKey = 100
        let total = keys * perKey

        let consumers = try (0..<2).map { _ in try kafka.makeConsumer(group: group, topics: [topic]) }
        let received = Shared<[[(key: String, sequence: Int)]]>([[], []])
        let stop = Shared(false)

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for (index, consumer) in consumers.enumerated() {
                tasks.addTask {
                    while !stop.value, let batch = try await consumer.nextBatch() {
                        let decoded = batch.messages.map { message in
                            (key: message.keyString!, sequence: Int(String(decoding: message.value!, as: UTF8.self))!)
                        }
                        received.withLock { $0[index].append(contentsOf: decoded) }
                        try consumer.store(batch)
                    }
                }
            }

            let stable = await eventually(timeout: .seconds(60)) {
                consumers.allSatisfy(\.hasJoinedGroup) && consumers.allSatisfy { !$0.assignment.isEmpty }
                    && consumers[0].assignment.union(consumers[1].assignment).count == 8
            }
            try #require(stable, "both consumers own partitions before sending")

            let producer = try kafka.makeProducer()
            var messages: [KafkaProducerMessage] = []
            messages.reserveCapacity(total)
            for sequence in 0..<perKey {
                for key in 0..<keys {
                    messages.append(KafkaProducerMessage(topic: topic, key: "key-\(key)", value: Array(String(sequence).utf8)))
                }
            }
            for chunk in stride(from: 0, to: total, by: 10_000) {
                try await producer.send(messages[chunk..<min(chunk + 10_000, total)])
            }
            await producer.shutdown()

            let complete = await eventually(timeout: .seconds(60)) { received.withLock { $0[0].count + $0[1].count } >= total }
            stop.withLock { $0 = true }
            for consumer in consumers { await consumer.close() }
            try await tasks.waitForAll()
            #expect(complete)
        }

        let perConsumer = received.value
        #expect(perConsumer[0].count + perConsumer[1].count == total, "no message lost, none twice")
        #expect(!perConsumer[0].isEmpty && !perConsumer[1].isEmpty, "both members took part")
        var owner: [String: Int] = [:]
        var lastSequence: [String: Int] = [:]
        var outOfOrder = 0
        for (index, messages) in perConsumer.enumerated() {
            for (key, sequence) in messages {
                #expect(owner[key, default: index] == index, "\(key) went to one consumer")
                owner[key] = index
                if sequence != lastSequence[key, default: -1] + 1 { outOfOrder += 1 }
                lastSequence[key] = sequence
            }
        }
        #expect(outOfOrder == 0, "each key's messages in the order sent")
        #expect(lastSequence.count == keys)
        #expect(lastSequence.values.allSatisfy { $0 == perKey - 1 })
    }

    /// What a member takes over: everything at its first assignment; when a second member joins,
    /// nothing for the first (what it keeps is not new) and its share for the second; when the
    /// second leaves, the second's share for the first. Each reported once; with eager and with
    /// cooperative rebalancing, which the consumer tells from its configured strategy.
    @Test(arguments: ["range,roundrobin", "cooperative-sticky"]) func aMemberIsToldThePartitionsItTookOverOnce(strategy: String) async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 4)
        let group = "group-\(UUID())"
        let all = Set((0..<4).map { KafkaTopicPartition(topic: topic, partition: Int32($0)) })
        // The mock coordinator waits up to the session timeout less a second for every member to
        // rejoin, and a member that misses that round costs another: shorter timings keep each
        // rebalance to a few seconds, so the minute allowed for it is never near.
        let timings = ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "partition.assignment.strategy": strategy]
        let first = try kafka.makeConsumer(group: group, topics: [topic], properties: timings)
        try await withThrowingTaskGroup(of: Void.self) { polls in
            polls.addTask { while try await first.nextBatch() != nil {} }
            try #require(await eventually(timeout: .seconds(60)) { first.hasJoinedGroup && first.assignment == all })
            #expect(first.takeGainedPartitions() == all, "everything, at its first assignment")
            #expect(first.takeGainedPartitions().isEmpty, "reported once")

            let second = try kafka.makeConsumer(group: group, topics: [topic], properties: timings)
            polls.addTask { while try await second.nextBatch() != nil {} }
            try #require(
                await eventually(timeout: .seconds(60)) {
                    first.hasJoinedGroup && second.hasJoinedGroup && first.assignment.count == 2 && second.assignment.count == 2
                })
            let secondsShare = second.assignment
            #expect(first.takeGainedPartitions().isEmpty, "what the first kept is not new to it")
            #expect(second.takeGainedPartitions() == secondsShare)

            await second.close()
            try #require(await eventually(timeout: .seconds(60)) { first.hasJoinedGroup && first.assignment == all })
            #expect(first.takeGainedPartitions() == secondsShare, "the share of the member that left")
            await first.close()
            try await polls.waitForAll()
        }
    }

    /// A batch read before its partition went to another member and came back is not stored for
    /// that partition: the other member consumed further and committed, and the batch's older offset
    /// would move the group back (its messages delivered a second time). With cooperative
    /// rebalancing, a partition the member kept through the rebalance is stored as usual (an eager
    /// rebalance revokes and assigns every partition, whose messages are then read again anyway).
    @Test(arguments: ["range", "cooperative-sticky"]) func aBatchReadBeforeItsPartitionChangedHandsDoesNotMoveTheGroupBack(
        strategy: String
    )
        async throws
    {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 2)
        let group = "group-\(UUID())"
        let all = Set((0..<2).map { KafkaTopicPartition(topic: topic, partition: Int32($0)) })
        let timings = ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "partition.assignment.strategy": strategy]
        let producer = try kafka.makeProducer()
        func send(_ count: Int, to partition: Int32) async throws {
            try await producer.send(
                (0..<count).map { KafkaProducerMessage(topic: topic, partition: partition, key: Array("k".utf8), value: [UInt8($0)]) })
        }
        try await send(5, to: 0)
        try await send(5, to: 1)

        let first = try kafka.makeConsumer(group: group, topics: [topic], properties: timings)
        var held: [KafkaConsumerBatch] = []
        while !all.allSatisfy({ partition in held.contains { $0.nextOffsets[partition] == 5 } }) {
            held.append(try #require(try await first.nextBatch()))
        }
        let second = try kafka.makeConsumer(group: group, topics: [topic], properties: timings)
        let secondRead = Shared([KafkaTopicPartition: Int]())
        let moved = try await withThrowingTaskGroup(of: Void.self) { polls in
            polls.addTask { while try await first.nextBatch() != nil {} }
            polls.addTask {
                while let batch = try await second.nextBatch() {
                    secondRead.withLock { read in
                        for message in batch.messages { read[message.topicPartition, default: 0] += 1 }
                    }
                    try second.store(batch)
                }
            }
            try #require(
                await eventually(timeout: .seconds(60)) {
                    first.hasJoinedGroup && second.hasJoinedGroup && first.assignment.count == 1 && second.assignment.count == 1
                })
            let moved = try #require(second.assignment.first)
            try await send(10, to: moved.partition)
            try #require(await eventually { secondRead.value[moved] == 15 }, "the other member reads the moved partition to its end")
            try await second.commit()
            await second.close()

            try #require(await eventually(timeout: .seconds(60)) { first.hasJoinedGroup && first.assignment == all })
            #expect(held.contains { $0.nextOffsets[moved] == 5 }, "the held batch ends before what the other member committed")
            for batch in held { try first.store(batch) }
            try await first.commit()
            await first.close()
            try await polls.waitForAll()
            return moved
        }
        await producer.shutdown()

        let committed = try await KafkaAdmin(configuration: kafka.configuration, logger: kafka.logger).committedOffsets(
            group: group, topic: topic, partitions: 2)
        #expect(committed[Int(moved.partition)] == 15, "the other member's commit stands")
        if strategy == "cooperative-sticky" {
            #expect(committed[1 - Int(moved.partition)] == 5, "the partition kept through the rebalance is stored")
        }
    }

    /// A consumer stopped mid-stream, and another started in its place, resumes from the last
    /// stored offset: what was stored is not read again, what was read but not stored is.
    @Test func restartedConsumerResumesFromItsLastStoredOffset() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 4)
        let group = "group-\(UUID())"
        let total = 20_000
        let producer = try kafka.makeProducer()
        try await producer.send((0..<total).map { KafkaProducerMessage(topic: topic, key: "k\($0 % 97)", value: Array(String($0).utf8)) })
        await producer.shutdown()

        func values(_ batch: KafkaConsumerBatch) -> [Int] {
            batch.messages.map { Int(String(decoding: $0.value!, as: UTF8.self))! }
        }

        var stored: [Int] = []
        let first = try kafka.makeConsumer(group: group, topics: [topic], maxBatchSize: 500)
        while stored.count < total / 2, let batch = try await first.nextBatch() {
            stored += values(batch)
            try first.store(batch)
        }
        let unstored = try #require(try await first.nextBatch(), "a batch read and never stored")
        await first.close()

        var resumed: [Int] = []
        let second = try kafka.makeConsumer(group: group, topics: [topic], maxBatchSize: 500)
        while stored.count + resumed.count < total, let batch = try await second.nextBatch() {
            resumed += values(batch)
            try second.store(batch)
        }
        await second.close()

        #expect(Set(stored).isDisjoint(with: resumed), "stored messages are not read again")
        #expect(Set(stored).union(resumed) == Set(0..<total), "nothing lost")
        #expect(stored.count + resumed.count == total)
        #expect(Set(values(unstored)).isSubset(of: Set(resumed)), "read but not stored: delivered again")
    }

    @Test func exceedingMaxPollIntervalSurfacesAsAnError() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 1)
        let producer = try kafka.makeProducer()
        try await producer.send((0..<10).map { KafkaProducerMessage(topic: topic, key: "k", value: [UInt8($0)]) })
        await producer.shutdown()

        let consumer = try kafka.makeConsumer(
            group: "group-\(UUID())",
            topics: [topic],
            maxBatchSize: 1,
            properties: ["session.timeout.ms": "3000", "heartbeat.interval.ms": "500", "max.poll.interval.ms": "3000"]
        )
        let partition = KafkaTopicPartition(topic: topic, partition: 0)
        _ = try await consumer.nextBatch()
        #expect(consumer.takeGainedPartitions() == [partition])
        try await Task.sleep(for: .seconds(5))
        do {
            _ = try await consumer.nextBatch()
            Issue.record("no error after exceeding max.poll.interval.ms")
        } catch {
            #expect(error.code == .maxPollIntervalExceeded)
            #expect(error.rdkafkaName == "_MAX_POLL_EXCEEDED")
        }
        // The partition was lost (another member could have owned it meanwhile): assigned again
        // when the consumer rejoins, it is gained again.
        _ = try await consumer.nextBatch()
        #expect(await eventually(timeout: .seconds(10)) { consumer.takeGainedPartitions() == [partition] })
        await consumer.close()
    }

    @Test func cancelledWaitReturnsNilAndCloseEndsTheStream() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 1)
        let consumer = try kafka.makeConsumer(group: "group-\(UUID())", topics: [topic])
        let waiting = Task { try await consumer.nextBatch() }
        try await Task.sleep(for: .milliseconds(300))
        try await consumer.commit()  // served between polls, not stuck behind the waiting batch
        waiting.cancel()
        #expect(try await waiting.value == nil)
        await consumer.close()
        #expect(try await consumer.nextBatch() == nil)
        do {
            try await consumer.commit()
            Issue.record("committed after close")
        } catch {
            #expect(error.code == .clientClosed)
        }
    }
}
