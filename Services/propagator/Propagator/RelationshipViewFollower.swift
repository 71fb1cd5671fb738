import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime

#if canImport(Glibc)
import Glibc
#endif

/// Loads the relationship view from twin-service, then keeps it current from every partition of
/// `eventgrid.twin-events`, outside the consumer group: each instance sees every relationship,
/// whichever partitions it owns.
///
/// The topic's end offsets are taken before the snapshot is read, and following starts there, so
/// a change made while the snapshot was read is applied after it (values are kept by sequence, so
/// reading it twice does no harm). At start the models are loaded too, and rules that do not fit
/// them stop the service.
///
/// With rules that aggregate, a child's change it reads makes the parents this instance checks be
/// worked out again (see `Propagation+Rechecks.swift`); their commands are sent before it reads on.
/// And the partitions the group gives this instance have their aggregate parents reconciled, once
/// the view has read everything on the topic at that moment.
public final class RelationshipViewFollower: Service, Sendable {
    private struct Progress: Sendable {
        var partitions: Int?
        /// The next offset to read, per partition.
        var next: [Int32: Int64] = [:]
        var lastError: String?
    }

    private let view: RelationshipView
    private let catalog: ModelCatalog
    private let rules: PropagationRules
    private let client: TwinsClient
    private let admin: KafkaAdmin
    private let kafka: KafkaConfiguration
    private let topic: String
    private let clientID: String
    private let retryInterval: Duration
    private let rechecks: Rechecks?
    private let group: KafkaConsumer?
    private let logger: Logger
    private let progress = Mutex(Progress())

    /// Where the follower's rechecks of aggregates go.
    private struct Rechecks: Sendable {
        var propagation: Propagation
        var producer: KafkaProducer
        var topic: String
        var counters: PropagatorCounters
    }

    /// A follower of `topic` into `view`; with rules that aggregate, it sends its rechecks to
    /// `commandsTopic` through `producer`, and reconciles the parents on the partitions the consumer
    /// `group` takes over (``KafkaConsumer/takeGainedPartitions()``).
    public init(
        view: RelationshipView, catalog: ModelCatalog, rules: PropagationRules, hopLimit: Int, client: TwinsClient, admin: KafkaAdmin,
        kafka: KafkaConfiguration, topic: String, clientID: String, retryInterval: Duration = .seconds(2), rechecksTo producer: KafkaProducer,
        commandsTopic: String, counters: PropagatorCounters, group: KafkaConsumer?, logger: Logger
    ) {
        self.group = group
        let propagation = Propagation(rules: rules.rules, hopLimit: hopLimit)
        self.rechecks =
            propagation.aggregates.isEmpty ? nil : Rechecks(propagation: propagation, producer: producer, topic: commandsTopic, counters: counters)
        self.view = view
        self.catalog = catalog
        self.rules = rules
        self.client = client
        self.admin = admin
        self.kafka = kafka
        self.topic = topic
        self.clientID = clientID
        self.retryInterval = retryInterval
        self.logger = logger
    }

