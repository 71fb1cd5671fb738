import Foundation
import TwinflowCodec

/// ADT's notification types, and its telemetry type.
public enum EventType {
    public static let twinCreate = "Microsoft.DigitalTwins.Twin.Create"
    public static let twinUpdate = "Microsoft.DigitalTwins.Twin.Update"
    public static let twinDelete = "Microsoft.DigitalTwins.Twin.Delete"
    public static let relationshipCreate = "Microsoft.DigitalTwins.Relationship.Create"
    public static let relationshipUpdate = "Microsoft.DigitalTwins.Relationship.Update"
    public static let relationshipDelete = "Microsoft.DigitalTwins.Relationship.Delete"
    public static let telemetry = "microsoft.iot.telemetry"
}

/// What caused a change: the trace its notification continues, and the propagation step it came from.
public struct ChangeOrigin: Sendable, Hashable {
    public var traceparent: String
    /// How many propagation steps led to the change (a command's `hop`); notifications carry it as
    /// ``TwinNotification/hopExtension`` when it is not 0.
    public var hop: Int

    /// `traceparent` when it is valid W3C trace context, otherwise a new trace.
    public init(traceparent: String? = nil, hop: Int = 0) {
        self.traceparent = traceparent.flatMap { Traceparent.isValid($0) ? $0 : nil } ?? Traceparent.random()
        self.hop = hop
    }
}

extension DigitalTwinGraph {
    /// The notification of a twin change: Create and Delete carry the twin, Update the patch as applied.
    func event(for change: TwinChange, origin: ChangeOrigin, time: String) -> PendingEvent {
        let type: String
        let data: [UInt8]
        switch change.kind {
        case .create:
            type = EventType.twinCreate
            data = change.twin.document.serialized()
        case .update:
            type = EventType.twinUpdate
            data = Self.updateData(modelID: change.twin.model, patch: change.patch ?? JSONPatch([]))
        case .delete:
            type = EventType.twinDelete
            data = change.twin.document.serialized()
        }
        return notification(type: type, twinID: change.twin.id, subject: change.twin.id, data: data, origin: origin, time: time)
    }

    /// An update's data, `{"modelId","patch"}` (of a twin, or of a relationship with its source twin's
    /// model), written straight from the patch: every patch command makes one.
    static func updateData(modelID: String, patch: JSONPatch) -> [UInt8] {
        var data: [UInt8] = []
        data.reserveCapacity(64 * patch.operations.count + 64)
        data += #"{"modelId":"#.utf8
        JSONValue.string(modelID).write(into: &data)
        data += #","patch":"#.utf8
        patch.write(into: &data)
        data.append(UInt8(ascii: "}"))
        return data
    }

    /// The notification of a relationship change, keyed by its source twin.
    func event(for change: RelationshipChange, origin: ChangeOrigin, time: String) -> PendingEvent {
        let relationship = change.relationship
        let type: String
        let data: [UInt8]
        switch change.kind {
        case .create:
            type = EventType.relationshipCreate
            data = relationship.document.serialized()
        case .update:
            type = EventType.relationshipUpdate
            data = Self.updateData(modelID: change.sourceModel, patch: change.patch ?? JSONPatch([]))
        case .delete:
            type = EventType.relationshipDelete
            data = relationship.document.serialized()
        }
        return notification(
            type: type, twinID: relationship.sourceID, subject: "\(relationship.sourceID)/relationships/\(relationship.id)", data: data,
            origin: origin, time: time
        )
    }

    private func notification(type: String, twinID: String, subject: String, data: [UInt8], origin: ChangeOrigin, time: String) -> PendingEvent {
        PendingEvent(
            twinID: twinID,
            attributes: CloudEventAttributes(
                id: RandomID.uuid(), type: type, source: instanceName, subject: subject, time: time,
                dataContentType: "application/json", traceparent: origin.traceparent,
                extensions: origin.hop > 0 ? [TwinNotification.hopExtension: String(origin.hop)] : [:]
            ),
            data: data
        )
    }

    /// Telemetry of a twin (or one of its components), the payload exactly as sent.
    func telemetryEvent(
        twin: StoredTwin, messageID: String, payload: [UInt8], component: String?, sourceTime: String?, origin: ChangeOrigin, time: String
    ) -> PendingEvent {
        PendingEvent(
            twinID: twin.id,
            attributes: CloudEventAttributes(
                id: messageID, type: EventType.telemetry, source: "\(instanceName)/digitaltwins/\(twin.id)", subject: component, time: time,
                dataContentType: "application/json", dataSchema: twin.model, traceparent: origin.traceparent,
                extensions: sourceTime.map { ["telemetrysourcetime": $0] } ?? [:]
            ),
            data: payload,
            sequenced: false
        )
    }
}
