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
    /// twin-service does not know is left out; it matches only rules naming it exactly.
    public func learn(_ ids: Set<String>) async throws {
        guard let client else { return }
        let unknown = models.withLock { set in ids.filter { id in DTMI(id).map { set.resolvedInterface($0) == nil } ?? false } }
        for id in unknown.sorted() {
            guard let definitions = try await client.modelDefinitions(dependenciesFor: id) else { continue }
            let interfaces = try DTDLParser.parseUpload(.array(definitions))
            try models.withLock { set in
                let new = interfaces.filter { set.resolvedInterface($0.id) == nil }
                if !new.isEmpty { try set.add(new) }
            }
        }
    }
}

extension ModelSet {
    /// Whether a twin of `model` is one `rule` reads: any model when the rule names none, else the
    /// named model or one extending it.
    func matches(_ model: String?, _ rule: PropagationRule) -> Bool {
        guard let wanted = rule.sourceModel else { return true }
        guard let model else { return false }
        if model == wanted { return true }
        guard let id = DTMI(model), let base = DTMI(wanted) else { return false }
        return self.model(id, isOfModel: base)
    }

    /// Why `value` does not fit `pointer` of a twin of `model`, or `nil` when it fits (or the model
    /// or property is not known, which twin-service then judges).
    func problem(with value: JSONValue, at pointer: JSONPointer, model: String?) -> String? {
        guard let model, let id = DTMI(model), let schema = schema(ofTwinValueAt: pointer, model: id) else { return nil }
        do {
            try validate(value, against: schema, at: pointer.description)
            return nil
        } catch {
            return "\(model): \(error)"
        }
    }
}
