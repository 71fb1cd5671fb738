import CRDKafka
import Foundation
import Logging
import Synchronization

/// A member of a consumer group that hands out batches of messages.
///
/// At-least-once by construction: a batch's offsets are stored only when the caller passes it to
/// ``store(_:)``, after its outputs were delivered; stored offsets are committed in the background,
/// before partitions are revoked in a rebalance, and on ``close()``. Each ``nextBatch()`` polls
/// librdkafka on the consumer's own thread, never on the cooperative pool; rebalances are served
/// there, between batches, so a revoke commits everything the caller finished.
public final class KafkaConsumer: Sendable {
    let client: RDKafkaClient
    private let loop: ConsumerLoop
    private let membership: GroupMembership
    private let logger: Logger
    /// The topics the consumer reads (subscribed to, or assigned from its start offsets).
    public let topics: [String]

    /// Creates the consumer and starts its thread, which subscribes to the configured topics; the
    /// consumer joins the group with the first ``nextBatch()``, which also reports a refused subscription.
    public init(configuration: KafkaConsumerConfiguration, logger: Logger) throws(KafkaError) {
        let properties = configuration.clientProperties
        let membership = GroupMembership(cooperative: GroupMembership.isCooperative(properties["partition.assignment.strategy"]), logger: logger)
        self.client = try RDKafkaClient(
            kind: .consumer,
            properties: properties,
            logger: logger,
            rebalance: { handle, err, partitions in membership.rebalance(handle, err, partitions) }
        )
        self.membership = membership
        self.logger = logger
        self.topics = configuration.topics
        rd_kafka_poll_set_consumer(client.handle)
        self.loop = ConsumerLoop(
            client: client, topics: configuration.topics, startOffsets: configuration.startOffsets,
            maxBatchSize: max(1, configuration.maxBatchSize), membership: configuration.startOffsets == nil ? membership : nil)
        loop.start()
    }

    /// A consumer released without ``close()`` still commits what was stored and leaves its group.
    deinit {
        loop.submit(.close(nil))
    }

    /// Waits for the next batch: at least one message, at most the configured batch size.
    ///
    /// Returns `nil` once the consumer is closing, or when the waiting task is cancelled before any
    /// message arrived (messages already polled are always returned, never dropped). Throws
    /// ``KafkaError/Code/maxPollIntervalExceeded`` when the caller took longer than
    /// `max.poll.interval.ms` between two calls: the consumer left the group, and the next call
    /// rejoins it; messages not stored will be delivered again.
    public func nextBatch() async throws(KafkaError) -> KafkaConsumerBatch? {
        let id = loop.makeRequestID()
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                loop.submit(.batch(id: id, continuation))
            }
        } onCancel: {
            loop.cancelBatch(id: id)
        }
        return try outcome.get()
    }

    /// Stops handing out batches: a ``nextBatch()`` waiting now, and every later one, returns `nil`
    /// (messages already polled are still returned). The first step of a graceful shutdown; the
    /// caller then finishes its batch, stores it, and calls ``close()``.
    public func stopConsuming() {
        loop.stopConsuming()
    }

    /// Marks a batch done: stores offset + 1 of its last message per partition, to be committed.
    /// Partitions this member no longer owns are passed over: their new owner consumes them again.
    /// So are partitions it owns again since the batch was read (revoked and assigned back in a
    /// rebalance): another member may have consumed them further meanwhile, and the batch's older
    /// offset would move the group's position back; their messages are delivered again instead.
    public func store(_ batch: KafkaConsumerBatch) throws(KafkaError) {
        guard !batch.nextOffsets.isEmpty else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(batch.nextOffsets.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        var reassigned: [String] = []
        let err = membership.whileAssigned(batch.assignments) { current in
            for (topicPartition, offset) in batch.nextOffsets {
                guard current(topicPartition) else {
                    reassigned.append("\(topicPartition)")
                    continue
                }
                rd_kafka_topic_partition_list_add(list, topicPartition.topic, topicPartition.partition).pointee.offset = offset
            }
            return list.pointee.cnt > 0 ? rd_kafka_offsets_store(client.handle, list) : RD_KAFKA_RESP_ERR_NO_ERROR
        }
        if !reassigned.isEmpty {
            logger.info("offsets not stored for partitions revoked since the batch was read", metadata: ["partitions": "\(reassigned)"])
        }
        try checkStored(list, err)
    }

    private func checkStored(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>, _ err: rd_kafka_resp_err_t) throws(KafkaError) {
        var revoked: [String] = []
        for index in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[index]
            switch element.err {
            case RD_KAFKA_RESP_ERR_NO_ERROR:
                continue
            case RD_KAFKA_RESP_ERR__STATE, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
                revoked.append("\(String(cString: element.topic))[\(element.partition)]")
            default:
                throw .rdkafka(.commit, element.err)
            }
        }
        if !revoked.isEmpty {
            logger.info("offsets not stored for partitions no longer assigned", metadata: ["partitions": "\(revoked)"])
        } else if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw .rdkafka(.commit, err)
        }
    }

    /// Commits the stored offsets now and waits for the broker's answer.
    public func commit() async throws(KafkaError) {
        let outcome = await withCheckedContinuation { continuation in
            loop.submit(.commit(continuation))
        }
        try outcome.get()
    }

    /// Stops consuming, commits the stored offsets and leaves the group. Call it after the last
    /// batch was stored; a ``nextBatch()`` still waiting returns `nil`.
    public func close() async {
        await withCheckedContinuation { continuation in
            loop.submit(.close(continuation))
        }
    }

    /// The partitions this member owns now.
    public var assignment: Set<KafkaTopicPartition> { membership.assignment }

    /// The partitions assigned to this member since the last call that it did not own right before
    /// their assignment: what it took over from another member (or got at its start), for work a
    /// new owner does once. A partition lost and assigned again is returned again.
    public func takeGainedPartitions() -> Set<KafkaTopicPartition> { membership.takeGained() }

    /// Whether this member belongs to its group now: it received an assignment (possibly empty) and
    /// no rebalance has taken it away since.
    public var hasJoinedGroup: Bool { membership.hasJoined }
}

