import CRDKafka
import Dispatch
import Foundation
import Logging
import Synchronization

/// The consumer's thread: it alone calls librdkafka's blocking consumer functions
/// (`rd_kafka_consumer_poll`, a synchronous commit, `rd_kafka_consumer_close`), one request at a time.
final class ConsumerLoop: Sendable {
    enum Request: Sendable {
        case batch(id: UInt64, CheckedContinuation<Result<KafkaConsumerBatch?, KafkaError>, Never>)
        case commit(CheckedContinuation<Result<Void, KafkaError>, Never>)
        case close(CheckedContinuation<Void, Never>)
    }

    private struct State {
        var requests: [Request] = []
        var nextRequestID: UInt64 = 1
        var cancelledBatches: Set<UInt64> = []
        var closeRequested = false
        var stopRequested = false
        var closed = false
    }

    private let client: RDKafkaClient
    private let maxBatchSize: Int
    private let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)

    init(client: RDKafkaClient, maxBatchSize: Int) {
        self.client = client
        self.maxBatchSize = maxBatchSize
    }

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
        _ = state.withLock { $0.cancelledBatches.insert(id) }
    }

    private func run() {
        // Errors that arrived while a batch already held messages; reported by the next request.
        var deferredError: KafkaError?
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
                _ = state.withLock { $0.cancelledBatches.remove(id) }
            case .commit(let continuation):
                let err = rd_kafka_commit(client.handle, nil, 0)
                if err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET {
                    continuation.resume(returning: .success(()))
                } else {
                    continuation.resume(returning: .failure(.rdkafka(.commit, err)))
                }
            case .close(let continuation):
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
                continuation.resume()
                return
            }
        }
    }

    private func shouldStopWaiting(batch id: UInt64) -> Bool {
        state.withLock { $0.closeRequested || $0.stopRequested || $0.cancelledBatches.contains(id) }
    }

    /// Polls until at least one message arrived, then takes what is ready up to the batch size.
    private func pollBatch(id: UInt64) -> (Result<KafkaConsumerBatch?, KafkaError>, KafkaError?) {
        if shouldStopWaiting(batch: id) { return (.success(nil), nil) }
        var messages: [KafkaConsumerMessage] = []
        var topicNames: [OpaquePointer: String] = [:]
        while messages.count < maxBatchSize {
            let timeout: Int32 = messages.isEmpty ? 100 : 0
            guard let pointer = rd_kafka_consumer_poll(client.handle, timeout) else {
                if !messages.isEmpty { break }
                if shouldStopWaiting(batch: id) { return (.success(nil), nil) }
                continue
            }
            defer { rd_kafka_message_destroy(pointer) }
            let message = pointer.pointee
            if message.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                guard let error = consumeError(pointer) else { continue }
                if messages.isEmpty { return (.failure(error), nil) }
                return (.success(KafkaConsumerBatch(messages: messages)), error)
            }
            messages.append(Self.convert(pointer, topicNames: &topicNames))
        }
        return (.success(KafkaConsumerBatch(messages: messages)), nil)
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

    private static func convert(
        _ pointer: UnsafeMutablePointer<rd_kafka_message_t>,
        topicNames: inout [OpaquePointer: String]
    ) -> KafkaConsumerMessage {
        let message = pointer.pointee
        let topic: String
        if let cached = topicNames[message.rkt] {
            topic = cached
        } else {
            topic = String(cString: rd_kafka_topic_name(message.rkt))
            topicNames[message.rkt] = topic
        }
        let key = message.key.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: message.key_len)) }
        let value = message.payload.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: message.len)) }

        var headers: [KafkaHeader] = []
        var list: OpaquePointer? = nil
        if rd_kafka_message_headers(pointer, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list {
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
        return KafkaConsumerMessage(
            topic: topic,
            partition: message.partition,
            offset: message.offset,
            key: key,
            value: value,
            headers: headers,
            timestamp: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp
        )
    }

    private static func answerClosed(_ request: Request) {
        switch request {
        case .batch(_, let continuation): continuation.resume(returning: .success(nil))
        case .commit(let continuation):
            continuation.resume(returning: .failure(KafkaError(code: .clientClosed, message: "the consumer is closed")))
        case .close(let continuation): continuation.resume()
        }
    }
}
