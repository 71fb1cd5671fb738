extension DigitalTwinGraph {
    /// Outbox entries after `position`, in commit order, at most `limit`.
    public func pendingEvents(after position: Int64, limit: Int) async throws -> [OutboxEntry] {
        try await store.outbox(after: position, limit: limit)
    }

    /// The position through which the outbox was delivered, by whichever process relayed it.
    public func outboxDeliveredThrough() async throws -> Int64 {
        try await store.outboxDeliveredThrough()
    }

    /// Forgets the entries up to and including `position`: every route got them.
    public func markDelivered(through position: Int64) async throws {
        try await store.removeFromOutbox(through: position)
    }

    /// Returns when a write committed since the last call (at once if one did).
    public func eventsCommitted() async {
        await outboxBell.wait()
    }

    /// Returns once this process may publish the outbox (see ``TwinStore/relayTurn(committedElsewhere:)``);
    /// while it holds the turn, other processes' commits end ``eventsCommitted()`` too.
    public func relayTurn() async throws -> any RelayTurn {
        try await store.relayTurn(committedElsewhere: { [outboxBell] in outboxBell.ring() })
    }

    /// Ends a pending ``eventsCommitted()`` early, for a relay that is shutting down.
    public func interruptEventWait() {
        outboxBell.ring()
    }
}

extension DigitalTwinGraph {
    /// Forgets command ids and telemetry Message-Ids recorded before `time`: a repeat older than that is applied again.
    @discardableResult
    public func forgetIdempotencyKeys(recordedBefore time: String) async throws -> KeyPurge {
        try await store.forgetKeys(recordedBefore: time)
    }

    /// Lets the store move committed writes out of its write-ahead log, beside its writer.
    public func checkpointStore() async throws {
        try await store.checkpoint()
    }
}
