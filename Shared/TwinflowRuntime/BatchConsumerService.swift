import Logging
import ServiceLifecycle
import TwinflowKafka

/// The loop every consuming service runs: take a batch, act on it, store its offsets.
///
/// `handle` must deliver or commit every output of the batch before it returns (dead-lettering what
/// it cannot use); only then are the batch's offsets stored. When `handle` throws, the same batch is
/// handed to it again after a back-off, so nothing is skipped. On graceful shutdown it stops taking
/// batches, finishes the one in hand, stores it, commits and leaves the group.
public struct BatchConsumerService: Service {
    public typealias Handler = @Sendable (KafkaConsumerBatch) async throws -> Void

    private let consumer: KafkaConsumer
    private let handle: Handler
    private let logger: Logger
    private let maximumBackoff: Duration

    public init(consumer: KafkaConsumer, logger: Logger, maximumBackoff: Duration = .seconds(5), handle: @escaping Handler) {
        self.consumer = consumer
        self.handle = handle
        self.logger = logger
        self.maximumBackoff = maximumBackoff
    }

    public func run() async throws {
        do {
            try await withGracefulShutdownHandler {
                try await consumeUntilStopped()
            } onGracefulShutdown: { [consumer] in
                consumer.stopConsuming()
            }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
        logger.info("consumer stopped and left its group")
    }

    private func consumeUntilStopped() async throws {
        while true {
            let batch: KafkaConsumerBatch?
            do {
                batch = try await consumer.nextBatch()
            } catch {
                guard error.code == .maxPollIntervalExceeded else { throw error }
                logger.error("evicted from the group for exceeding max.poll.interval.ms; rejoining", metadata: ["error": "\(error)"])
                continue
            }
            guard let batch else { return }
            try await handleUntilDone(batch)
            try consumer.store(batch)
        }
    }

    /// Retries until the batch is handled; gives up only when the task is cancelled (the batch is
    /// then not stored, so it is delivered again).
    private func handleUntilDone(_ batch: KafkaConsumerBatch) async throws {
        var backoff = Duration.milliseconds(100)
        while true {
            do {
                try await handle(batch)
                return
            } catch {
                try Task.checkCancellation()
                logger.error("batch failed; it will be handled again", metadata: ["error": "\(error)", "messages": "\(batch.count)", "retryIn": "\(backoff)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, maximumBackoff)
            }
        }
    }
}
