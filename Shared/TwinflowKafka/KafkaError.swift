import CRDKafka

/// An error raised by the Kafka layer.
///
/// The ``code`` says which operation failed; ``rdkafkaCode`` and ``rdkafkaName`` carry librdkafka's
/// own response code when the error came from librdkafka. ``isFatal`` means the client instance can
/// no longer be used; ``isRetriable`` means the same call may succeed when tried again.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// What kind of operation failed. Opaque so that new codes can be added without breaking users.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Sendable {
            case configuration
            case clientCreation
            case produce
            case delivery
            case consume
            case maxPollIntervalExceeded
            case commit
            case rebalance
            case admin
            case metadata
            case clientClosed
            case client
            case cancelled
        }

        let base: Base

        /// A configuration property was rejected by librdkafka.
        public static let configuration = Code(base: .configuration)
        /// librdkafka refused to create the client instance.
        public static let clientCreation = Code(base: .clientCreation)
        /// A message could not be enqueued for sending.
        public static let produce = Code(base: .produce)
        /// A message was enqueued but its delivery report carried an error.
        public static let delivery = Code(base: .delivery)
        /// Polling for messages failed.
        public static let consume = Code(base: .consume)
        /// The consumer did not poll within `max.poll.interval.ms` and was evicted from its group.
        public static let maxPollIntervalExceeded = Code(base: .maxPollIntervalExceeded)
        /// Storing or committing offsets failed.
        public static let commit = Code(base: .commit)
        /// Applying a partition assignment failed.
        public static let rebalance = Code(base: .rebalance)
        /// An admin request (such as creating topics) failed.
        public static let admin = Code(base: .admin)
        /// Reading cluster metadata failed.
        public static let metadata = Code(base: .metadata)
        /// The client was already shut down.
        public static let clientClosed = Code(base: .clientClosed)
        /// An error reported by the client outside any single call.
        public static let client = Code(base: .client)
        /// The task waiting for the call's outcome was cancelled before it came.
        public static let cancelled = Code(base: .cancelled)

        public var description: String { base.rawValue }
    }

    /// Which operation failed.
    public var code: Code
    /// librdkafka's `rd_kafka_resp_err_t`, when librdkafka reported the error.
    public var rdkafkaCode: Int32?
    /// What went wrong, in librdkafka's words where it gave some.
    public var message: String
    /// The client instance is unusable and must be recreated.
    public var isFatal: Bool
    /// The same call may succeed later.
    public var isRetriable: Bool

    public init(code: Code, message: String, rdkafkaCode: Int32? = nil, isFatal: Bool = false, isRetriable: Bool = false) {
        self.code = code
        self.message = message
        self.rdkafkaCode = rdkafkaCode
        self.isFatal = isFatal
        self.isRetriable = isRetriable
    }

    /// librdkafka's symbolic name of ``rdkafkaCode``, such as `_QUEUE_FULL` or `UNKNOWN_TOPIC_OR_PART`.
    public var rdkafkaName: String? {
        rdkafkaCode.map { String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: $0))) }
    }

    public var description: String {
        if let name = rdkafkaName {
            return "KafkaError(\(code), \(name): \(message)\(isFatal ? ", fatal" : ""))"
        }
        return "KafkaError(\(code): \(message))"
    }
}

extension KafkaError {
    /// An error from a librdkafka response code.
    static func rdkafka(_ code: Code, _ err: rd_kafka_resp_err_t, message: String? = nil) -> KafkaError {
        KafkaError(
            code: code,
            message: message ?? String(cString: rd_kafka_err2str(err)),
            rdkafkaCode: err.rawValue,
            isFatal: err == RD_KAFKA_RESP_ERR__FATAL,
            isRetriable: Self.isRetriable(err)
        )
    }

    /// An error from a librdkafka `rd_kafka_error_t`, which it destroys.
    static func consuming(_ code: Code, _ error: OpaquePointer) -> KafkaError {
        defer { rd_kafka_error_destroy(error) }
        return KafkaError(
            code: code,
            message: String(cString: rd_kafka_error_string(error)),
            rdkafkaCode: rd_kafka_error_code(error).rawValue,
            isFatal: rd_kafka_error_is_fatal(error) != 0,
            isRetriable: rd_kafka_error_is_retriable(error) != 0
        )
    }

    static func isRetriable(_ err: rd_kafka_resp_err_t) -> Bool {
        switch err {
        case RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
            return true
        default:
            return false
        }
    }
}

extension KafkaError {
    /// The message's content was refused: too large, or not a valid record. Unlike a topic that is
    /// missing or not authorised (which a deployment fixes), nothing but another message changes
    /// this answer.
    public var isContentRefusal: Bool {
        guard let rdkafkaCode else { return false }
        switch rd_kafka_resp_err_t(rawValue: rdkafkaCode) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE,
            RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_INVALID_MSG:
            return true
        default:
            return false
        }
    }
}

extension KafkaError {
    /// The broker (or librdkafka on its behalf) refused the message itself: sending the same message
    /// again gives the same answer. Too large, an unknown or invalid topic, not authorised, a record
    /// the broker will not take. Outages, timeouts and leader changes are not refusals.
    public var isMessageRefusal: Bool {
        guard let rdkafkaCode else { return false }
        switch rd_kafka_resp_err_t(rawValue: rdkafkaCode) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION,
            RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
            RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_INVALID_MSG,
            RD_KAFKA_RESP_ERR_POLICY_VIOLATION, RD_KAFKA_RESP_ERR__INVALID_ARG:
            return true
        default:
            return false
        }
    }
}
