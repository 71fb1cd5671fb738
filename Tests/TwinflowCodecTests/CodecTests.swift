import Foundation
import KafkaRecords
import Testing
import TwinflowCodec
import TwinflowTestSupport

@Suite struct DeviceMessageTests {
    @Test func jsonPointersParseAndPrintEscapes() throws {
        #expect(try JSONPointer("/Temperature").tokens == ["Temperature"])
        #expect(try JSONPointer("/a//b/").tokens == ["a", "", "b", ""])
        #expect(try JSONPointer("/a~1b/c~0d/~01").tokens == ["a/b", "c~d", "~1"])
        #expect(try JSONPointer("/é/😀").tokens == ["é", "😀"])
        #expect(try JSONPointer("").isRoot)
        #expect(JSONPointer(tokens: ["a/b", "c~d", "plain"]).description == "/a~1b/c~0d/plain")
        for text in ["/Temperature", "/a~1b/c~0d/~01", "/x/0/-", "/"] {
            #expect(try JSONPointer(text).description == text)
        }
        #expect(throws: CodecError.self) { try JSONPointer("Temperature") }
        #expect(throws: CodecError.self) { try JSONPointer("/a~2") }
    }

    @Test func decodesJSONBody() throws {
        let text =
            #"{"systemProperties":{"iothub-connection-device-id":"thermo_0001","iothub-enqueuedtime":"2026-11-26T17:00:00Z"},"properties":{"unit":"C"},"body":{"Temperature":21.5}}"#
        let message = try DeviceMessage(decoding: Array(text.utf8))
        #expect(message.deviceID == "thermo_0001")
        #expect(message.enqueuedTime == "2026-11-26T17:00:00Z")
        #expect(message.properties["unit"] == "C")
        #expect(message.body == ["Temperature": 21.5])
    }

