import Logging
import ServiceLifecycle

/// Runs `work` every `interval` until shutdown: a failed run is logged and the next one tries
/// again; shutdown cancels a run in progress.
public struct PeriodicService: Service {
    public var name: String
    public var interval: Duration
    public var logger: Logger
    public var work: @Sendable () async throws -> Void

    /// `name` says what the work is in the log (`retention`, `store checkpoint`).
    public init(_ name: String, every interval: Duration, logger: Logger, work: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.interval = interval
        self.logger = logger
        self.work = work
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await work()
                } catch is CancellationError {
                    return
                } catch {
                    // Shutdown interrupted the run: a store reports that as its own error (SQLite's "interrupted").
                    if Task.isCancelled { return }
                    logger.error("\(name) failed; it runs again later", metadata: ["error": .error(error)])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
