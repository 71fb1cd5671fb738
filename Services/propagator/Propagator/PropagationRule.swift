import Foundation
import TwinflowCodec

/// One rule: when a twin (of `sourceModel`, if set, or a model extending it) changes
/// `sourceProperty`, set `targetProperty` on its parents by `relationship` to what `kind` makes of
/// the value (or of all the parent's children's values).
public struct PropagationRule: Sendable, Hashable, CustomStringConvertible {
    public enum Direction: String, Sendable, CaseIterable {
        /// The parent is the twin whose relationship points at the changed twin.
        case incoming
        /// The parent is the twin the changed twin's relationship points at.
        case outgoing
    }

    public enum Kind: String, Sendable, CaseIterable {
        case copy, average, min, max

        /// Whether the value is made from all the parent's children, not from the changed one alone.
        public var aggregates: Bool { self != .copy }
    }

    public var sourceModel: String?
    public var sourceProperty: JSONPointer
    public var relationship: String
    public var direction: Direction
    public var targetProperty: JSONPointer
    public var kind: Kind
    /// The rule's place in the file, from 1, for messages.
    public var number: Int

    public init(
        sourceModel: String? = nil, sourceProperty: JSONPointer, relationship: String, direction: Direction = .incoming,
        targetProperty: JSONPointer, kind: Kind = .copy, number: Int = 1
    ) {
        self.sourceModel = sourceModel
        self.sourceProperty = sourceProperty
        self.relationship = relationship
        self.direction = direction
        self.targetProperty = targetProperty
        self.kind = kind
        self.number = number
    }

    /// A short stable name for the rule, from what it says (not its place in the file), used in
    /// the idempotency IDs of the commands it makes.
    public var key: String {
        let text = [sourceModel ?? "*", sourceProperty.description, relationship, direction.rawValue, targetProperty.description, kind.rawValue]
            .joined(separator: "|")
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    public var description: String {
        "rule \(number) (\(sourceModel ?? "any model") \(sourceProperty) → \(direction.rawValue) '\(relationship)' → \(targetProperty), \(kind.rawValue))"
    }
}

/// The propagator's rules, from `PROPAGATOR_RULES` (the contract's JSON format) or the built-in
/// seed rule.
public struct PropagationRules: Sendable, Hashable {
    public var rules: [PropagationRule]

    public init(_ rules: [PropagationRule]) {
        self.rules = rules
    }

    /// The seed scenario's rule: a thermostat's `/Temperature` → the room by incoming
    /// `rel_has_thermostat` → `/currentTemp`, copied.
    public static let seed = PropagationRules([
        PropagationRule(
            sourceModel: "dtmi:contosocom:DigitalTwins:Thermostat;1", sourceProperty: JSONPointer(tokens: ["Temperature"]),
            relationship: "rel_has_thermostat", direction: .incoming, targetProperty: JSONPointer(tokens: ["currentTemp"]), kind: .copy)
    ])

    /// The properties the relationship view keeps per twin: every target (so a parent that holds
    /// the value already is left alone), and the sources an aggregate reads from every child. A
    /// copied source is taken from the change itself.
    public var trackedProperties: Set<JSONPointer> {
        Set(rules.flatMap { rule in rule.kind.aggregates ? [rule.sourceProperty, rule.targetProperty] : [rule.targetProperty] })
    }

    /// Every relationship name a rule follows.
    public var relationshipNames: Set<String> { Set(rules.map(\.relationship)) }

    /// Reads a rules file: `{"rules": [{"sourceModel"?, "sourceProperty", "relationship", "direction"?, "targetProperty", "kind"?}]}`;
    /// `direction` is `incoming` and `kind` is `copy` when left out.
    public static func load(path: String) throws(RuleError) -> PropagationRules {
        let bytes: [UInt8]
        do {
            bytes = Array(try Data(contentsOf: URL(filePath: path)))
        } catch {
            throw RuleError("PROPAGATOR_RULES=\(path) cannot be read: \(error.localizedDescription)")
        }
        do {
            return try PropagationRules(json: try JSONValue.parse(bytes))
        } catch let error as RuleError {
            throw RuleError("PROPAGATOR_RULES=\(path): \(error.description)")
        } catch {
            throw RuleError("PROPAGATOR_RULES=\(path) is not JSON: \(error)")
        }
    }

    public init(json: JSONValue) throws(RuleError) {
        guard let list = json["rules"]?.arrayValue else { throw RuleError("expected an object with a \"rules\" array") }
        guard !list.isEmpty else { throw RuleError("\"rules\" is empty") }
        var rules: [PropagationRule] = []
        for (index, entry) in list.enumerated() {
            rules.append(try Self.rule(entry, number: index + 1))
        }
        self.rules = rules
    }

    private static func rule(_ entry: JSONValue, number: Int) throws(RuleError) -> PropagationRule {
        guard let object = entry.objectValue else { throw RuleError("rule \(number) is not a JSON object") }
        let known: Set<String> = ["sourceModel", "sourceProperty", "relationship", "direction", "targetProperty", "kind"]
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw RuleError("rule \(number) has an unknown member '\(unknown)' (expected \(known.sorted().joined(separator: ", ")))")
        }
        func text(_ name: String, required: Bool) throws(RuleError) -> String? {
            switch object[name] {
            case nil, .null?:
                if required { throw RuleError("rule \(number) needs \"\(name)\"") }
                return nil
            case .string(let value)? where !value.isEmpty: return value
            case let value?: throw RuleError("rule \(number): \"\(name)\" must be a non-empty string, found \(value.jsonString())")
            }
        }
        func pointer(_ name: String) throws(RuleError) -> JSONPointer {
            let value = try text(name, required: true)!
            guard let pointer = try? JSONPointer(value), !pointer.isRoot else {
                throw RuleError("rule \(number): \"\(name)\" must be a JSON pointer to a property, such as /Temperature, found \"\(value)\"")
            }
            return pointer
        }
        func choice<Choice: RawRepresentable & CaseIterable>(_ name: String, default fallback: Choice) throws(RuleError) -> Choice
        where Choice.RawValue == String {
            guard let value = try text(name, required: false) else { return fallback }
            guard let chosen = Choice(rawValue: value) else {
                throw RuleError(
                    "rule \(number): \"\(name)\" must be one of \(Choice.allCases.map(\.rawValue).joined(separator: ", ")), found \"\(value)\"")
            }
            return chosen
        }
        let relationship = try text("relationship", required: true)!
        guard relationship.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) })
        else {
            throw RuleError("rule \(number): \"relationship\" must be a DTDL relationship name, found \"\(relationship)\"")
        }
        return PropagationRule(
            sourceModel: try text("sourceModel", required: false), sourceProperty: try pointer("sourceProperty"), relationship: relationship,
            direction: try choice("direction", default: .incoming), targetProperty: try pointer("targetProperty"),
            kind: try choice("kind", default: .copy), number: number)
    }
}

/// A rules file or rule the propagator cannot use: the service stops at startup with this one line.
public struct RuleError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
