import Foundation
import ServiceLifecycle
import Testing
import TwinflowKafka
import TwinflowRuntime
import TwinflowTestSupport

/// The `kafka` readiness check against a real (mock) cluster.
@Suite struct KafkaReadinessTests {
    /// A consumer of a topic the cluster refuses (not authorised) makes the service not ready,
    /// naming the topic; once the cluster gives the topic, the service is ready. So does a topic
    /// the service writes to. (The mock cluster
    /// creates a missing topic as soon as a client asks for it, so a refusal stands in for absence:
    /// both leave the topic out of the metadata the check reads, or mark it with an error.)
    @Test func aTopicUsedThatTheClusterRefusesIsNotReadyUntilItIsGiven() async throws {
        let kafka = try MockKafka()
        let present = try kafka.makeTopic("present", partitions: 1)
        let absent = try kafka.makeTopic("refused", partitions: 2)
        kafka.cluster.setTopicError(absent, errorCode: 29)
        let readiness = Readiness()
        readiness.registerKafkaCluster(try KafkaAdmin(configuration: kafka.configuration, logger: kafka.logger))
        let consumer = try kafka.makeConsumer(group: "group-\(UUID())", topics: [present, absent])
        readiness.registerConsumerGroup(consumer, group: "readiness-test")
        #expect(readiness.topicsUsed == [present, absent].sorted())
        let check: @Sendable () -> ReadinessStatus = { readiness.evaluate().first { $0.name == "kafka" }!.status }

        let group = ServiceGroup(configuration: .init(services: [readiness], logger: kafka.logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            #expect(await eventually(timeout: .seconds(10)) { check().detail != "not checked yet" })
            #expect(!check().ready)
            #expect(check().detail == "the cluster has no topic \(absent) (or it is not authorised)", "\(check().detail)")
            kafka.cluster.setTopicError(absent, errorCode: 0)
            #expect(await eventually(timeout: .seconds(10)) { check().ready }, "\(check().detail)")
            #expect(check().detail.contains("exist"))

            // A topic the service writes to counts the same: its outputs would never be delivered.
            let output = try kafka.makeTopic("output", partitions: 1)
            kafka.cluster.setTopicError(output, errorCode: 29)
            readiness.noteTopicsWritten([output])
            #expect(await eventually(timeout: .seconds(10)) { !check().ready })
            #expect(check().detail == "the cluster has no topic \(output) (or it is not authorised)", "\(check().detail)")
            kafka.cluster.setTopicError(output, errorCode: 0)
            #expect(await eventually(timeout: .seconds(10)) { check().ready }, "\(check().detail)")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        await consumer.close()
    }
}
