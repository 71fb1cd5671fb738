import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TwinGraph
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime

/// Publishes the outbox: takes committed events in order, sends each to the endpoints whose routes
/// let it through, waits for every delivery report, and only then forgets them. A crash before that
/// sends them again with the same event ids; nothing is lost and nothing is invented.
///
/// No event blocks it for good. When the broker refuses a batch for a message itself (too large, an
/// unknown topic, not authorised: ``KafkaError/isMessageRefusal``), the relay sends one event at a
/// time until it finds the one refused, tries that one `refusalAttempts` times with back-off (the
/// ``status`` says why meanwhile, and readiness with it), then sends it to the dead-letter topic with
/// the reason, its outbox position and its event ID, and goes on. An event routed to an endpoint
/// that is not configured is dead-lettered the same way. Outages and timeouts are not refusals:
/// those batches are sent again until they go through.
public struct OutboxRelay: Service {
    private let graph: DigitalTwinGraph
    private let producer: KafkaProducer
    private let logger: Logger
    private let batchSize: Int
    private let keyRetention: Duration
    private let keyPurgeInterval: Duration
    private let deadLetterTopic: String
    private let refusalAttempts: Int
    private let maximumBackoff: Duration
    /// What the relay delivered, and the refusal it is retrying, if any.
    public let status = RelayStatus()

    /// `keyRetention`: how long command ids and telemetry Message-Ids are remembered for
    /// deduplication, and `keyPurgeInterval` how often older ones are forgotten; `refusalAttempts`:
    /// how often an event the broker refuses is tried before it is dead-lettered.
    public init(
        graph: DigitalTwinGraph, producer: KafkaProducer, deadLetterTopic: String, logger: Logger, batchSize: Int = 5000,
        keyRetention: Duration = .seconds(86_400), keyPurgeInterval: Duration = .seconds(600), refusalAttempts: Int = 5,
        maximumBackoff: Duration = .seconds(5)
    ) {
        self.keyPurgeInterval = keyPurgeInterval
        self.graph = graph
        self.producer = producer
        self.deadLetterTopic = deadLetterTopic
        self.logger = logger
        self.batchSize = batchSize
        self.keyRetention = keyRetention
        self.refusalAttempts = max(1, refusalAttempts)
        self.maximumBackoff = maximumBackoff
    }

