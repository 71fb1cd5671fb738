import CRDKafka
import Dispatch
import Foundation
import Logging
import Synchronization

/// The consumer's thread: it alone calls librdkafka's blocking consumer functions (subscribe,
/// `rd_kafka_consumer_poll`, a synchronous commit, `rd_kafka_consumer_close`), one request at a time.
/// A commit asked for while a batch request waits for messages is served between polls.
final class ConsumerLoop: Sendable {
    enum Request: Sendable {
        case batch(id: UInt64, CheckedContinuation<Result<KafkaConsumerBatch?, KafkaError>, Never>)
        case commit(CheckedContinuation<Result<Void, KafkaError>, Never>)
        /// Without a continuation when the consumer was released without being closed.
        case close(CheckedContinuation<Void, Never>?)
    }

    private struct State {
        var requests: [Request] = []
        var nextRequestID: UInt64 = 1
        var lastAnsweredBatch: UInt64 = 0
        var cancelledBatches: Set<UInt64> = []
        var closeRequested = false
        var stopRequested = false
        var closed = false
    }

    private let client: RDKafkaClient
    private let topics: [String]
    private let startOffsets: [KafkaTopicPartition: Int64]?
    private let maxBatchSize: Int
    /// The group's view of the assignment; `nil` when reading partitions assigned from start offsets.
    private let membership: GroupMembership?
    private let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)
    // The consumer queue (`rd_kafka_queue_get_consumer`); polled only on this loop's thread.
    nonisolated(unsafe) private let consumerQueue: OpaquePointer

    init(
        client: RDKafkaClient, topics: [String], startOffsets: [KafkaTopicPartition: Int64]?, maxBatchSize: Int, membership: GroupMembership?
    ) {
        self.client = client
        self.membership = membership
        self.topics = topics
        self.startOffsets = startOffsets
        self.maxBatchSize = maxBatchSize
        self.consumerQueue = rd_kafka_queue_get_consumer(client.handle)
    }

    deinit {
        rd_kafka_queue_destroy(consumerQueue)
    }

    /// Starts the thread; it subscribes first, and a refused subscription is the first request's answer.
    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "twinflow-consumer"
        thread.start()
    }

    func makeRequestID() -> UInt64 {
        state.withLock { state in
            defer { state.nextRequestID += 1 }
            return state.nextRequestID
        }
    }

    func submit(_ request: Request) {
        let accepted = state.withLock { state in
            if case .close = request { state.closeRequested = true }
            guard !state.closed else { return false }
            state.requests.append(request)
            return true
        }
        if accepted {
            wakeup.signal()
        } else {
            Self.answerClosed(request)
        }
    }

    /// From now on a waiting or new batch request returns `nil` as soon as no message is in hand.
    func stopConsuming() {
        state.withLock { $0.stopRequested = true }
    }

    func cancelBatch(id: UInt64) {
        state.withLock { state in
            if id > state.lastAnsweredBatch { state.cancelledBatches.insert(id) }
        }
    }

    private func run() {
        // Errors that arrived while a batch already held messages (or a refused subscription);
        // reported by the next batch request.
        var deferredError: KafkaError? = subscribe()
        while true {
            wakeup.wait()
            guard let request = state.withLock({ $0.requests.isEmpty ? nil : $0.requests.removeFirst() }) else { continue }
            switch request {
            case .batch(let id, let continuation):
                if let error = deferredError {
                    deferredError = nil
                    continuation.resume(returning: .failure(error))
                } else {
                    let (result, laterError) = pollBatch(id: id)
                    deferredError = laterError
                    continuation.resume(returning: result)
                }
                state.withLock { state in
                    state.lastAnsweredBatch = id
                    state.cancelledBatches.remove(id)
                }
            case .commit(let continuation):
                continuation.resume(returning: commitStored())
            case .close(let continuation):
                close()
                continuation?.resume()
                return
            }
        }
    }

    private func subscribe() -> KafkaError? {
        if let startOffsets { return assign(startOffsets) }
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics {
            rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA)
        }
        let err = rd_kafka_subscribe(client.handle, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            return .rdkafka(.consume, err, message: "subscribe to \(topics): \(String(cString: rd_kafka_err2str(err)))")
        }
        return nil
    }

    /// Reads the given partitions from the given offsets, outside any group.
    private func assign(_ offsets: [KafkaTopicPartition: Int64]) -> KafkaError? {
        let list = rd_kafka_topic_partition_list_new(Int32(offsets.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (topicPartition, offset) in offsets {
            rd_kafka_topic_partition_list_add(list, topicPartition.topic, topicPartition.partition).pointee.offset = offset
        }
        let err = rd_kafka_assign(client.handle, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            return .rdkafka(.consume, err, message: "assign \(offsets.count) partitions: \(String(cString: rd_kafka_err2str(err)))")
        }
        return nil
    }

    private func commitStored() -> Result<Void, KafkaError> {
        if startOffsets != nil { return .success(()) }
        let err = rd_kafka_commit(client.handle, nil, 0)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET else {
            return .failure(.rdkafka(.commit, err))
        }
        return .success(())
    }

    /// Commits what was stored, leaves the group, and answers every request still queued.
    ///
    /// The final commit is sent without waiting for its answer, and `rd_kafka_consumer_close` waits
    /// for it while it leaves the group: that wait is bounded (by about `session.timeout.ms`), where
    /// a synchronous commit to a broker that is gone would wait for ever and hang the shutdown.
    private func close() {
        if startOffsets == nil {
            let err = rd_kafka_commit(client.handle, nil, 1)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET {
                client.logger.error("final commit failed", metadata: ["error": "\(KafkaError.rdkafka(.commit, err))"])
            }
        }
        let err = rd_kafka_consumer_close(client.handle)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            client.logger.error("consumer close failed", metadata: ["error": "\(KafkaError.rdkafka(.commit, err))"])
        }
        let remaining = state.withLock { state in
            state.closed = true
            defer { state.requests = [] }
            return state.requests
        }
        remaining.forEach(Self.answerClosed)
    }

    private func shouldStopWaiting(batch id: UInt64) -> Bool {
        state.withLock { $0.closeRequested || $0.stopRequested || $0.cancelledBatches.contains(id) }
    }

    /// Serves commit requests queued behind the batch request that is waiting for messages.
    private func serveQueuedCommits() {
        let commits: [CheckedContinuation<Result<Void, KafkaError>, Never>] = state.withLock { state in
            var commits: [CheckedContinuation<Result<Void, KafkaError>, Never>] = []
            state.requests.removeAll { request in
                guard case .commit(let continuation) = request else { return false }
                commits.append(continuation)
                return true
            }
            return commits
        }
        for continuation in commits {
            continuation.resume(returning: commitStored())
        }
    }

    /// Polls until at least one message arrived, then takes what is ready, up to the batch size,
    /// in one call.
    private func pollBatch(id: UInt64) -> (Result<KafkaConsumerBatch?, KafkaError>, KafkaError?) {
        while true {
            var first: UnsafeMutablePointer<rd_kafka_message_t>?
            var rebalancesBefore: UInt64 = 0
            while first == nil {
                if shouldStopWaiting(batch: id) { return (.success(nil), nil) }
                serveQueuedCommits()
                first = rd_kafka_consumer_poll(client.handle, 100)
                // A rebalance served by this poll came before `first`; one served by the drain below may come after it.
                rebalancesBefore = membership?.rebalances ?? 0
            }
            var builder = BatchBuilder(capacity: maxBatchSize)
            var laterError: KafkaError?
            if let error = take(first!, into: &builder) {
                return (.failure(error), nil)
            }
            if maxBatchSize > 1 {
                let rest = withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<rd_kafka_message_t>?.self, capacity: maxBatchSize - 1) { buffer in
                    let count = rd_kafka_consume_batch_queue(consumerQueue, 0, buffer.baseAddress, buffer.count)
                    return (0..<max(0, count)).map { buffer[$0]! }
                }
                for pointer in rest {
                    if let error = take(pointer, into: &builder), laterError == nil {
                        laterError = error
                    }
                }
            }
            if !builder.messages.isEmpty {
                var batch = builder.build()
                batch.assignments = membership?.assignments(of: batch.nextOffsets.keys, rebalancesBefore: rebalancesBefore)
                return (.success(batch), laterError)
            }
            if let laterError { return (.failure(laterError), nil) }
            // Only errors that were logged and passed over: keep waiting.
        }
    }

    /// Adds a polled message to the batch, or returns the error it carries; destroys it either way.
    private func take(_ pointer: UnsafeMutablePointer<rd_kafka_message_t>, into builder: inout BatchBuilder) -> KafkaError? {
        defer { rd_kafka_message_destroy(pointer) }
        if pointer.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            return consumeError(pointer)
        }
        builder.append(pointer)
        return nil
    }

    /// The error a poll returned in place of a message: fatal errors and eviction for exceeding
    /// `max.poll.interval.ms` go to the caller; the rest librdkafka recovers from, so they are logged.
    private func consumeError(_ pointer: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaError? {
        let err = pointer.pointee.err
        let reason = String(cString: rd_kafka_message_errstr(pointer))
        switch err {
        case RD_KAFKA_RESP_ERR__PARTITION_EOF:
            return nil
        case RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED:
            return KafkaError(code: .maxPollIntervalExceeded, message: reason, rdkafkaCode: err.rawValue, isRetriable: true)
        case RD_KAFKA_RESP_ERR__FATAL:
            return client.fatalError() ?? .rdkafka(.consume, err, message: reason)
        default:
            client.logger.warning("consumer error", metadata: ["error": "\(KafkaError.rdkafka(.consume, err, message: reason))"])
            return nil
        }
    }

    private static func answerClosed(_ request: Request) {
        switch request {
        case .batch(_, let continuation): continuation.resume(returning: .success(nil))
        case .commit(let continuation):
            continuation.resume(returning: .failure(KafkaError(code: .clientClosed, message: "the consumer is closed")))
        case .close(let continuation): continuation?.resume()
        }
    }
}