    @Test func decodesBase64Body() throws {
        let body = Data(#"{"Temperature":19}"#.utf8).base64EncodedString()
        let text = #"{"systemProperties":{"iothub-connection-device-id":"d1"},"body":"\#(body)"}"#
        let message = try DeviceMessage(decoding: Array(text.utf8))
        #expect(message.body == ["Temperature": 19])
        #expect(message.properties.isEmpty)
    }

    @Test func roundTrips() throws {
        let message = DeviceMessage(deviceID: "d2", enqueuedTime: "2026-01-01T00:00:00Z", properties: ["a": 1], body: ["Temperature": 20])
        let kafka = message.kafkaMessage(topic: Topics.defaults.deviceMessages)
        #expect(kafka.key == Array("d2".utf8))
        #expect(try DeviceMessage(decoding: kafka.value) == message)
    }

    @Test(arguments: [
        ("not json", "$"),
        (#"[1,2]"#, "$"),
        (#"{"body":{}}"#, "systemProperties"),
        (#"{"systemProperties":{},"body":{}}"#, "systemProperties.iothub-connection-device-id"),
        (#"{"systemProperties":{"iothub-connection-device-id":7},"body":{}}"#, "systemProperties.iothub-connection-device-id"),
        (#"{"systemProperties":{"iothub-connection-device-id":"d"}}"#, "body"),
        (#"{"systemProperties":{"iothub-connection-device-id":"d"},"body":"%%%"}"#, "body"),
        (#"{"systemProperties":{"iothub-connection-device-id":"d"},"body":"bm90IGpzb24="}"#, "body"),
        (#"{"systemProperties":{"iothub-connection-device-id":"d"},"properties":[],"body":{}}"#, "properties"),
    ])
    func namesTheBadField(text: String, field: String) {
        // A source time that is not a timestamp, or longer than 64 bytes, is left out; the command stays.
        #expect(TwinCommand.isSourceTime("2026-12-01T10:00:00." + String(repeating: "0", count: 40) + "Z"))
        #expect(!TwinCommand.isSourceTime("2026-12-01T10:00:00." + String(repeating: "0", count: 60) + "Z"))
        for time in ["yesterday", "2026-12-01T10:00:00." + String(repeating: "0", count: 60) + "Z"] {
            let command = try? TwinCommand(decoding: Array(#"{"id":"c","twinId":"t","telemetry":{},"sourceTime":"\#(time)"}"#.utf8))
            #expect(command != nil && command?.sourceTime == nil, "\(time.prefix(30))")
        }
        let timed = try? TwinCommand(decoding: Array(#"{"id":"c","twinId":"t","telemetry":{},"sourceTime":"2026-12-01T10:00:00Z"}"#.utf8))
        #expect(timed?.sourceTime == "2026-12-01T10:00:00Z")
        #expect(throws: CodecError.self) { try DeviceMessage(decoding: Array(text.utf8)) }
        do {
            _ = try DeviceMessage(decoding: Array(text.utf8))
        } catch {
            #expect(error.field == field, "\(error)")
            #expect(!error.reason.isEmpty)
        }
    }

    @Test func emptyValueIsAnError() {
        #expect(throws: CodecError.self) { try DeviceMessage(decoding: nil) }
    }
}

@Suite struct TwinCommandTests {
    @Test func roundTrips() throws {
        let command = TwinCommand(
            id: "cmd-1",
            twinID: "thermo_0001",
            patch: JSONPatch([.replace(path: try JSONPointer("/Temperature"), value: 21.5)]),
            telemetry: ["Temperature": 21.5],
            component: "sensor",
            sourceTime: "2026-11-26T17:00:00.000Z",
            causationID: "evt-9",
            hop: 2,
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        )
        let kafka = command.kafkaMessage(topic: Topics.defaults.twinCommands)
        #expect(kafka.key == Array("thermo_0001".utf8))
        #expect(try TwinCommand(decoding: kafka.value) == command)
    }

    @Test(arguments: [
        (#"{"twinId":"t","patch":[]}"#, "id"),
        (#"{"id":"c","patch":[]}"#, "twinId"),
        (#"{"id":"c","twinId":"t"}"#, "patch"),
        (#"{"id":"c","twinId":"t","patch":{}}"#, "patch"),
        (#"{"id":"c","twinId":"t","patch":[{"op":"add","value":1}]}"#, "patch[0].path"),
        (#"{"id":"c","twinId":"t","patch":[{"op":"jump","path":"/a"}]}"#, "patch[0].op"),
        (#"{"id":"c","twinId":"t","patch":[{"op":"add","path":"a","value":1}]}"#, "patch[0].path"),
        (#"{"id":"c","twinId":"t","telemetry":{},"hop":-1}"#, "hop"),
        // One more hop would overflow: refused, as is anything past the largest hop count.
        (#"{"id":"c","twinId":"t","telemetry":{},"hop":9223372036854775807}"#, "hop"),
        (#"{"id":"c","twinId":"t","telemetry":{},"hop":1000001}"#, "hop"),
        (#"{"id":"c","twinId":"t","telemetry":{},"sourceTime":5}"#, "sourceTime"),
    ])
    func namesTheBadField(text: String, field: String) {
        do {
            _ = try TwinCommand(decoding: Array(text.utf8))
            Issue.record("decoded \(text)")
        } catch {
            #expect(error.field == field, "\(error)")
        }
    }
}

@Suite struct CloudEventTests {
    /// ADT's documented Twin.Update example, as `ADT-EVENTS.md` restates it.
    static let adtUpdateExample =
        (try? Fixtures.file("adt-events/twin-update.json")).map { String(decoding: $0, as: UTF8.self) }
        ?? "the fixture Tests/Fixtures/adt-events/twin-update.json is missing"
    @Test func structuredModeMatchesADTExample() throws {
        let event = try CloudEvent(decoding: Array(Self.adtUpdateExample.utf8))
        #expect(event.attributes.type == "Microsoft.DigitalTwins.Twin.Update")
        #expect(event.attributes.sequence == "42")
        #expect(event.data?["patch"]?.arrayValue?.count == 1)
        let kafka = event.kafkaMessage(topic: Topics.defaults.twinEvents, key: "thermo_0001")
        #expect(kafka.headers == [KafkaHeader(key: "content-type", string: "application/cloudevents+json")])
        #expect(try JSONValue.parse(kafka.value!) == JSONValue.parse(Self.adtUpdateExample))
    }

    @Test func structuredModeRequiresAttributes() {
        for (text, field) in [
            (#"{"id":"1","type":"t","source":"s"}"#, "specversion"),
            (#"{"specversion":"0.3","id":"1","type":"t","source":"s"}"#, "specversion"),
            (#"{"specversion":"1.0","type":"t","source":"s"}"#, "id"),
            (#"{"specversion":"1.0","id":"1","type":"t","source":5}"#, "source"),
        ] {
            do {
                _ = try CloudEvent(decoding: Array(text.utf8))
                Issue.record("decoded \(text)")
            } catch {
                #expect(error.field == field, "\(error)")
            }
        }
    }

    @Test func binaryModeCarriesAttributesInHeaders() throws {
        let payload = Array(#"{"Temperature": 21.5 }"#.utf8)
        let event = BinaryCloudEvent(
            attributes: CloudEventAttributes(
                id: "msg-1",
                type: "microsoft.iot.telemetry",
                source: "twinflow.local/digitaltwins/thermo_0001",
                subject: "thermo_0001",
                time: "2026-11-26T17:00:00.123Z",
                dataSchema: "dtmi:contosocom:DigitalTwins:Thermostat;1",
                traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                sequence: "7"
            ),
            data: payload
        )
        let kafka = event.kafkaMessage(topic: Topics.defaults.telemetry, key: "thermo_0001")
        #expect(kafka.value == payload, "the payload travels exactly as sent")
        #expect(kafka.headers.string(for: "ce_type") == "microsoft.iot.telemetry")
        #expect(kafka.headers.string(for: "ce_subject") == "thermo_0001")
        #expect(kafka.headers.string(for: "ce_dataschema") == "dtmi:contosocom:DigitalTwins:Thermostat;1")
        #expect(kafka.headers.string(for: "ce_specversion") == "1.0")
        #expect(kafka.headers.string(for: "content-type") == "application/json")
        let received = KafkaConsumerMessage(topic: kafka.topic, partition: 0, offset: 0, key: kafka.key, value: kafka.value, headers: kafka.headers)
        #expect(try BinaryCloudEvent(decoding: received) == event)
    }

    @Test func binaryModeReadsExtensionsAndTheLastOfARepeatedHeader() throws {
        let headers = [
            ("ce_specversion", "1.0"), ("ce_id", "first"), ("ce_type", "microsoft.iot.telemetry"), ("ce_source", "s"),
            ("ce_telemetrysourcetime", "2026-11-26T17:00:00Z"), ("ce_datacontenttype", "text/plain"), ("other", "x"), ("ce_id", "second"),
            ("content-type", "application/json"), ("ce_", "no name"),
        ].map { KafkaHeader(key: $0.0, string: $0.1) }
        let event = try BinaryCloudEvent(
            decoding: KafkaConsumerMessage(topic: "t", partition: 0, offset: 0, key: nil, value: [1], headers: headers))
        #expect(event.attributes.id == "second")
        #expect(event.attributes.extensions == ["telemetrysourcetime": "2026-11-26T17:00:00Z"])
        #expect(event.attributes.dataContentType == "application/json", "the data's content type is the content-type header's")
        #expect(event.data == [1])
    }

    @Test func binaryModeNamesMissingHeader() {
        let message = KafkaConsumerMessage(
            topic: "t", partition: 0, offset: 0, key: nil, value: [], headers: [KafkaHeader(key: "ce_specversion", string: "1.0")])
        do {
            _ = try BinaryCloudEvent(decoding: message)
            Issue.record("decoded")
        } catch {
            #expect(error.field == "header ce_id")
        }
    }
}

@Suite struct TimeSeriesEventTests {
    @Test func isWrittenAsItsJSONWouldBe() throws {
        let event = TimeSeriesEvent(
            twinID: "thermo \"1\"", timestamp: "2026-11-26T17:00:00.123Z",
            values: ["Temperature": 21.5, "Front.Humidity": 40, "a": ["x", nil], "timestamp": "ignored", "Zone": "é"])
        #expect(event.serialized() == event.json.serialized())
        #expect(try JSONValue.parse(event.serialized())["timestamp"] == "2026-11-26T17:00:00.123Z")
    }

    @Test func flattensValues() throws {
        let event = TimeSeriesEvent(twinID: "thermo_0001", timestamp: "2026-11-26T17:00:00.123Z", values: ["Temperature": 21.5])
        let kafka = event.kafkaMessage(topic: Topics.defaults.timeSeries)
        #expect(kafka.key == Array("thermo_0001".utf8))
        #expect(try JSONValue.parse(kafka.value!) == ["$dtId": "thermo_0001", "timestamp": "2026-11-26T17:00:00.123Z", "Temperature": 21.5])
        #expect(try TimeSeriesEvent(decoding: kafka.value) == event)
    }

    @Test func rejectsBadTimestamp() {
        do {
            _ = try TimeSeriesEvent(decoding: Array(#"{"$dtId":"a","timestamp":"yesterday"}"#.utf8))
            Issue.record("decoded")
        } catch {
            #expect(error.field == "timestamp")
        }
    }
}

@Suite struct DeadLetterTests {
    @Test func keepsOriginalAndAddsReason() throws {
        let original = KafkaConsumerMessage(
            topic: "twins.commands", partition: 3, offset: 42, key: Array("t1".utf8), value: Array("garbage".utf8),
            headers: [KafkaHeader(key: "traceparent", string: "00-x")]
        )
        let letter = DeadLetter(service: "twin-service", reason: "$: not valid JSON", original: original)
        let kafka = letter.kafkaMessage(for: original, topic: Topics.defaults.deadLetter)
        #expect(kafka.topic == "deadletter")
        #expect(kafka.key == original.key)
        #expect(kafka.value == original.value)
        #expect(kafka.headers.first == original.headers.first)
        let received = KafkaConsumerMessage(topic: "deadletter", partition: 0, offset: 0, key: kafka.key, value: kafka.value, headers: kafka.headers)
        #expect(try DeadLetter(decoding: received) == letter)
        #expect(kafka.headers.string(for: DeadLetter.valueOmittedHeader) == nil)
    }

    /// A reason is kept to a kilobyte, cut at a character's end: it quotes what was refused, which
    /// can be as large as the message.
    @Test func aLongReasonIsCutAtACharacter() {
        let short = "no twin for device 'd'"
        #expect(DeadLetter.bounded(short) == short)
        for filler in ["d", "ä", "€", "😀"] {
            let long = "no twin for device '" + String(repeating: filler, count: 600_000) + "'"
            let bounded = DeadLetter(service: "ingress", reason: long, sourceTopic: "t", sourcePartition: 0, sourceOffset: 0).reason
            #expect(bounded.utf8.count <= DeadLetter.maximumReasonBytes && bounded.utf8.count > DeadLetter.maximumReasonBytes - 8, "\(filler)")
            #expect(bounded.hasSuffix("…"))
            #expect(long.hasPrefix(bounded.dropLast()), "\(filler)")
        }
    }

    /// A dead letter that would be too large for a producer's default message size goes without the
    /// original's value, saying how large it was: it is delivered, where the whole one would be refused.
    @Test func leavesOutAValueTooLargeToSend() throws {
        for (size, omitted) in [(DeadLetter.maximumBytes - 1000, false), (DeadLetter.maximumBytes + 1, true), (1_040_000, true)] {
            let original = KafkaConsumerMessage(
                topic: "iothub.d2c", partition: 0, offset: 7, key: Array("dev".utf8), value: Array(repeating: UInt8(ascii: "x"), count: size))
            let kafka = DeadLetter(service: "ingress", reason: "not JSON", original: original).kafkaMessage(for: original, topic: "deadletter")
            #expect(kafka.value == (omitted ? nil : original.value), "\(size)")
            #expect(kafka.headers.string(for: DeadLetter.valueOmittedHeader) == (omitted ? "\(size) bytes" : nil))
            #expect(kafka.key == original.key)
        }
    }
}

@Suite struct TopicsTests {
    @Test func overridesFromEnvironment() {
        let topics = Topics.fromEnvironment(["TWINFLOW_TOPIC_EVENTGRID_TWIN_EVENTS": "custom.events"])
        #expect(topics.twinEvents == "custom.events")
        #expect(topics.twinCommands == "twins.commands")
        #expect(Topics.variable(for: "iothub.d2c") == "TWINFLOW_TOPIC_IOTHUB_D2C")
        #expect(Topics.defaults.all.count == 6)
    }

    /// A name Kafka refuses, or one two roles share, is named with the variable that set it; the
    /// defaults, and any legal names of their own, pass.
    @Test func namesThatCannotServeAreRefused() {
        #expect(Topics.defaults.problem == nil)
        #expect(Topics.fromEnvironment(["TWINFLOW_TOPIC_EVENTHUB_TSI": "site-1.tsi_v2"]).problem == nil)
        for (name, legal) in [
            ("", false), (".", false), ("..", false), ("a b", false), ("tëst", false), (String(repeating: "t", count: 250), false),
            (String(repeating: "t", count: 249), true),
        ] {
            let problem = Topics.fromEnvironment(["TWINFLOW_TOPIC_TWINS_COMMANDS": name]).problem
            #expect((problem == nil) == legal, "\(name.prefix(20))")
            if !legal { #expect(problem?.variable == "TWINFLOW_TOPIC_TWINS_COMMANDS") }
        }
        let shared = Topics.fromEnvironment(["TWINFLOW_TOPIC_EVENTHUB_TSI": "eventhub.telemetry"]).problem
        #expect(shared?.variable == "TWINFLOW_TOPIC_EVENTHUB_TSI")
        #expect(shared?.expected == "a topic of its own, not TWINFLOW_TOPIC_EVENTHUB_TELEMETRY's")
    }
}

@Suite struct JSONPatchTests {
    @Test func errorNamesOperation() throws {
        let patch = try JSONPatch(json: JSONValue.parse(#"[{"op":"add","path":"/a","value":1},{"op":"remove","path":"/missing"}]"#))
        do {
            _ = try patch.apply(to: [:])
            Issue.record("applied")
        } catch {
            #expect(error.field == "patch[1]")
        }
    }

    @Test func serializesBack() throws {
        let text = #"[{"op":"move","from":"/a~1b","path":"/c~0d"}]"#
        let patch = try JSONPatch(json: JSONValue.parse(text))
        #expect(patch.json == (try JSONValue.parse(text)))
    }

    @Test func writesTheSameBytesAsItsJSON() throws {
        let text = #"""
            [{"op":"add","path":"/a","value":{"b":[1,2.5,"x\"y"]}},{"op":"remove","path":"/c"},{"op":"replace","path":"/d~1e","value":null},
             {"op":"move","from":"/a","path":"/f"},{"op":"copy","from":"/f","path":"/g"},{"op":"test","path":"/g","value":true}]
            """#
        let patch = try JSONPatch(json: JSONValue.parse(text))
        #expect(patch.serialized() == patch.json.serialized())
        #expect(JSONPatch([]).serialized() == Array("[]".utf8))
    }
}

/// ADT's notifications as a subscriber reads them.
struct TwinNotificationTests {
    static func update(_ patch: JSONValue, sequence: String? = "7", extensions: [String: String] = [:]) throws -> TwinNotification {
        let event = CloudEvent(
            attributes: CloudEventAttributes(
                id: "e1", type: "Microsoft.DigitalTwins.Twin.Update", source: "twinflow", subject: "thermo_0001", sequence: sequence,
                extensions: extensions),
            data: ["modelId": "dtmi:contosocom:DigitalTwins:Thermostat;1", "patch": patch])
        return try TwinNotification(decoding: event.json.serialized())
    }

    @Test func theFixturesUpdateReadsWithItsTwinModelSequenceAndPatch() throws {
        let notification = try TwinNotification(decoding: try Fixtures.file("adt-events/twin-update.json"))
        #expect(notification.hop == 0)
        guard case .twinUpdated(let patch) = notification.change else {
            Issue.record("not an update: \(notification.change)")
            return
        }
        #expect(patch.operations == [.replace(path: JSONPointer(tokens: ["Temperature"]), value: 21.5)])
        #expect(notification.modelID == "dtmi:contosocom:DigitalTwins:Thermostat;1")
        #expect(notification.twinID == "thermo_0001")
        #expect(notification.sequence == 42)
    }

    @Test func aValueIsSetByAddOrReplaceOfItOrOfAnObjectHoldingIt() throws {
        let temperature = JSONPointer(tokens: ["Front", "Temperature"])
        #expect(try Self.update([["op": "add", "path": "/Front/Temperature", "value": 21]]).value(at: temperature) == .set(21))
        #expect(try Self.update([["op": "replace", "path": "/Front", "value": ["Temperature": 22]]]).value(at: temperature) == .set(22))
        #expect(try Self.update([["op": "replace", "path": "/Front", "value": ["Humidity": 40]]]).value(at: temperature) == .removed)
        #expect(try Self.update([["op": "remove", "path": "/Front"]]).value(at: temperature) == .removed)
        #expect(try Self.update([["op": "replace", "path": "/Back/Temperature", "value": 1]]).value(at: temperature) == nil)
        #expect(
            try Self.update([["op": "add", "path": "/Front/Temperature/unit", "value": "C"]]).value(at: temperature) == .changedInside)
        #expect(try Self.update([["op": "move", "from": "/Front", "path": "/Back"]]).value(at: temperature) == .removed, "moved away")
        #expect(try Self.update([["op": "copy", "from": "/Back", "path": "/Front"]]).value(at: temperature) == .changedInside)
        #expect(try Self.update([["op": "test", "path": "/Front/Temperature", "value": 1]]).value(at: temperature) == nil, "a test changes nothing")
    }

    @Test func sequenceAndHopAreReadAndCheckedAsNumbers() throws {
        let notification = try Self.update([], extensions: [TwinNotification.hopExtension: "2"])
        #expect(notification.sequence == 7)
        #expect(notification.hop == 2)
        #expect(throws: CodecError.self) { try Self.update([], sequence: "seven") }
        #expect(throws: CodecError.self) { try Self.update([], extensions: [TwinNotification.hopExtension: "-1"]) }
        #expect(throws: CodecError.self) { try Self.update([], extensions: [TwinNotification.hopExtension: "9223372036854775807"]) }
        #expect(try Self.update([], extensions: [TwinNotification.hopExtension: "\(TwinCommand.maximumHop)"]).hop == TwinCommand.maximumHop)
        #expect(throws: CodecError.self) {
            try TwinNotification(decoding: Array(#"{"specversion":"1.0","id":"x","type":"Other","source":"s","subject":"t"}"#.utf8))
        }
    }

    @Test func aChildSpanKeepsTheTraceAndFlags() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let child = Traceparent.child(of: parent)
        #expect(Traceparent.isValid(child))
        #expect(child.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-") && child.hasSuffix("-01"))
        #expect(child != parent)
        #expect(Traceparent.isValid(Traceparent.child(of: "garbage")))
    }
}
