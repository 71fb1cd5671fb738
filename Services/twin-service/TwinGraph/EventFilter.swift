import TwinflowCodec

/// An event route's filter in ADT's language: CloudEvents attributes (`type`, `source`, `subject`,
/// `id`, `time`, `dataschema`, `datacontenttype`, `specversion`, `traceparent`, `sequence`) and the
/// event's data as `$body.<path>`, compared with `=`, `!=`, `<`, `<=`, `>`, `>=`, joined with AND, OR,
/// NOT and parentheses; `STARTS_WITH`, `ENDS_WITH`, `CONTAINS`, `IS_DEFINED`; `true` and `false`.
///
/// Beyond ADT: `TOUCHES('/Temperature')` holds for an update whose patch changed that property or
/// anything under it, so a route can carry only the updates it cares about.
public struct EventFilter: Sendable, Hashable {
    let expression: Query.Expression
    /// Whether evaluating needs the event's data parsed.
    let readsBody: Bool

    static let attributes: Set<String> = [
        "type", "source", "subject", "id", "time", "dataschema", "datacontenttype", "specversion", "traceparent", "sequence",
    ]
    /// The functions a filter may call, with how many arguments each takes.
    static let functions: [String: Int] = ["STARTS_WITH": 2, "ENDS_WITH": 2, "CONTAINS": 2, "IS_DEFINED": 1, "TOUCHES": 1]

    /// Reads a filter; `bounded: false` (a stored route's, when the routes load) leaves out the
    /// limits on length and nesting, which a route stored before they were kept may pass.
    public init(parsing text: String, bounded: Bool = true) throws(QueryError) {
        var parser = QueryParser(tokens: try QueryLexer.tokens(text, bounded: bounded), bounded: bounded)
        guard parser.current != nil else { throw QueryError(message: "The filter is empty; `true` routes every event.") }
        let expression = try parser.parseOr()
        guard parser.current == nil else { throw QueryError(message: "Unexpected text \(parser.whereNow).") }
        self.expression = expression
        self.readsBody = try Self.check(expression)
    }

    /// Whether `event` passes.
    public func matches(_ event: PendingEvent) -> Bool {
        var facts = EventFacts(event)
        return matches(&facts)
    }

    /// Whether the event passes; `facts` is shared by the routes an event is checked against, so its
    /// attributes are bound and its data parsed once.
    func matches(_ facts: inout EventFacts) -> Bool {
        if readsBody { facts.bindBody() }
        return (try? DigitalTwinGraph.truth(expression, facts.binding, ModelSet())) ?? false
    }

    /// Refuses names and functions a filter cannot use; returns whether it reads `$body`.
    private static func check(_ expression: Query.Expression) throws(QueryError) -> Bool {
        switch expression {
        case .literal: return false
        case .reference(let reference):
            if reference.alias == "$body" { return true }
            guard reference.path.isEmpty, attributes.contains(reference.alias) else {
                throw QueryError(message: "'\(([reference.alias] + reference.path).joined(separator: "."))' is not an event attribute or $body.")
            }
            return false
        case .compare(let left, _, let right), .and(let left, let right), .or(let left, let right):
            let leftReads = try check(left)
            return try check(right) || leftReads
        case .not(let inner): return try check(inner)
        case .membership(let item, let list, _):
            var reads = try check(item)
            for element in list where try check(element) { reads = true }
            return reads
        case .function(let name, let arguments):
            guard let arity = functions[name] else { throw QueryError(message: "\(name) is not a filter function.") }
            guard arguments.count == arity else { throw QueryError(message: "\(name) takes \(arity) argument\(arity == 1 ? "" : "s").") }
            var reads = name == "TOUCHES"
            for argument in arguments where try check(argument) { reads = true }
            return reads
        }
    }
}

/// An event as filters see it: its attributes by name, and `$body` once a filter asks for it.
struct EventFacts {
    private(set) var binding: DigitalTwinGraph.Binding
    private let data: [UInt8]
    private var bodyBound = false

    init(_ event: PendingEvent) {
        binding = Dictionary(minimumCapacity: 12)
        for (name, value) in event.attributes.named { binding[name] = .string(value) }
        data = event.data
    }

    mutating func bindBody() {
        guard !bodyBound else { return }
        bodyBound = true
        binding["$body"] = try? JSONValue.parse(data)
    }
}

/// Where routed events go: a configured name mapped to a Kafka topic, carrying events in CloudEvents
/// structured mode (Event Grid) or binary mode (Event Hubs).
public struct EventEndpoint: Sendable, Hashable {
    public enum Format: String, Sendable, Hashable { case structured, binary }
    public var name: String
    public var topic: String
    public var format: Format

    public init(name: String, topic: String, format: Format) {
        self.name = name
        self.topic = topic
        self.format = format
    }

    /// The built-in endpoints: `twin-events` (Event Grid) and `telemetry` (Event Hubs).
    public static func defaults(twinEventsTopic: String, telemetryTopic: String) -> [EventEndpoint] {
        [
            EventEndpoint(name: "twin-events", topic: twinEventsTopic, format: .structured),
            EventEndpoint(name: "telemetry", topic: telemetryTopic, format: .binary),
        ]
    }

    /// Parses `name=topic[:structured|binary],…` (the `TWINFLOW_ENDPOINTS` variable) on top of `base`.
    public static func parse(_ text: String, over base: [EventEndpoint]) throws(QueryError) -> [EventEndpoint] {
        var endpoints = base
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces }
            guard parts.count == 2, !parts[0].isEmpty else { throw QueryError(message: "'\(item)' is not name=topic[:format].") }
            let target = parts[1].split(separator: ":", maxSplits: 1).map(String.init)
            guard let topic = target.first, !topic.isEmpty, let format = Format(rawValue: target.count > 1 ? target[1] : "structured") else {
                throw QueryError(message: "'\(item)' is not name=topic[:structured|binary].")
            }
            endpoints.removeAll { $0.name == parts[0] }
            endpoints.append(EventEndpoint(name: parts[0], topic: topic, format: format))
        }
        return endpoints
    }
}

extension EventRoute {
    /// The routes a new store starts with: twin and relationship notifications to `twin-events`,
    /// telemetry to `telemetry`. They are ordinary routes: list, replace or delete them like any other.
    public static let defaults = [
        EventRoute(id: "default-twin-events", endpointName: "twin-events", filter: "STARTS_WITH(type, 'Microsoft.DigitalTwins.')"),
        EventRoute(id: "default-telemetry", endpointName: "telemetry", filter: "type = 'microsoft.iot.telemetry'"),
    ]
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
