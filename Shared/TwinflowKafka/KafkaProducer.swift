import CRDKafka
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Sends messages and reports when the broker has them.
///
/// ``send(_:)-(KafkaProducerMessage)`` returns once the message's delivery report arrived;
/// ``send(_:)-(Collection)`` enqueues a whole batch and waits for all its reports together.
/// Delivery reports are read on a thread of the producer's own, never on the cooperative pool.
///
/// As a `Service`, the producer runs until graceful shutdown, then flushes what is in flight.
public final class KafkaProducer: Service, Sendable {
    let client: RDKafkaClient
    private let deliveries = DeliveryTracker()
    private let pollLoop: PollLoop
    private let flushTimeout: Duration

    /// Creates the producer and starts its delivery-report thread.
    public init(configuration: KafkaProducerConfiguration, logger: Logger) throws(KafkaError) {
        self.client = try RDKafkaClient(
            kind: .producer,
            properties: configuration.clientProperties,
            events: RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR,
            logger: logger
        )
        self.flushTimeout = configuration.flushTimeout
        self.pollLoop = PollLoop(client: client, deliveries: deliveries)
        pollLoop.start(flushTimeout: flushTimeout)
    }

    deinit {
        pollLoop.requestStop()
    }

    /// Sends one message and returns where it was stored.
    @discardableResult
    public func send(_ message: KafkaProducerMessage) async throws(KafkaError) -> KafkaDeliveryReport {
        let id = try deliveries.begin(count: 1)
        try await enqueue(message, id: id)
        let outcome = await deliveries.wait(id)
        switch outcome {
        case .success(let report?): return report
        case .success(nil): throw KafkaError(code: .delivery, message: "no delivery report")
        case .failure(let error): throw error
        }
    }

    /// Sends a batch and returns when every message of it was delivered; throws the first delivery
    /// error otherwise (the other messages may have been delivered: send again, duplicates are harmless).
    public func send(_ messages: some Collection<KafkaProducerMessage>) async throws(KafkaError) {
        guard !messages.isEmpty else { return }
        let id = try deliveries.begin(count: messages.count)
        for message in messages {
            try await enqueue(message, id: id)
        }
        if case .failure(let error) = await deliveries.wait(id) {
            throw error
        }
    }

    /// Messages enqueued and not yet reported, as librdkafka counts them.
    public var outstandingMessages: Int { Int(rd_kafka_outq_len(client.handle)) }

    /// Runs until graceful shutdown, then flushes and stops.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Waits for messages in flight (up to the flush timeout), then fails any send still waiting.
    public func shutdown() async {
        await pollLoop.stop()
    }

    /// Enqueues one message, waiting while librdkafka's queue is full. A refusal other than a full
    /// queue completes the message with that error, so the send awaiting it learns of it.
    private func enqueue(_ message: KafkaProducerMessage, id: UInt64) async throws(KafkaError) {
        while true {
            let err = produce(message, opaque: id)
            switch err {
            case RD_KAFKA_RESP_ERR_NO_ERROR:
                return
            case RD_KAFKA_RESP_ERR__QUEUE_FULL:
                if pollLoop.isStopped {
                    throw KafkaError(code: .clientClosed, message: "the producer is shut down")
                }
                try? await Task.sleep(for: .milliseconds(1))
            default:
                deliveries.complete(id, .failure(.rdkafka(.produce, err)))
                return
            }
        }
    }

    private func produce(_ message: KafkaProducerMessage, opaque: UInt64) -> rd_kafka_resp_err_t {
        var headers: OpaquePointer? = nil
        if !message.headers.isEmpty {
            headers = rd_kafka_headers_new(message.headers.count)
            for header in message.headers {
                if let value = header.value {
                    _ = value.withUnsafeBytes { rd_kafka_header_add(headers, header.key, -1, $0.baseAddress, $0.count) }
                } else {
                    _ = rd_kafka_header_add(headers, header.key, -1, nil, 0)
                }
            }
        }
        let err = message.topic.withCString { topic in
            withOptionalBytes(message.key) { key in
                withOptionalBytes(message.value) { value in
                    withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 7) { vus in
                        var count = 0
                        func append(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                            var vu = rd_kafka_vu_t()
                            vu.vtype = type
                            set(&vu)
                            vus[count] = vu
                            count += 1
                        }
                        append(RD_KAFKA_VTYPE_TOPIC) { $0.u.cstr = topic }
                        append(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                        append(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = UnsafeMutableRawPointer(bitPattern: UInt(opaque)) }
                        if let partition = message.partition {
                            append(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = partition }
                        }
                        if let key {
                            append(RD_KAFKA_VTYPE_KEY) {
                                $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                                $0.u.mem.size = key.count
                            }
                        }
                        if let value {
                            append(RD_KAFKA_VTYPE_VALUE) {
                                $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                                $0.u.mem.size = value.count
                            }
                        }
                        if let headers {
                            append(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headers }
                        }
                        guard let error = rd_kafka_produceva(client.handle, vus.baseAddress, count) else {
                            return RD_KAFKA_RESP_ERR_NO_ERROR
                        }
                        let code = rd_kafka_error_code(error)
                        rd_kafka_error_destroy(error)
                        return code
                    }
                }
            }
        }
        // librdkafka owns the headers only once the message was accepted.
        if err != RD_KAFKA_RESP_ERR_NO_ERROR, let headers {
            rd_kafka_headers_destroy(headers)
        }
        return err
    }
}

