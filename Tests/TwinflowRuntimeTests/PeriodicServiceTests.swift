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
}
