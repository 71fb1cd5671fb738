import Foundation
import Logging
import Testing
import TwinflowKafka
import TwinflowTestSupport

@Suite struct AdminTests {
    @Test func metadataListsBrokersAndTopics() async throws {
        let kafka = try MockKafka(brokers: 3)
        let topic = try kafka.makeTopic(partitions: 6)
        let admin = try KafkaAdmin(configuration: kafka.configuration, logger: kafka.logger)
        let metadata = try await admin.metadata()
        #expect(metadata.brokers.count == 3)
        #expect(metadata.topic(named: topic)?.partitionCount == 6)
    }

    @Test func highWatermarksCountProducedMessages() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 3)
        let admin = try KafkaAdmin(configuration: kafka.configuration, logger: kafka.logger)
        #expect(try await admin.highWatermarks(topic: topic, partitions: 3) == [0, 0, 0])
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: kafka.configuration), logger: kafka.logger)
        try await producer.send((0..<7).map { KafkaProducerMessage(topic: topic, partition: Int32($0 % 3), key: nil, value: Array("m\($0)".utf8)) })
        await producer.shutdown()
        #expect(try await admin.highWatermarks(topic: topic, partitions: 3) == [3, 2, 2])
    }

    @Test func creatingExistingTopicsChangesNothing() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic(partitions: 3)
        let admin = try KafkaAdmin(configuration: kafka.configuration, logger: kafka.logger)
        let created = try await admin.createTopics([KafkaTopicSpecification(name: topic, partitions: 12)])
        #expect(created.isEmpty)
        #expect(try await admin.metadata().topic(named: topic)?.partitionCount == 3)
    }

    /// librdkafka 2.0.2's mock cluster has no controller, so CreateTopics cannot succeed there:
    /// the failure must come back as a typed admin error, not hang.
    @Test func createTopicsFailureIsTyped() async throws {
        let kafka = try MockKafka()
        let admin = try KafkaAdmin(configuration: kafka.configuration, logger: kafka.logger)
        do {
            try await admin.createTopics([KafkaTopicSpecification(name: "new-\(UUID())", partitions: 2)], timeout: .seconds(1))
            Issue.record("created a topic on a cluster without a controller")
        } catch {
            #expect(error.code == .admin)
            #expect(error.rdkafkaName == "_TIMED_OUT")
        }
    }

    @Test func unreachableClusterIsATypedError() async throws {
        let admin = try KafkaAdmin(configuration: KafkaConfiguration(bootstrapServers: "127.0.0.1:1"), logger: .init(label: "test"))
        do {
            _ = try await admin.metadata(timeout: .milliseconds(500))
            Issue.record("metadata from nowhere")
        } catch {
            #expect(error.code == .metadata)
            #expect(error.isRetriable)
        }
    }
}
