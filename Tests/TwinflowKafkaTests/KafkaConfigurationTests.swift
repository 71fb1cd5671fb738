import CRDKafka
import Testing

@testable import TwinflowKafka

@Suite struct KafkaConfigurationTests {
    @Test func readsContractVariables() {
        let configuration = KafkaConfiguration.fromEnvironment([
            "KAFKA_BOOTSTRAP_SERVERS": "broker-1:9092,broker-2:9092",
            "KAFKA_CONFIG_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_CONFIG_SASL_MECHANISMS": "PLAIN",
            "KAFKA_CONFIG_SSL_CA_LOCATION": "/etc/ca.pem",
            "KAFKA_CONFIG_": "ignored",
            "OTHER": "x",
        ])
        #expect(configuration.bootstrapServers == "broker-1:9092,broker-2:9092")
        #expect(
            configuration.properties == [
                "security.protocol": "SASL_SSL", "sasl.mechanisms": "PLAIN", "ssl.ca.location": "/etc/ca.pem",
            ]
        )
    }

    @Test func defaultsToLocalhost() {
        #expect(KafkaConfiguration.fromEnvironment([:]).bootstrapServers == "localhost:9092")
    }

    @Test func userPropertiesOverrideDefaults() {
        var kafka = KafkaConfiguration(bootstrapServers: "b:1")
        kafka.properties["linger.ms"] = "50"
        let producer = KafkaProducerConfiguration(kafka: kafka, clientID: "ingress").clientProperties
        #expect(producer["linger.ms"] == "50")
        #expect(producer["enable.idempotence"] == "true")
        #expect(producer["partitioner"] == "murmur2_random")
        #expect(producer["client.id"] == "ingress")
        #expect(producer["bootstrap.servers"] == "b:1")
    }

    @Test func consumerStoresOffsetsOnlyWhenTold() {
        let consumer = KafkaConsumerConfiguration(
            kafka: KafkaConfiguration(), groupID: "propagator", topics: ["t"], commitInterval: .milliseconds(2500)
        ).clientProperties
        #expect(consumer["enable.auto.offset.store"] == "false")
        #expect(consumer["group.id"] == "propagator")
        #expect(consumer["auto.commit.interval.ms"] == "2500")
        #expect(consumer["partition.assignment.strategy"] == "range,roundrobin")
    }
}

@Suite struct KafkaErrorTests {
    @Test func carriesLibrdkafkaCodeAndName() {
        let error = KafkaError.rdkafka(.delivery, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        #expect(error.code == .delivery)
        #expect(error.rdkafkaName == "_MSG_TIMED_OUT")
        #expect(error.isRetriable)
        #expect(!error.isFatal)
        #expect("\(error)".contains("_MSG_TIMED_OUT"))
        let fatal = KafkaError.rdkafka(.client, RD_KAFKA_RESP_ERR__FATAL)
        #expect(fatal.isFatal)
    }
}
