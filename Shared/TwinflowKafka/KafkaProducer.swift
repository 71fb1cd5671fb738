import CRDKafka
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Sends messages and reports when the broker has them.
///
/// ``send(_:)-(KafkaProducerMessage)`` returns once the message's delivery report arrived;
/// ``send(_:)-([KafkaProducerMessage])`` enqueues a whole batch and waits for all its reports together.
/// Delivery reports are read on a thread of the producer's own, never on the cooperative pool.
/// A send whose task is cancelled stops waiting and throws ``KafkaError/Code/cancelled``; what it
/// enqueued may still be delivered.
///
/// As a `Service`, the producer runs until graceful shutdown, then flushes what is in flight; a
/// fatal error (the client can never deliver again) ends its `run()` with that error, which stops
/// the service (its process exits with status 1, to be started again).
public final class KafkaProducer: Service, Sendable {
    let client: RDKafkaClient
    private let deliveries = DeliveryTracker()
    private let fatal = FatalErrorSignal()
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
        self.pollLoop = PollLoop(client: client, deliveries: deliveries, fatal: fatal)
        pollLoop.start(flushTimeout: flushTimeout)
    }

    deinit {
        pollLoop.requestStop()
    }

    /// Sends one message and returns where it was stored.
    @discardableResult
    public func send(_ message: KafkaProducerMessage) async throws(KafkaError) -> KafkaDeliveryReport {
        let outcome = try await deliver([message][...])
        switch outcome {
        case .success(let report?): return report
        case .success(nil): throw KafkaError(code: .delivery, message: "no delivery report")
        case .failure(let error): throw error
        }
    }

    /// Sends a batch and returns when every message of it was delivered; throws the first delivery
    /// error otherwise (the other messages may have been delivered: send again, duplicates are harmless).
    public func send(_ messages: [KafkaProducerMessage]) async throws(KafkaError) {
        try await send(messages[...])
    }

    /// Sends part of an array as one batch; see ``send(_:)-([KafkaProducerMessage])``.
    public func send(_ messages: ArraySlice<KafkaProducerMessage>) async throws(KafkaError) {
        guard !messages.isEmpty else { return }
        if case .failure(let error) = try await deliver(messages) {
            throw error
        }
    }

    /// Enqueues a batch and returns without waiting for its delivery reports; ``delivered(_:)`` waits
    /// for them. Batches enqueued one after another keep their order in each partition, so a sender
    /// can enqueue the next batch while the broker acknowledges the one before. Every ticket must be
    /// waited for.
    public func enqueue(_ messages: ArraySlice<KafkaProducerMessage>) async throws(KafkaError) -> KafkaSendTicket {
        KafkaSendTicket(id: try await enqueueAll(messages))
    }

    /// Waits until every message enqueued under `ticket` was delivered; throws the first delivery
    /// error otherwise (see ``send(_:)-([KafkaProducerMessage])``).
    public func delivered(_ ticket: KafkaSendTicket) async throws(KafkaError) {
        if case .failure(let error) = await deliveries.wait(ticket.id) {
            throw error
        }
    }

    private func deliver(_ messages: ArraySlice<KafkaProducerMessage>) async throws(KafkaError) -> DeliveryTracker.Outcome {
        await deliveries.wait(try await enqueueAll(messages))
    }

    /// Enqueues every message under one send id, waiting while librdkafka's queue is full. A refusal
    /// other than a full queue counts as that message's failed delivery, so the send learns of it.
    private func enqueueAll(_ messages: ArraySlice<KafkaProducerMessage>) async throws(KafkaError) -> UInt64 {
        let id = try deliveries.begin(count: messages.count)
        var topics = TopicHandles(client: client)
        defer { topics.release() }
        var index = messages.startIndex
        while index < messages.endIndex {
            let message = messages[index]
            let err: rd_kafka_resp_err_t
            if let topic = topics.handle(for: message.topic) {
                err = produce(message, topic: topic, opaque: id)
            } else {
                err = rd_kafka_last_error()
            }
            switch err {
            case RD_KAFKA_RESP_ERR_NO_ERROR:
                index += 1
                // A long batch lets other tasks have the cooperative pool's few threads now and then.
                if (index - messages.startIndex) % 1024 == 0 { await Task.yield() }
            case RD_KAFKA_RESP_ERR__QUEUE_FULL:
                if pollLoop.isStopped {
                    deliveries.abandon(id)
                    throw KafkaError(code: .clientClosed, message: "the producer is shut down")
                }
                if Task.isCancelled {
                    deliveries.abandon(id)
                    throw KafkaError(
                        code: .cancelled, message: "cancelled while librdkafka's queue was full", rdkafkaCode: err.rawValue, isRetriable: true)
                }
                try? await Task.sleep(for: .milliseconds(1))
            default:
                deliveries.complete(id, .failure(.rdkafka(.produce, err)))
                index += 1
            }
        }
        return id
    }

    /// Messages enqueued and not yet reported, as librdkafka counts them.
    public var outstandingMessages: Int { Int(rd_kafka_outq_len(client.handle)) }

    /// Runs until graceful shutdown, then flushes and stops; throws the fatal error that made the
    /// producer unusable, if one comes first.
    public func run() async throws {
        let fatal = await cancelWhenGracefulShutdown { [fatal] in await fatal.wait() }
        await shutdown()
        if let fatal { throw fatal }
    }

    /// The fatal error that made the producer unusable, if one happened.
    public var fatalError: KafkaError? { fatal.error }

    /// Waits for messages in flight (up to the flush timeout), then fails any send still waiting.
    public func shutdown() async {
        await pollLoop.stop()
    }

    private func produce(_ message: KafkaProducerMessage, topic: OpaquePointer, opaque: UInt64) -> rd_kafka_resp_err_t {
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
        let err = withOptionalBytes(message.key) { key in
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
                    append(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = topic }
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
        // librdkafka owns the headers only once the message was accepted.
        if err != RD_KAFKA_RESP_ERR_NO_ERROR, let headers {
            rd_kafka_headers_destroy(headers)
        }
        return err
    }
}