    /// For readiness: loaded (with its size), or why not yet.
    public var status: ReadinessStatus {
        if view.isLoaded {
            let (relationships, twins) = view.size
            return .ready("\(relationships) relationships (\(view.names.sorted().joined(separator: ", "))), \(twins) twins")
        }
        return .notReady(progress.withLock { $0.lastError } ?? "loading from twin-service")
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            let start = try await self.loadUntilDone()
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await self.follow(from: start) }
                if self.rechecks != nil, let consumer = self.group { group.addTask { await self.reconcilePartitions(gainedBy: consumer) } }
            }
        }
    }

    private func loadUntilDone() async throws -> [KafkaTopicPartition: Int64] {
        while true {
            do {
                return try await load()
            } catch let error as RuleError {
                throw error
            } catch {
                try Task.checkCancellation()
                logger.warning("relationship view not loaded yet; trying again", metadata: ["error": .error(error), "retryIn": "\(retryInterval)"])
                progress.withLock { $0.lastError = String(describingError: error) }
                try await Task.sleep(for: retryInterval)
            }
        }
    }

    private func load() async throws -> [KafkaTopicPartition: Int64] {
        guard let partitions = try await admin.metadata().topic(named: topic)?.partitionCount, partitions > 0 else {
            throw KafkaError(code: .metadata, message: "topic \(topic) does not exist")
        }
        let ends = try await admin.highWatermarks(topic: topic, partitions: partitions)
        try catalog.load(try await client.allModelDefinitions())
        let misfits = rules.misfits(in: catalog.current)
        if !misfits.isEmpty { throw RuleError(misfits.joined(separator: "; ")) }
        var relationships: [TwinNotification.Relationship] = []
        var twins: [String: JSONValue] = [:]
        for name in view.names.sorted() {
            for row in try await client.query("SELECT P, C, R FROM DIGITALTWINS P JOIN C RELATED P.\(name) R") {
                relationships.append(try TwinNotification.Relationship(decoding: row["R"]))
                for alias in ["P", "C"] {
                    if let twin = row[alias], let id = twin["$dtId"]?.stringValue { twins[id] = twin }
                }
            }
        }
        view.load(relationships: relationships, twins: twins)
        logger.info("relationship view loaded", metadata: ["relationships": "\(relationships.count)", "twins": "\(twins.count)"])
        var start: [KafkaTopicPartition: Int64] = [:]
        for (partition, end) in ends.enumerated() { start[KafkaTopicPartition(topic: topic, partition: Int32(partition))] = end }
        progress.withLock { progress in
            progress.partitions = partitions
            progress.next = Dictionary(uniqueKeysWithValues: ends.enumerated().map { (Int32($0.offset), $0.element) })
            progress.lastError = nil
        }
        return start
    }

    private func follow(from start: [KafkaTopicPartition: Int64]) async throws {
        let filter = NotificationFilter(tracked: view.tracked)
        let consumer = try KafkaConsumer(
            configuration: .reading(start, kafka: kafka, clientID: "\(clientID)-view", maxBatchSize: 10_000), logger: logger)
        do {
            while let batch = try await consumer.nextBatch() {
                var notifications: [TwinNotification] = []
                notifications.reserveCapacity(batch.count)
                for message in batch.messages where filter.mayMatter(message.value) {
                    // What cannot be read is dead-lettered by the group's consumer, once; here it is passed over.
                    if let notification = try? TwinNotification(decoding: message) { notifications.append(notification) }
                }
                try await apply(notifications)
                progress.withLock { progress in
                    for (topicPartition, next) in batch.nextOffsets { progress.next[topicPartition.partition] = next }
                }
            }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    private func apply(_ notifications: [TwinNotification]) async throws {
        guard let rechecks else { return view.apply(notifications) }
        // twin-service out of reach stops no one here: a model not known yet matches no rule until the
        // group's consumer, which fails its batch and tries again, has learned it.
        try? await catalog.learn(Set(notifications.compactMap(\.modelID)))
        var models = ModelLookup(catalog.current)
        let commands = view.withState { state in
            rechecks.propagation.apply(followed: notifications, to: &state, tracked: view.tracked, names: view.names, models: &models, now: .now)
        }
        try await deliver(commands, rechecks)
    }

    /// Every 100 ms, the partitions the group gave this instance since: once the view has read the
    /// whole topic as it was then (however long that takes), the aggregate parents on those of them
    /// it still owns are reconciled. The parents on partitions it lost are no longer checked here:
    /// their new owner checks them.
    private func reconcilePartitions(gainedBy consumer: KafkaConsumer) async {
        guard let rechecks else { return }
        var gained: Set<Int32> = []
        var owned: Set<Int32> = []
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            if consumer.hasJoinedGroup {
                let now = Set(consumer.assignment.filter { $0.topic == topic }.map(\.partition))
                let lost = owned.subtracting(now)
                if !lost.isEmpty, let partitions = progress.withLock({ $0.partitions }) {
                    view.withState { Propagation.stopChecking(parentsOn: lost, of: Int32(partitions), in: &$0) }
                }
                owned = now
            }
            gained.formUnion(consumer.takeGainedPartitions().filter { $0.topic == topic }.map(\.partition))
            guard !gained.isEmpty, let partitions = progress.withLock({ $0.partitions }),
                let ends = try? await admin.highWatermarks(topic: topic, partitions: partitions)
            else { continue }
            guard await read(upTo: ends) else { return }
            gained.formIntersection(consumer.assignment.filter { $0.topic == topic }.map(\.partition))
            let count = Int32(partitions)
            let parents = view.withState { rechecks.propagation.aggregateParents(in: $0) }
                .filter { gained.contains(KafkaPartitioner.partition(ofKey: $0, partitionCount: count)) }.sorted()
            var models = ModelLookup(catalog.current)
            let commands = view.withState { state in
                rechecks.propagation.reconcile(parents, pass: "\(UUID())", view: &state, models: &models, now: .now)
            }
            do {
                try await deliver(commands, rechecks)
            } catch {
                return
            }
            logger.info(
                "aggregate parents of gained partitions reconciled",
                metadata: ["partitions": "\(gained.sorted())", "parents": "\(parents.count)", "commands": "\(commands.count)"])
            gained = []
        }
    }

    /// Waits until the view has read every partition up to `ends`, logging once when that takes
    /// long; false when cancelled first.
    private func read(upTo ends: [Int64]) async -> Bool {
        let started = ContinuousClock.now
        var warned = false
        while !Task.isCancelled {
            let done = progress.withLock { progress in
                ends.enumerated().allSatisfy { partition, end in (progress.next[Int32(partition)] ?? 0) >= end }
            }
            if done { return true }
            if !warned, ContinuousClock.now - started > .seconds(5) {
                warned = true
                logger.warning("the relationship view is more than 5 s behind the topic; gained partitions are reconciled once it caught up")
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return false
    }

    /// Sends rechecks, again after a back-off while they are not delivered; throws only when cancelled.
    private func deliver(_ commands: [TwinCommand], _ rechecks: Rechecks) async throws {
        guard !commands.isEmpty else { return }
        let messages = commands.map { $0.kafkaMessage(topic: rechecks.topic) }
        var backOff = Duration.milliseconds(100)
        while true {
            do {
                try await rechecks.producer.send(messages)
                break
            } catch {
                try Task.checkCancellation()
                logger.warning("rechecks of aggregates not delivered; trying again", metadata: ["error": .error(error), "retryIn": "\(backOff)"])
                try await Task.sleep(for: backOff)
                backOff = min(backOff * 2, .seconds(5))
            }
        }
        var counts = PropagatorCounts()
        counts.propagated = commands.count
        counts.rechecked = commands.count
        rechecks.counters.add(counts)
    }

    /// Waits (at most `timeout`) until the view has applied everything on the topic now; false when
    /// it did not get there in time.
    public func catchUp(within timeout: Duration) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        guard let partitions = progress.withLock({ $0.partitions }),
            let ends = try? await admin.highWatermarks(topic: topic, partitions: partitions, timeout: timeout)
        else { return false }
        while clock.now < deadline {
            let caughtUp = progress.withLock { progress in
                ends.enumerated().allSatisfy { partition, end in (progress.next[Int32(partition)] ?? 0) >= end }
            }
            if caughtUp { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return false
    }
}

/// Tells, from a notification's bytes alone, that reading it cannot change the view: a twin update
/// that names none of the tracked properties. Every instance reads the whole topic, most of it
/// updates of the children's own properties, which the view does not keep; parsing them would
/// double the propagator's work.
struct NotificationFilter {
    /// The `type` member as twin-service writes it, before the event's data: a `"type":"` inside the
    /// data (a relationship's property named `type`) comes after a `"data":`, and one inside a string
    /// has its quotes escaped.
    private let updateType = Array(#""type":"Microsoft.DigitalTwins.Twin.Update""#.utf8)
    private let typeMember = Array(#""type":""#.utf8)
    private let dataMember = Array(#""data":"#.utf8)
    /// The first token of each tracked property: any patch path that touches the property, or an
    /// object holding it, names it.
    private let names: [[UInt8]]

    init(tracked: Set<JSONPointer>) {
        names = Set(tracked.compactMap(\.tokens.first)).map { Array($0.utf8) }
    }

    func mayMatter(_ value: [UInt8]?) -> Bool {
        guard let value else { return false }
        guard isUpdate(value) else { return true }
        return names.contains { Self.firstIndex(of: $0, in: value) != nil }
    }

    /// Whether the event's own `type` is Twin.Update: its first `type` member says so, and no `data`
    /// member comes before it. Anything else may matter, and is parsed.
    private func isUpdate(_ value: [UInt8]) -> Bool {
        guard let type = Self.firstIndex(of: typeMember, in: value),
            value.count - type >= updateType.count, value[type..<(type + updateType.count)].elementsEqual(updateType)
        else { return false }
        return Self.firstIndex(of: dataMember, in: value).map { $0 > type } ?? true
    }

    static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        return haystack.withUnsafeBufferPointer { hay in
            needle.withUnsafeBufferPointer { pin in
                let first = pin[0]
                var start = 0
                let last = hay.count - pin.count
                while start <= last {
                    guard let found = UnsafeRawPointer(hay.baseAddress! + start).flatMap({ memchr($0, Int32(first), last - start + 1) }) else {
                        return nil
                    }
                    start = hay.baseAddress!.distance(to: found.assumingMemoryBound(to: UInt8.self))
                    if memcmp(hay.baseAddress! + start, pin.baseAddress!, pin.count) == 0 { return start }
                    start += 1
                }
                return nil
            }
        }
    }
}
