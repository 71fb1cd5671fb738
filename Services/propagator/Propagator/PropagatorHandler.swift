import Logging
import Synchronization
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime

/// Turns a batch from `eventgrid.twin-events` into patches of parents: decode the notifications,
/// decide against the relationship view, then send the commands and dead letters as one producer
/// batch. ``handle(_:_:)`` returns once every delivery report arrived, so the batch's offsets may
/// be stored.
public final class PropagatorHandler: Sendable {
    public static let serviceName = "propagator"

    private let propagation: Propagation
    private let view: RelationshipView
    private let follower: RelationshipViewFollower?
    private let catalog: ModelCatalog
    private let producer: KafkaProducer
    private let topics: Topics
    private let counters: PropagatorCounters
    private let logger: Logger
    /// The newest sequence propagated per rule and child; only the consumer's batches touch it,
    /// one at a time.
    private let memory = Mutex([String: Int64]())
    private let logged = Mutex(LoggedOnce())
    /// Twins that had no parent even after the view caught up, with when: they do not make a batch
    /// catch up again for ``orphanRecheck``.
    private let knownOrphans = Mutex([String: ContinuousClock.Instant]())
    static let orphanRecheck: Duration = .seconds(10)

    /// `follower` brings the view up to date when a changed twin has no parent yet (the
    /// relationship may have been made a moment before, on another partition).
    public init(
        rules: PropagationRules, hopLimit: Int, view: RelationshipView, follower: RelationshipViewFollower?, catalog: ModelCatalog,
        producer: KafkaProducer, topics: Topics, counters: PropagatorCounters, logger: Logger
    ) {
        self.propagation = Propagation(rules: rules.rules, hopLimit: hopLimit)
        self.view = view
        self.follower = follower
        self.catalog = catalog
        self.producer = producer
        self.topics = topics
        self.counters = counters
        self.logger = logger
    }

    /// A batch's outputs, ready to send.
    public struct PreparedBatch: Sendable {
        public var messages: [KafkaProducerMessage] = []
        public var counts = PropagatorCounts()
        var orphans: [String] = []
        var hopLimited: [String] = []
    }

    /// Decodes the batch and decides what it propagates. Runs while the batch before is still being
    /// delivered; all waiting (for models not known yet, for the view to catch up) comes before the
    /// decisions, which change the propagator's memory and cannot fail.
    public func prepare(_ batch: KafkaConsumerBatch) async throws -> PreparedBatch {
        var prepared = PreparedBatch()
        var notifications: [(position: Int, notification: TwinNotification)] = []
        notifications.reserveCapacity(batch.count)
        for (position, message) in batch.messages.enumerated() {
            do {
                guard let notification = try TwinNotification(ifNotificationIn: message) else {
                    prepared.counts.ignored += 1
                    continue
                }
                notifications.append((position, notification))
            } catch {
                prepared.messages.append(deadLetter(message, "not a twin notification: \(error)"))
                prepared.counts.deadLettered += 1
            }
        }
        // Before the view is loaded every child looks like an orphan: wait for it.
        while !view.isLoaded {
            try await Task.sleep(for: .milliseconds(10))
        }
        try await catalog.learn(Set(notifications.compactMap(\.notification.modelID)))
        var models = ModelLookup(catalog.current)
        if let follower {
            // A twin found without a parent after a catch-up stays one for a while: its changes do not
            // make every batch wait on the topic's end offsets again.
            let orphans = view.withState { propagation.orphans(notifications, in: $0, models: &models) }
            let now = ContinuousClock.now
            let unknown = knownOrphans.withLock { known in orphans.filter { known[$0].map { now - $0 > Self.orphanRecheck } ?? true } }
            if !unknown.isEmpty {
                _ = await follower.catchUp(within: .seconds(1))
                knownOrphans.withLock { known in
                    if known.count > 100_000 { known = known.filter { now - $0.value <= Self.orphanRecheck } }
                    for twin in unknown { known[twin] = now }
                }
            }
        }
        let tracked = view.tracked
        let now = ContinuousClock.now
        let outcome = memory.withLock { memory in
            view.withState { state in propagation.decide(notifications, view: &state, memory: &memory, models: &models, tracked: tracked, now: now) }
        }
        // A value that does not fit one parent's model leaves the other parents' commands be; the
        // notification goes to the dead letters once, with the first reason.
        var refusedPositions: Set<Int> = []
        for (position, reason) in outcome.refused where refusedPositions.insert(position).inserted {
            prepared.messages.append(deadLetter(batch.messages[position], reason))
        }
        for output in outcome.outputs {
            prepared.messages.append(output.command.kafkaMessage(topic: topics.twinCommands))
        }
        let (undecodable, ignored) = (prepared.counts.deadLettered, prepared.counts.ignored)
        prepared.counts = outcome.counts
        prepared.counts.deadLettered = undecodable + refusedPositions.count
        prepared.counts.ignored = ignored
        prepared.orphans = outcome.orphans
        prepared.hopLimited = outcome.hopLimited
        return prepared
    }

    /// Sends the batch's commands and dead letters and waits for every delivery report.
    public func handle(_ batch: KafkaConsumerBatch, _ prepared: PreparedBatch) async throws {
        if !prepared.messages.isEmpty { try await producer.send(prepared.messages, deadLettersTo: topics.deadLetter) }
        counters.add(prepared.counts)
        let (orphans, hopLimited) = logged.withLock { logged in
            (logged.firstTime(prepared.orphans, in: \.orphans), logged.firstTime(prepared.hopLimited, in: \.hopLimited))
        }
        for twin in orphans {
            logger.info(
                "a changed twin has no parent under a rule; its changes are not propagated (logged once per twin)", metadata: ["twin": "\(twin)"])
        }
        for twin in hopLimited {
            logger.warning("a change reached the hop limit and was not propagated further (logged once per twin)", metadata: ["twin": "\(twin)"])
        }
        if prepared.counts.deadLettered > 0 {
            logger.warning("notifications dead-lettered", metadata: ["count": "\(prepared.counts.deadLettered)"])
        }
    }

    private func deadLetter(_ message: KafkaConsumerMessage, _ reason: String) -> KafkaProducerMessage {
        DeadLetter(service: Self.serviceName, reason: reason, original: message).kafkaMessage(for: message, topic: topics.deadLetter)
    }
}

/// Twins already named in the log for a condition, so each is named once (up to a bound, past
/// which the rest go unnamed rather than grow without end).
struct LoggedOnce {
    static let limit = 100_000
    var orphans: Set<String> = []
    var hopLimited: Set<String> = []

    mutating func firstTime(_ twins: [String], in set: WritableKeyPath<LoggedOnce, Set<String>>) -> [String] {
        var first: [String] = []
        for twin in twins where self[keyPath: set].count < Self.limit && self[keyPath: set].insert(twin).inserted {
            first.append(twin)
        }
        return first
    }
}
