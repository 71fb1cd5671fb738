import KafkaRecords
import Testing
import TsiForwarder
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime
import TwinflowTestSupport

/// tsi-forwarder's mapping: telemetry and Twin.Update notifications into TSI events.
@Suite struct TimeSeriesMappingTests {
    static func telemetry(
        id: String = "m-1", twin: String = "thermo_0001", component: String? = nil, time: String? = "2026-11-26T10:00:00.000Z",
        sourceTime: String? = nil, payload: String = #"{"Temperature":21.5}"#, type: String = "microsoft.iot.telemetry"
    ) -> KafkaConsumerMessage {
        let event = BinaryCloudEvent(
            attributes: CloudEventAttributes(
                id: id, type: type, source: "twinflow.local/digitaltwins/\(twin)", subject: component, time: time,
                dataSchema: "dtmi:contosocom:DigitalTwins:Thermostat;1", extensions: sourceTime.map { ["telemetrysourcetime": $0] } ?? [:]),
            data: Array(payload.utf8))
        let message = event.kafkaMessage(topic: Topics.defaults.telemetry, key: twin)
        return KafkaConsumerMessage(
            topic: message.topic, partition: 0, offset: 7, key: message.key, value: message.value, headers: message.headers, timestamp: 1_000)
    }

    static func update(
        id: String = "u-1", twin: String = "thermo_0001", patch: JSONValue, time: String? = "2026-11-26T10:00:00.000Z"
    )
        -> KafkaConsumerMessage
    {
        let event = CloudEvent(
            attributes: CloudEventAttributes(
                id: id, type: "Microsoft.DigitalTwins.Twin.Update", source: "twinflow.local", subject: twin, time: time, sequence: "3"),
            data: ["modelId": "dtmi:contosocom:DigitalTwins:Thermostat;1", "patch": patch])
        let message = event.kafkaMessage(topic: Topics.defaults.twinEvents, key: twin)
        return KafkaConsumerMessage(topic: message.topic, partition: 0, offset: 9, key: message.key, value: message.value, headers: message.headers)
    }

    static func published(_ messages: [KafkaConsumerMessage]) throws -> (events: [TimeSeriesEvent], keys: [String], deadLetters: [String]) {
        let prepared = TsiForwarderHandler.map(messages, topics: .defaults)
        var events: [TimeSeriesEvent] = []
        var keys: [String] = []
        var deadLetters: [String] = []
        for message in prepared.messages {
            if message.topic == Topics.defaults.deadLetter {
                deadLetters.append(message.headers.string(for: DeadLetter.reasonHeader) ?? "")
                continue
            }
            #expect(message.topic == Topics.defaults.timeSeries)
            let received = KafkaConsumerMessage(
                topic: message.topic, partition: 0, offset: 0, key: message.key, value: message.value, headers: message.headers)
            events.append(try TimeSeriesEvent(decoding: received))
            keys.append(String(decoding: message.key ?? [], as: UTF8.self))
        }
        return (events, keys, deadLetters)
    }

    @Test func telemetryBecomesAnEventKeyedByTheTwinWithTheSourceTime() throws {
        let (events, keys, deadLetters) = try Self.published([
            Self.telemetry(
                sourceTime: "2026-11-26T09:59:58.5+00:00",
                payload: #"{"Temperature":21.5,"Front":{"Temperature":5,"Door":{"Open":true}},"Empty":{},"Gone":null}"#)
        ])
        #expect(deadLetters.isEmpty)
        #expect(keys == ["thermo_0001"])
        #expect(
            events == [
                TimeSeriesEvent(
                    twinID: "thermo_0001", timestamp: "2026-11-26T09:59:58.500Z",
                    values: ["Temperature": 21.5, "Front.Temperature": 5, "Front.Door.Open": true], id: "telemetry/m-1")
            ])
    }

