import Foundation
import KafkaRecords
import Testing
import TwinflowCodec

@Suite struct TimeSeriesTimeTests {
    @Test(arguments: [
        "2026-11-26T17:00:00.123Z", "2026-11-26T17:00:00Z", "1970-01-01T00:00:00Z", "2024-02-29T23:59:59.999Z", "1969-12-31T23:59:59.5Z",
        "2026-11-26T18:30:00.1234567+01:30", "2026-11-26t17:00:00z", "2000-03-01T00:00:00-05:00",
    ])
    func readsAsFoundationDoes(text: String) throws {
        let expected = try #require(Timestamp.date(from: text.uppercased()))
        let milliseconds = try #require(TimeSeriesTime.milliseconds(from: text))
        #expect(milliseconds == Int64((expected.timeIntervalSince1970 * 1000).rounded(.down)))
    }

    @Test(arguments: [
        "yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-26T17:00:00", "2026-11-26T17:00:00.Z", "2026-11-26T25:00:00Z",
    ])
    func refusesWhatIsNotRFC3339(text: String) {
        #expect(TimeSeriesTime.milliseconds(from: text) == nil)
    }

    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00.000Z"), (1_795_712_400_123, "2026-11-26T17:00:00.123Z"), (-500, "1969-12-31T23:59:59.500Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"), (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
    ])
    func writesMillisecondsInUTC(milliseconds: Int64, text: String) {
        #expect(TimeSeriesTime.string(milliseconds: milliseconds) == text)
        #expect(TimeSeriesTime.milliseconds(from: text) == milliseconds)
    }

    /// An offset can carry a time past year 0000 or 9999, and a Kafka timestamp can be any number:
    /// such times are refused when read and written as the nearest end of the range, never
    /// with a sign or a fifth digit (a negative digit trapped before).
    @Test func timesOutsideTheYears0000To9999AreRefusedAndNeverWritten() {
        #expect(TimeSeriesTime.milliseconds(from: "0000-01-01T00:00:00+01:00") == nil)
        #expect(TimeSeriesTime.milliseconds(from: "9999-12-31T23:59:59-00:01") == nil)
        #expect(TimeSeriesTime.milliseconds(from: "0000-01-01T00:00:00Z") == TimeSeriesTime.representable.lowerBound)
        #expect(TimeSeriesTime.milliseconds(from: "9999-12-31T23:59:59.999Z") == TimeSeriesTime.representable.upperBound)
        #expect(TimeSeriesTime.string(milliseconds: TimeSeriesTime.representable.lowerBound - 1) == "0000-01-01T00:00:00.000Z")
        #expect(TimeSeriesTime.string(milliseconds: .min) == "0000-01-01T00:00:00.000Z")
        #expect(TimeSeriesTime.string(milliseconds: .max) == "9999-12-31T23:59:59.999Z")
    }

    @Test func theEventIDTravelsInAHeader() throws {
        let event = TimeSeriesEvent(twinID: "t1", timestamp: "2026-11-26T17:00:00.123Z", values: ["A.B": 1], id: "telemetry:m-1")
        let message = event.kafkaMessage(topic: "eventhub.tsi")
        #expect(message.headers.string(for: TimeSeriesEvent.idHeader) == "telemetry:m-1")
        let received = KafkaConsumerMessage(
            topic: message.topic, partition: 0, offset: 0, key: message.key, value: message.value, headers: message.headers, timestamp: nil)
        #expect(try TimeSeriesEvent(decoding: received) == event)
        #expect(event.milliseconds == 1_795_712_400_123)
    }
}
