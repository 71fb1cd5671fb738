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
        let traced = CommandMapper.serializedCommand(
            id: "i", twinID: "t", operations: [], telemetry: 1, component: nil, sourceTime: nil, traceparent: nil)
        let trace = try #require(try TwinCommand(decoding: traced).traceparent)
        #expect(Traceparent.isValid(trace), "a new trace: \(trace)")
    }

    /// The scanner reads the common shape as the codec's decoder does, and leaves everything else
    /// (envelopes, errors, odd spellings) to it: for every message, and for thousands of damaged
    /// copies, what it returns equals the decoder's reading.
    /// A command's ID names its record, and only it: the same for the record read again; another for
    /// a message ID a device used again (another enqueued time), for a record at an offset a broker's
    /// topics gave again (another timestamp), and for IDs whose `/`s would read as the ID's own.
    @Test func commandIDsTellRecordsApart() throws {
        func record(_ offset: Int64, timestamp: Int64?) -> KafkaConsumerMessage {
            KafkaConsumerMessage(topic: "iothub.d2c", partition: 2, offset: offset, key: nil, value: nil, timestamp: timestamp)
        }
        func device(_ id: String, _ messageID: String?, _ enqueued: String?) -> DeviceMessage {
            DeviceMessage(deviceID: id, enqueuedTime: enqueued, messageID: messageID, properties: [:], body: [:])
        }
        let first = device("d", "1", "2026-12-01T10:00:00Z")
        #expect(CommandMapper.commandID(first, record(5, timestamp: 100)) == "device/d/message/1/2026-12-01T10:00:00Z")
        #expect(CommandMapper.commandID(first, record(5, timestamp: 100)) == CommandMapper.commandID(first, record(9, timestamp: 200)))
        #expect(
            CommandMapper.commandID(first, record(5, timestamp: 100))
                != CommandMapper.commandID(device("d", "1", "2026-12-01T11:00:00Z"), record(5, timestamp: 100)))
        #expect(CommandMapper.commandID(device("d", "1", nil), record(5, timestamp: 100)) == "device/d/message/1@100")
        #expect(CommandMapper.commandID(device("d", nil, nil), record(5, timestamp: 100)) == "iothub.d2c/2/5@100")
        #expect(
            CommandMapper.commandID(device("d", nil, nil), record(5, timestamp: 100))
                != CommandMapper.commandID(device("d", nil, nil), record(5, timestamp: 300)))
        #expect(CommandMapper.commandID(device("d", nil, nil), record(5, timestamp: nil)) == "iothub.d2c/2/5")
        let slashes = [("a/message/b", "c"), ("a", "b/message/c"), ("a%2Fmessage%2Fb", "c")].map {
            CommandMapper.commandID(device($0, $1, "2026-12-01T10:00:00Z"), record(1, timestamp: 1))
        }
        #expect(Set(slashes).count == 3, "\(slashes)")
        #expect(slashes[0] == "device/a%2Fmessage%2Fb/message/c/2026-12-01T10:00:00Z")
        #expect(
            CommandMapper.commandID(device("d", "x@5", nil), record(1, timestamp: nil))
                != CommandMapper.commandID(device("d", "x", nil), record(1, timestamp: 5)), "an @ in a part is encoded")
        #expect(
            CommandMapper.commandID(device("d", "1", "not a time"), record(5, timestamp: 100)) == "device/d/message/1@100",
            "an enqueued time that is not one is not taken")
    }

    /// A device ID goes into a query's string literal escaped, and not at all when a mark would join
    /// a quote or backslash into one character (twin-service reads queries by characters): such a
    /// literal would close early, and the rest of the ID would read as query text.
    @Test func deviceIDsAreQuotedSoTheyCannotEndTheirLiteral() {
        #expect(TwinDirectory.literal("dev-1") == "'dev-1'")
        #expect(TwinDirectory.literal(#"o'brien\x"#) == #"'o\'brien\\x'"#)
        #expect(TwinDirectory.literal("r\u{e4}ume\u{301}") != nil, "marks elsewhere are harmless")
        for joining in ["a\u{600}'", "a\u{600}\\", "'\u{301}", "\\\u{301}"] {
            #expect(TwinDirectory.literal(joining) == nil, "\(joining.unicodeScalars.map { String($0.value, radix: 16) })")
        }
    }

    @Test func theScannerReadsAsTheDecoderDoes() throws {
        var samples = try [
            "device-telemetry-data.json", "device-telemetry-base64-body.json", "device-telemetry-nan.json", "device-telemetry-string-value.json",
        ]
        .map { try Fixtures.file("iothub/\($0)") }
        samples += [
            #"{"body":{"Temperature":1},"systemProperties":{"x":[1,{"y":"\u00e9\n"}],"iothub-connection-device-id":"d"},"properties":{"p":true}}"#,
            #"{"body":{"Temperature":1}}"#, #"{"body":[1,2]}"#, #" { "body" : null } "#,
        ].map { Array($0.utf8) }
        for sample in samples {
            let scanned = try #require(DeviceMessageScanner.scan(sample, key: "key"), "\(String(decoding: sample, as: UTF8.self))")
            #expect(scanned.json.serialized() == (try DeviceMessage(decoding: sample, key: "key")).json.serialized())
        }
        #expect(
            DeviceMessageScanner.scan(try Fixtures.file("iothub/device-telemetry-eventgrid.json"), key: nil) == nil, "envelopes go to the decoder")
        for text in [#"{"body":{}}"#, #"{"systemProperties":{},"body":{}}"#, #"{"body":{},"body":{}}"#, #"{"body":{},}"#, "not json", ""] {
            #expect(DeviceMessageScanner.scan(Array(text.utf8), key: nil) == nil, "\(text)")
        }
        // Nesting at the codec's limit and one past it, counted from the message's own object.
        for levels in [510, 511, 512] {
            let nested = Array((#"{"body":"# + String(repeating: "[", count: levels) + String(repeating: "]", count: levels) + "}").utf8)
            let decoded = try? DeviceMessage(decoding: nested, key: "key")
            #expect((DeviceMessageScanner.scan(nested, key: "key") == nil) == (decoded == nil), "\(levels) levels")
            #expect((decoded == nil) == (levels == 512), "\(levels) levels")
        }
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array(#"{}[]":,\ 0-.eEtrufalsnNI"#.utf8)
        for _ in 0..<5000 {
            var damaged = samples.randomElement(using: &generator)!
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let position = Int.random(in: 0..<damaged.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: damaged.remove(at: position)
                case 1: damaged.insert(alphabet.randomElement(using: &generator)!, at: position)
                default: damaged[position] = alphabet.randomElement(using: &generator)!
                }
            }
            guard let scanned = DeviceMessageScanner.scan(damaged, key: "key") else { continue }
            let decoded = try? DeviceMessage(decoding: damaged, key: "key")
            // Compared as JSON text: NaN is not equal to itself.
            #expect(scanned.json.serialized() == decoded?.json.serialized(), "\(String(decoding: damaged, as: UTF8.self))")
        }
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
        (#"{"deviceIdProperty":"device-id"}"#, "deviceIdProperty"),
        (#"{"deviceIdProperty":"$dtId"}"#, "deviceIdProperty"),
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
