import Foundation
import Logging
import Testing
import TwinflowCodec
import TwinflowKafka
import TwinflowTestSupport

/// devbroker as users run it: a separate process, reached at a fixed localhost port, used with kcat.
@Suite(.serialized) struct DevBrokerProcessTests {
    @Test func kcatListsProducesAndConsumesThroughDevbroker() async throws {
        let devbroker = try DevBrokerProcess(partitions: 3, extraTopics: ["bench.extra:5"])
        defer { devbroker.terminate() }
        #expect(devbroker.bootstrap.hasPrefix("localhost:"), "devbroker wrote its address")

        let listing = try run("kcat", ["-b", devbroker.bootstrap, "-L", "-m", "10"])
        for topic in Topics.defaults.all {
            #expect(listing.contains("topic \"\(topic)\" with 3 partitions"), "\(topic) listed")
        }
        #expect(listing.contains("topic \"bench.extra\" with 5 partitions"))

        _ = try run(
            "kcat", ["-b", devbroker.bootstrap, "-P", "-t", "iothub.d2c", "-k", "thermo_0001", "-X", "partitioner=murmur2_random"],
            input: #"{"Temperature":21.5}"#)
        let consumed = try run("kcat", ["-b", devbroker.bootstrap, "-C", "-t", "iothub.d2c", "-e", "-q", "-f", "%k %s\\n"])
        #expect(consumed == "thermo_0001 {\"Temperature\":21.5}\n")

        let kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: kafka), logger: .init(label: "test"))
        let report = try await producer.send(KafkaProducerMessage(topic: "iothub.d2c", key: "thermo_0001", value: Array("{}".utf8)))
        await producer.shutdown()
        #expect(report.offset == 1, "the Swift producer's message follows kcat's on the same partition")

        #expect(devbroker.terminate() == 0, "devbroker exits cleanly on SIGTERM")
    }
}
