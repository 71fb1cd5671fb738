import Logging
import Synchronization
import Testing
import TwinflowRuntime
import TwinflowTestSupport

@Suite struct PeriodicServiceTests {
    struct Refused: Error {}

    /// A failing run is logged and the next one goes ahead; cancelling the service ends it.
    @Test func goesOnAfterAFailedRunUntilCancelled() async throws {
        let runs = Mutex((all: 0, failed: 0))
        let service = PeriodicService("work", every: .milliseconds(10), logger: Logger(label: "test")) {
            let first = runs.withLock { runs in
                runs.all += 1
                return runs.all == 1
            }
            if first {
                runs.withLock { $0.failed += 1 }
                throw Refused()
            }
        }
        let running = Task { try await service.run() }
        #expect(await eventually(timeout: .seconds(10)) { runs.withLock { $0.all } >= 3 })
        #expect(runs.withLock { $0.failed } == 1, "the first run failed")
        running.cancel()
        try await running.value
        let after = runs.withLock { $0.all }
        try await Task.sleep(for: .milliseconds(100))
        #expect(runs.withLock { $0.all } == after, "no run after the service ended")
    }

    /// A run that shutdown interrupts, and that reports it as an error of its own (as a store
    /// does), ends the service without an error in the log.
    @Test func aRunInterruptedByShutdownIsNotLoggedAsAFailure() async throws {
        let errors = Shared<[String]>([])
        let started = Mutex(false)
        var logger = Logger(label: "test") { _ in CountingLogHandler(errors: errors) }
        logger.logLevel = .trace
        let service = PeriodicService("work", every: .seconds(60), logger: logger) {
            started.withLock { $0 = true }
            try? await Task.sleep(for: .seconds(60))
            throw Refused()
        }
        let running = Task { try await service.run() }
        #expect(await eventually(timeout: .seconds(10)) { started.withLock { $0 } })
        running.cancel()
        try await running.value
        #expect(errors.value.isEmpty, "\(errors.value)")
    }
}

/// Keeps the messages logged at error level and above.
private struct CountingLogHandler: LogHandler {
    let errors: Shared<[String]>
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        if event.level >= .error { errors.withLock { $0.append("\(event.message)") } }
    }
}