/// librdkafka topic handles for one send, so that a batch looks each topic up once.
private struct TopicHandles {
    let client: RDKafkaClient
    private var lastName: String?
    private var lastHandle: OpaquePointer?
    private var handles: [String: OpaquePointer] = [:]

    init(client: RDKafkaClient) {
        self.client = client
    }

    /// The handle, or `nil` when librdkafka refuses the name (see `rd_kafka_last_error`).
    mutating func handle(for topic: String) -> OpaquePointer? {
        if topic == lastName, let lastHandle { return lastHandle }
        let handle: OpaquePointer
        if let cached = handles[topic] {
            handle = cached
        } else {
            guard let created = rd_kafka_topic_new(client.handle, topic, nil) else { return nil }
            handle = created
            handles[topic] = handle
        }
        lastName = topic
        lastHandle = handle
        return handle
    }

    func release() {
        for handle in handles.values { rd_kafka_topic_destroy(handle) }
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
        private let fatal: FatalErrorSignal
        private let stopRequested = Atomic<Bool>(false)
        private let stopped = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

        init(client: RDKafkaClient, deliveries: DeliveryTracker, fatal: FatalErrorSignal) {
            self.client = client
            self.deliveries = deliveries
            self.fatal = fatal
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
                    self.fatal.fire(fatal)
                } else {
                    client.logger.warning("producer error", metadata: ["error": "\(KafkaError.rdkafka(.client, err, message: reason))"])
                }
            default:
                break
            }
        }

        /// Tallies the event's reports per send, then completes them under one lock. Only the last
        /// report of each send becomes a ``KafkaDeliveryReport``: a single send needs it, a batch does not.
        private func handleDeliveryReports(_ event: OpaquePointer) {
            let capacity = 4096
            var tallies: [UInt64: DeliveryTracker.Tally] = [:]
            var last: [UInt64: UnsafePointer<rd_kafka_message_t>] = [:]
            withUnsafeTemporaryAllocation(of: UnsafePointer<rd_kafka_message_t>?.self, capacity: capacity) { messages in
                while true {
                    let count = rd_kafka_event_message_array(event, messages.baseAddress, capacity)
                    var currentID = UInt64.max
                    var current = DeliveryTracker.Tally()
                    var currentLast: UnsafePointer<rd_kafka_message_t>? = nil
                    for index in 0..<count {
                        let message = messages[index]!
                        let id = UInt64(UInt(bitPattern: message.pointee._private))
                        if id != currentID {
                            if currentID != .max {
                                tallies[currentID, default: .init()].merge(current)
                                if let currentLast { last[currentID] = currentLast }
                            }
                            currentID = id
                            current = tallies.removeValue(forKey: id) ?? .init()
                            currentLast = nil
                        }
                        if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                            current.delivered += 1
                            currentLast = message
                        } else {
                            current.failed += 1
                            if current.firstError == nil { current.firstError = .rdkafka(.delivery, message.pointee.err) }
                        }
                    }
                    if currentID != .max {
                        tallies[currentID, default: .init()].merge(current)
                        if let currentLast { last[currentID] = currentLast }
                    }
                    if count < capacity { break }
                }
                // The messages belong to the event, alive until it is destroyed after this returns.
                for (id, message) in last {
                    let report = KafkaDeliveryReport(
                        topic: String(cString: rd_kafka_topic_name(message.pointee.rkt)),
                        partition: message.pointee.partition,
                        offset: message.pointee.offset
                    )
                    tallies[id, default: .init()].lastReport = report
                }
            }
            deliveries.complete(tallies)
        }
    }
}