    public func run() async throws {
        for route in graph.routesWithUnconfiguredEndpoints() {
            logger.error(
                "event route names an endpoint that is not configured; its events go to the dead-letter topic",
                metadata: ["route": "\(route.id)", "endpoint": "\(route.endpointName)"]
            )
        }
        try await withGracefulShutdownHandler {
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                let turn: any RelayTurn
                do {
                    turn = try await cancelWhenGracefulShutdown { try await graph.relayTurn() }
                } catch is CancellationError {
                    break
                }
                status.noteTurn(held: true)
                do {
                    // Another instance may have relayed since this one last did: it goes on from there.
                    guard await learnWhereDeliveryStands(while: turn) else {
                        status.noteTurn(held: false)
                        await turn.release()
                        continue
                    }
                    try await relayUntilStopped(while: turn)
                } catch {
                    status.noteTurn(held: false)
                    await turn.release()
                    throw error
                }
                status.noteTurn(held: false)
                await turn.release()
                if !turn.isHeld, !Task.isShuttingDownGracefully {
                    logger.warning("the relay's turn was lost; asking for it again")
                }
            }
        } onGracefulShutdown: { [graph] in
            graph.interruptEventWait()
        }
        logger.info("outbox relay stopped")
    }

    /// Reads how far the outbox was delivered (by whichever instance relayed it), again after a
    /// back-off until it can; false when the turn was lost or the relay is stopping first.
    private func learnWhereDeliveryStands(while turn: any RelayTurn) async -> Bool {
        var backoff = Duration.milliseconds(100)
        while !Task.isShuttingDownGracefully, !Task.isCancelled, turn.isHeld {
            do {
                status.markDelivered(through: try await graph.outboxDeliveredThrough())
                return true
            } catch {
                logger.error("the position delivered is not readable; trying again", metadata: ["error": .error(error), "retryIn": "\(backoff)"])
                await pause(&backoff)
            }
        }
        return false
    }

    /// Delivered entries (and idempotency keys past their retention) are forgotten, and the store
    /// checkpointed, by a task beside the relay, so the relay never waits for the store's writer; a
    /// crash before entries are forgotten sends them again, with their ids.
    private func relayUntilStopped(while turn: any RelayTurn) async throws {
        let status = self.status
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { [graph, logger, keyRetention, keyPurgeInterval] in
                await Self.forget(through: status, keyRetention: keyRetention, keyPurgeInterval: keyPurgeInterval, graph: graph, logger: logger)
            }
            do {
                try await relay(while: turn)
            } catch {
                tasks.cancelAll()
                throw error
            }
            tasks.cancelAll()
        }
        do {
            try await graph.markDelivered(through: status.deliveredThrough)
        } catch {
            logger.warning("delivered outbox entries not forgotten; they will be sent again", metadata: ["error": .error(error)])
        }
    }

    /// Batches in flight at once: the next batch is read, made and enqueued while the broker
    /// acknowledges the one before, so the relay does not stand still for each round trip.
    static let batchesInFlight = 2

    private func relay(while turn: any RelayTurn) async throws {
        var sent = InFlightBatches(enqueuedThrough: status.deliveredThrough)
        var backoff = Duration.milliseconds(100)
        while !Task.isShuttingDownGracefully, !Task.isCancelled, turn.isHeld {
            if sent.batches.count >= (sent.isolating ? 1 : Self.batchesInFlight) {
                await confirmOldest(of: &sent, backoff: &backoff)
                continue
            }
            let started = ContinuousClock.now
            let entries: [OutboxEntry]
            do {
                entries = try await graph.pendingEvents(after: sent.enqueuedThrough, limit: sent.isolating ? 1 : batchSize)
                if !entries.isEmpty { try await graph.refreshCatalog() }
            } catch {
                logger.error("outbox or models not readable; trying again", metadata: ["error": .error(error), "retryIn": "\(backoff)"])
                await pause(&backoff)
                continue
            }
            guard let last = entries.last else {
                if sent.batches.isEmpty {
                    await graph.eventsCommitted()
                } else {
                    await confirmOldest(of: &sent, backoff: &backoff)
                }
                continue
            }
            do {
                let messages = await Self.messages(for: entries, graph: graph, deadLetterTopic: deadLetterTopic)
                let ticket = try await producer.enqueue(messages[...])
                sent.batches.append(
                    SentBatch(
                        ticket: ticket, last: last.position, count: entries.count, started: started, single: entries.count == 1 ? entries[0] : nil)
                )
                sent.enqueuedThrough = last.position
            } catch {
                logger.error("outbox batch not enqueued; sending it again", metadata: ["error": .error(error), "retryIn": "\(backoff)"])
                while !sent.batches.isEmpty {
                    await confirmOldest(of: &sent, backoff: &backoff)
                }
                sent.enqueuedThrough = status.deliveredThrough
                await pause(&backoff)
            }
        }
        while !sent.batches.isEmpty {
            await confirmOldest(of: &sent, backoff: &backoff)
        }
    }

    /// Waits for the oldest batch's delivery reports; marks it delivered, or, if it failed, starts
    /// over after the last batch delivered whole (what was delivered since goes again, with its ids).
    private func confirmOldest(of sent: inout InFlightBatches, backoff: inout Duration) async {
        let oldest = sent.batches.removeFirst()
        do {
            try await producer.delivered(oldest.ticket)
        } catch {
            status.countFailedBatch()
            guard error.isMessageRefusal else {
                logger.error("outbox batch not delivered; sending it again", metadata: ["error": .error(error), "retryIn": "\(backoff)"])
                await startOver(&sent, backoff: &backoff)
                return
            }
            guard let entry = oldest.single else {
                logger.warning(
                    "the broker refused a message of an outbox batch; sending one event at a time to find it", metadata: ["error": .error(error)])
                sent.isolating = true
                sent.isolatingThrough = max(sent.isolatingThrough, oldest.last)
                await startOver(&sent, backoff: &backoff, pausing: false)
                return
            }
            sent.isolating = true
            let attempts = status.noteRefusal(of: entry, error: error, attemptsAllowed: refusalAttempts)
            guard attempts >= refusalAttempts else {
                logger.warning(
                    "the broker refused an outbox event; trying it again",
                    metadata: [
                        "position": "\(entry.position)", "eventID": "\(entry.event.attributes.id)", "attempt": "\(attempts)", "error": .error(error),
                    ]
                )
                await startOver(&sent, backoff: &backoff)
                return
            }
            let reason = "refused by the broker \(attempts) times: \(error)"
            guard await deadLetter(entry, reason: reason) else {
                await startOver(&sent, backoff: &backoff)
                return
            }
            // Found: the rest goes in batches again (another refusal isolates again from there).
            sent.isolatingThrough = 0
        }
        // One event delivered alone before the refused one is found does not end the search.
        if oldest.last >= sent.isolatingThrough {
            sent.isolating = false
            sent.isolatingThrough = 0
        }
        backoff = .milliseconds(100)
        status.markDelivered(through: oldest.last)
        logger.debug("outbox batch delivered", metadata: ["count": "\(oldest.count)", "took": "\(ContinuousClock.now - oldest.started)"])
    }

    /// Sends the event's messages to the dead-letter topic (without their values when the broker
    /// refuses those too); false when that failed as well, to be tried again.
    private func deadLetter(_ entry: OutboxEntry, reason: String) async -> Bool {
        let deadLetters = graph.routing(of: entry.event).endpoints.map {
            DeadLetter.undeliverable(
                Self.message(for: entry.event, to: $0), service: CommandHandler.serviceName, reason: reason, outboxPosition: entry.position,
                eventID: entry.event.attributes.id, deadLetterTopic: deadLetterTopic)
        }
        do {
            try await producer.send(deadLetters, deadLettersTo: deadLetterTopic)
        } catch {
            logger.error(
                "an outbox event could not be dead-lettered; trying again", metadata: ["position": "\(entry.position)", "error": .error(error)])
            return false
        }
        logger.error(
            "outbox event sent to the dead-letter topic",
            metadata: ["position": "\(entry.position)", "eventID": "\(entry.event.attributes.id)", "reason": "\(reason)"]
        )
        status.noteDeadLettered()
        return true
    }

    /// After a failed batch: waits for the batches behind it (delivered or not, they go again, in
    /// order, with their ids), then goes back to just after the last batch delivered whole.
    private func startOver(_ sent: inout InFlightBatches, backoff: inout Duration, pausing: Bool = true) async {
        for batch in sent.batches { try? await producer.delivered(batch.ticket) }
        sent.batches.removeAll()
        sent.enqueuedThrough = status.deliveredThrough
        if pausing { await pause(&backoff) }
    }

    private func pause(_ backoff: inout Duration) async {
        try? await Task.sleep(for: backoff)
        backoff = min(backoff * 2, maximumBackoff)
    }

    private struct SentBatch {
        var ticket: KafkaSendTicket
        var last: Int64
        var count: Int
        var started: ContinuousClock.Instant
        /// The batch's one entry, when it has one: a refusal of it is that event's.
        var single: OutboxEntry?
    }

    /// The batches enqueued and not yet confirmed, and the outbox position enqueued through (the
    /// position delivered through is the relay's ``RelayStatus``). While `isolating`, events go one
    /// at a time, to find the one the broker refuses.
    private struct InFlightBatches {
        var batches: [SentBatch] = []
        var enqueuedThrough: Int64 = 0
        /// Whether events go one at a time, to find the one the broker refuses in a batch.
        var isolating = false
        /// The last position of the batch refused: events go one at a time up to it, unless the
        /// event refused is found (dead-lettered) first.
        var isolatingThrough: Int64 = 0
    }

    /// Runs until cancelled (the relay stopping, which forgets what it delivered once more itself).
    private static func forget(
        through status: RelayStatus, keyRetention: Duration, keyPurgeInterval: Duration, graph: DigitalTwinGraph, logger: Logger
    ) async {
        var forgotten: Int64 = 0
        var nextKeyCleanup = ContinuousClock.now
        var nextCheckpoint = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(200))
            if ContinuousClock.now >= nextCheckpoint {
                nextCheckpoint = .now + .seconds(1)
                do {
                    try await graph.checkpointStore()
                } catch is CancellationError {
                    break
                } catch {
                    logger.warning("store checkpoint failed; the next one takes over", metadata: ["error": .error(error)])
                }
            }
            if ContinuousClock.now >= nextKeyCleanup {
                nextKeyCleanup = .now + keyPurgeInterval
                let cutoff = Date().addingTimeInterval(-Double(keyRetention.components.seconds))
                do {
                    let purge = try await graph.forgetIdempotencyKeys(recordedBefore: Timestamp.string(from: cutoff))
                    if purge.forgotten > 0 {
                        logger.info(
                            "idempotency keys forgotten",
                            metadata: ["keys": "\(purge.forgotten)", "steps": "\(purge.steps)", "longestStep": "\(purge.longestStep)"])
                    }
                } catch is CancellationError {
                    break
                } catch {
                    logger.warning("idempotency keys not forgotten yet", metadata: ["error": .error(error)])
                }
            }
            let position = status.deliveredThrough
            guard position > forgotten else { continue }
            do {
                try await graph.markDelivered(through: position)
                forgotten = position
            } catch is CancellationError {
                break
            } catch {
                logger.warning("delivered outbox entries not forgotten yet", metadata: ["error": .error(error)])
            }
        }
    }

    /// The messages of many entries, made in steps that let other tasks run between them.
    static func messages(for entries: [OutboxEntry], graph: DigitalTwinGraph, deadLetterTopic: String) async -> [KafkaProducerMessage] {
        var messages: [KafkaProducerMessage] = []
        messages.reserveCapacity(entries.count)
        for (index, entry) in entries.enumerated() {
            if index % 1024 == 1023 { await Task.yield() }
            messages.append(contentsOf: Self.messages(for: entry, graph: graph, deadLetterTopic: deadLetterTopic))
        }
        return messages
    }

    /// The event as each endpoint its routes select carries it, keyed by twin ID; for a route whose
    /// endpoint is not configured, the event (structured) on the dead-letter topic, saying so.
    public static func messages(
        for entry: OutboxEntry, graph: DigitalTwinGraph, deadLetterTopic: String = Topics.defaults.deadLetter
    ) -> [KafkaProducerMessage] {
        let event = entry.event
        let routing = graph.routing(of: event)
        var messages = routing.endpoints.map { message(for: event, to: $0) }
        for name in routing.unconfigured {
            let original = CloudEvent.kafkaMessage(
                serializedAttributes: event.serializedAttributes, jsonData: event.data, topic: "endpoint:\(name)", key: event.twinID)
            messages.append(
                DeadLetter.undeliverable(
                    original, service: CommandHandler.serviceName, reason: "the endpoint \(name) is not configured", outboxPosition: entry.position,
                    eventID: event.attributes.id, deadLetterTopic: deadLetterTopic))
        }
        return messages
    }

    static func message(for event: PendingEvent, to endpoint: EventEndpoint) -> KafkaProducerMessage {
        switch endpoint.format {
        case .structured:
            CloudEvent.kafkaMessage(serializedAttributes: event.serializedAttributes, jsonData: event.data, topic: endpoint.topic, key: event.twinID)
        case .binary:
            BinaryCloudEvent(attributes: event.attributes, data: event.data).kafkaMessage(topic: endpoint.topic, key: event.twinID)
        }
    }
}

