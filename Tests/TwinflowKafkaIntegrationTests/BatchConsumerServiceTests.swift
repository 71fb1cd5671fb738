import Foundation
import Logging
import ServiceLifecycle
import Testing
import TwinflowKafka
import TwinflowRuntime
import TwinflowTestSupport

@Suite struct BatchConsumerServiceTests {
    /// A mock cluster with a topic of one partition that holds one message, keyed `k`.
    static func topicWithOneMessage() async throws -> (MockKafka, String) {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 1)
        let producer = try kafka.makeProducer()
        try await producer.send(KafkaProducerMessage(topic: topic, key: "k", value: Array("1".utf8)))
        await producer.shutdown()
        return (kafka, topic)
    }

    /// A failing batch is handed over again until it succeeds; on graceful shutdown the service
    /// finishes, commits and leaves, and a successor in the same group starts after the last message.
    @Test func retriesFailedBatchesAndCommitsOnGracefulShutdown() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 2)
        let group = "group-\(UUID())"
        let producer = try kafka.makeProducer()
        try await producer.send((0..<500).map { KafkaProducerMessage(topic: topic, key: "k\($0 % 7)", value: Array(String($0).utf8)) })

        let seen = Shared<[Int]>([])
        let failures = Shared(0)
        let consumer = try kafka.makeConsumer(group: group, topics: [topic], maxBatchSize: 100)
        let service = BatchConsumerService(consumer: consumer, logger: kafka.logger, maximumBackoff: .milliseconds(50)) { batch in
            if failures.withLock({ count in
                count += 1
                return count <= 2
            }) {
                throw CancellationError()
            }
            seen.withLock { $0 += batch.messages.map { Int(String(decoding: $0.value!, as: UTF8.self))! } }
        }
        try await withServices([service], logger: kafka.logger) {
            #expect(await eventually { seen.value.count >= 500 })
        }
        #expect(Set(seen.value) == Set(0..<500), "the failed batches were handled again, nothing skipped")

        try await producer.send(KafkaProducerMessage(topic: topic, key: "after", value: Array("500".utf8)))
        await producer.shutdown()
        let successor = try kafka.makeConsumer(group: group, topics: [topic])
        let next = try #require(try await successor.nextBatch())
        #expect(next.messages.map(\.keyString) == ["after"], "offsets were committed on shutdown")
        await successor.close()
    }

    /// Graceful shutdown while a batch keeps failing (its downstream gone): the service stops at
    /// once, without an error, and leaves the batch unstored, so a successor reads it again. Before,
    /// the batch was retried for ever and only SIGKILL ended the process.
    @Test(arguments: ["prepare", "handle"]) func shutdownWhileABatchKeepsFailingLeavesItForTheNextRun(step: String) async throws {
        struct Gone: Error {}
        let (kafka, topic) = try await Self.topicWithOneMessage()
        let group = "group-\(UUID())"

        let attempts = Shared(0)
        let consumer = try kafka.makeConsumer(group: group, topics: [topic])
        let service = BatchConsumerService<Void>(
            consumer: consumer, logger: kafka.logger, maximumBackoff: .milliseconds(100),
            prepare: { _ in
                if step == "prepare" {
                    attempts.withLock { $0 += 1 }
                    throw Gone()
                }
            },
            handle: { _, _ in
                attempts.withLock { $0 += 1 }
                throw Gone()
            })
        var configuration = ServiceGroupConfiguration(services: [service], logger: kafka.logger)
        // Without the give-up the shutdown would wait for ever: cancelled after 15 s, the run fails.
        configuration.maximumGracefulShutdownDuration = .seconds(15)
        let serviceGroup = ServiceGroup(configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await serviceGroup.run() }
            #expect(await eventually { attempts.value >= 3 })
            let stopping = ContinuousClock.now
            await serviceGroup.triggerGracefulShutdown()
            try await tasks.waitForAll()
            #expect(ContinuousClock.now - stopping < .seconds(10), "stopped without waiting on the failing step")
        }
        #expect(service.retries.oldestFailure?.step == step)

        let successor = try kafka.makeConsumer(group: group, topics: [topic])
        let again = try #require(try await successor.nextBatch())
        #expect(again.messages.map(\.keyString) == ["k"], "the failing batch was not stored")
        await successor.close()
    }

    /// Graceful shutdown while a batch waits for delivery reports that do not come (its broker
    /// gone): once the shutdown's time is up the wait is cancelled, the service ends, and the batch
    /// stays unstored. Before, the wait ignored cancellation and held the shutdown for the producer's
    /// `message.timeout.ms` (two minutes).
    @Test func shutdownCancelsAWaitForDeliveryReportsThatDoNotCome() async throws {
        let (kafka, topic) = try await Self.topicWithOneMessage()
        let group = "group-\(UUID())"
        let unreachable = try KafkaProducer(
            configuration: KafkaProducerConfiguration(kafka: KafkaConfiguration(bootstrapServers: "127.0.0.1:1"), flushTimeout: .milliseconds(200)),
            logger: kafka.logger)
        let waiting = Shared(false)
        let consumer = try kafka.makeConsumer(group: group, topics: [topic])
        let service = BatchConsumerService(consumer: consumer, logger: kafka.logger) { batch in
            let ticket = try await unreachable.enqueue([KafkaProducerMessage(topic: "out", key: "k", value: [1])][...])
            waiting.withLock { $0 = true }
            try await unreachable.delivered(ticket)
        }
        var configuration = ServiceGroupConfiguration(services: [service], logger: kafka.logger)
        configuration.maximumGracefulShutdownDuration = .seconds(2)
        let serviceGroup = ServiceGroup(configuration: configuration)
        await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await serviceGroup.run() }
            #expect(await eventually { waiting.value })
            let stopping = ContinuousClock.now
            await serviceGroup.triggerGracefulShutdown()
            await #expect(throws: (any Error).self, "cancelled after the graceful shutdown's time") { try await tasks.waitForAll() }
            #expect(ContinuousClock.now - stopping < .seconds(8), "the wait for delivery reports was cancelled")
        }
        #expect(unreachable.outstandingMessages == 1, "the delivery report never came")
        await unreachable.shutdown()

        let successor = try kafka.makeConsumer(group: group, topics: [topic])
        let again = try #require(try await successor.nextBatch())
        #expect(again.messages.map(\.keyString) == ["k"], "the batch was not stored")
        await successor.close()
    }

    /// A batch that keeps failing turns the `batches` check not ready once it has failed for longer
    /// than the limit, naming the step and the error; the check is ready again once the batch goes through.
    @Test func aBatchThatKeepsFailingMakesTheServiceNotReady() async throws {
        struct Refused: Error, CustomStringConvertible {
            var description: String { "the downstream refuses" }
        }
        let (kafka, topic) = try await Self.topicWithOneMessage()

        let failing = Shared(true)
        let attempts = Shared(0)
        let handled = Shared(0)
        let consumer = try kafka.makeConsumer(group: "group-\(UUID())", topics: [topic])
        let service = BatchConsumerService(consumer: consumer, logger: kafka.logger, maximumBackoff: .milliseconds(100)) { batch in
            attempts.withLock { $0 += 1 }
            if failing.value { throw Refused() }
            handled.withLock { $0 += batch.count }
        }
        let readiness = Readiness()
        readiness.registerBatches(service, notReadyAfter: .seconds(3))
        let batches: @Sendable () -> ReadinessStatus = { readiness.evaluate().first { $0.name == "batches" }!.status }
        #expect(batches().ready, "nothing failed yet: \(batches().detail)")

        try await withServices([service], logger: kafka.logger) {
            #expect(await eventually { batches().detail.contains("the downstream refuses") })
            #expect(batches().ready, "a failure younger than the limit is retried while ready: \(batches().detail)")
            #expect(await eventually(timeout: .seconds(15)) { !batches().ready })
            let detail = batches().detail
            #expect(detail.contains("the handle step has failed on a batch of 1 message(s)"), "\(detail)")
            #expect(detail.contains("the downstream refuses"), "\(detail)")
            #expect(attempts.value >= 3, "the batch was retried meanwhile")
            failing.withLock { $0 = false }
            #expect(await eventually { handled.value == 1 })
            #expect(await eventually { batches().ready })
            #expect(batches().detail == "no batch failing")
        }
    }

    /// A step that neither returns nor fails (a delivery report that never comes) turns the
    /// `batches` check not ready once it has run longer than the hang limit, naming the step; the
    /// check is ready again once the step returns.
    @Test func aStepThatHangsMakesTheServiceNotReady() async throws {
        let (kafka, topic) = try await Self.topicWithOneMessage()

        let released = Shared(false)
        let handled = Shared(0)
        let consumer = try kafka.makeConsumer(group: "group-\(UUID())", topics: [topic])
        let service = BatchConsumerService(consumer: consumer, logger: kafka.logger) { batch in
            while !released.value { try await Task.sleep(for: .milliseconds(20)) }
            handled.withLock { $0 += batch.count }
        }
        let readiness = Readiness()
        readiness.registerBatches(service, notReadyAfter: .seconds(10), hangLimit: .seconds(2))
        let batches: @Sendable () -> ReadinessStatus = { readiness.evaluate().first { $0.name == "batches" }!.status }

        try await withServices([service], logger: kafka.logger) {
            #expect(await eventually(timeout: .seconds(15)) { !batches().ready })
            let detail = batches().detail
            #expect(detail.contains("the handle step has been running on a batch of 1 message(s)"), "\(detail)")
            #expect(handled.value == 0, "the step had not returned")
            released.withLock { $0 = true }
            #expect(await eventually { handled.value == 1 })
            #expect(await eventually { batches().ready })
            #expect(batches().detail == "no batch failing")
        }
    }
}
