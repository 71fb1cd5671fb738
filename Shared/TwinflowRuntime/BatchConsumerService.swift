import Logging
import ServiceLifecycle
import TwinflowKafka

/// The loop every consuming service runs: take a batch, act on it, store its offsets.
///
/// A batch is handled in two steps: `prepare` (decoding, and work with no effect outside the
/// process) and `handle`. The next batch is taken and prepared while the one before it is still
/// being handled, so the two steps overlap; batches are handled, and their offsets stored, strictly
/// in order.
///
/// `handle` must deliver or commit every output of the batch before it returns (dead-lettering what
/// it cannot use); only then are the batch's offsets stored. When a step throws, it is run again on
/// the same batch after a back-off, so nothing is skipped; ``retries`` tells which step keeps failing
/// or has been running long (``Readiness/registerBatches(_:notReadyAfter:hangLimit:)`` reports both).
/// On graceful shutdown it stops taking batches, finishes the ones in hand, stores them, commits and leaves the group; a batch still
/// failing then is given up unstored (it is delivered again after the restart), and so are those
/// after it, so that shutdown never waits on a downstream that is gone.
public struct BatchConsumerService<Prepared: Sendable>: Service {
    public typealias Preparer = @Sendable (KafkaConsumerBatch) async throws -> Prepared
    public typealias Handler = @Sendable (KafkaConsumerBatch, Prepared) async throws -> Void

    private let consumer: KafkaConsumer
    private let prepare: Preparer
    private let handle: Handler
    private let logger: Logger
    private let maximumBackoff: Duration
    /// The steps failing now.
    public let retries = BatchRetries()

    /// A service whose batches are prepared (while the batch before is handled), then handled.
    public init(
        consumer: KafkaConsumer, logger: Logger, maximumBackoff: Duration = .seconds(5), prepare: @escaping Preparer,
        handle: @escaping Handler
    ) {
        self.consumer = consumer
        self.prepare = prepare
        self.handle = handle
        self.logger = logger
        self.maximumBackoff = maximumBackoff
    }

    /// A service whose batches need no preparing.
    public init(
        consumer: KafkaConsumer, logger: Logger, maximumBackoff: Duration = .seconds(5),
        handle: @escaping @Sendable (KafkaConsumerBatch) async throws -> Void
    ) where Prepared == Void {
        self.init(
            consumer: consumer, logger: logger, maximumBackoff: maximumBackoff, prepare: { _ in () }, handle: { batch, _ in try await handle(batch) })
    }

    public func run() async throws {
        do {
            try await withGracefulShutdownHandler {
                try await consumeUntilStopped()
            } onGracefulShutdown: { [consumer] in
                consumer.stopConsuming()
            }
        } catch let stopped as StoppedWhileFailing {
            await consumer.close()
            logger.warning(
                "stopped with a batch still failing; it is delivered again after the restart",
                metadata: ["step": "\(stopped.step)", "messages": "\(stopped.messages)"])
            return
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
        logger.info("consumer stopped and left its group")
    }

    /// A step given up at shutdown: its batch, and any after it, are left unstored.
    struct StoppedWhileFailing: Error {
        var step: String
        var messages: Int
    }

    private func consumeUntilStopped() async throws {
        try await withThrowingTaskGroup(of: Void.self) { handling in
            var batchInHand = false
            while let batch = try await nextBatch() {
                let prepared: Prepared
                do {
                    prepared = try await untilDone(batch, step: "prepare") { try await prepare(batch) }
                } catch let stopped as StoppedWhileFailing {
                    // The batch before may still be handled and stored; this one and the rest are not.
                    try await handling.waitForAll()
                    throw stopped
                }
                if batchInHand { try await handling.next() }
                handling.addTask {
                    do {
                        try await untilDone(batch, step: "handle") { try await handle(batch, prepared) }
                        try consumer.store(batch)
                    } catch {
                        // The loop may be waiting for a batch: stop taking any, so this error ends it now.
                        consumer.stopConsuming()
                        throw error
                    }
                }
                batchInHand = true
            }
            try await handling.waitForAll()
        }
    }

    private func nextBatch() async throws -> KafkaConsumerBatch? {
        while true {
            do {
                return try await consumer.nextBatch()
            } catch {
                guard error.code == .maxPollIntervalExceeded else { throw error }
                logger.error("evicted from the group for exceeding max.poll.interval.ms; rejoining", metadata: ["error": .error(error)])
            }
        }
    }

    /// Retries until the step succeeds; gives up when the task is cancelled, or when the step fails
    /// during graceful shutdown (``StoppedWhileFailing``); the batch is then not stored, so it is
    /// delivered again.
    private func untilDone<Result: Sendable>(
        _ batch: KafkaConsumerBatch, step: String, _ body: () async throws -> Result
    ) async throws -> Result {
        var backoff = Duration.milliseconds(100)
        while true {
            do {
                retries.noteStarted(step: step, messages: batch.count)
                let result = try await body()
                retries.noteSuccess(step: step)
                return result
            } catch {
                try Task.checkCancellation()
                retries.noteFailure(step: step, messages: batch.count, error: error)
                if Task.isShuttingDownGracefully { throw StoppedWhileFailing(step: step, messages: batch.count) }
                logger.error(
                    "batch failed; it will be handled again",
                    metadata: ["error": .error(error), "step": "\(step)", "messages": "\(batch.count)", "retryIn": "\(backoff)"]
                )
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, maximumBackoff)
            }
        }
    }
}
