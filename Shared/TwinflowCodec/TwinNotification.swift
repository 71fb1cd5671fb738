import KafkaRecords

/// An ADT change notification from `eventgrid.twin-events`, read for what a subscriber acts on: the
/// twin it is about, its per-twin `sequence`, and the change (a twin's patch or document, or a
/// relationship).
///
/// Twinflow adds two extension attributes to ADT's: `sequence` (per twin, increasing) and
/// `twinflowhop`, how many propagation steps led to the change (absent for 0).
public struct TwinNotification: Sendable, Hashable {
    /// The extension attribute naming the propagation step a change came from.
    public static let hopExtension = "twinflowhop"

    public enum Change: Sendable, Hashable {
        /// `Twin.Create`: the twin's document as created.
        case twinCreated(JSONValue)
        /// `Twin.Update`: the patch as applied.
        case twinUpdated(JSONPatch)
        /// `Twin.Delete`: the twin's last document.
        case twinDeleted(JSONValue)
        /// `Relationship.Create` (and `Update`, which carries a patch of its properties only; the
        /// relationship's ends never change): the relationship.
        case relationshipCreated(Relationship)
        case relationshipUpdated(relationshipID: String)
        case relationshipDeleted(Relationship)
    }

    /// A relationship's identity and ends, as notifications carry them.
    public struct Relationship: Sendable, Hashable {
        public var id: String
        public var name: String
        public var sourceID: String
        public var targetID: String

        public init(id: String, name: String, sourceID: String, targetID: String) {
            self.id = id
            self.name = name
            self.sourceID = sourceID
            self.targetID = targetID
        }

        public init(decoding document: JSONValue?) throws(CodecError) {
            guard let object = document?.objectValue else { throw CodecError(field: "data", reason: "must be the relationship's JSON object") }
            self.id = try object.requiredString("$relationshipId", in: "data")
            self.name = try object.requiredString("$relationshipName", in: "data")
            self.sourceID = try object.requiredString("$sourceId", in: "data")
            self.targetID = try object.requiredString("$targetId", in: "data")
        }
    }

    public var attributes: CloudEventAttributes
    /// The twin the notification is about (the relationship's source for relationship changes).
    public var twinID: String
    /// The twin's model (`modelId` of an update, `$metadata.$model` of a twin document), if named.
    public var modelID: String?
    /// The per-twin sequence, or `nil` when the event carries none.
    public var sequence: Int64?
    /// Propagation steps that led to this change: 0 for a change from a device or a user.
    public var hop: Int
    public var change: Change

    public init(decoding bytes: [UInt8]?) throws(CodecError) {
        let event = try CloudEvent(decoding: bytes)
        try self.init(event)
    }

    public init(decoding message: KafkaConsumerMessage) throws(CodecError) {
        try self.init(decoding: message.value)
    }

    /// The notification `message` holds, or nil when it holds a CloudEvent of another type (an
    /// event route may send telemetry or other events to the same topic), which a subscriber to
    /// notifications passes over. Throws for what is not a CloudEvent, or a notification it cannot read.
    public init?(ifNotificationIn message: KafkaConsumerMessage) throws(CodecError) {
        let event = try CloudEvent(decoding: message.value)
        guard Self.types.contains(event.attributes.type) else { return nil }
        try self.init(event)
    }

    /// ADT's twin and relationship notification types.
    public static let types: Set<String> = [
        "Microsoft.DigitalTwins.Twin.Create", "Microsoft.DigitalTwins.Twin.Update", "Microsoft.DigitalTwins.Twin.Delete",
        "Microsoft.DigitalTwins.Relationship.Create", "Microsoft.DigitalTwins.Relationship.Update",
        "Microsoft.DigitalTwins.Relationship.Delete",
    ]