@inline(__always)
private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let bytes else { return body(nil) }
    return bytes.withUnsafeBytes { body($0) }
}

extension KafkaProducer {
    /// The thread that reads delivery reports and errors from the producer's main queue.
    final class PollLoop: Sendable {
        private let client: RDKafkaClient
        private let deliveries: DeliveryTracker
        private let stopRequested = Atomic<Bool>(false)
        private let stopped = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

        init(client: RDKafkaClient, deliveries: DeliveryTracker) {
            self.client = client
            self.deliveries = deliveries
        }

        var isStopped: Bool { stopped.withLock { $0.done } }

        func start(flushTimeout: Duration) {
            let thread = Thread { [self] in
                run(flushTimeout: flushTimeout)
            }
            thread.name = "twinflow-producer-poll"
            thread.start()
        }

        func requestStop() {
            stopRequested.store(true, ordering: .releasing)
        }

        func stop() async {
            requestStop()
            await withCheckedContinuation { continuation in
                let done = stopped.withLock { state in
                    if state.done { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if done { continuation.resume() }
            }
        }

        private func run(flushTimeout: Duration) {
            let queue = rd_kafka_queue_get_main(client.handle)
            defer { rd_kafka_queue_destroy(queue) }
            while !stopRequested.load(ordering: .acquiring) {
                pollOnce(queue, timeoutMilliseconds: 100)
            }
            let deadline = ContinuousClock.now + flushTimeout
            while rd_kafka_outq_len(client.handle) > 0 && ContinuousClock.now < deadline {
                pollOnce(queue, timeoutMilliseconds: 50)
            }
            pollOnce(queue, timeoutMilliseconds: 0)
            let unflushed = rd_kafka_outq_len(client.handle)
            if unflushed > 0 {
                client.logger.error("producer stopped with messages undelivered", metadata: ["messages": "\(unflushed)"])
            }
            deliveries.close(with: KafkaError(code: .clientClosed, message: "the producer shut down before delivery"))
            let waiters = stopped.withLock { state in
                state.done = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }

        private func pollOnce(_ queue: OpaquePointer?, timeoutMilliseconds: Int32) {
            guard let event = rd_kafka_queue_poll(queue, timeoutMilliseconds) else { return }
            defer { rd_kafka_event_destroy(event) }
            switch rd_kafka_event_type(event) {
            case RD_KAFKA_EVENT_DR:
                handleDeliveryReports(event)
            case RD_KAFKA_EVENT_ERROR:
                let err = rd_kafka_event_error(event)
                let reason = String(cString: rd_kafka_event_error_string(event))
                if rd_kafka_event_error_is_fatal(event) != 0 {
                    let fatal = client.fatalError() ?? .rdkafka(.client, err, message: reason)
                    client.logger.critical("fatal producer error", metadata: ["error": "\(fatal)"])
                    deliveries.close(with: fatal)
                } else {
                    client.logger.warning("producer error", metadata: ["error": "\(KafkaError.rdkafka(.client, err, message: reason))"])
                }
            default:
                break
            }
        }

        private func handleDeliveryReports(_ event: OpaquePointer) {
            let capacity = 1024
            withUnsafeTemporaryAllocation(of: UnsafePointer<rd_kafka_message_t>?.self, capacity: capacity) { messages in
                while true {
                    let count = rd_kafka_event_message_array(event, messages.baseAddress, capacity)
                    if count == 0 { break }
                    var outcomes: [(UInt64, DeliveryTracker.Outcome)] = []
                    outcomes.reserveCapacity(count)
                    var topicNames: [OpaquePointer: String] = [:]
                    for index in 0..<count {
                        let message = messages[index]!.pointee
                        let id = UInt64(UInt(bitPattern: message._private))
                        if message.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                            let topic: String
                            if let cached = topicNames[message.rkt] {
                                topic = cached
                            } else {
                                topic = String(cString: rd_kafka_topic_name(message.rkt))
                                topicNames[message.rkt] = topic
                            }
                            let report = KafkaDeliveryReport(topic: topic, partition: message.partition, offset: message.offset)
                            outcomes.append((id, .success(report)))
                        } else {
                            outcomes.append((id, .failure(.rdkafka(.delivery, message.err))))
                        }
                    }
                    deliveries.complete(outcomes)
                    if count < capacity { break }
                }
            }
        }
    }
}