/// What an ``OutboxRelay`` has done: the outbox position delivered through, the event it is
/// retrying after the broker refused it (for readiness), and counts of failed batches and dead letters.
public final class RelayStatus: Sendable {
    private struct State {
        var deliveredThrough: Int64 = 0
        var refusal: (position: Int64, attempts: Int, description: String)?
        var failedBatches = 0
        var deliveredBatches = 0
        var deadLettered = 0
        var holdsTurn = false
    }

    private let state = Mutex(State())

    public init() {}

    /// The outbox position through which every event was delivered (or dead-lettered).
    public var deliveredThrough: Int64 { state.withLock { $0.deliveredThrough } }
    /// Batches whose delivery failed (and were sent again), since start.
    public var failedBatches: Int { state.withLock { $0.failedBatches } }
    /// Batches delivered whole (or ended by a dead letter), since start.
    public var deliveredBatches: Int { state.withLock { $0.deliveredBatches } }
    /// Events sent to the dead-letter topic after refusals, since start.
    public var deadLettered: Int { state.withLock { $0.deadLettered } }

    /// The relay's readiness: not ready while it retries an event the broker refuses.
    public var readiness: ReadinessStatus {
        state.withLock { state in
            guard let refusal = state.refusal else {
                return .ready(state.holdsTurn ? "relaying" : "standing by: another instance relays the outbox")
            }
            return .notReady(refusal.description)
        }
    }

    func markDelivered(through position: Int64) {
        state.withLock { state in
            state.deliveredBatches += 1
            state.deliveredThrough = max(state.deliveredThrough, position)
            if let refusal = state.refusal, refusal.position <= position { state.refusal = nil }
        }
    }

    func noteTurn(held: Bool) {
        state.withLock { $0.holdsTurn = held }
    }

    func countFailedBatch() {
        state.withLock { $0.failedBatches += 1 }
    }

    /// Counts a refusal of `entry`; returns how many times in a row it was refused.
    func noteRefusal(of entry: OutboxEntry, error: KafkaError, attemptsAllowed: Int) -> Int {
        state.withLock { state in
            let attempts = state.refusal?.position == entry.position ? (state.refusal?.attempts ?? 0) + 1 : 1
            let description =
                "the broker refuses outbox event \(entry.event.attributes.id) (position \(entry.position)): \(error); attempt \(attempts) of \(attemptsAllowed), then the dead-letter topic"
            state.refusal = (entry.position, attempts, description)
            return attempts
        }
    }

    func noteDeadLettered() {
        state.withLock { $0.deadLettered += 1 }
    }
}
