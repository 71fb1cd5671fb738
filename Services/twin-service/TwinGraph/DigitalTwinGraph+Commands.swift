import TwinflowCodec
import TwinflowRuntime

/// What became of a command from `twins.commands`.
public enum CommandOutcome: Sendable, Hashable {
    /// Applied: its patch (if any) made this change, its telemetry (if any) was published.
    case applied(TwinChange?)
    /// A command with this id was applied before: nothing changed, nothing was emitted.
    case duplicate
    /// Refused as the REST API would refuse it (unknown twin, a patch the model rejects …): nothing changed.
    case rejected(ServiceError)
}

/// Commands made ready to apply: their traces and lanes, worked out before their batch's turn
/// (while the batch before it is applied).
public struct PreparedCommands: Sendable {
    public let commands: [TwinCommand]
    /// One origin per command, so a command's notification and telemetry share a trace however they are made.
    let origins: [ChangeOrigin]
    let laneCount: Int
    let lanes: [Int]
}

extension DigitalTwinGraph {
    /// Works out what a batch of commands needs before its transaction: a trace per command and
    /// the lane its patch is prepared in (a twin's commands share one).
    public func prepare(_ commands: [TwinCommand]) -> PreparedCommands {
        let laneCount = commands.count < 64 ? 1 : 2
        return PreparedCommands(
            commands: commands,
            origins: commands.map { ChangeOrigin(traceparent: $0.traceparent, hop: $0.hop) },
            laneCount: laneCount,
            lanes: commands.map { PatchPreparation.lane(of: $0.twinID, among: laneCount) }
        )
    }

    /// Applies a batch of commands in one transaction, in order; each command takes effect whole or
    /// not at all, and at most once per command id.
    public func apply(_ commands: [TwinCommand]) async throws -> [CommandOutcome] {
        try await apply(prepare(commands))
    }

    /// Applies prepared commands in one transaction, in order; each command takes effect whole or
    /// not at all, and at most once per command id. The commands' patches are worked out outside the
    /// writer while the transaction runs, against the twins as last known; a patch whose twin is not
    /// known, or changed meanwhile, is worked out again in the transaction.
    public func apply(_ prepared: PreparedCommands) async throws -> [CommandOutcome] {
        let (commands, origins, lanes) = (prepared.commands, prepared.origins, prepared.lanes)
        let unknown = Set(commands.lazy.filter { $0.patch != nil && self.store.knownTwin($0.twinID) == nil }.map(\.twinID))
        if !unknown.isEmpty { try await store.learnTwins(Array(unknown)) }
        let preparation = PatchPreparation(count: commands.count, lanes: prepared.laneCount)
        let writes: [StoreWrite] = commands.indices.map { index in
            { [command = commands[index], origin = origins[index], lane = lanes[index]] transaction in
                let prepared = preparation.patch(at: index, lane: lane)
                return try self.apply(command, origin: origin, prepared: prepared, in: transaction)
            }
        }
        let results = try await withThrowingTaskGroup(of: [Result<any Sendable, any Error>]?.self) { group in
            // The transaction first: it takes each patch as soon as it is ready.
            group.addTask { try await self.writes.performAll(writes) }
            for lane in 0..<preparation.lanes {
                group.addTask {
                    self.prepare(commands, origins: origins, lanes: lanes, lane: lane, into: preparation)
                    return nil
                }
            }
            var results: [Result<any Sendable, any Error>] = []
            for try await finished in group {
                if let finished { results = finished }
            }
            return results
        }
        let outcomes = results.map { result -> CommandOutcome in
            switch result {
            case .success(let outcome as CommandOutcome): outcome
            case .success: preconditionFailure("a command write returned something else than its outcome")
            case .failure(let error as ServiceError): .rejected(error)
            case .failure(let error): .rejected(ServiceError(code: "InternalError", status: 500, String(describingError: error)))
            }
        }
        // Freeing a batch's worth of patches and closures is left to a task off the batch's path.
        Task.detached(priority: .utility) { _ = (writes, preparation, results) }
        return outcomes
    }

    /// Prepares one lane's patches, handing them over in steps so the writer need not wait for all.
    private func prepare(_ commands: [TwinCommand], origins: [ChangeOrigin], lanes: [Int], lane: Int, into preparation: PatchPreparation) {
        var prepared: [(Int, PreparedTwinPatch)] = []
        for (index, command) in commands.enumerated() {
            if index % 64 == 0, index > 0 {
                preparation.publish(prepared, lane: lane, through: index)
                prepared.removeAll(keepingCapacity: true)
            }
            // The twin as last known: for a twin's second command in the batch, as the first will leave it.
            guard lanes[index] == lane, let patch = command.patch, (try? Self.checkPaths(of: patch)) != nil,
                let base = store.knownTwin(command.twinID)
            else { continue }
            let patched = prepare(patch, for: base, ifMatch: nil, componentPath: nil, sourceTime: command.sourceTime, origin: origins[index])
            if let result = patched.result { store.remember(result) }
            prepared.append((index, patched))
        }
        preparation.publish(prepared, lane: lane, through: commands.count)
    }

    private func apply(
        _ command: TwinCommand, origin: ChangeOrigin, prepared: PreparedTwinPatch?, in transaction: any TwinStoreTransaction
    ) throws -> CommandOutcome {
        try Self.checkIdempotencyID(command.id, named: "command id")
        guard try transaction.recordOnce("command/\(command.id)") else { return .duplicate }
        var change: TwinChange?
        if let patch = command.patch {
            try Self.checkPaths(of: patch)
            change = try patchTwin(
                command.twinID, patch, in: transaction, ifMatch: nil, componentPath: nil, sourceTime: command.sourceTime, origin: origin,
                prepared: prepared
            )
        }
        if let telemetry = command.telemetry {
            let payload = telemetry.serialized()
            guard payload.count <= Self.maximumTelemetryBytes else {
                throw ServiceError.payloadTooLarge("The telemetry is \(payload.count) bytes; at most \(Self.maximumTelemetryBytes) are allowed.")
            }
            guard let twin = try change?.twin ?? transaction.twin(command.twinID).live else { throw ServiceError.twinNotFound(command.twinID) }
            try Self.checkComponent(command.component, of: twin, models)
            try transaction.emit(
                telemetryEvent(
                    twin: twin, messageID: command.id, payload: payload, component: command.component,
                    sourceTime: command.sourceTime, origin: origin, time: clock()
                )
            )
        }
        return .applied(change)
    }
}
