import TwinGraph
import TwinflowCodec

extension PropagationRules {
    /// Why rules do not fit the models twin-service holds: a source model without the source
    /// property or the relationship, a parent model without the target property, or a value type
    /// the target cannot hold. Rules whose models are not uploaded yet are not judged here; their
    /// values are checked event by event.
    public func misfits(in models: ModelSet) -> [String] {
        var problems: [String] = []
        for rule in rules {
            problems += rule.misfits(in: models)
        }
        return problems
    }
}

extension PropagationRule {
    func misfits(in models: ModelSet) -> [String] {
        var problems: [String] = []
        var sourceSchema: Schema?
        var parentModels: [DTMI] = []
        if let name = sourceModel, let id = DTMI(name), let source = models.resolvedInterface(id) {
            if let schema = models.schema(ofTwinValueAt: sourceProperty, model: id) {
                sourceSchema = schema
            } else {
                problems.append("\(self): \(name) has no property \(sourceProperty)")
            }
            if direction == .outgoing {
                if let relationship = source.relationships[self.relationship] {
                    parentModels = relationship.target.map { [$0] } ?? []
                } else {
                    problems.append("\(self): \(name) has no relationship '\(self.relationship)'")
                }
            }
        }
        if direction == .incoming {
            parentModels = models.interfaces.keys.filter { id in
                guard let relationship = models.resolvedInterface(id)?.relationships[self.relationship] else { return false }
                guard let name = sourceModel, let source = DTMI(name), let target = relationship.target else { return true }
                return models.model(source, isOfModel: target) || models.model(target, isOfModel: source)
            }.sorted()
        }
        for parent in parentModels where models.resolvedInterface(parent) != nil {
            guard let targetSchema = models.schema(ofTwinValueAt: targetProperty, model: parent) else {
                problems.append("\(self): \(parent) has no property \(targetProperty)")
                continue
            }
            // Without a source model, the children are what the parent's relationship targets.
            let childSchema =
                sourceSchema
                ?? (direction == .incoming
                    ? models.resolvedInterface(parent)?.relationships[relationship]?.target.flatMap {
                        models.schema(ofTwinValueAt: sourceProperty, model: $0)
                    } : nil)
            if let problem = typeProblem(source: childSchema, target: targetSchema) {
                problems.append("\(self): \(parent)'s \(targetProperty) \(problem)")
            }
        }
        return problems
    }

    /// Why a value of `source` cannot go into `target` by this rule's kind, or `nil`.
    private func typeProblem(source: Schema?, target: Schema) -> String? {
        let numeric: Set<Schema.Primitive> = [.double, .float, .integer, .long]
        guard case .primitive(let targetType) = target else {
            return kind.aggregates ? "is not a number (\(kind.rawValue) needs one)" : nil
        }
        if kind.aggregates {
            guard numeric.contains(targetType) else { return "is \(targetType.rawValue), not a number (\(kind.rawValue) needs one)" }
            if kind == .average, targetType == .integer || targetType == .long {
                return "is \(targetType.rawValue); an average needs double or float"
            }
            if let source, case .primitive(let sourceType) = source, !numeric.contains(sourceType) {
                return "cannot take \(kind.rawValue) of a \(sourceType.rawValue) source"
            }
            return nil
        }
        guard let source, case .primitive(let sourceType) = source else { return nil }
        if sourceType == targetType { return nil }
        if numeric.contains(sourceType), [.double, .float].contains(targetType) { return nil }
        return "is \(targetType.rawValue) and cannot hold the source's \(sourceType.rawValue)"
    }
}
