import Foundation
import Logging
import ServiceLifecycle
import TwinflowRuntime

/// Deletes what is older than the retention every `interval`, until shutdown.
struct RetentionService: Service {
    var store: any TimeSeriesStore
    var interval: Duration
    var counters: TsiStoreCounters
    var logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let deleted = try await store.applyRetention(now: Int64(Date().timeIntervalSince1970 * 1000))
                    counters.add(TsiStoreCounts(retainedEventsDeleted: deleted.events, retainedRollupsDeleted: deleted.rollups))
                    if deleted.events + deleted.rollups > 0 {
                        logger.info("retention", metadata: ["deletedEvents": "\(deleted.events)", "deletedRollups": "\(deleted.rollups)"])
                    }
                } catch {
                    logger.error("retention failed; it runs again later", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