    @Test func withoutASourceTimeTheEventTimeCountsAndWithoutEitherTheKafkaTimestamp() throws {
        let (events, _, _) = try Self.published([Self.telemetry(), Self.telemetry(id: "m-2", time: nil)])
        #expect(events.map(\.timestamp) == ["2026-11-26T10:00:00.000Z", "1970-01-01T00:00:01.000Z"])
    }

    /// An event with no time of any kind is refused: a time from the clock would differ when the
    /// event is delivered again, and the store would keep it twice.
    @Test func anEventWithNoTimeAtAllIsDeadLettered() throws {
        var telemetry = Self.telemetry(id: "m-3", time: nil)
        telemetry.timestamp = nil
        var update = Self.update(id: "u-2", patch: [["op": "replace", "path": "/Temperature", "value": 1]], time: nil)
        update.timestamp = nil
        let (events, _, deadLetters) = try Self.published([telemetry, update])
        #expect(events.isEmpty)
        #expect(deadLetters == [TimeSeriesMapping.noTime, TimeSeriesMapping.noTime])
    }

    /// A time that RFC 3339 cannot write (an offset past year 0000, a Kafka timestamp a producer
    /// set below zero) is a dead letter with its reason; writing it trapped the service before,
    /// on every redelivery of the same message.
    @Test func aTimeOutsideTheYears0000To9999IsDeadLettered() throws {
        var fromKafka = Self.telemetry(id: "m-4", time: nil)
        fromKafka.timestamp = TimeSeriesTime.representable.lowerBound - 1
        var update = Self.update(id: "u-3", patch: [["op": "replace", "path": "/Temperature", "value": 1]], time: nil)
        update.timestamp = 253_402_300_800_000
        let (events, _, deadLetters) = try Self.published([
            Self.telemetry(id: "m-5", sourceTime: "0000-01-01T00:00:00+01:00"), fromKafka, update, Self.telemetry(id: "m-6"),
        ])
        #expect(events.map(\.id) == ["telemetry/m-6"])
        #expect(
            deadLetters == [
                "telemetrysourcetime '0000-01-01T00:00:00+01:00' is not an RFC 3339 time from year 0000 to 9999",
                "the Kafka timestamp -62167219200001 is not a time from year 0000 to 9999, and the event has no other time",
                "the Kafka timestamp 253402300800000 is not a time from year 0000 to 9999, and the event has no other time",
            ])
    }

    @Test func aComponentsTelemetryBelongsToItsTwin() throws {
        let (events, keys, _) = try Self.published([Self.telemetry(component: "thermostat1")])
        #expect(events.map(\.twinID) == ["thermo_0001"])
        #expect(keys == ["thermo_0001"])
        #expect(TimeSeriesMapping.twinID(source: "elsewhere", subject: "room-1", key: nil) == "room-1")
    }

    @Test func theTwinIDIsTheSegmentAfterDigitalTwinsOrElseTheSubjectOrElseTheKey() {
        #expect(TimeSeriesMapping.twinID(source: "h.local/digitaltwins/thermo_1/components/c", subject: "x", key: "y") == "thermo_1")
        #expect(TimeSeriesMapping.twinID(source: "/digitaltwins/räume-1", subject: nil, key: nil) == "räume-1")
        #expect(TimeSeriesMapping.twinID(source: "h/a/digitaltwin/b/digitaltwins/c", subject: nil, key: nil) == "c")
        #expect(TimeSeriesMapping.twinID(source: "h.local/digitaltwins/", subject: "room-1", key: "k") == "room-1")
        #expect(TimeSeriesMapping.twinID(source: "digitaltwins/a", subject: "", key: "k") == "k")
        #expect(TimeSeriesMapping.twinID(source: "/digitaltwins", subject: nil, key: nil) == nil)
        // A twin ID with `/` in it: the key, which the source ends with.
        #expect(TimeSeriesMapping.twinID(source: "h.local/digitaltwins/site/a", subject: nil, key: "site/a") == "site/a")
        #expect(TimeSeriesMapping.twinID(source: "h.local/digitaltwins/site/b", subject: "c", key: "site/b") == "site/b")
        #expect(
            TimeSeriesMapping.twinID(source: "h.local/digitaltwins/x/site/a", subject: nil, key: "site/a") == "x",
            "the key is only the rest after the marker")
    }

    /// A change of the twin's model (`/$metadata/$model`) is not a value.
    @Test func twinUpdatesKeepAddAndReplaceWithFlattenedPaths() throws {
        let (events, keys, deadLetters) = try Self.published([
            Self.update(patch: [
                ["op": "replace", "path": "/Front/Temperature", "value": 19.5],
                ["op": "add", "path": "/Humidity", "value": 40],
                ["op": "remove", "path": "/Old"],
                ["op": "add", "path": "/Back", "value": ["Temperature": 18, "Fan": ["Speed": 2]]],
            ]),
            Self.update(id: "u-2", patch: [["op": "remove", "path": "/Humidity"]]),
            Self.update(id: "u-3", patch: [["op": "replace", "path": "/$metadata/$model", "value": "dtmi:example:building:Room;1"]]),
        ])
        #expect(deadLetters.isEmpty)
        #expect(keys == ["thermo_0001"])
        #expect(
            events == [
                TimeSeriesEvent(
                    twinID: "thermo_0001", timestamp: "2026-11-26T10:00:00.000Z",
                    values: ["Front.Temperature": 19.5, "Humidity": 40, "Back.Temperature": 18, "Back.Fan.Speed": 2], id: "update/u-1")
            ])
    }

    /// A route may send other events to the twin-events topic (ADT's catch-all route sends telemetry
    /// there, structured): they are passed over and counted, not dead-lettered.
    @Test func otherEventsOnTheTwinEventsTopicAreIgnored() throws {
        let telemetry = CloudEvent(
            attributes: CloudEventAttributes(
                id: "t-1", type: "microsoft.iot.telemetry", source: "twinflow.local/digitaltwins/thermo_0001", time: "2026-11-26T10:00:00.000Z"),
            data: ["Temperature": 21.5]
        ).kafkaMessage(topic: Topics.defaults.twinEvents, key: "thermo_0001")
        let messages = [
            KafkaConsumerMessage(topic: telemetry.topic, partition: 0, offset: 8, key: telemetry.key, value: telemetry.value),
            Self.update(patch: [["op": "replace", "path": "/Temperature", "value": 19.5]]),
        ]
        let prepared = TsiForwarderHandler.map(messages, topics: .defaults)
        #expect(prepared.counts.ignored == 1 && prepared.counts.deadLettered == 0 && prepared.counts.twinUpdates == 1, "\(prepared.counts)")
        #expect(prepared.messages.map(\.topic) == [Topics.defaults.timeSeries])
    }

    @Test func badEventsGoToTheDeadLettersWithTheReason() throws {
        var notACloudEvent = Self.telemetry()
        notACloudEvent.headers.removeAll { $0.key == "ce_id" }
        let (events, _, deadLetters) = try Self.published([
            notACloudEvent, Self.telemetry(payload: "[1,2]"), Self.telemetry(payload: "{not json"),
            Self.telemetry(sourceTime: "yesterday"), Self.telemetry(type: "Microsoft.DigitalTwins.Twin.Create"),
        ])
        #expect(events.isEmpty)
        #expect(deadLetters.count == 4)
        #expect(deadLetters[0].contains("ce_id"))
        #expect(deadLetters[1].contains("JSON object"))
        #expect(deadLetters[2].contains("not JSON"))
        #expect(deadLetters[3].contains("telemetrysourcetime"))
    }

    @Test func aRepeatOfTheSourceEventHasTheSameID() throws {
        let (events, _, _) = try Self.published([Self.telemetry(), Self.telemetry()])
        #expect(events.count == 2)
        #expect(events[0].id == events[1].id)
    }

    @Test func aLargeBatchMappedInPartsKeepsItsOrder() async throws {
        let messages = (0..<5000).map { index in
            index % 997 == 0
                ? Self.telemetry(id: "bad-\(index)", payload: "[]")
                : Self.telemetry(id: "m-\(index)", twin: "thermo-\(index % 7)", payload: #"{"Temperature":"# + "\(index)}")
        }
        let kafka = try MockKafka()
        let producer = try kafka.makeProducer()
        let handler = TsiForwarderHandler(
            producer: producer, topics: .defaults, counters: TsiForwarderCounters(service: "tsi_forwarder"), mappingParts: 4, logger: kafka.logger)
        let prepared = try await handler.prepare(KafkaConsumerBatch(messages: messages))
        let whole = TsiForwarderHandler.map(messages, topics: .defaults)
        // Dead letters carry the time they were made; the rest must be equal.
        func shape(_ message: KafkaProducerMessage) -> [[UInt8]] {
            [
                Array(message.topic.utf8), message.key ?? [], message.value ?? [],
                Array((message.headers.string(for: TimeSeriesEvent.idHeader) ?? "").utf8),
            ]
        }
        let same = prepared.messages.map(shape) == whole.messages.map(shape)
        #expect(same, "the parts' outputs joined in the batch's order")
        #expect(prepared.counts == whole.counts)
        #expect(prepared.counts.telemetry == 4994 && prepared.counts.deadLettered == 6)
        #expect(prepared.inputs == whole.inputs)
        #expect(prepared.inputs == Array(0..<5000), "every input has one output, in order")
    }

    /// A telemetry event that grows past the producer's message size as a time-series event is
    /// dead-lettered in its place; the events around it are published.
    @Test func anEventTooLargeToPublishIsDeadLetteredInItsPlace() async throws {
        let kafka = try MockKafka()
        let topics = Topics.defaults
        try kafka.cluster.createTopic(topics.timeSeries, partitions: 1)
        try kafka.cluster.createTopic(topics.deadLetter, partitions: 1)
        let large = #"{"Temperature":1,"note":""# + String(repeating: "x", count: 1_000_100) + #""}"#
        let messages = [
            Self.telemetry(id: "m-1", payload: #"{"Temperature":20}"#), Self.telemetry(id: "m-2", payload: large),
            Self.telemetry(id: "m-3", payload: #"{"Temperature":22}"#),
        ]
        let producer = try kafka.makeProducer()
        let counters = TsiForwarderCounters(service: "tsi_forwarder")
        let handler = TsiForwarderHandler(producer: producer, topics: topics, counters: counters, logger: kafka.logger)
        let batch = KafkaConsumerBatch(messages: messages)
        try await handler.handle(batch, try await handler.prepare(batch))

        let reader = try TopicReader(kafka: kafka.configuration, topics: [topics.timeSeries, topics.deadLetter], logger: kafka.logger)
        let events = try await reader.waitFor(4, on: topics.timeSeries)
        let letters = try await reader.waitFor(1, on: topics.deadLetter)
        #expect(
            try events.map { try TimeSeriesEvent(decoding: $0).id } == ["telemetry/m-1", "telemetry/m-3", "telemetry/m-1", "telemetry/m-3"],
            "the batch once (all but the refused event), then one event at a time")
        #expect(letters.count == 1)
        let letter = try DeadLetter(decoding: try #require(letters.first))
        #expect(letter.reason.hasPrefix("the broker refused its output to \(topics.timeSeries)"), "\(letter.reason)")
        #expect(letters.first?.headers.string(for: BinaryCloudEvent.headerPrefix + "id") == "m-2")
        #expect(counters.current.telemetry == 2 && counters.current.deadLettered == 1)
        try await reader.stop()
        await producer.shutdown()
    }
}
