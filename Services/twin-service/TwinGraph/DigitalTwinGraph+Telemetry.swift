import TwinflowCodec

extension DigitalTwinGraph {
    /// ADT's PublishTelemetry (`POST /digitaltwins/{id}[/components/{path}]/telemetry`): the payload,
    /// exactly as sent, goes out as a `microsoft.iot.telemetry` event with `messageID` as its id. A
    /// `messageID` the twin has sent before is accepted and publishes nothing again.
    public func publishTelemetry(
        _ id: String, messageID: String?, payload: [UInt8], component: String? = nil, sourceTime: String? = nil,
        origin: ChangeOrigin = ChangeOrigin()
    ) async throws {
        guard let messageID, !messageID.isEmpty else { throw ServiceError.invalidArgument("The Message-Id header is required.") }
        try Self.checkIdempotencyID(messageID, named: "Message-Id")
        if let sourceTime, !TwinCommand.isSourceTime(sourceTime) {
            throw ServiceError.invalidArgument("The Telemetry-Source-Time header must be an RFC 3339 timestamp.")
        }
        guard payload.count <= Self.maximumTelemetryBytes else {
            throw ServiceError.payloadTooLarge("The telemetry is \(payload.count) bytes; at most \(Self.maximumTelemetryBytes) are allowed.")
        }
        do {
            _ = try JSONValue.parse(payload)
        } catch {
            throw ServiceError.invalidArgument("The telemetry must be JSON: \(error.description)")
        }
        let models = self.models
        try await write { transaction in
            guard let twin = try transaction.twin(id).live else { throw ServiceError.twinNotFound(id) }
            try Self.checkComponent(component, of: twin, models)
            // The ID's length keeps the key one twin's: a twin ID may hold '/' as a message ID may.
            guard try transaction.recordOnce("telemetry/\(id.utf8.count)/\(id)/\(messageID)") else { return }
            try transaction.emit(
                self.telemetryEvent(
                    twin: twin, messageID: messageID, payload: payload, component: component, sourceTime: sourceTime, origin: origin,
                    time: self.clock()
                )
            )
        }
    }

    static func checkComponent(_ component: String?, of twin: StoredTwin, _ models: ModelSet) throws(ServiceError) {
        guard let component else { return }
        guard let model = DTMI(twin.model), models.resolvedInterface(model)?.components[component] != nil else {
            throw ServiceError.componentNotFound(twin.id, component)
        }
    }
}
