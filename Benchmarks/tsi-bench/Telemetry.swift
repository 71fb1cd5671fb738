import Foundation
import TwinflowCodec
import TwinflowKafka

/// Telemetry as twin-service puts it on `eventhub.telemetry`: binary-mode CloudEvents.
enum Telemetry {
    static func message(topic: String, twin: String, id: String, sourceTime: String, payload: JSONValue) -> KafkaProducerMessage {
        BinaryCloudEvent(
            attributes: CloudEventAttributes(
                id: id, type: "microsoft.iot.telemetry", source: "tsi-bench/digitaltwins/\(twin)", time: sourceTime,
                dataSchema: "dtmi:contosocom:DigitalTwins:Thermostat;1", extensions: ["telemetrysourcetime": sourceTime]),
            data: payload.serialized()
        ).kafkaMessage(topic: topic, key: twin)
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
