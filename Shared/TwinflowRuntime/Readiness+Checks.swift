import Foundation
import TwinflowKafka

/// The checks every service registers for the parts it has; each names what fails in its detail.
extension Readiness {
    /// `kafka`: the cluster answers a metadata request (probed every second, two seconds to answer),
    /// and has every topic the service reads and writes (``noteTopicsRead(_:)``,
    /// ``noteTopicsWritten(_:)``): a consumer of a topic that is missing, or not authorised, would
    /// wait for ever while its group looks healthy, and outputs to one would never be delivered.
    public func registerKafkaCluster(_ admin: KafkaAdmin, timeout: Duration = .seconds(2)) {
        registerProbe("kafka") {
            do {
                let metadata = try await admin.metadata(timeout: timeout)
                let topics = self.topicsUsed
                let missing = topics.filter { name in
                    guard let topic = metadata.topic(named: name) else { return true }
                    return topic.error != nil || topic.partitionCount == 0
                }
                guard missing.isEmpty else {
                    return .notReady("the cluster has no topic \(missing.joined(separator: ", ")) (or it is not authorised)")
                }
                return .ready(
                    "\(metadata.brokers.count) broker(s) answer" + (topics.isEmpty ? "" : "; topics \(topics.joined(separator: ", ")) exist"))
            } catch {
                return .notReady("the cluster does not answer: \(error)")
            }
        }
    }

    /// `consumer group`: the consumer has joined its group and holds an assignment. A member that
    /// joined and got no partitions (a group with more members than partitions) is ready, and says so.
    public func registerConsumerGroup(_ consumer: KafkaConsumer, group: String) {
        noteTopicsRead(consumer.topics)
        register("consumer group") {
            guard consumer.hasJoinedGroup else { return .notReady("not a member of group \(group) yet (joining or rebalancing)") }
            let partitions = consumer.assignment.count
            if partitions == 0 {
                return .ready("member of group \(group) with no partitions assigned (the group has more members than partitions)")
            }
            return .ready("member of group \(group) with \(partitions) partition(s) assigned")
        }
    }

    /// `batches`: no batch has kept failing for longer than `limit` (a service retries a failing
    /// batch for ever, so that nothing is skipped; this says when its input has stopped moving), and
    /// no step has run on one batch for longer than `hangLimit` (a call that neither answers nor fails).
    public func registerBatches<Prepared>(
        _ service: BatchConsumerService<Prepared>, notReadyAfter limit: Duration = .seconds(10), hangLimit: Duration = .seconds(30)
    ) {
        let retries = service.retries
        register("batches") { retries.status(notReadyAfter: limit, hangLimit: hangLimit) }
    }

    /// `store`: the store accepts a write; `write` performs a small one.
    public func registerStore(every interval: Duration = .seconds(2), write: @escaping @Sendable () async throws -> Void) {
        registerProbe("store", every: interval) {
            do {
                try await write()
                return .ready("accepts writes")
            } catch {
                return .notReady("a write failed: \(String(describingError: error))")
            }
        }
    }

    /// `outbox`: the oldest undelivered event is younger than `maximumAge`; `oldestUndelivered`
    /// returns its time, or `nil` when everything was delivered.
    public func registerOutbox(maximumAge: Duration, oldestUndelivered: @escaping @Sendable () async throws -> Date?) {
        registerProbe("outbox") {
            do {
                guard let oldest = try await oldestUndelivered() else { return .ready("everything delivered") }
                let age = Date().timeIntervalSince(oldest)
                let limit = Double(maximumAge.components.seconds) + Double(maximumAge.components.attoseconds) / 1e18
                guard age < limit else {
                    return .notReady("the oldest undelivered event is \(Int(age)) s old (limit \(Int(limit)) s): delivery is stuck")
                }
                return .ready("oldest undelivered event \(String(format: "%.1f", age)) s old")
            } catch {
                return .notReady("the outbox cannot be read: \(String(describingError: error))")
            }
        }
    }
}
