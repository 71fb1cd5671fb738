import Logging
import ServiceLifecycle

/// Checkpoints the store every `interval` until shutdown, so that ingest never waits for a
/// checkpoint of its own (one that copies the whole write-ahead log).
struct CheckpointService: Service {
    var store: any TimeSeriesStore
    var interval: Duration
    var logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await store.checkpoint()
                } catch is CancellationError {
                    return
                } catch {
                    logger.warning("store checkpoint failed; the next one takes over", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
