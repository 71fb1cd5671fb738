import Logging
import Testing

@testable import TwinflowRuntime

@Suite struct ServiceLogHandlerTests {
    @Test func linesKeepStreamLogHandlersLayoutWithSortedMetadata() {
        let event = LogEvent(
            level: .warning, message: "store checkpoint failed", metadata: nil, source: "TwinService", file: "", function: "", line: 0)
        let line = ServiceLogHandler.line(
            time: "2026-11-27T06:55:04.123Z", label: "twin-service", event: event, metadata: ["error": "busy", "attempt": "2"]
        )
        #expect(line == "2026-11-27T06:55:04.123Z warning twin-service: attempt=2 error=busy [TwinService] store checkpoint failed\n")
        let bare = ServiceLogHandler.line(time: "t", label: "x", event: event, metadata: [:])
        #expect(bare == "t warning x: [TwinService] store checkpoint failed\n")
    }

    @Test func metadataIsAValuePerLogger() {
        var first = Logger(label: "a") { label in ServiceLogHandler(label: label, logLevel: .info) }
        first[metadataKey: "request"] = "1"
        var second = first
        second[metadataKey: "request"] = "2"
        #expect(first[metadataKey: "request"] == "1")
        #expect(second[metadataKey: "request"] == "2")
        #expect(first.logLevel == .info)
    }
}