/// Turns librdkafka messages into a ``KafkaConsumerBatch``, noting each partition's next offset as
/// it goes and looking each topic's name up once.
struct BatchBuilder {
    private(set) var messages: [KafkaConsumerMessage] = []
    private var nextOffsets: [KafkaTopicPartition: Int64] = [:]
    private var topicNames: [OpaquePointer: String] = [:]
    private var run: (topic: OpaquePointer, partition: Int32, name: String, next: Int64)?

    init(capacity: Int) {
        messages.reserveCapacity(capacity)
    }

    mutating func append(_ pointer: UnsafeMutablePointer<rd_kafka_message_t>) {
        let message = pointer.pointee
        let topic: String
        if let run, run.topic == message.rkt {
            topic = run.name
        } else if let cached = topicNames[message.rkt] {
            topic = cached
        } else {
            topic = String(cString: rd_kafka_topic_name(message.rkt))
            topicNames[message.rkt] = topic
        }
        if let current = run, current.topic == message.rkt, current.partition == message.partition {
            run!.next = max(current.next, message.offset + 1)
        } else {
            if let finished = run { endRun(finished) }
            run = (message.rkt, message.partition, topic, message.offset + 1)
        }

        let key = message.key.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: message.key_len)) }
        let value = message.payload.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: message.len)) }
        var headers: [KafkaHeader] = []
        var list: OpaquePointer? = nil
        if rd_kafka_message_headers(pointer, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list {
            headers.reserveCapacity(rd_kafka_header_cnt(list))
            var index = 0
            var name: UnsafePointer<CChar>? = nil
            var bytes: UnsafeRawPointer? = nil
            var size = 0
            while rd_kafka_header_get_all(list, index, &name, &bytes, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let headerValue = bytes.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: size)) }
                headers.append(KafkaHeader(key: String(cString: name!), value: headerValue))
                index += 1
            }
        }
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(pointer, &timestampType)
        messages.append(
            KafkaConsumerMessage(
                topic: topic,
                partition: message.partition,
                offset: message.offset,
                key: key,
                value: value,
                headers: headers,
                timestamp: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp
            )
        )
    }

    private mutating func endRun(_ run: (topic: OpaquePointer, partition: Int32, name: String, next: Int64)) {
        let key = KafkaTopicPartition(topic: run.name, partition: run.partition)
        nextOffsets[key] = max(nextOffsets[key] ?? 0, run.next)
    }

    mutating func build() -> KafkaConsumerBatch {
        if let run { endRun(run) }
        run = nil
        return KafkaConsumerBatch(messages: messages, nextOffsets: nextOffsets)
    }
}