/// The consumer's view of its group: its assignment, kept current by the rebalance callback.
final class GroupMembership: Sendable {
    private struct State {
        var assignment: Set<KafkaTopicPartition> = []
        var joined = false
        /// The assignment before an eager revoke emptied it: what the next assignment keeps.
        var beforeRevoke: Set<KafkaTopicPartition> = []
        var gained: Set<KafkaTopicPartition> = []
        /// Each partition owned now, with the number of the assignment that gave it to this member.
        var assignedBy: [KafkaTopicPartition: UInt64] = [:]
        var assignmentsMade: UInt64 = 0
        /// Rebalance callbacks served so far (assignments, revocations, failures).
        var rebalances: UInt64 = 0
    }

    private let state = Mutex(State())
    private let logger: Logger
    /// Whether the group rebalances incrementally (`cooperative-sticky`), from the configured
    /// strategies, which librdkafka requires to share one protocol. Asking librdkafka
    /// (`rd_kafka_rebalance_protocol`) inside the callback can hang while the consumer closes, and
    /// answers NULL or "NONE" in some states.
    private let cooperative: Bool

    init(cooperative: Bool, logger: Logger) {
        self.cooperative = cooperative
        self.logger = logger
    }

    /// Whether `strategies` (librdkafka's `partition.assignment.strategy`) name a cooperative one.
    static func isCooperative(_ strategies: String?) -> Bool {
        (strategies ?? "").split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces) == "cooperative-sticky" }
    }

    var assignment: Set<KafkaTopicPartition> { state.withLock { $0.assignment } }
    var hasJoined: Bool { state.withLock { $0.joined } }

    /// How many rebalance callbacks have been served: what a batch notes once its first message is polled.
    var rebalances: UInt64 { state.withLock { $0.rebalances } }

    /// For each partition, the assignment under which this member owns it now (0 when it does not):
    /// what a batch is stamped with. All 0 when a rebalance was served since `rebalancesBefore`
    /// (librdkafka serves them while it drains a batch's messages), so that no message read before
    /// it is stored under an assignment made after it.
    func assignments(of partitions: some Sequence<KafkaTopicPartition>, rebalancesBefore: UInt64) -> [KafkaTopicPartition: UInt64] {
        state.withLock { state in
            let changed = state.rebalances != rebalancesBefore
            return Dictionary(partitions.map { ($0, changed ? 0 : state.assignedBy[$0] ?? 0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// Runs `body` while no rebalance can change this view of the assignment, with a test of whether
    /// a partition is still owned under the assignment in `stamps` (every partition passes when
    /// `stamps` is nil). The rebalance callback updates the view after librdkafka's (un)assign, so a
    /// partition that passes has been owned since its stamp, in librdkafka too.
    func whileAssigned<Result>(
        _ stamps: [KafkaTopicPartition: UInt64]?, _ body: ((KafkaTopicPartition) -> Bool) -> Result
    ) -> Result {
        guard let stamps else { return body { _ in true } }
        return state.withLock { state in
            let owned = state.assignedBy
            return body { partition in owned[partition].map { $0 == stamps[partition] } ?? false }
        }
    }

    /// Nothing while the group rebalances: the partitions kept through it are known once it ends.
    func takeGained() -> Set<KafkaTopicPartition> {
        state.withLock { state in
            guard state.joined else { return [] }
            defer { state.gained = [] }
            return state.gained.intersection(state.assignment)
        }
    }

    /// Runs on the consumer thread, inside `rd_kafka_consumer_poll` or `rd_kafka_consumer_close`.
    func rebalance(_ handle: OpaquePointer, _ err: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let changed = Self.topicPartitions(partitions)
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            let result: String
            if cooperative {
                result = Self.describe(rd_kafka_incremental_assign(handle, partitions))
            } else {
                result = Self.describe(rd_kafka_assign(handle, partitions))
            }
            state.withLock { state in
                state.gained.formUnion(changed.subtracting(cooperative ? state.assignment : state.beforeRevoke))
                state.assignment = cooperative ? state.assignment.union(changed) : changed
                state.beforeRevoke = []
                state.joined = true
                state.rebalances += 1
                state.assignmentsMade += 1
                if !cooperative { state.assignedBy = [:] }
                for partition in changed where state.assignedBy[partition] == nil {
                    state.assignedBy[partition] = state.assignmentsMade
                }
            }
            logger.info("partitions assigned", metadata: ["partitions": "\(changed.sorted { "\($0)" < "\($1)" })", "result": "\(result)"])
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(handle) != 0
            if !lost {
                let commitErr = rd_kafka_commit(handle, nil, 0)
                if commitErr != RD_KAFKA_RESP_ERR_NO_ERROR && commitErr != RD_KAFKA_RESP_ERR__NO_OFFSET {
                    logger.warning("commit before revoke failed", metadata: ["error": "\(KafkaError.rdkafka(.commit, commitErr))"])
                }
            } else {
                logger.warning("partitions lost; offsets not committed, their messages will be delivered again")
            }
            let unassigned: String
            if cooperative {
                unassigned = Self.describe(rd_kafka_incremental_unassign(handle, partitions))
            } else {
                unassigned = Self.describe(rd_kafka_assign(handle, nil))
            }
            if unassigned != "ok" {
                logger.error("unassigning revoked partitions failed", metadata: ["error": "\(unassigned)"])
            }
            state.withLock { state in
                // Partitions lost had another owner meanwhile: assigned again, they are gained.
                if !cooperative { state.beforeRevoke = lost ? [] : state.assignment }
                state.assignment = cooperative ? state.assignment.subtracting(changed) : []
                for partition in cooperative ? changed : Set(state.assignedBy.keys) { state.assignedBy[partition] = nil }
                state.rebalances += 1
                // An eager revoke means the group is rebalancing, and partitions lost mean the member
                // was dropped from the group (its session timed out): a member again once assigned.
                if !cooperative || lost { state.joined = false }
            }
            logger.info("partitions revoked", metadata: ["partitions": "\(changed.count)"])
        default:
            logger.error("rebalance failed", metadata: ["error": "\(KafkaError.rdkafka(.rebalance, err))"])
            let unassigned = Self.describe(rd_kafka_assign(handle, nil))
            if unassigned != "ok" {
                logger.error("unassigning after a failed rebalance failed", metadata: ["error": "\(unassigned)"])
            }
            state.withLock { state in
                state.assignment = []
                state.beforeRevoke = []
                state.assignedBy = [:]
                state.rebalances += 1
                state.joined = false
            }
        }
    }

    private static func describe(_ error: OpaquePointer?) -> String {
        guard let error else { return "ok" }
        return "\(KafkaError.consuming(.rebalance, error))"
    }

    private static func describe(_ err: rd_kafka_resp_err_t) -> String {
        err == RD_KAFKA_RESP_ERR_NO_ERROR ? "ok" : "\(KafkaError.rdkafka(.rebalance, err))"
    }

    static func topicPartitions(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> Set<KafkaTopicPartition> {
        guard let list else { return [] }
        var result: Set<KafkaTopicPartition> = []
        for index in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[index]
            result.insert(KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition))
        }
        return result
    }
}
