import CRDKafka
import Logging
import ServiceLifecycle
import Testing
import TwinflowTestSupport

@testable import TwinflowKafka

/// A producer that can never deliver again does not sit in its service group as if all were well.
@Suite struct ProducerFatalErrorTests {
    /// librdkafka's hook for a fatal error (the idempotent producer's, which cannot be caused from
    /// outside) ends the producer's `run()` with it, so its service group and process stop; sends
    /// fail from then on.
    @Test func aFatalErrorEndsTheProducersRunAndItsGroup() async throws {
        let kafka = try MockKafka()
        let topic = try kafka.makeTopic()
        let producer = try kafka.makeProducer()
        try await producer.send(KafkaProducerMessage(topic: topic, key: "k", value: [1]))
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: producer)], logger: kafka.logger))
        let outcome = Shared<Result<Void, any Error>?>(nil)
        Task {
            do {
                try await group.run()
                outcome.withLock { $0 = .success(()) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(producer.fatalError == nil)

        let err = rd_kafka_test_fatal_error(producer.client.handle, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "a test of fatal errors")
        #expect(err == RD_KAFKA_RESP_ERR_NO_ERROR, "the fatal error was raised")
        let ended = await eventually(timeout: .seconds(10)) { outcome.value != nil }
        if !ended { await group.triggerGracefulShutdown() }
        #expect(ended, "the group ended")
        if case .failure(let error)? = outcome.value {
            #expect((error as? KafkaError)?.isFatal == true, "the group ended with the fatal error: \(error)")
        } else {
            Issue.record("the group did not end with the producer's fatal error: \(String(describing: outcome.value))")
        }
        #expect(producer.fatalError?.isFatal == true)
        await #expect(throws: KafkaError.self) { try await producer.send(KafkaProducerMessage(topic: topic, key: "k", value: [2])) }
    }
}
