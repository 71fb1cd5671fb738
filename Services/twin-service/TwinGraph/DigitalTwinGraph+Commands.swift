import TwinflowCodec

/// What became of a command from `twins.commands`.
public enum CommandOutcome: Sendable, Hashable {
    /// Applied: its patch (if any) made this change, its telemetry (if any) was published.
    case applied(TwinChange?)
    /// A command with this id was applied before: nothing changed, nothing was emitted.
    case duplicate
    /// Refused as the REST API would refuse it (unknown twin, a patch the model rejects …): nothing changed.
    case rejected(ServiceError)
}

extension DigitalTwinGraph {
    /// Applies a batch of commands in one transaction, in order; each command takes effect whole or
    /// not at all, and at most once per command id.
    public func apply(_ commands: [TwinCommand]) async throws -> [CommandOutcome] {
        let writes: [StoreWrite] = commands.map { command in { transaction in try self.apply(command, in: transaction) } }
        return try await self.writes.performAll(writes).map { result in
            switch result {
            case .success(let outcome as CommandOutcome): outcome
            case .success: preconditionFailure("a command write returned something else than its outcome")
            case .failure(let error as ServiceError): .rejected(error)
            case .failure(let error): .rejected(ServiceError(code: "InternalError", status: 500, "\(error)"))
            }
        }
    }

    private func apply(_ command: TwinCommand, in transaction: any TwinStoreTransaction) throws -> CommandOutcome {
        guard try transaction.recordOnce("command/\(command.id)") else { return .duplicate }
        let origin = ChangeOrigin(traceparent: command.traceparent)
        var change: TwinChange?
        if let patch = command.patch {
            try Self.checkPaths(of: patch)
            change = try patchTwin(
                command.twinID, patch, in: transaction, ifMatch: nil, componentPath: nil, sourceTime: command.sourceTime, origin: origin
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
