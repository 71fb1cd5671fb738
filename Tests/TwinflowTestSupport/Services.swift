import Logging
import ServiceLifecycle

/// Runs `services` in a service group until `body` returns (or throws), then shuts them down
/// gracefully and waits for them to end.
public func withServices(_ services: [any Service], logger: Logger, _ body: () async throws -> Void) async throws {
    let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            try await body()
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}
