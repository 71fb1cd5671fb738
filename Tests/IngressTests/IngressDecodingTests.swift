import Foundation
import KafkaRecords
import Testing
import TwinflowCodec
import TwinflowTestSupport

@testable import Ingress

/// How ingress reads IoT Hub's messages and its mapping file.
@Suite struct IngressDecodingTests {
    @Test func eventGridEnvelopeIsUnwrapped() throws {
        let message = try DeviceMessage(decoding: Fixtures.file("iothub/device-telemetry-eventgrid.json"), key: nil)
        #expect(message.deviceID == "thermo_0001")
        #expect(message.enqueuedTime == "2026-11-26T17:00:00.48Z")
        #expect(message.properties == ["Status": "Active"])
        #expect(message.body == ["Temperature": 21.5])
        #expect(message.messageID == nil)
    }

    @Test func theKafkaKeyNamesTheDeviceWhenTheMessageDoesNot() throws {
        let consumed = KafkaConsumerMessage(
            topic: "iothub.d2c", partition: 0, offset: 7, key: Array("thermo_0009".utf8), value: Array(#"{"body":{"Temperature":1}}"#.utf8))
        #expect(try DeviceMessage(decoding: consumed).deviceID == "thermo_0009")
        let named = try DeviceMessage(decoding: Fixtures.file("iothub/device-telemetry-data.json"), key: "other")
        #expect(named.deviceID == "thermo_0002", "systemProperties wins over the key")
        #expect(named.messageID == "thermo_0002-msg-1")
        #expect(throws: CodecError.self) { try DeviceMessage(decoding: Array(#"{"body":{}}"#.utf8), key: nil) }
        #expect(throws: CodecError.self) { try DeviceMessage(decoding: Array(#"[{"body":{}},{"body":{}}]"#.utf8), key: "d") }
    }

    @Test func nonFiniteNumbersReadSoTheFieldCanBeNamed() throws {
        let message = try DeviceMessage(decoding: Fixtures.file("iothub/device-telemetry-nan.json"), key: nil)
        #expect(message.body["Temperature"]?.doubleValue?.isNaN == true)
        #expect(try DeviceMessage(decoding: Array(#"{"body":{"a":-Infinity,"b":Infinity}}"#.utf8), key: "d").body["a"] == .double(-.infinity))
        #expect(throws: CodecError.self) { try JSONValue.parse("NaN") }
    }

    @Test func commandBytesAreTheTwinCommandsJSON() throws {
        let bytes = CommandMapper.serializedCommand(
            id: "device/d/message/1", twinID: "t\"1", operations: [(true, "/a", 1.5), (false, "/b~1c", "x")], telemetry: ["T": 1, "u": "°C"],
            component: "c", sourceTime: "2026-11-26T17:00:00Z", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        let command = TwinCommand(
            id: "device/d/message/1", twinID: "t\"1",
            patch: JSONPatch([.add(path: JSONPointer(tokens: ["a"]), value: 1.5), .replace(path: JSONPointer(tokens: ["b/c"]), value: "x")]),
            telemetry: ["T": 1, "u": "°C"], component: "c", sourceTime: "2026-11-26T17:00:00Z",
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        #expect(bytes == command.json.serialized())
        #expect(try TwinCommand(decoding: bytes) == command)
    }

    @Test func mappingFileMembers() throws {
        let mapping = try IngressMapping(
            json: JSONValue.parse(
                #"{"devices":{"hw":"t1"},"properties":[{"from":"/h","to":"/Humidity","component":"sensor"}],"telemetry":false}"#))
        #expect(mapping.devices == ["hw": "t1"])
        #expect(mapping.unlistedDevices == .unknown, "a mapping that lists devices expects only those")
        #expect(mapping.properties.map(\.twinPath.description) == ["/sensor/Humidity"])
        #expect(!mapping.publishesTelemetry)
        let sample = try IngressMapping(json: JSONValue.parse("{}"))
        #expect(sample == .sample)
        #expect(sample.unlistedDevices == .sameID)
        #expect(sample.properties.map(\.from.description) == ["/Temperature"])
        #expect(sample.publishesTelemetry)
    }

    @Test(arguments: [
        (#"{"device":{}}"#, "device"),
        (#"{"devices":{"a":1}}"#, "devices.a"),
        (#"{"unlistedDevices":"maybe"}"#, "unlistedDevices"),
        (#"{"properties":[{"from":"Temperature","to":"/T"}]}"#, "properties[0].from"),
        (#"{"properties":[{"from":"/T","to":""}]}"#, "properties[0].to"),
        (#"{"telemetry":"yes"}"#, "telemetry"),
    ])
    func mappingErrorsNameTheMember(text: String, field: String) throws {
        do {
            _ = try IngressMapping(json: JSONValue.parse(text))
            Issue.record("\(text) was accepted")
        } catch {
            #expect(error.field == field, "\(error)")
        }
    }
}