    public init(_ event: CloudEvent) throws(CodecError) {
        let attributes = event.attributes
        self.attributes = attributes
        self.sequence = try attributes.sequence.map { (text) throws(CodecError) -> Int64 in
            guard let value = Int64(text), value >= 0 else { throw CodecError(field: "sequence", reason: "must be a non-negative integer") }
            return value
        }
        self.hop =
            try attributes.extensions[Self.hopExtension].map { (text) throws(CodecError) -> Int in
                guard let value = Int(text), (0...TwinCommand.maximumHop).contains(value) else {
                    throw CodecError(field: Self.hopExtension, reason: "must be an integer from 0 to \(TwinCommand.maximumHop)")
                }
                return value
            } ?? 0
        guard let subject = attributes.subject, !subject.isEmpty else { throw .missing("subject") }
        switch attributes.type {
        case "Microsoft.DigitalTwins.Twin.Create", "Microsoft.DigitalTwins.Twin.Delete":
            guard let document = event.data, let object = document.objectValue else {
                throw CodecError(field: "data", reason: "must be the twin's JSON object")
            }
            self.twinID = subject
            self.modelID = object["$metadata"]?["$model"]?.stringValue
            self.change = attributes.type.hasSuffix("Create") ? .twinCreated(document) : .twinDeleted(document)
        case "Microsoft.DigitalTwins.Twin.Update":
            guard let object = event.data?.objectValue, let patch = object["patch"] else {
                throw CodecError(field: "data.patch", reason: "is required")
            }
            self.twinID = subject
            self.modelID = object["modelId"]?.stringValue
            self.change = .twinUpdated(try JSONPatch(json: patch, field: "data.patch"))
        case "Microsoft.DigitalTwins.Relationship.Create", "Microsoft.DigitalTwins.Relationship.Delete":
            let relationship = try Relationship(decoding: event.data)
            self.twinID = relationship.sourceID
            self.modelID = nil
            self.change = attributes.type.hasSuffix("Create") ? .relationshipCreated(relationship) : .relationshipDeleted(relationship)
        case "Microsoft.DigitalTwins.Relationship.Update":
            // The subject is `<source>/relationships/<id>`.
            let parts = subject.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[1] == "relationships" else {
                throw CodecError(field: "subject", reason: "must be <twin>/relationships/<relationship> for a relationship update")
            }
            self.twinID = String(parts[0])
            self.modelID = event.data?["modelId"]?.stringValue
            self.change = .relationshipUpdated(relationshipID: String(parts[2]))
        default:
            throw CodecError(field: "type", reason: "'\(attributes.type)' is not one of ADT's twin or relationship notifications")
        }
    }

    /// The value a twin change gives `pointer`: `.set(value)` when an `add` or `replace` writes it
    /// (or writes an object or array that holds it), `.removed` when the change takes it away, and
    /// `nil` when the change does not touch it. A create sets what its document holds.
    public func value(at pointer: JSONPointer) -> ValueChange? {
        switch change {
        case .twinCreated(let document):
            return document.value(at: pointer).map { .set($0) }
        case .twinUpdated(let patch):
            var outcome: ValueChange?
            for operation in patch.operations {
                switch operation {
                case .add(let path, let value), .replace(let path, let value):
                    if path == pointer {
                        outcome = .set(value)
                    } else if pointer.isDescendant(of: path) {
                        let rest = JSONPointer(tokens: Array(pointer.tokens.dropFirst(path.tokens.count)))
                        outcome = value.value(at: rest).map { .set($0) } ?? .removed
                    } else if path.isDescendant(of: pointer) {
                        // A member inside the value changed: the value as a whole is not known here.
                        outcome = .changedInside
                    }
                case .remove(let path):
                    if path == pointer || pointer.isDescendant(of: path) {
                        outcome = .removed
                    } else if path.isDescendant(of: pointer) {
                        outcome = .changedInside
                    }
                case .move(let from, let path):
                    if from == pointer || pointer.isDescendant(of: from) {
                        outcome = .removed
                    } else if path == pointer || pointer.isDescendant(of: path) || path.isDescendant(of: pointer) || from.isDescendant(of: pointer) {
                        outcome = .changedInside
                    }
                case .copy(_, let path):
                    if path == pointer || pointer.isDescendant(of: path) || path.isDescendant(of: pointer) {
                        outcome = .changedInside
                    }
                case .test:
                    continue
                }
            }
            return outcome
        case .twinDeleted:
            return .removed
        case .relationshipCreated, .relationshipUpdated, .relationshipDeleted:
            return nil
        }
    }

    /// What a change did to one value.
    public enum ValueChange: Sendable, Hashable {
        case set(JSONValue)
        case removed
        /// Something inside the value changed, and the change alone does not say what it now is.
        case changedInside
    }
}
