import Synchronization
import TwinGraph
import TwinflowCodec
import TwinflowRuntime

/// The models twin-service holds, as far as the propagator needs them: which model extends which
/// (a rule's `sourceModel` matches its descendants) and the schemas of target properties. Loaded
/// with the relationship view; a model first seen in an event is fetched once, off the event's path.
public final class ModelCatalog: Sendable {
    private let models = Mutex(ModelSet())
    private let client: TwinsClient?
    /// Models twin-service did not hold when asked, with when: not asked again for ``missingRecheck``.
    private let missing = Mutex([String: ContinuousClock.Instant]())
    static let missingRecheck: Duration = .seconds(10)

    public init(client: TwinsClient?) {
        self.client = client
    }

    /// Replaces what is known with `definitions` (every model twin-service holds).
    public func load(_ definitions: [JSONValue]) throws {
        var set = ModelSet()
        if !definitions.isEmpty { try set.add(try DTDLParser.parseUpload(.array(definitions))) }
        models.withLock { $0 = set }
    }

    public var current: ModelSet { models.withLock { $0 } }

    /// Fetches the models among `ids` not known yet (with what they depend on). A model
    /// twin-service does not know is left out, and not asked for again for ``missingRecheck``;
    /// it matches only rules naming it exactly.
    public func learn(_ ids: Set<String>) async throws {
        guard let client else { return }
        let now = ContinuousClock.now
        let unknown = models.withLock { set in ids.filter { id in DTMI(id).map { set.resolvedInterface($0) == nil } ?? false } }
            .filter { id in missing.withLock { $0[id].map { now - $0 > Self.missingRecheck } ?? true } }
        for id in unknown.sorted() {
            guard let definitions = try await client.modelDefinitions(dependenciesFor: id) else {
                missing.withLock { missing in
                    if missing.count >= 10_000 { missing = missing.filter { now - $0.value <= Self.missingRecheck } }
                    missing[id] = now
                }
                continue
            }
            let interfaces = try DTDLParser.parseUpload(.array(definitions))
            try models.withLock { set in
                let new = interfaces.filter { set.resolvedInterface($0.id) == nil }
                if !new.isEmpty { try set.add(new) }
            }
        }
    }
}

/// The models as one batch's decisions ask about them, with the answers remembered for the batch:
/// a model ID is parsed and looked up once, not once per event.
struct ModelLookup {
    let models: ModelSet
    private var ids: [String: DTMI?] = [:]
    private var matching: [String: [Bool]] = [:]
    private var schemas: [String: [JSONPointer: Schema?]] = [:]

    init(_ models: ModelSet) {
        self.models = models
    }

    private mutating func dtmi(_ text: String) -> DTMI? {
        if let known = ids[text] { return known }
        let id = DTMI(text)
        ids[text] = id
        return id
    }

    /// For each of `rules`, whether a twin of `model` is one it reads: any model when the rule
    /// names none, else the named model or one extending it.
    mutating func matches(_ model: String?, _ rules: [PropagationRule]) -> [Bool] {
        let key = model ?? ""
        if let known = matching[key] { return known }
        let answers = rules.map { rule -> Bool in
            guard let wanted = rule.sourceModel else { return true }
            guard let model else { return false }
            if model == wanted { return true }
            guard let id = dtmi(model), let base = dtmi(wanted) else { return false }
            return models.model(id, isOfModel: base)
        }
        matching[key] = answers
        return answers
    }

    /// Why `value` does not fit `pointer` of a twin of `model`, or `nil` when it fits (or the model
    /// or property is not known, which twin-service then judges).
    mutating func problem(with value: JSONValue, at pointer: JSONPointer, model: String?) -> String? {
        guard let model else { return nil }
        let schema: Schema?
        if let known = schemas[model]?[pointer] {
            schema = known
        } else {
            schema = dtmi(model).flatMap { models.schema(ofTwinValueAt: pointer, model: $0) }
            schemas[model, default: [:]][pointer] = schema
        }
        guard let schema else { return nil }
        do {
            try models.validate(value, against: schema, at: pointer.description)
            return nil
        } catch {
            return "\(model): \(error)"
        }
    }
}
