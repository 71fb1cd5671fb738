import TwinGraph
import TwinflowCodec

/// Whether a body field's value fits the twin property it sets, by the twin's model, with the same
/// rules twin-service applies to a patch: a value twin-service would refuse is refused at ingress,
/// with the field named, before it costs a command.
enum ValueCheck {
    /// Why `value` does not fit `mapping`'s property of `model`, or `nil` when it fits. A path into a
    /// property the model describes by a schema ingress cannot follow is left to twin-service.
    static func problem(_ value: JSONValue, for mapping: IngressMapping.PropertyMapping, model: CheckedModel?) -> String? {
        let target = mapping.twinPathText
        if let bad = nonFinite(in: value, at: "") {
            return "\(mapping.from)\(bad) is not a finite number (\(target) takes JSON numbers only)"
        }
        guard let model, let id = model.dtmi, var interface = model.models.resolvedInterface(id) else { return nil }
        if let componentName = mapping.component {
            guard let component = interface.components[componentName], let resolved = model.models.resolvedInterface(component.schema) else {
                return "\(model.id) has no component '\(componentName)' (for \(target))"
            }
            interface = resolved
        }
        guard let name = mapping.to.tokens.first, let property = interface.properties[name] else {
            return "\(interface.id) has no property '\(mapping.to.tokens.first ?? "")' (for \(target))"
        }
        guard let schema = model.models.schema(property.schema, following: mapping.to.tokens.dropFirst()) else { return nil }
        do {
            try model.models.validate(value, against: schema, at: target)
            return nil
        } catch {
            return "\(mapping.from) → \(error)"
        }
    }

    /// The first non-finite number in `value` (as a pointer suffix), or `nil`.
    static func nonFinite(in value: JSONValue, at path: String) -> String? {
        switch value {
        case .double(let number) where !number.isFinite: return path
        case .array(let elements):
            for (index, element) in elements.enumerated() {
                if let found = nonFinite(in: element, at: "\(path)/\(index)") { return found }
            }
            return nil
        case .object(let members):
            for (key, member) in members {
                if let found = nonFinite(in: member, at: path + JSONPointer(tokens: [key]).description) { return found }
            }
            return nil
        default: return nil
        }
    }
}
