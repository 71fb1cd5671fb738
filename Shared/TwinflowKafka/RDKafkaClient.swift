import CRDKafka
import Foundation
import Logging

/// The one owner of a librdkafka client handle (`rd_kafka_t`).
///
/// Producer, consumer and admin wrap one of these each. It builds the handle from string properties,
/// routes librdkafka's log lines into swift-log, and destroys the handle when released.
final class RDKafkaClient: Sendable {
    enum Kind: Sendable {
        case producer
        case consumer
    }

    /// Shared with librdkafka's C callbacks through the handle's opaque pointer.
    final class Context: Sendable {
        let logger: Logger
        let rebalance: (@Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> Void)?

        init(
            logger: Logger,
            rebalance: (@Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> Void)?
        ) {
            self.logger = logger
            self.rebalance = rebalance
        }
    }

    // `rd_kafka_t` is safe to use from any thread: librdkafka guards it with its own locks.
    nonisolated(unsafe) let handle: OpaquePointer
    let context: Context
    nonisolated(unsafe) private let contextPointer: UnsafeMutableRawPointer
    let logger: Logger

    /// Creates the handle. `events` is an `RD_KAFKA_EVENT_*` mask for clients that read typed
    /// events from their main queue instead of callbacks.
    init(
        kind: Kind,
        properties: [String: String],
        events: Int32 = 0,
        logger: Logger,
        rebalance: (@Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> Void)? = nil
    ) throws(KafkaError) {
        let conf = try Self.makeConf(properties)
        let context = Context(logger: logger, rebalance: rebalance)
        let contextPointer = Unmanaged.passRetained(context).toOpaque()
        rd_kafka_conf_set_opaque(conf, contextPointer)
        rd_kafka_conf_set_log_cb(conf, rdkafkaLogCallback)
        if events != 0 {
            rd_kafka_conf_set_events(conf, events)
        }
        if rebalance != nil {
            rd_kafka_conf_set_rebalance_cb(conf, rdkafkaRebalanceCallback)
        }

        var errorBuffer = [CChar](repeating: 0, count: 512)
        let type = kind == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER
        guard let handle = rd_kafka_new(type, conf, &errorBuffer, errorBuffer.count) else {
            rd_kafka_conf_destroy(conf)
            Unmanaged<Context>.fromOpaque(contextPointer).release()
            throw KafkaError(code: .clientCreation, message: String(errorBuffer: errorBuffer))
        }
        self.handle = handle
        self.context = context
        self.contextPointer = contextPointer
        self.logger = logger
    }

    deinit {
        // rd_kafka_destroy joins librdkafka's threads: it blocks, so it gets a thread of its own.
        let destroy = HandleDestruction(handle: handle, context: contextPointer)
        let thread = Thread { destroy.run() }
        thread.name = "twinflow-rdkafka-destroy"
        thread.start()
    }

    static func makeConf(_ properties: [String: String]) throws(KafkaError) -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errorBuffer = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, key, value, &errorBuffer, errorBuffer.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(code: .configuration, message: "\(key): \(String(errorBuffer: errorBuffer))")
            }
        }
        return conf
    }

    /// The librdkafka client name, such as `rdkafka#producer-1`.
    var name: String { String(cString: rd_kafka_name(handle)) }

    /// The fatal error that made this instance unusable, if one happened.
    func fatalError() -> KafkaError? {
        var buffer = [CChar](repeating: 0, count: 512)
        let err = rd_kafka_fatal_error(handle, &buffer, buffer.count)
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return KafkaError(code: .client, message: String(errorBuffer: buffer), rdkafkaCode: err.rawValue, isFatal: true)
    }
}

private let rdkafkaLogCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
    handle, level, facility, line in
    guard let handle, let opaque = rd_kafka_opaque(handle) else { return }
    let context = Unmanaged<RDKafkaClient.Context>.fromOpaque(opaque).takeUnretainedValue()
    let swiftLevel: Logger.Level =
        switch level {
        case ...2: .critical
        case 3: .error
        case 4: .warning
        case 5, 6: .info
        default: .debug
        }
    context.logger.log(
        level: swiftLevel,
        "\(line.map { String(cString: $0) } ?? "")",
        metadata: ["rdkafka.facility": "\(facility.map { String(cString: $0) } ?? "")"]
    )
}

private let rdkafkaRebalanceCallback:
    @convention(c) (OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?) -> Void = {
        handle, err, partitions, opaque in
        guard let handle, let opaque else { return }
        let context = Unmanaged<RDKafkaClient.Context>.fromOpaque(opaque).takeUnretainedValue()
        context.rebalance?(handle, err, partitions)
    }

/// What `deinit` hands to the destroying thread; used once, by that thread alone.
private struct HandleDestruction: @unchecked Sendable {  // no lock: moved to one thread, never shared
    let handle: OpaquePointer
    let context: UnsafeMutableRawPointer

    func run() {
        rd_kafka_destroy(handle)
        Unmanaged<RDKafkaClient.Context>.fromOpaque(context).release()
    }
}

extension String {
    /// The text librdkafka wrote into an error buffer.
    init(errorBuffer: [CChar]) {
        self = errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
